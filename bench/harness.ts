/**
 * A small benchmark harness. Variants of one scenario are measured in interleaved
 * rounds (A B C A B C ...), so drift hits them alike, and reported as the median of
 * their rounds and as a ratio to the first (the bare transport). Speed is only ever
 * measured here, never asserted in unit tests.
 *
 * `compareIsolated` runs every round of every variant in a fresh process: an
 * application runs one kind of transport, and variants sharing a process would share
 * the JIT's type feedback (the SDK's call sites turn polymorphic), which slows the
 * bare transport and the wrapped one by different amounts. `compare` keeps them in one
 * process, for scenarios whose setup is a process tree of its own.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { SuiteName } from './suites.ts';

const run = promisify(execFile);

export interface Variant {
  name: string;
  /** Sets up a fresh instance; returns the per-exchange function and a cleanup. */
  setup(): Promise<{
    exchange(i: number): Promise<void>;
    close(): Promise<void>;
    /** The server process the exchanges go to, when it is one (the Peers table reports its CPU per call). */
    pid?: number | undefined;
  }>;
}

export interface Result {
  name: string;
  exchangesPerSecond: number;
  microsPerExchange: number;
  ratioToBare: number;
}

declare const gc: (() => void) | undefined;

const median = (values: number[]) => {
  const sorted = values.toSorted((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
};

/** Runs `count` exchanges, `concurrency` at a time; returns elapsed milliseconds. */
export async function timeRun(exchange: (i: number) => Promise<void>, count: number, concurrency: number): Promise<number> {
  let next = 0;
  const worker = async () => {
    while (next < count) await exchange(next++);
  };
  const start = performance.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  return performance.now() - start;
}

export async function compare(
  variants: Variant[],
  { count = 20_000, rounds = 7, concurrency = 1, warmup = 2_000 } = {},
): Promise<Result[]> {
  const instances = await Promise.all(variants.map((v) => v.setup()));
  for (const instance of instances) await timeRun(instance.exchange, warmup, concurrency);
  const times: number[][] = variants.map(() => []);
  for (let round = 0; round < rounds; round++) {
    for (const [i, instance] of instances.entries()) {
      if (typeof gc === 'function') gc();
      times[i]?.push(await timeRun(instance.exchange, count, concurrency));
    }
  }
  for (const instance of instances) await instance.close();
  return results(variants.map((v) => v.name), times, count);
}

const WORKER = fileURLToPath(new URL('./worker.ts', import.meta.url));

export async function compareIsolated(
  suite: SuiteName,
  variantCount: number,
  { count = 20_000, rounds = 7, concurrency = 1, warmup = 2_000 } = {},
): Promise<Result[]> {
  const names: string[] = [];
  const times: number[][] = Array.from({ length: variantCount }, () => []);
  for (let round = 0; round < rounds; round++) {
    for (let i = 0; i < variantCount; i++) {
      // A fresh process must first get the code paths optimized: warm up at least twice the measured run.
      const args = ['--expose-gc', WORKER, suite, String(i), String(count), String(concurrency), String(Math.max(warmup, 2 * count))];
      const { stdout } = await run(process.execPath, args, { maxBuffer: 1 << 20 });
      const { name, ms } = JSON.parse(stdout.trim().split('\n').at(-1) as string) as { name: string; ms: number };
      names[i] = name;
      times[i]?.push(ms);
    }
  }
  return results(names, times, count);
}

function results(names: string[], times: number[][], count: number): Result[] {
  const medians = times.map(median);
  const bare = medians[0] as number;
  return names.map((name, i) => {
    const ms = medians[i] as number;
    return {
      name,
      exchangesPerSecond: Math.round((count / ms) * 1000),
      microsPerExchange: (ms * 1000) / count,
      ratioToBare: bare / ms,
    };
  });
}

export function table(title: string, results: Result[]): string {
  const lines = [
    `### ${title}`,
    '',
    '| variant | exchanges/s | µs/exchange | vs bare |',
    '| --- | ---: | ---: | ---: |',
    ...results.map((r) => `| ${r.name} | ${r.exchangesPerSecond.toLocaleString('en-US')} | ${r.microsPerExchange.toFixed(2)} | ${(r.ratioToBare * 100).toFixed(1)} % |`),
  ];
  return lines.join('\n');
}

/**
 * Starts `client` and returns an exchange that sends a `ping` with id `i` and resolves
 * when the response with that id arrives: the raw request/response round trip.
 */
export async function pingExchange(client: {
  onmessage?: ((message: { id?: unknown }) => void) | undefined;
  start(): Promise<void>;
  send(message: { jsonrpc: '2.0'; id: number; method: string }): Promise<void>;
}): Promise<(i: number) => Promise<void>> {
  const waiting = new Map<number, () => void>();
  client.onmessage = (m) => {
    if (typeof m.id === 'number') waiting.get(m.id)?.();
  };
  await client.start();
  return (i) =>
    new Promise<void>((resolve) => {
      waiting.set(i, () => {
        waiting.delete(i);
        resolve();
      });
      void client.send({ jsonrpc: '2.0', id: i, method: 'ping' });
    });
}
