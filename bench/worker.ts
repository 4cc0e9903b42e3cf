/**
 * Measures one variant of one suite in a process of its own and prints the elapsed
 * milliseconds as JSON: `node bench/worker.ts <suite> <variant index> <count> <concurrency> <warmup>`.
 */
import { timeRun } from './harness.ts';
import { type Suite, SUITES, type SuiteName } from './suites.ts';

declare const gc: (() => void) | undefined;

const [suiteName, index, count, concurrency, warmup] = process.argv.slice(2);
const suite: Suite = SUITES[suiteName as SuiteName];
await suite.prepare?.();
const variant = (await suite.variants())[Number(index)];
if (variant === undefined) throw new Error(`no variant ${index} in suite ${suiteName}`);
const instance = await variant.setup();
await timeRun(instance.exchange, Number(warmup), Number(concurrency));
if (typeof gc === 'function') gc();
const ms = await timeRun(instance.exchange, Number(count), Number(concurrency));
await instance.close();
process.stdout.write(`${JSON.stringify({ name: variant.name, ms })}\n`);
process.exit(0);
