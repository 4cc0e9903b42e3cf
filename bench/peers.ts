/**
 * Issue 13: the gateway beside its peers. The same stdio echo server
 * (examples/demo-server.ts, tool `echo`) behind each, the same SDK v1 client:
 *   - the SDK's own Streamable HTTP server with the echo tool, no gateway (the ceiling);
 *   - `mcp-layers gateway` with its default stacks, and with no layers;
 *   - supergateway (`--stdio … --outputTransport streamableHttp --stateful`, and `ws`);
 *   - mcp-proxy (`--server stream`, stateful, its defaults otherwise).
 * Every one runs in a process of its own, started here on a free 127.0.0.1 port and
 * stopped (its whole process group) when its rounds are done, also on failure. The
 * variants are measured in interleaved rounds; calls/s is the median round, p50/p99
 * are over every measured call.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { WebSocketClientTransport } from '#transports/ws/index.ts';
import type { Variant } from './harness.ts';

const file = (relative: string) => fileURLToPath(new URL(relative, import.meta.url));
export const SERVER = file('../examples/demo-server.ts');
export const GATEWAY_CLI = file('../src/gateway/cli/main.ts');
export const ECHO_HTTP_SERVER = file('./echo-http-server.ts');
const LOOPBACK_PRELOAD = file('./loopback.ts');
const SUPERGATEWAY = file('../node_modules/supergateway/dist/index.js');
const MCP_PROXY = file('../node_modules/mcp-proxy/dist/bin/mcp-proxy.mjs');

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** A free TCP port on 127.0.0.1 (the OS picks it; the listener is closed before it is used). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

const accepts = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });

export interface Started {
  readonly child: ChildProcess;
  /** SIGTERM to the process group, SIGKILL after 3 s; resolves once the leader exited. */
  stop(): Promise<void>;
}

const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) killGroup(child, 'SIGKILL');
});

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    if (child.pid !== undefined) process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

/**
 * Starts `node <args>` in a process group of its own and resolves once 127.0.0.1:`port`
 * accepts connections (at most `readyMs`); rejects, with the end of its stderr, if it
 * exits or does not listen in time.
 */
