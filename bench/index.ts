/**
 * npm run bench — every benchmark, each variant as a ratio to the bare transport
 * measured in the same run (each round of each variant in a fresh process; see
 * harness.ts). Results are printed as Markdown tables (docs/benchmarks.md records a
 * run). BENCH_QUICK=1: a fast smoke run; BENCH_ONLY=<first word of a title>: one kind of section.
 */
import { compare, compareIsolated, type Result, table } from './harness.ts';
import { SUITES, type SuiteName } from './suites.ts';
import { wireBytes, wireTable } from './transports.ts';
import { measurePeers, peerTable } from './peers.ts';
import { memorySections } from './memory.ts';

const quick = process.env['BENCH_QUICK'] === '1';
/** BENCH_ONLY=Core runs only the sections whose title starts with that word. */
const only = process.env['BENCH_ONLY'];
const scale = (n: number) => (quick ? Math.ceil(n / 20) : n);

function perLayerCost(results: Result[]): string {
  const [, empty, five] = results;
  if (!empty || !five) return '';
  const cost = (five.microsPerExchange - empty.microsPerExchange) / 5;
  return `\nPer pass-through layer: ${cost.toFixed(3)} µs per exchange.`;
}

const isolated = async (suite: SuiteName, options: Parameters<typeof compareIsolated>[2]) => compareIsolated(suite, (await SUITES[suite].variants()).length, options);

const sections: string[] = [];
const run = async (title: string, results: () => Promise<Result[]>, extra?: (r: Result[]) => string) => {
  if (only !== undefined && !title.startsWith(only)) return;
  const r = await results();
  const text = table(title, r) + (extra ? extra(r) : '');
  console.log(`${text}\n`);
  sections.push(text);
};

console.log(`node ${process.version}, ${new Date().toISOString()}${quick ? ' (quick)' : ''}\n`);
await run('Core: raw JSON-RPC over InMemoryTransport, 1 in flight', () => isolated('core-raw', { count: scale(50_000), concurrency: 1 }), perLayerCost);
await run('Core: raw JSON-RPC over InMemoryTransport, 32 in flight', () => isolated('core-raw', { count: scale(50_000), concurrency: 32 }), perLayerCost);
await run('Core: SDK Client → McpServer tools/call over InMemoryTransport', () => isolated('core-sdk', { count: scale(10_000) }), perLayerCost);
await run('Resilience: standard() over InMemoryTransport, raw JSON-RPC, 32 in flight', () => isolated('standard-raw', { count: scale(50_000), concurrency: 32 }));
await run('Resilience: standard() with an SDK Client → McpServer tools/call', () => isolated('standard-sdk', { count: scale(10_000) }));
await run('WebSocket: JSON-RPC ping round trips, 1 in flight', () => isolated('websocket', { count: scale(10_000), rounds: 5, concurrency: 1, warmup: scale(1_000) }));
await run('WebSocket: JSON-RPC ping round trips, 64 in flight', () => isolated('websocket', { count: scale(50_000), rounds: 5, concurrency: 64, warmup: scale(5_000) }));
await run('WebSocket: ping round trips, 64 in flight, with the observable stack and standard()', () => isolated('websocket-observed', { count: scale(50_000), rounds: 5, concurrency: 64, warmup: scale(5_000) }));
await run('WebSocket: small notifications delivered, 64 in flight, 2025-03-26', () => isolated('batching', { count: scale(50_000), rounds: 5, concurrency: 64, warmup: scale(5_000) }));
if (only === undefined || 'Wire'.startsWith(only)) {
  const text = wireTable(await wireBytes(quick ? 3 : 20));
  console.log(`${text}\n`);
  sections.push(text);
}
await run('Streamable HTTP: SDK Client tools/call, 16 in flight', () => isolated('http', { count: scale(4_000), rounds: 5, concurrency: 16, warmup: scale(400) }));

await run('Gateway: SDK Client tools/call echo, directly over stdio and through mcp-layers gateway, 1 in flight', async () => compare(await SUITES.gateway.variants(), { count: scale(2_000), rounds: 5, warmup: scale(200) }));

// Issue 13: the gateway beside its peers, each a process of its own started and stopped here.
const peers = async (title: string, suite: 'peers-http' | 'peers-websocket', concurrency: number, count: number) => {
  if (only !== undefined && !title.startsWith(only)) return;
  const text = peerTable(title, await measurePeers(await SUITES[suite].variants(), { count: scale(count), rounds: 5, concurrency, warmup: scale(count / 5) }));
  console.log(`${text}\n`);
  sections.push(text);
};
await peers('Peers: SDK Client tools/call echo over Streamable HTTP, stdio echo server behind each, 1 in flight', 'peers-http', 1, 1_000);
await peers('Peers: SDK Client tools/call echo over Streamable HTTP, stdio echo server behind each, 16 in flight', 'peers-http', 16, 3_000);
await peers('Peers: SDK Client tools/call echo over WebSocket, stdio echo server behind each, 1 in flight', 'peers-websocket', 1, 1_000);
await peers('Peers: SDK Client tools/call echo over WebSocket, stdio echo server behind each, 16 in flight', 'peers-websocket', 16, 3_000);
if (only === undefined || 'Memory'.startsWith(only)) {
  for (const text of await memorySections({ quick })) {
    console.log(`${text}\n`);
    sections.push(text);
  }
}

// Issue 14: MCP over NATS and Redis Streams beside stdio and WebSocket, and workers scaling out; every broker and worker a process started and stopped here.
if (only === undefined || 'ScaleOut'.startsWith(only)) {
  const { scaleOutSections } = await import('./scale-out.ts');
  for (const text of await scaleOutSections({ quick })) sections.push(text);
}

