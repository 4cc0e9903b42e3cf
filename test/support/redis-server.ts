/**
 * A real Redis server for the Redis suites: Debian's `redis-server` (CI installs it:
 * .ci/system-packages) on a free 127.0.0.1 port, with its own temporary directory and no
 * persistence (`--save '' --appendonly no`). `startRedisServer()` resolves once the server
 * says it is ready (its own log line, not a delay); `stop()` ends it (SIGTERM, then
 * SIGKILL) and removes the directory, and must run in afterAll/afterEach even when a test
 * failed. `kill()` stops it abruptly, as a crash would; `restart()` brings it back on the
 * same port — empty, since nothing was persisted: every stream, group and key is gone.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { findBinary, freePort } from './local.ts';
import { type BrokerServer, logWatch } from './nats-server.ts';

/** The redis-server binary: on PATH, or where Debian puts it. */
export const REDIS_SERVER: string | undefined = findBinary('redis-server');

/** Logged once by a suite that is skipped because the binary is missing. */
export const REDIS_SKIP_MESSAGE = 'SKIPPED — `redis-server` is not installed (CI installs it: .ci/system-packages; locally: apt-get install redis-server)';

/** `restart()` brings it back empty: nothing was persisted. */
export type RedisServer = BrokerServer;

export async function startRedisServer(): Promise<RedisServer> {
  if (REDIS_SERVER === undefined) throw new Error(`startRedisServer: ${REDIS_SKIP_MESSAGE}`);
  const binary = REDIS_SERVER;
  const dir = mkdtempSync(join(tmpdir(), 'mcp-layers-redis-'));
  const port = await freePort();
  const log: string[] = [];
  const watch = logWatch(log);
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();

  const launch = async () => {
    // Nothing but the one client port: no persistence, no protected-mode surprises on loopback.
    const process_ = spawn(binary, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--logfile', ''], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = process_;
    exited = new Promise((resolve) => process_.once('exit', () => resolve()));
    await new Promise<void>((resolve, reject) => {
      const lines = createInterface({ input: process_.stdout as NodeJS.ReadableStream });
      lines.on('line', (line) => {
        watch.line(line);
        if (line.includes('Ready to accept connections')) resolve();
      });
      process_.once('error', reject);
      void exited.then(() => reject(new Error(`redis-server exited before it was ready:\n${log.slice(-20).join('\n')}`)));
    });
  };
  const alive = () => child !== undefined && child.exitCode === null && child.signalCode === null;

  await launch();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    log,
    logged: watch.logged,
    async kill() {
      if (alive()) child?.kill('SIGKILL');
      await exited;
    },
    restart: launch,
    async stop() {
      const current = child;
      if (current !== undefined && alive()) {
        current.kill('SIGTERM');
        const timer = setTimeout(() => current.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
