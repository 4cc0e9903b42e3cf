/**
 * Where one variant's bytes go: every allocation of a measured run, collected objects
 * included, sampled by V8's heap profiler and summed per package (or repo folder) and
 * per function, as bytes per exchange.
 *
 *   node bench/allocations.ts <suite> <variant index> [count] [concurrency] [top]
 *   node bench/allocations.ts by-hand 2          # our full stack, both sides
 *
 * The suites and their variants are bench/suites.ts's (bench/worker.ts runs the same
 * ones for time). A warm-up of the same count runs first, unsampled.
 */
import { Session } from 'node:inspector/promises';
import { timeRun } from './harness.ts';
import { type Suite, SUITES, type SuiteName } from './suites.ts';

interface ProfileNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: ProfileNode[];
}

const [suiteName, index, countArg = '20000', concurrencyArg = '64', topArg = '30'] = process.argv.slice(2);
const suite: Suite | undefined = SUITES[suiteName as SuiteName];
if (suite === undefined || index === undefined) {
  console.error(`usage: node bench/allocations.ts <suite> <variant index> [count] [concurrency] [top]; suites: ${Object.keys(SUITES).join(', ')}`);
  process.exit(2);
}
const count = Number(countArg);
const concurrency = Number(concurrencyArg);
await suite.prepare?.();
const variant = (await suite.variants())[Number(index)];
if (variant === undefined) throw new Error(`no variant ${index} in suite ${suiteName}`);
const instance = await variant.setup();
await timeRun(instance.exchange, count, concurrency);

const session = new Session();
session.connect();
// Collected objects included: what a scavenge frees is most of what an exchange costs.
await session.post('HeapProfiler.startSampling', {
  samplingInterval: 1024,
  includeObjectsCollectedByMajorGC: true,
  includeObjectsCollectedByMinorGC: true,
} as Parameters<Session['post']>[1]);
await timeRun(instance.exchange, count, concurrency);
const { profile } = (await session.post('HeapProfiler.stopSampling')) as { profile: { head: ProfileNode } };
await instance.close();

const byPlace = new Map<string, number>();
const byFunction = new Map<string, number>();
let total = 0;
const root = new URL('..', import.meta.url).pathname;
const visit = (node: ProfileNode) => {
  const { functionName, url, lineNumber } = node.callFrame;
  const path = url.replace(/^file:\/\//, '').replace(root, '');
  const inModules = path.lastIndexOf('node_modules/');
  const local = inModules === -1 ? path : path.slice(inModules + 'node_modules/'.length);
  let place: string;
  if (inModules !== -1) place = local.split('/').slice(0, local.startsWith('@') ? 2 : 1).join('/');
  else if (path === '') place = functionName.startsWith('(') ? functionName : `(${functionName || 'native'})`;
  else place = path.split('/').slice(0, 2).join('/');
  total += node.selfSize;
  byPlace.set(place, (byPlace.get(place) ?? 0) + node.selfSize);
  const fn = `${functionName || '(anonymous)'} ${local}:${lineNumber + 1}`;
  byFunction.set(fn, (byFunction.get(fn) ?? 0) + node.selfSize);
  for (const child of node.children) visit(child);
};
visit(profile.head);

const top = Number(topArg);
const perExchange = (bytes: number) => String(Math.round(bytes / count)).padStart(8);
const table = (entries: Map<string, number>) => [...entries].toSorted((a, b) => b[1] - a[1]).slice(0, top).map(([key, bytes]) => `${perExchange(bytes)}  ${key}`);
console.log(`${variant.name}: ${Math.round(total / count)} bytes allocated per exchange (${count} exchanges, ${concurrency} in flight)`);
console.log('\nby package or folder\n' + table(byPlace).join('\n'));
console.log('\nby function\n' + table(byFunction).join('\n'));
process.exit(0);