export async function startProcess(name: string, args: string[], port: number, { ipc = false, readyMs = 20_000 } = {}): Promise<Started> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('OTEL_')));
  const child = spawn(process.execPath, args, { detached: true, env, stdio: ['ignore', 'ignore', 'pipe', ...(ipc ? (['ipc'] as const) : [])] });
  running.add(child);
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => void (stderr = (stderr + chunk.toString()).slice(-2_000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let done = false;
  void exited.then(() => {
    done = true;
    running.delete(child);
  });
  const stop = async () => {
    if (done) return;
    killGroup(child, 'SIGTERM');
    const timer = setTimeout(() => killGroup(child, 'SIGKILL'), 3_000);
    await exited;
    clearTimeout(timer);
    killGroup(child, 'SIGKILL'); // whatever the leader left behind in its group
  };
  const deadline = Date.now() + readyMs;
  while (!(await accepts(port))) {
    if (done || Date.now() > deadline) {
      await stop();
      throw new Error(`${name} did not listen on 127.0.0.1:${port} within ${readyMs} ms${done ? ' (it exited)' : ''}: ${stderr.trim()}`);
    }
    await sleep(50);
  }
  return { child, stop };
}

/** A gateway config file in a directory of its own; returns its path and a cleanup. */
export function gatewayConfigFile(config: object): { path: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-layers-bench-'));
  const path = join(dir, 'gateway.json');
  writeFileSync(path, JSON.stringify(config));
  return { path, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

type Listener = 'http' | 'websocket';

interface Peer {
  name: string;
  listener: Listener;
  /** Starts the server on `port` (its node run with `nodeFlags`); returns its URL and how to stop it. */
  start(port: number, nodeFlags?: readonly string[]): Promise<{ url: string; pid: number | undefined; stop(): Promise<void> }>;
}

interface OurSettings {
  /** Both stacks empty. */
  noLayers?: boolean;
  /** Default `error` (the peers run with their logs off); `info` is the gateway's default. */
  logLevel?: 'error' | 'info';
  /** downstream.jsonResponses (off by default). */
  jsonResponses?: boolean;
}

/** Our gateway CLI with its defaults, but for what `settings` names. */
const ourGateway = (name: string, listener: Listener, { noLayers = false, logLevel = 'error', jsonResponses = false }: OurSettings = {}): Peer => ({
  name,
  listener,
  async start(port, nodeFlags = []) {
    const config = gatewayConfigFile({
      upstream: { command: process.execPath, args: [SERVER], ...(noLayers ? { layers: [] } : {}) },
      downstream: { host: '127.0.0.1', port, transports: [listener], ...(noLayers ? { layers: [] } : {}), ...(jsonResponses ? { jsonResponses } : {}) },
      observability: { logs: { level: logLevel } },
    });
    try {
      const started = await startProcess(name, [...nodeFlags, GATEWAY_CLI, 'gateway', '--config', config.path], port);
      return { url: `${listener === 'http' ? 'http' : 'ws'}://127.0.0.1:${port}/mcp`, pid: started.child.pid, stop: async () => (await started.stop(), config.remove()) };
    } catch (error) {
      config.remove();
      throw error;
    }
  },
});

const sdkCeiling: Peer = {
  name: 'SDK Streamable HTTP server, no gateway (ceiling)',
  listener: 'http',
  async start(port) {
    const started = await startProcess('SDK server', [ECHO_HTTP_SERVER, String(port)], port);
    return { url: `http://127.0.0.1:${port}/mcp`, pid: started.child.pid, stop: started.stop };
  },
};

const supergateway = (listener: Listener): Peer => ({
  name: listener === 'http' ? 'supergateway 4 (streamableHttp, stateful)' : 'supergateway 4 (ws)',
  listener,
  async start(port, nodeFlags = []) {
    // supergateway has no host option: the preload makes its listen() bind 127.0.0.1.
    const output = listener === 'http' ? ['--outputTransport', 'streamableHttp', '--stateful'] : ['--outputTransport', 'ws', '--messagePath', '/mcp'];
    const args = [...nodeFlags, '--import', LOOPBACK_PRELOAD, SUPERGATEWAY, '--stdio', `"${process.execPath}" "${SERVER}"`, ...output, '--port', String(port), '--logLevel', 'none'];
    const started = await startProcess('supergateway', args, port);
    return { url: `${listener === 'http' ? 'http' : 'ws'}://127.0.0.1:${port}/mcp`, pid: started.child.pid, stop: started.stop };
  },
});

const mcpProxy: Peer = {
  name: 'mcp-proxy 6 (stream, stateful)',
  listener: 'http',
  async start(port) {
    const args = [MCP_PROXY, '--host', '127.0.0.1', '--port', String(port), '--server', 'stream', '--', process.execPath, SERVER];
    const started = await startProcess('mcp-proxy', args, port);
    return { url: `http://127.0.0.1:${port}/mcp`, pid: started.child.pid, stop: started.stop };
  },
};

/** A peer as a harness Variant: setup starts its process (with `nodeFlags`) and connects an SDK client. */
function asVariant(peer: Peer, nodeFlags: readonly string[] = []): Variant {
  return {
    name: peer.name,
    async setup() {
      const server = await peer.start(await freePort(), nodeFlags);
      const client = new Client({ name: 'bench', version: '1.0.0' });
      try {
        await client.connect(peer.listener === 'http' ? new StreamableHTTPClientTransport(new URL(server.url)) : new WebSocketClientTransport(server.url, { reconnect: false }));
      } catch (error) {
        await server.stop();
        throw error;
      }
      return {
        pid: server.pid,
        exchange: async () => void (await client.callTool({ name: 'echo', arguments: { text: 'bench' } })),
        close: async () => {
          await Promise.race([client.close(), sleep(2_000)]).catch(() => {});
          await server.stop();
        },
      };
    },
  };
}

export type ProfiledGateway = 'ours' | 'ours-no-layers' | 'supergateway';

/** One gateway of the Peers bench as a Variant whose server process runs with `nodeFlags` (bench/profile-gateway.ts). */
export function gatewayVariant(which: ProfiledGateway, listener: Listener, nodeFlags: readonly string[]): Variant {
  const peer = which === 'supergateway' ? supergateway(listener) : ourGateway(`mcp-layers gateway${which === 'ours' ? ', default stacks' : ', no layers'}`, listener, { noLayers: which === 'ours-no-layers' });
  return asVariant(peer, nodeFlags);
}

/** The first variant is the one the others are compared with (supergateway). */
export function peerVariants(listener: Listener): Variant[] {
  const peers =
    listener === 'http'
      ? [
          supergateway('http'),
          sdkCeiling,
          ourGateway('mcp-layers gateway, default stacks', 'http'),
          // Its default log level: a JSON line per exchange on stderr, which the bench reads as a supervisor would.
          ourGateway('mcp-layers gateway, default stacks, logs at info (the default)', 'http', { logLevel: 'info' }),
          ourGateway('mcp-layers gateway, no layers', 'http', { noLayers: true }),
          // Opt-in (clients see JSON bodies instead of one-event streams: docs/gateway.md).
          ourGateway('mcp-layers gateway, default stacks, downstream.jsonResponses', 'http', { jsonResponses: true }),
          mcpProxy,
        ]
      : [supergateway('websocket'), ourGateway('mcp-layers gateway, default stacks', 'websocket'), ourGateway('mcp-layers gateway, no layers', 'websocket', { noLayers: true })];
  return peers.map((peer) => asVariant(peer));
}

export interface PeerResult {
  name: string;
  callsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  ratio: number;
  /** CPU of the server process per measured call, µs (Linux). */
  serverCpuMicros?: number;
  /** The same with the processes it started (the stdio child, whatever group it runs in), µs. */
  treeCpuMicros?: number;
}

/**
 * CPU time (user + system, every thread) of a process and of it with its descendants, in
 * µs, from /proc: Linux only, undefined elsewhere or once it is gone. On two cores the
 * client, the gateway and its child share the CPU, so calls per second alone do not say
 * which of them a change made cheaper. The kernel counts in USER_HZ ticks (100 a second on
 * Linux); the rounds' seconds of CPU make 10 ms fine enough.
 */
function cpuMicros(pid: number): { own: number; tree: number } | undefined {
  const processes = new Map<number, { parent: number; ticks: number }>();
  for (const entry of readdirSync('/proc')) {
    if (entry.charCodeAt(0) > 57) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // After "pid (comm) ": state, ppid, ..., utime and stime (fields 14 and 15 of proc(5)).
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      processes.set(Number(entry), { parent: Number(fields[1]), ticks: Number(fields[11]) + Number(fields[12]) });
    } catch {
      // gone meanwhile, or not a process
    }
  }
  const own = processes.get(pid);
  if (own === undefined) return undefined;
  let tree = 0;
  const under = new Set([pid]);
  // Passes until one adds nothing: a child may be listed before its parent.
  for (let added = true; added; ) {
    added = false;
    for (const [id, { parent, ticks }] of processes) {
      if (under.has(id) || !under.has(parent)) continue;
      under.add(id);
      tree += ticks;
      added = true;
    }
  }
  return { own: own.ticks * 10_000, tree: (tree + own.ticks) * 10_000 };
}

declare const gc: (() => void) | undefined;

const quantile = (sorted: Float64Array, q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;

/**
 * Like harness.compare (every variant set up at once, warmed up, then measured in
 * interleaved rounds), recording each call's latency too. Every instance is closed at
 * the end, also when a round fails; a round taking longer than `roundMs` fails the run.
 */
export async function measurePeers(variants: Variant[], { count = 2_000, rounds = 5, concurrency = 1, warmup = 200, roundMs = 120_000 } = {}): Promise<PeerResult[]> {
  const instances: Awaited<ReturnType<Variant['setup']>>[] = [];
  try {
    for (const variant of variants) instances.push(await variant.setup());
    const latencies = variants.map(() => new Float64Array(count * rounds));
    const times: number[][] = variants.map(() => []);
    const cpu = variants.map(() => ({ own: 0, tree: 0, known: true }));
    const runRound = async (index: number, n: number, record: Float64Array | undefined, offset: number) => {
      const instance = instances[index] as (typeof instances)[number];
      let next = 0;
      const worker = async () => {
        while (next < n) {
          const i = next++;
          const start = performance.now();
          await instance.exchange(i);
          if (record !== undefined) record[offset + i] = performance.now() - start;
        }
      };
      const start = performance.now();
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${variants[index]?.name}: a round took over ${roundMs} ms`)), roundMs)));
      try {
        await Promise.race([Promise.all(Array.from({ length: concurrency }, worker)), timeout]);
      } finally {
        clearTimeout(timer);
      }
      return performance.now() - start;
    };
    for (const i of instances.keys()) await runRound(i, warmup, undefined, 0);
    for (let round = 0; round < rounds; round++) {
      for (const i of instances.keys()) {
        if (typeof gc === 'function') gc();
        const pid = instances[i]?.pid;
        const before = pid === undefined ? undefined : cpuMicros(pid);
        times[i]?.push(await runRound(i, count, latencies[i], round * count));
        const after = pid === undefined ? undefined : cpuMicros(pid);
        const used = cpu[i] as (typeof cpu)[number];
        if (before === undefined || after === undefined) used.known = false;
        else {
          used.own += after.own - before.own;
          used.tree += after.tree - before.tree;
        }
      }
    }
    const medianMs = times.map((t) => t.toSorted((a, b) => a - b)[Math.floor(t.length / 2)] as number);
    const base = medianMs[0] as number;
    return variants.map((v, i) => {
      const sorted = (latencies[i] as Float64Array).toSorted();
      const ms = medianMs[i] as number;
      const used = cpu[i] as (typeof cpu)[number];
      const result: PeerResult = { name: v.name, callsPerSecond: Math.round((count / ms) * 1000), p50Ms: quantile(sorted, 0.5), p99Ms: quantile(sorted, 0.99), ratio: base / ms };
      if (used.known) {
        result.serverCpuMicros = used.own / (count * rounds);
        result.treeCpuMicros = used.tree / (count * rounds);
      }
      return result;
    });
  } finally {
    for (const instance of instances) await instance.close().catch((error: unknown) => console.error(`bench: closing a peer: ${(error as Error).message}`));
  }
}

export function peerTable(title: string, results: PeerResult[]): string {
  const base = results[0]?.name ?? '';
  const withCpu = results.every((r) => r.serverCpuMicros !== undefined);
  const cpuCells = (r: PeerResult) => (withCpu ? ` ${r.serverCpuMicros?.toFixed(0)} | ${r.treeCpuMicros?.toFixed(0)} |` : '');
  return [
    `### ${title}`,
    '',
    `| variant | calls/s | p50 ms | p99 ms | vs ${base.split(' (')[0]} |${withCpu ? ' server CPU µs/call | with its child |' : ''}`,
    `| --- | ---: | ---: | ---: | ---: |${withCpu ? ' ---: | ---: |' : ''}`,
    ...results.map((r) => `| ${r.name} | ${r.callsPerSecond.toLocaleString('en-US')} | ${r.p50Ms.toFixed(2)} | ${r.p99Ms.toFixed(2)} | ${r.ratio.toFixed(2)}× |${cpuCells(r)}`),
  ].join('\n');
}
