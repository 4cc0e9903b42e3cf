/**
 * npm run bench — every benchmark, each variant as a ratio to the bare transport
 * measured in the same run. Results are printed as Markdown tables (docs/benchmarks.md
 * records a run). Set BENCH_QUICK=1 for a fast smoke run.
 */
import { coreVariants, rawVariant, sdkVariant } from './core.ts';
import { standardVariants } from './standard.ts';
import { compare, type Result, table } from './harness.ts';
import { observabilityVariants, startTracingSdk } from './observability.ts';
import { batchingVariants, httpVariants, wireBytes, wireTable, wsVariants } from './transports.ts';
import { gatewayVariants } from './gateway.ts';

const quick = process.env['BENCH_QUICK'] === '1';
const scale = (n: number) => (quick ? Math.ceil(n / 20) : n);

function perLayerCost(results: Result[]): string {
  const [, empty, five] = results;
  if (!empty || !five) return '';
  const cost = (five.microsPerExchange - empty.microsPerExchange) / 5;
  return `\nPer pass-through layer: ${cost.toFixed(3)} µs per exchange.`;
}

const sections: string[] = [];
const run = async (title: string, results: Promise<Result[]>, extra?: (r: Result[]) => string) => {
  const r = await results;
  const text = table(title, r) + (extra ? extra(r) : '');
  console.log(`${text}\n`);
  sections.push(text);
};

console.log(`node ${process.version}, ${new Date().toISOString()}${quick ? ' (quick)' : ''}\n`);
await run('Core: raw JSON-RPC over InMemoryTransport, 1 in flight', compare(coreVariants(rawVariant), { count: scale(50_000), concurrency: 1 }), perLayerCost);
await run('Core: raw JSON-RPC over InMemoryTransport, 32 in flight', compare(coreVariants(rawVariant), { count: scale(50_000), concurrency: 32 }), perLayerCost);
await run('Core: SDK Client → McpServer tools/call over InMemoryTransport', compare(coreVariants(sdkVariant), { count: scale(10_000) }), perLayerCost);
await run('Resilience: standard() over InMemoryTransport, raw JSON-RPC, 32 in flight', compare(standardVariants(rawVariant), { count: scale(50_000), concurrency: 32 }));
await run('Resilience: standard() with an SDK Client → McpServer tools/call', compare(standardVariants(sdkVariant), { count: scale(10_000) }));
await run('WebSocket: JSON-RPC ping round trips, 1 in flight', compare(wsVariants(), { count: scale(10_000), rounds: 5, concurrency: 1, warmup: scale(1_000) }));
await run('WebSocket: JSON-RPC ping round trips, 64 in flight', compare(wsVariants(), { count: scale(50_000), rounds: 5, concurrency: 64, warmup: scale(5_000) }));
await run('WebSocket: small notifications delivered, 64 in flight, 2025-03-26', compare(batchingVariants(), { count: scale(50_000), rounds: 5, concurrency: 64, warmup: scale(5_000) }));
{
  const text = wireTable(await wireBytes(quick ? 3 : 20));
  console.log(`${text}\n`);
  sections.push(text);
}
await run('Streamable HTTP: SDK Client tools/call, 16 in flight', compare(httpVariants(), { count: scale(4_000), rounds: 5, concurrency: 16, warmup: scale(400) }));

await run('Gateway: SDK Client tools/call echo, directly over stdio and through mcp-layers gateway, 1 in flight', compare(gatewayVariants(), { count: scale(2_000), rounds: 5, warmup: scale(200) }));

// Last: the OpenTelemetry SDK installs a global context manager that every later run would pay for.
const otel = startTracingSdk();
await run('Observability: SDK Client → McpServer tools/call, client side wrapped', compare(observabilityVariants(), { count: scale(5_000) }));
await otel.shutdown();
