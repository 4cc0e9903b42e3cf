/**
 * Issue 14, scale-out: an SDK v1 Client calling a tool of an SDK v1 McpServer
 * (bench/scale-out-server.ts, the same server code behind every variant)
 *
 *   - directly over stdio (the client spawns the server: the baseline);
 *   - over mcp-layers/ws (WebSocketClientTransport ↔ McpWebSocketServer, a server per connection);
 *   - over mcp-layers/nats (NatsClientTransport ↔ serveNats workers, a server per session);
 *   - over mcp-layers/redis (RedisClientTransport ↔ serveRedis workers, the same);
 *
 * with the echo tool at 1 and 16 calls in flight; and scaling: a tool that burns 2 ms of
 * CPU a call, served by 1, 2 and 3 worker processes of one service, over each broker. A
 * 2025-era session is pinned to the worker that took its `initialize` (docs/scale-out.md,
 * "Sessions"), so work spreads over sessions: the scaling runs 16 client sessions with 2
 * calls in flight each, and says where each session landed. Then one run per worker count
 * with the CPU time of every process read from /proc — the client, each worker, the broker,
 * and the whole machine (other people's work included) — to say where the time goes.
 *
 * Every server, worker and broker is a process of its own, started here on 127.0.0.1 and
 * stopped at the end, also on failure; every round is a fixed count of calls and fails the
 * run past a time cap. Variants are measured in interleaved rounds by measurePeers
 * (bench/peers.ts): calls/s is the median round, p50/p99 are over every measured call.
 */
import { fileURLToPath } from 'node:url';
import { loadavg } from 'node:os';
import { randomUUID } from 'node:crypto';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import type { Transport } from '#mcp-layers';
import { NatsClientTransport } from '#mcp-layers/nats';
import { RedisClientTransport } from '#mcp-layers/redis';
import { WebSocketClientTransport } from '#mcp-layers/ws';
import { type BenchBroker, startNats, startRedis } from './brokers.ts';
import { type Child, cpuMs, machineCpuMs, startChild, stopAll } from './children.ts';
import { calibrate } from './burn.ts';
import { timeRun, type Variant } from './harness.ts';
import { measurePeers, peerTable, type PeerResult } from './peers.ts';

const SERVER = fileURLToPath(new URL('./scale-out-server.ts', import.meta.url));
/** The CPU-bound tool's work per call. */
const BURN_MS = 2;
/** Client sessions in the scaling runs, and calls in flight over them (2 each). */
const SESSIONS = 16;
const IN_FLIGHT = 32;
/** A round, a warm-up or a profiled run taking longer than this fails the run. */
const ROUND_MS = 60_000;

type Via = 'stdio' | 'ws' | 'nats' | 'redis';
type Call = { name: string; arguments: Record<string, unknown> };

const ECHO: Call = { name: 'echo', arguments: { text: 'bench' } };
/** Calibrated once per run, in this process (the workers run the same code on the same machine). */
let burnCall: Call | undefined;
const BURN = (): Call => (burnCall ??= { name: 'burn', arguments: { rounds: calibrate(BURN_MS) } });

interface Instance {
  exchange(i: number): Promise<void>;
  close(): Promise<void>;
  /** The server side's processes (stdio servers, the WebSocket server, the workers). */
  readonly serverPids: number[];
  /** How many sessions each worker holds, as `w1 8 · w2 8` (broker variants). */
  placement(): string | undefined;
}

