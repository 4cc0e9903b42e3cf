/**
 * `npm run demo`: the gateway with faults injected upstream (the chaos layer, plus an
 * outage every 15 s that trips the circuit breaker), driven by SDK clients over HTTP and
 * WebSocket at a bounded rate, with a live summary refreshed in place: requests/s,
 * errors, retries, breaker state, p50/p95. It ends on its own.
 *
 *   npm run demo                               # 30 s on 127.0.0.1:8787
 *   npm run demo -- --duration 120 --port 9464 # longer, where Prometheus scrapes (/metrics)
 *   npm run demo -- --plain                    # one plain line per second (CI, logs)
 *
 * Options: --duration S (default 30), --port N (default 8787, or a free port when 8787 is
 * taken — by `npm start`, say — and --port was not given; 0 = any free port),
 * --clients N (default 4), --rate R (requests per second in all, default 40),
 * --seed N (chaos seed), --plain (no in-place refresh; the default when stdout is not a terminal).
 *
 * In your own code import from 'mcp-layers': here `#mcp-layers` (package.json
 * imports) names the same entry points in this repository.
 */
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ConfigError, serve, validateConfig } from '#mcp-layers/gateway';
import { WebSocketClientTransport } from '#mcp-layers/ws';
import type { BreakerState, ChaosLayer } from '#mcp-layers';

const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '30' },
    port: { type: 'string' },
    clients: { type: 'string', default: '4' },
    rate: { type: 'string', default: '40' },
    seed: { type: 'string', default: '7' },
    plain: { type: 'boolean', default: false },
  },
});
const positive = (name: string, value: string, min: number): number => {
  const n = Number(value);
  if (!Number.isFinite(n) || n < min) {
    console.error(`demo: --${name}: expected a number >= ${min}, got ${JSON.stringify(value)}`);
    process.exit(2);
  }
  return n;
};
const durationMs = positive('duration', values.duration, 1) * 1000;
const DEFAULT_PORT = 8787;
const port = values.port === undefined ? DEFAULT_PORT : positive('port', values.port, 0);
const clientCount = Math.round(positive('clients', values.clients, 1));
const rate = positive('rate', values.rate, 1);
const seed = Math.round(positive('seed', values.seed, 0));
const live = !values.plain && process.stdout.isTTY === true;

const config = {
  upstream: {
    command: process.execPath,
    args: [fileURLToPath(new URL('./demo-server.ts', import.meta.url))],
    idempotentTools: ['lookup', 'add', 'echo'],
    layers: [
      { tracing: {} },
      { metrics: {} },
      { logging: {} },
      { timeout: { totalMs: 5_000 } },
      { retry: { maxAttempts: 3, backoff: { initialDelayMs: 20, maxDelayMs: 200 } } },
      { circuitBreaker: { breaker: 'sampling', failureRatio: 0.5, windowMs: 5_000, minSamples: 10, halfOpenAfterMs: 2_000 } },
      { timeout: { attemptMs: 1_000 } },
      // A lookup slower than 60 ms is sent again (it is read-only); the first answer wins.
      { when: { method: 'tools/call', tool: 'lookup' }, layers: [{ hedging: { delayMs: 60 } }] },
      // Background faults on every attempt: errors (nothing sent), latency, lost responses.
      { chaos: { seed, errorRate: 0.05, dropRate: 0.01, latency: { delayMs: [5, 80], rate: 0.2 } } },
      // The outage: every request fails while it is switched on (the demo switches it).
      { chaos: { seed: seed + 1, errorRate: 1, enabled: false } },
    ],
  },
  downstream: { port, layers: [{ tracing: {} }, { metrics: {} }, { compression: { minBytes: 256 } }] },
  // The summary is the point; warnings and errors still show.
  observability: { logs: { level: 'error' } },
};

const start = (onPort: number) => serve(validateConfig({ ...config, downstream: { ...config.downstream, port: onPort } }, 'the demo config'), { banner: false });
const portTaken = (error: unknown) => error instanceof ConfigError && error.problems.some((p) => p.startsWith('downstream.port:') && p.includes('already in use'));
let served;
try {
  try {
    served = await start(port);
  } catch (error) {
    // The README runs `npm start` first: the demo's faults and load need a gateway of its own, so it takes a free port beside it.
    if (values.port !== undefined || !portTaken(error)) throw error;
    served = await start(0);
    console.log(`demo: 127.0.0.1:${DEFAULT_PORT} is in use (npm start?); the demo runs its own gateway on ${served.gateway.urls.http} instead`);
  }
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  console.error(`demo: ${error.message}`);
  process.exit(2);
}
const { gateway } = served;
const outage = gateway.stacks.upstream.instances.filter((i) => i.name === 'chaos').at(-1)?.layer as ChaosLayer;

// --- what the summary shows ------------------------------------------------------------
const stats = { requests: 0, errors: 0, retries: 0, breakerOpened: 0, lastError: '', injected: 0 };
let breaker: BreakerState = 'closed';
const latencies: number[] = [];
const perSecond: Array<{ requests: number; latencies: number[] }> = [];
gateway.upstreamEvents.on('retry', () => void stats.retries++);
gateway.upstreamEvents.on('chaos', () => void stats.injected++);
gateway.upstreamEvents.on('breaker-state', (e) => {
  breaker = e.to;
  if (e.to === 'open') stats.breakerOpened++;
});