// Each worker installs the OpenTelemetry SDK (and its global context manager) for itself.
await run('Observability: SDK Client → McpServer tools/call, client side wrapped', () => isolated('observability', { count: scale(5_000) }));

// Issue 13: the observable stack against the same instrumentation written by hand, both sides.
await run('Observability vs by hand: SDK Client → McpServer tools/call, 64 in flight, both sides', () => isolated('by-hand', { count: scale(20_000), concurrency: 64 }), byHandRatios);

await run(
  'Observability vs by hand, the event loop turning every 256 calls (as between a real transport\'s reads): SDK Client → McpServer tools/call, 64 in flight, both sides',
  () => isolated('by-hand-turns', { count: scale(20_000), concurrency: 64 }),
  byHandRatios,
);

function byHandRatios(results: Result[]): string {
  const [bare, empty, stack, hand, sameRecords] = results;
  if (!bare || !empty || !stack || !hand) return '';
  return (
    `\nOur stack vs by hand: ${(stack.exchangesPerSecond / hand.exchangesPerSecond).toFixed(2)}× (target ≥ 1.3×).` +
    (sameRecords === undefined ? '' : ` Vs by hand writing the same records: ${(stack.exchangesPerSecond / sameRecords.exchangesPerSecond).toFixed(2)}×.`) +
    ` \`wrap(t, [])\` both sides vs bare: ${empty.ratioToBare.toFixed(2)}× (target ≥ 0.95×).`
  );
}

if (only === undefined || 'Observability primitives'.startsWith(only)) {
  const { primitives, startTracingSdk } = await import('./by-hand.ts');
  const sdk = startTracingSdk();
  const prims = await primitives(quick);
  await sdk.shutdown();
  const layers = await isolated('by-hand-layers', { count: scale(20_000), concurrency: 64 });
  const text = primitivesTable(prims, layers);
  console.log(`${text}\n`);
  sections.push(text);
}

function primitivesTable(prims: { name: string; micros: number }[], layers: Result[]): string {
  const µ = (name: string) => prims.find((p) => p.name.startsWith(name))?.micros ?? Number.NaN;
  const [bare, empty, passThrough, ...others] = layers;
  if (!bare || !empty || !passThrough) return '';
  // The same records written by hand inside an exchange, over bare, by the layer they are of ("by hand: tracing's spans").
  const handOf = (r: Result) => /^by hand: (\w+)/.exec(r.name)?.[1];
  const rest = others.filter((r) => handOf(r) === undefined);
  const byHand = new Map(others.flatMap((r) => (handOf(r) === undefined ? [] : [[handOf(r) as string, r.microsPerExchange - bare.microsPerExchange] as const])));
  const contextWith = 2 * µ('context.with');
  const propagation = µ('traceparent inject') + µ('traceparent extract');
  // What each layer's library does per exchange (one client and one server side): as the
  // issue counts it, and doing what our records ask of it (their fields, labels, attributes).
  const library: Record<string, { issue: [number, string]; ours: [number, string] }> = {
    logging: {
      issue: [2 * µ('winston'), '2 winston JSON lines'],
      ours: [2 * µ('our shape: winston'), '2 exchange lines (16 fields)'],
    },
    tracing: {
      issue: [2 * µ('span') + propagation + contextWith, '2 spans + inject + extract + 2 context.with'],
      ours: [µ('our shape: CLIENT span') + µ('our shape: SERVER span') + propagation + contextWith, 'our CLIENT and SERVER spans + inject + extract + 2 context.with'],
    },
    metrics: {
      issue: [2 * (µ('histogram observe, label object') + µ('gauge')), '2 × (histogram observe + gauge inc/dec), label objects'],
      ours: [2 * µ('our shape: operation histogram') + µ('our shape: attempts counter'), '2 × the 8-label histogram (bound) + the attempts counter'],
    },
  };
  const stackCost = passThrough.microsPerExchange - empty.microsPerExchange;
  const lines = [
    '### Observability primitives: the libraries’ own cost, µs per operation (one process, warm)',
    '',
    '| operation | µs |',
    '| --- | ---: |',
    ...prims.map((p) => `| ${p.name} | ${p.micros.toFixed(2)} |`),
    '',
    `Per layer, both sides, 64 in flight: bare ${bare.microsPerExchange.toFixed(2)} µs per exchange, \`wrap(t, [])\` ${empty.microsPerExchange.toFixed(2)} µs, one pass-through layer ${passThrough.microsPerExchange.toFixed(2)} µs (what having a stack costs the core: ${stackCost.toFixed(2)} µs). A layer's own cost is its µs minus the pass-through's; against its library's work (target ≤ 2×):`,
    '',
    '| layer | µs/exchange | vs `wrap(t, [])` | own cost | library work (the issue\'s) | µs | ratio | library work (our records) | µs | ratio | our records by hand, in an exchange (over bare) | ratio |',
    '| --- | ---: | ---: | ---: | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: |',
    ...rest.map((r) => {
      const key = r.name.split(' ')[0] as string;
      const { issue, ours } = library[key] ?? { issue: [Number.NaN, '?'], ours: [Number.NaN, '?'] };
      const own = r.microsPerExchange - passThrough.microsPerExchange;
      const cells = [r.name, r.microsPerExchange.toFixed(2), (r.microsPerExchange - empty.microsPerExchange).toFixed(2), own.toFixed(2)];
      for (const [micros, what] of [issue, ours]) cells.push(what, micros.toFixed(2), `${(own / micros).toFixed(1)}×`);
      const hand = byHand.get(key) ?? Number.NaN;
      cells.push(hand.toFixed(2), `${(own / hand).toFixed(1)}×`);
      return `| ${cells.join(' | ')} |`;
    }),
  ];
  return lines.join('\n');
}