interface ScaleVariant extends Variant {
  setup(): Promise<Instance>;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const closeBounded = (client: Client) => Promise.race([client.close(), sleep(2_000)]).catch(() => {});

interface Shape {
  call: Call;
  broker?: BenchBroker;
  workers?: number;
  sessions?: number;
  /** NATS: the stream's storage, when not the default (file). */
  storage?: 'memory';
  /** NATS: `connectOptions: { noAsyncTraces: false }` on both sides — the client library's own default, which mcp-layers/nats overrides (it builds two Errors per request for their stacks). */
  asyncTraces?: boolean;
}

function variant(name: string, via: Via, { call, broker, workers = 1, sessions = 1, storage, asyncTraces = false }: Shape): ScaleVariant {
  return {
    name,
    async setup() {
      const children: Child[] = [];
      const clients: Client[] = [];
      const transports: Transport[] = [];
      const serverPids: number[] = [];
      const close = async () => {
        await Promise.all(clients.map(closeBounded));
        await stopAll(children);
      };
      try {
        let transport: () => Transport;
        if (via === 'stdio') {
          transport = () => new StdioClientTransport({ command: process.execPath, args: [SERVER, 'stdio'] });
        } else if (via === 'ws') {
          const server = await startChild('WebSocket server', process.execPath, [SERVER, 'ws'], /^READY /);
          children.push(server);
          serverPids.push(server.pid);
          const url = server.readyLine.slice('READY '.length);
          transport = () => new WebSocketClientTransport(url, { reconnect: false });
        } else {
          if (broker === undefined) throw new Error(`${name}: no broker`);
          // A service of its own: the variants measured side by side never share workers.
          const service = `bench-${workers}-${randomUUID().slice(0, 8)}`;
          const flags = [...(storage === undefined ? [] : [storage]), ...(asyncTraces ? ['async-traces'] : [])].join(',');
          const args = (i: number) => [SERVER, via, broker.url, service, `w${i + 1}`, flags];
          const started = await Promise.all(Array.from({ length: workers }, (_, i) => startChild(`${via} worker w${i + 1}`, process.execPath, args(i), /^READY /)));
          children.push(...started);
          serverPids.push(...started.map((c) => c.pid));
          transport =
            via === 'nats'
              ? () => new NatsClientTransport({ servers: broker.url, service, ...(asyncTraces ? { connectOptions: { noAsyncTraces: false } } : {}) })
              : () => new RedisClientTransport({ servers: broker.url, service });
        }
        // One after the other, as clients arrive: each initialize goes to whichever worker pulls it.
        for (let s = 0; s < sessions; s++) {
          const t = transport();
          const client = new Client({ name: 'bench', version: '1.0.0' });
          await client.connect(t);
          clients.push(client);
          transports.push(t);
          if (t instanceof StdioClientTransport && t.pid !== null) serverPids.push(t.pid);
        }
      } catch (error) {
        await close();
        throw error;
      }
      return {
        serverPids,
        exchange: async (i) => {
          const result = await (clients[i % clients.length] as Client).callTool(call);
          if (result.isError === true) throw new Error(`${name}: ${call.name} failed: ${JSON.stringify(result.content)}`);
        },
        close,
        placement: () => {
          if (via !== 'nats' && via !== 'redis') return undefined;
          const counts = new Map<string, number>();
          for (const t of transports) {
            const worker = (t as NatsClientTransport | RedisClientTransport).worker ?? '?';
            counts.set(worker, (counts.get(worker) ?? 0) + 1);
          }
          return [...counts].toSorted(([a], [b]) => a.localeCompare(b)).map(([w, n]) => `${w} ${n}`).join(' · ');
        },
      };
    },
  };
}

const echoVariants = (nats: BenchBroker, redis: BenchBroker): ScaleVariant[] => [
  variant('direct over stdio (StdioClientTransport, the server a child process)', 'stdio', { call: ECHO }),
  variant('mcp-layers/ws (WebSocketClientTransport ↔ McpWebSocketServer, its own process)', 'ws', { call: ECHO }),
  variant('mcp-layers/nats (NatsClientTransport ↔ 1 serveNats worker)', 'nats', { call: ECHO, broker: nats }),
  variant('mcp-layers/nats, connectOptions: { noAsyncTraces: false } both sides (before)', 'nats', { call: ECHO, broker: nats, asyncTraces: true }),
  variant('mcp-layers/redis (RedisClientTransport ↔ 1 serveRedis worker)', 'redis', { call: ECHO, broker: redis }),
];

const scalingVariants = (broker: BenchBroker, counts: number[], storage?: 'memory'): ScaleVariant[] =>
  counts.map((workers) =>
    variant(`${workers} worker${workers === 1 ? '' : 's'}${storage === undefined ? '' : `, ${storage} storage`}`, broker.name === 'NATS' ? 'nats' : 'redis', {
      call: BURN(),
      broker,
      workers,
      sessions: SESSIONS,
      ...(storage === undefined ? {} : { storage }),
    }),
  );

/** `promise`, or a rejection naming `what` after `ms`. */
async function capped<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} took over ${ms} ms`)), ms)));
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

interface Profile {
  name: string;
  placement: string | undefined;
  callsPerSecond: number;
  /** CPU milliseconds per call. */
  client: number;
  workers: number[];
  broker: number;
  /** Cores busy on average during the run: our processes, the whole machine. */
  ours: number;
  machine: number;
}

/** One run of `count` calls after a warm-up, with every process's CPU time read before and after. */
async function profile(v: ScaleVariant, broker: BenchBroker, count: number, warmup: number): Promise<Profile> {
  const instance = await v.setup();
  try {
    await capped(timeRun(instance.exchange, warmup, IN_FLIGHT), ROUND_MS, `${v.name}: the warm-up`);
    const self = () => {
      const { user, system } = process.cpuUsage();
      return (user + system) / 1000;
    };
    const sample = () => ({ client: self(), workers: instance.serverPids.map(cpuMs), broker: cpuMs(broker.pid), machine: machineCpuMs(), at: performance.now() });
    const before = sample();
    await capped(timeRun(instance.exchange, count, IN_FLIGHT), ROUND_MS, `${v.name}: the profiled run`);
    const after = sample();
    const wall = after.at - before.at;
    const workers = after.workers.map((ms, i) => (ms - (before.workers[i] as number)) / count);
    const client = (after.client - before.client) / count;
    const brokerMs = (after.broker - before.broker) / count;
    const ours = ((client + brokerMs + workers.reduce((a, b) => a + b, 0)) * count) / wall;
    return {
      name: v.name,
      placement: instance.placement(),
      callsPerSecond: Math.round((count / wall) * 1000),
      client,
      workers,
      broker: brokerMs,
      ours,
      machine: (after.machine - before.machine) / wall,
    };
  } finally {
    await instance.close();
  }
}

function scalingNote(results: PeerResult[], placements: (string | undefined)[]): string {
  const [one, two, three] = results;
  if (one === undefined || two === undefined) return '';
  const ratio = (r: PeerResult) => r.ratio.toFixed(2);
  return [
    '',
    `2 workers vs 1: ${ratio(two)}× (target ≥ 1.6×)${three === undefined ? '' : `; 3 workers vs 1: ${ratio(three)}×`}.`,
    `Sessions per worker (${SESSIONS} sessions, each pinned where its initialize landed): ${placements.map((p, i) => `${results[i]?.name}: ${p ?? '?'}`).join('; ')}.`,
  ].join('\n');
}

function profileTable(title: string, rows: Profile[]): string {
  const f = (n: number) => (Number.isNaN(n) ? '?' : n.toFixed(2));
  const total = (r: Profile) => r.client + r.broker + r.workers.reduce((a, b) => a + b, 0);
  const one = rows[0];
  return [
    `#### ${title}`,
    '',
    `| workers | calls/s | client CPU ms/call | each worker's CPU ms/call | broker CPU ms/call | our processes, cores busy | whole machine, cores busy |`,
    '| --- | ---: | ---: | --- | ---: | ---: | ---: |',
    ...rows.map(
      (r) =>
        `| ${r.name} | ${r.callsPerSecond.toLocaleString('en-US')} | ${f(r.client)} | ${r.workers.map(f).join(' · ')} (${r.placement ?? '?'}) | ${f(r.broker)} | ${f(r.ours)} | ${f(r.machine)} |`,
    ),
    '',
    `A call's CPU, all processes: ${rows.map((r) => `${r.name} ${f(total(r))} ms`).join(', ')} (the tool itself: ${BURN_MS} ms, ${String(BURN().arguments['rounds'])} rounds of xorshift calibrated in the bench process).`,
    ...(one === undefined
      ? []
      : [
          // One worker is bound by its own CPU (W ms a call); n workers on 2 cores by everything a call costs (T ms): 2/T calls per ms at most.
          `On 2 cores, with nothing else running, n ≥ 2 workers can reach at most 2 / ${f(total(one))} ms = ${Math.round(2_000 / total(one)).toLocaleString('en-US')} calls/s: ` +
            `${f((2 * (one.workers[0] as number)) / total(one))}× one worker (bound by its own ${f(one.workers[0] as number)} ms a call).`,
        ]),
  ].join('\n');
}

