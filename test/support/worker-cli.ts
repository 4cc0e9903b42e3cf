/**
 * `mcp-layers worker` as users start it: the CLI (src/gateway/cli/main.ts) as a child
 * process, its metrics listener on a free loopback port (`--listen 127.0.0.1:0`), JSON
 * logs on stderr. The banner on stdout says where /metrics is and which worker id it has
 * on the broker; stderr carries both the worker's log records and what its stdio children
 * write there (stderr: inherit), each readable here.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll } from 'vitest';
import type { Broker, BrokerServer } from './brokers.ts';
import { CLI } from './gateway.ts';

export interface WorkerCli {
  readonly process: ChildProcess;
  /** http://127.0.0.1:<port>: /metrics, /healthz and /readyz. */
  readonly base: string;
  /** Its id on the broker (answers carry it in Mcp-Worker; the client transport's `worker`). */
  readonly id: string;
  readonly logs: Array<Record<string, unknown>>;
  /** Lines of stderr that are not log records (the children's). */
  readonly stderr: string[];
  /** Resolves with the first log record `test` accepts (past or future). */
  log(test: (record: Record<string, unknown>) => boolean): Promise<Record<string, unknown>>;
  /** Resolves with the first non-log stderr line that starts with `prefix` (past or future); rejects if the worker exits first. */
  waitForStderr(prefix: string): Promise<string>;
  /** Resolves with the exit code (null when killed by a signal). */
  readonly exited: Promise<number | null>;
  kill(signal?: NodeJS.Signals): Promise<number | null>;
}

const started = new Set<WorkerCli>();

/** Starts `mcp-layers worker <args>`; resolves once it printed its banner (it serves). Rejects when it exits first, with its stderr. */
export async function startWorkerCli(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<WorkerCli> {
  const child = spawn(process.execPath, [CLI, 'worker', '--listen', '127.0.0.1:0', '--log-format', 'json', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const logs: Array<Record<string, unknown>> = [];
  const stderr: string[] = [];
  const logWaiters = new Set<{ test: (r: Record<string, unknown>) => boolean; resolve: (r: Record<string, unknown>) => void }>();
  const lineWaiters = new Set<{ prefix: string; resolve: (line: string) => void }>();
  createInterface({ input: child.stderr as NodeJS.ReadableStream }).on('line', (line) => {
    let record: Record<string, unknown> | undefined;
    try {
      record = line.startsWith('{') ? (JSON.parse(line) as Record<string, unknown>) : undefined;
    } catch {
      record = undefined;
    }
    if (record === undefined) {
      stderr.push(line);
      for (const waiter of lineWaiters) {
        if (!line.startsWith(waiter.prefix)) continue;
        lineWaiters.delete(waiter);
        waiter.resolve(line);
      }
      return;
    }
    logs.push(record);
    for (const waiter of logWaiters) {
      if (!waiter.test(record)) continue;
      logWaiters.delete(waiter);
      waiter.resolve(record);
    }
  });
  const banner = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const { base, id } = await new Promise<{ base: string; id: string }>((resolve, reject) => {
    let id: string | undefined;
    banner.on('line', (line) => {
      const worker = /\(worker ([\w-]+)\)/.exec(line);
      if (worker !== null) id = worker[1];
      const metrics = /^ {2}metrics +(http:\/\/127\.0\.0\.1:\d+)\/metrics/.exec(line);
      if (metrics !== null && id !== undefined) resolve({ base: metrics[1] as string, id });
    });
    void exited.then((code) => reject(new Error(`the worker exited (${code}) before serving:\n${stderr.join('\n')}\n${logs.map((r) => JSON.stringify(r)).join('\n')}`)));
  });
  const cli: WorkerCli = {
    process: child,
    base,
    id,
    logs,
    stderr,
    exited,
    log: (test) => {
      const seen = logs.find(test);
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((resolve) => logWaiters.add({ test, resolve }));
    },
    waitForStderr: (prefix) => {
      const seen = stderr.find((line) => line.startsWith(prefix));
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const waiter = { prefix, resolve };
        lineWaiters.add(waiter);
        void exited.then((code) => {
          if (lineWaiters.delete(waiter)) reject(new Error(`the worker exited (${code}) before its stderr said "${prefix}"`));
        });
      });
    },
    kill: async (signal = 'SIGKILL') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
  started.add(cli);
  void exited.then(() => started.delete(cli));
  return cli;
}

/** After a suite: every worker still running is killed (a test that failed midway leaves none behind). */
export async function killWorkers(): Promise<void> {
  await Promise.all([...started].map((cli) => cli.kill('SIGKILL')));
}

/**
 * The broker a describe block's `mcp-layers worker` processes use: started before its
 * tests; every worker killed, then the broker stopped, after them. Its `url` is read in
 * the tests.
 */
export function brokerForWorkers(kind: Broker): { readonly url: string } {
  let broker: BrokerServer | undefined;
  beforeAll(async () => {
    broker = await kind.start();
  });
  afterAll(async () => {
    await killWorkers();
    await broker?.stop();
  });
  return {
    get url() {
      if (broker === undefined) throw new Error('the broker is not started yet (read its url in a test)');
      return broker.url;
    },
  };
}