// --- the load: each client calls at its share of the rate, one call at a time ------------
const urls = gateway.urls;
const clients: Client[] = [];
for (let i = 0; i < clientCount; i++) {
  const client = new Client({ name: `demo-client-${i}`, version: '1.0.0' });
  // Half the clients over Streamable HTTP, half over WebSocket.
  await client.connect(i % 2 === 0 ? new StreamableHTTPClientTransport(new URL(urls.http as string)) : new WebSocketClientTransport(urls.websocket as string, { reconnect: false }));
  clients.push(client);
}
const calls: Array<[string, Record<string, unknown>]> = [
  ['lookup', { key: 'alpha' }],
  ['lookup', { key: 'beta' }],
  ['lookup', { key: 'gamma' }],
  ['echo', { text: 'hello' }],
  ['add', { a: 2, b: 3 }],
  ['create_note', { title: 'demo', body: 'written by the demo' }],
];
const started = performance.now();
const deadline = started + durationMs;
let bucket = { requests: 0, latencies: [] as number[] };

async function drive(client: Client, index: number): Promise<void> {
  const interval = (1000 * clientCount) / rate;
  let next = performance.now() + (interval * index) / clientCount;
  let n = index;
  while (performance.now() < deadline) {
    const wait = next - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    next += interval;
    if (performance.now() >= deadline) break;
    const [name, args] = calls[n++ % calls.length] as [string, Record<string, unknown>];
    const t = performance.now();
    try {
      const result = await client.callTool({ name, arguments: args }, undefined, { timeout: 10_000 });
      if (result.isError === true) throw new Error('tool error');
    } catch (error) {
      stats.errors++;
      stats.lastError = (error as Error).message.replace(/^MCP error /, '').slice(0, 70);
    }
    const ms = performance.now() - t;
    stats.requests++;
    bucket.requests++;
    bucket.latencies.push(ms);
    latencies.push(ms);
  }
}

// --- the outage: 4 s on, every 15 s, starting 6 s in --------------------------------------
const outageTimers: NodeJS.Timeout[] = [];
for (let at = 6_000; at + 1_000 < durationMs; at += 15_000) {
  outageTimers.push(setTimeout(() => void (outage.enabled = true), at));
  outageTimers.push(setTimeout(() => void (outage.enabled = false), at + 4_000));
}

// --- the summary ------------------------------------------------------------------------------
const percentile = (sorted: number[], p: number) => (sorted.length === 0 ? 0 : (sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number));
function summary(final: boolean): string[] {
  const elapsed = (performance.now() - started) / 1000;
  const recent = perSecond.slice(-5);
  const window = (final ? latencies : recent.flatMap((s) => s.latencies)).toSorted((a, b) => a - b);
  const rps = final ? stats.requests / Math.max(elapsed, 0.001) : recent.length === 0 ? 0 : recent.reduce((n, s) => n + s.requests, 0) / recent.length;
  const errorPct = stats.requests === 0 ? 0 : (100 * stats.errors) / stats.requests;
  const p50 = percentile(window, 50).toFixed(1);
  const p95 = percentile(window, 95).toFixed(1);
  if (!live) {
    return [`${final ? 'final' : `t=${elapsed.toFixed(0)}s`} requests/s=${rps.toFixed(1)} requests=${stats.requests} errors=${stats.errors} retries=${stats.retries} breaker=${breaker} p50=${p50}ms p95=${p95}ms outage=${outage.enabled ? 'on' : 'off'}`];
  }
  const bar = (state: BreakerState) => (state === 'closed' ? '\u001b[32mclosed\u001b[39m' : state === 'open' ? '\u001b[31mopen\u001b[39m' : `\u001b[33m${state}\u001b[39m`);
  return [
    `mcp-layers demo — ${Math.min(elapsed, durationMs / 1000).toFixed(1)} s of ${durationMs / 1000} s${final ? ' (done)' : ''}`,
    `  gateway     ${urls.http}  ·  metrics ${urls.metrics}`,
    `  requests/s  ${rps.toFixed(1).padEnd(10)} total ${stats.requests}`,
    `  errors      ${String(stats.errors).padEnd(10)} ${errorPct.toFixed(1)} %${stats.lastError === '' ? '' : `  last: ${stats.lastError}`}`.padEnd(100),
    `  retries     ${String(stats.retries).padEnd(10)} faults injected ${stats.injected}`,
    `  breaker     ${bar(breaker)}${' '.repeat(Math.max(1, 10 - breaker.length))} opened ${stats.breakerOpened}×   outage ${outage.enabled ? '\u001b[31mon\u001b[39m ' : 'off'}`,
    `  latency     p50 ${p50} ms   p95 ${p95} ms${final ? ' (whole run)' : ' (last 5 s)'}`.padEnd(60),
  ];
}

let printed = 0;
function render(final = false): void {
  const lines = summary(final);
  if (live && printed > 0) process.stdout.write(`\u001b[${printed}A`);
  process.stdout.write(`${lines.map((l) => (live ? `\u001b[2K${l}` : l)).join('\n')}\n`);
  printed = live ? lines.length : 0;
}

if (!live) console.log(`mcp-layers demo: gateway ${urls.http} and ${urls.websocket}, metrics ${urls.metrics}, ${durationMs / 1000} s, ${clientCount} clients, ${rate} requests/s`);
render();
const ticker = setInterval(() => {
  perSecond.push(bucket);
  bucket = { requests: 0, latencies: [] };
  render();
}, 1_000);

await Promise.all(clients.map((client, i) => drive(client, i)));
clearInterval(ticker);
for (const timer of outageTimers) clearTimeout(timer);
render(true);
await Promise.all(clients.map((client) => client.close().catch(() => {})));
await served.stop();