declare const gc: (() => void) | undefined;

/** Every scale-out section's Markdown, printed as each is done. */
export async function scaleOutSections({ quick }: { quick: boolean }): Promise<string[]> {
  const scale = (n: number) => (quick ? Math.ceil(n / 20) : n);
  const sections: string[] = [];
  const emit = (text: string) => {
    console.log(`${text}\n`);
    sections.push(text);
  };
  const began = performance.now();
  const [l1, l5] = loadavg();
  emit(`### ScaleOut: setting\n\nLoad average when the section began: ${l1?.toFixed(2)} (1 min), ${l5?.toFixed(2)} (5 min), on a machine of 2 cores.`);
  let nats: BenchBroker | undefined;
  let redis: BenchBroker | undefined;
  try {
    [nats, redis] = await Promise.all([startNats(), startRedis()]);
    const echo = echoVariants(nats, redis);
    for (const [concurrency, count] of [
      [1, 1_000],
      [16, 3_000],
    ] as const) {
      const results = await measurePeers(echo, { count: scale(count), rounds: 5, concurrency, warmup: scale(count / 5), roundMs: ROUND_MS });
      emit(peerTable(`ScaleOut: SDK Client tools/call echo, ${concurrency} in flight, one session`, results));
    }
    for (const broker of [nats, redis]) {
      const counts = [1, 2, 3];
      const variants = scalingVariants(broker, counts);
      // measurePeers sets every variant up (6 worker processes, the idle ones waiting on the broker), then interleaves rounds.
      const placements: (string | undefined)[] = [];
      const placed = variants.map((v, i) => ({
        name: v.name,
        setup: async () => {
          const instance = await v.setup();
          placements[i] = instance.placement();
          return instance;
        },
      }));
      const results = await measurePeers(placed, { count: scale(1_000), rounds: 5, concurrency: IN_FLIGHT, warmup: scale(200), roundMs: ROUND_MS });
      emit(
        peerTable(`ScaleOut: ${BURN_MS} ms of CPU a call over ${broker.name}, ${SESSIONS} sessions, ${IN_FLIGHT} in flight, 1 to 3 worker processes`, results) +
          scalingNote(results, placements),
      );
      const rows: Profile[] = [];
      // Over NATS also with the stream in memory: how much of the broker's share is JetStream writing to disk.
      for (const v of broker.name === 'NATS' ? [...variants, ...scalingVariants(broker, [1, 2], 'memory')] : variants) {
        if (typeof gc === 'function') gc();
        rows.push(await profile(v, broker, scale(1_000), scale(200)));
      }
      emit(profileTable(`Where the time goes over ${broker.name}: one run of ${scale(1_000)} calls each, CPU time from /proc`, rows));
    }
  } finally {
    await stopAll([nats, redis]);
  }
  console.log(`(ScaleOut took ${((performance.now() - began) / 1000).toFixed(0)} s)\n`);
  return sections;
}
