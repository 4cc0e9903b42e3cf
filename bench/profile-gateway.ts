/**
 * A CPU profile of one gateway process under the Peers bench's load (bench/peers.ts: the
 * stdio echo server behind it, an SDK client calling `echo`), to see where its time goes:
 *
 *   node bench/profile-gateway.ts <ours|ours-no-layers|supergateway> <http|websocket> [calls] [in flight] [dir]
 *   node bench/profile-gateway.ts ours websocket 20000 16
 *
 * The process runs with `--cpu-prof`; its profile lands in `dir` (default: a new temporary
 * directory, printed) when it stops. Open it in Chrome DevTools or any .cpuprofile reader.
 * The calls per second printed are the profiled process's, not a benchmark: measure with
 * `BENCH_ONLY=Peers npm run bench`.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { timeRun } from './harness.ts';
import { gatewayVariant, type ProfiledGateway } from './peers.ts';

const [which, listener, callsArg = '20000', concurrencyArg = '16', dirArg] = process.argv.slice(2);
if (!['ours', 'ours-no-layers', 'supergateway'].includes(which ?? '') || (listener !== 'http' && listener !== 'websocket')) {
  console.error('usage: node bench/profile-gateway.ts <ours|ours-no-layers|supergateway> <http|websocket> [calls] [in flight] [dir]');
  process.exit(2);
}
const calls = Number(callsArg);
const concurrency = Number(concurrencyArg);
const dir = dirArg ?? mkdtempSync(join(tmpdir(), 'mcp-layers-profile-'));
const instance = await gatewayVariant(which as ProfiledGateway, listener, ['--cpu-prof', `--cpu-prof-dir=${dir}`]).setup();
try {
  await timeRun(instance.exchange, Math.min(1_000, calls), concurrency);
  const ms = await timeRun(instance.exchange, calls, concurrency);
  console.log(`${which} over ${listener}, ${concurrency} in flight: ${Math.round(calls / (ms / 1000))} calls/s while profiled`);
} finally {
  // The process writes its profile as it exits.
  await instance.close();
}
console.log(`profile: ${dir}`);
