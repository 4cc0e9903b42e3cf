/**
 * A real NATS server with JetStream for the NATS suites: Debian's `nats-server` (CI
 * installs it: .ci/system-packages) on a free 127.0.0.1 port, with its own temporary
 * store directory and config. `startNatsServer()` resolves once the server says it is
 * ready (its own log line, not a delay); `stop()` ends it (SIGTERM, then SIGKILL) and
 * removes the directory, and must run in afterAll/afterEach even when a test failed.
 * `kill()` stops it abruptly, as a crash would; `restart()` brings it back on the same
 * port and store.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { findBinary, freePort } from './local.ts';

/** The nats-server binary: on PATH, or where Debian puts it (/usr/sbin is not on every user's PATH). */
export const NATS_SERVER: string | undefined = findBinary('nats-server');

/** Logged once by a suite that is skipped because the binary is missing. */
export const NATS_SKIP_MESSAGE = 'SKIPPED — `nats-server` is not installed (CI installs it: .ci/system-packages; locally: apt-get install nats-server)';

export interface NatsServerOptions {
  /** The server's max_payload in bytes (its default is 1 MiB). */
  maxPayload?: number;
  /** The server's max_pending in bytes: what it queues for one client before it drops it as a slow consumer (its default is 64 MiB; at least max_payload). */
  maxPending?: number;
}

/** A broker server started for a suite, NATS or Redis (test/support/redis-server.ts). */
export interface BrokerServer {
  readonly url: string;
  readonly port: number;
  /** Lines the server logged (for a failing test's message). */
  readonly log: string[];
  /** Resolves with the next line the server logs that matches `pattern` (lines logged before the call do not count). */
  logged(pattern: RegExp): Promise<string>;
  /** SIGKILL, as a crash: connections drop without a goodbye. Resolves when the process is gone. */
  kill(): Promise<void>;
  /** Starts it again, after kill(), on the same port: what it keeps across a restart is the broker's own (NATS: its store directory; the Redis test server: nothing). */
  restart(): Promise<void>;
  /** Stops it (SIGTERM, then SIGKILL after 5 s) and removes its directory. */
  stop(): Promise<void>;
}

export type NatsServer = BrokerServer;

export async function startNatsServer(options: NatsServerOptions = {}): Promise<NatsServer> {
  if (NATS_SERVER === undefined) throw new Error(`startNatsServer: ${NATS_SKIP_MESSAGE}`);
  const binary = NATS_SERVER;
  const dir = mkdtempSync(join(tmpdir(), 'mcp-layers-nats-'));
  const port = await freePort();
  const config = join(dir, 'nats.conf');
  writeFileSync(
    config,
    [
      `listen: 127.0.0.1:${port}`,
      `jetstream { store_dir: ${JSON.stringify(join(dir, 'store'))}, max_memory_store: 64MB, max_file_store: 256MB }`,
      ...(options.maxPayload === undefined ? [] : [`max_payload: ${options.maxPayload}`]),
      ...(options.maxPending === undefined ? [] : [`max_pending: ${options.maxPending}`]),
      // No monitoring port, no cluster: nothing listens beyond the one client port.
    ].join('\n'),
  );
  const log: string[] = [];
  const watch = logWatch(log);
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();

  const launch = async () => {
    const process_ = spawn(binary, ['-c', config], { stdio: ['ignore', 'ignore', 'pipe'] });
    child = process_;
    exited = new Promise((resolve) => process_.once('exit', () => resolve()));
    const ready = new Promise<void>((resolve, reject) => {
      const lines = createInterface({ input: process_.stderr as NodeJS.ReadableStream });
      lines.on('line', (line) => {
        watch.line(line);
        if (line.includes('Server is ready')) resolve();
      });
      process_.once('error', reject);
      void exited.then(() => reject(new Error(`nats-server exited before it was ready:\n${log.slice(-20).join('\n')}`)));
    });
    await ready;
  };
  const kill = async () => {
    const current = child;
    if (current !== undefined && current.exitCode === null && current.signalCode === null) current.kill('SIGKILL');
    await exited;
  };

  await launch();
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    log,
    logged: watch.logged,
    kill,
    restart: launch,
    async stop() {
      const current = child;
      if (current !== undefined && current.exitCode === null && current.signalCode === null) {
        current.kill('SIGTERM');
        const timer = setTimeout(() => current.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A server's log as it comes: the first 500 lines kept (for a failing test's message), and waiters for a line to come. */
export function logWatch(log: string[]): { line(line: string): void; logged(pattern: RegExp): Promise<string> } {
  const waiters = new Set<{ pattern: RegExp; resolve: (line: string) => void }>();
  return {
    line(line) {
      if (log.length < 500) log.push(line);
      for (const waiter of waiters) {
        if (!waiter.pattern.test(line)) continue;
        waiters.delete(waiter);
        waiter.resolve(line);
      }
    },
    logged: (pattern) => new Promise((resolve) => waiters.add({ pattern, resolve })),
  };
}
