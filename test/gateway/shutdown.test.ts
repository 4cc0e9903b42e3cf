/**
 * Graceful shutdown of the real CLI (`mcp-layers gateway -- node examples/demo-server.ts`)
 * on SIGTERM: requests in flight finish, new sessions and new requests are refused with
 * a clear error, nothing is lost silently, every child process exits, exit code 0.
 * Past the drain deadline, what is still in flight is answered with an error that says
 * so. A second signal ends the process at once — and the children still go, with their stdin.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketClientTransport } from '#transports/ws/index.ts';
import { refusal } from '../support/ws.ts';
import { CLI, DEMO_SERVER, isAlive } from '../support/gateway.ts';

interface Running {
  readonly process: ChildProcess;
  readonly http: string;
  readonly ws: string;
  readonly logs: Array<Record<string, unknown>>;
  /** Resolves with the first log record `test` accepts (past or future). */
  log(test: (record: Record<string, unknown>) => boolean): Promise<Record<string, unknown>>;
  readonly exited: Promise<number | null>;
}

const running: ChildProcess[] = [];
const clients: Client[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close().catch(() => {})));
  for (const child of running.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

async function startCli(drainTimeoutMs: number): Promise<Running> {
  const child = spawn(process.execPath, [CLI, 'gateway', '--listen', '127.0.0.1:0', '--drain-timeout', String(drainTimeoutMs), '--log-format', 'json', '--', process.execPath, DEMO_SERVER], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.push(child);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const logs: Array<Record<string, unknown>> = [];
  const waiters = new Set<{ test: (r: Record<string, unknown>) => boolean; resolve: (r: Record<string, unknown>) => void }>();
  createInterface({ input: child.stderr as NodeJS.ReadableStream }).on('line', (line) => {
    let record: Record<string, unknown>;
    try {
      record = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return; // the child's own stderr (inherited)
    }
    logs.push(record);
    for (const waiter of waiters) {
      if (!waiter.test(record)) continue;
      waiters.delete(waiter);
      waiter.resolve(record);
    }
  });
  const banner = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const [http, ws] = await new Promise<[string, string]>((resolve, reject) => {
    let url: string | undefined;
    banner.on('line', (line) => {
      const match = /(https?|wss?):\/\/127\.0\.0\.1:\d+\/mcp/.exec(line);
      if (match === null) return;
      if (match[1] === 'http') url = match[0];
      else resolve([url as string, match[0]]);
    });
    void exited.then((code) => reject(new Error(`the gateway exited (${code}) before listening`)));
  });
  return {
    process: child,
    http,
    ws,
    logs,
    exited,
    log: (test) => {
      const seen = logs.find(test);
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((resolve) => waiters.add({ test, resolve }));
    },
  };
}

async function connect(url: string): Promise<Client> {
  const client = new Client({ name: 'shutdown-test', version: '1.0.0' });
  clients.push(client);
  await client.connect(url.startsWith('ws') ? new WebSocketClientTransport(url, { reconnect: false }) : new StreamableHTTPClientTransport(new URL(url)));
  return client;
}

/** A slow_report call and a promise that resolves once the server is certainly working on it. */
function slowCall(client: Client, steps: number, stepMs: number): { result: Promise<unknown>; started: Promise<void> } {
  let started!: () => void;
  const startedPromise = new Promise<void>((resolve) => (started = resolve));
  const result = client.callTool({ name: 'slow_report', arguments: { steps, stepMs } }, undefined, { onprogress: () => started(), timeout: 60_000 });
  return { result, started: startedPromise };
}

const childrenOf = (pid: number): number[] =>
  execFileSync('ps', ['-o', 'pid=', '--ppid', String(pid)], { encoding: 'utf8' }).split('\n').map((s) => Number(s.trim())).filter((n) => n > 0);


const settle = (p: Promise<unknown>) => p.then((value) => ({ ok: value }), (error: Error) => ({ error: error.message }));

describe('SIGTERM', () => {
  it('under load: requests in flight finish, new ones are refused, no child is left behind, exit code 0', async () => {
    const gw = await startCli(10_000);
    const a = await connect(gw.http);
    const b = await connect(gw.ws);
    const children = childrenOf(gw.process.pid as number);
    expect(children).toHaveLength(2);

    const slowA = slowCall(a, 4, 150);
    const slowB = slowCall(b, 4, 150);
    const burst = Array.from({ length: 20 }, (_, i) => settle((i % 2 === 0 ? a : b).callTool({ name: 'lookup', arguments: { key: `k${i}` } })));
    await Promise.all([slowA.started, slowB.started]);
    gw.process.kill('SIGTERM');
    await gw.log((r) => r['event'] === 'shutdown');

    // New requests in the sessions that are draining: refused, saying why.
    await expect(a.callTool({ name: 'echo', arguments: { text: 'late' } })).rejects.toThrow(/The gateway is shutting down; tools\/call was not forwarded/);
    await expect(b.callTool({ name: 'echo', arguments: { text: 'late' } })).rejects.toThrow(/The gateway is shutting down/);
    // New sessions: refused over both transports.
    const initialize = await fetch(gw.http, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'x', version: '1' } } }),
    });
    expect(initialize.status).toBe(503);
    expect(await initialize.text()).toMatch(/shutting down/);
    expect((await refusal(gw.ws)).status).toBe(503);

    // Everything that was in flight finished, and every request got its one answer.
    expect(await slowA.result).toEqual({ content: [{ type: 'text', text: 'report ready after 4 steps' }] });
    expect(await slowB.result).toEqual({ content: [{ type: 'text', text: 'report ready after 4 steps' }] });
    const outcomes = await Promise.all(burst);
    expect(outcomes.filter((o) => 'error' in o)).toEqual([]);
    expect(outcomes).toHaveLength(20);

    expect(await gw.exited).toBe(0);
    expect(children.filter(isAlive)).toEqual([]);
    expect(gw.logs.map((r) => r['event'])).toEqual(expect.arrayContaining(['signal', 'shutdown', 'session-close', 'stopped']));
  });

  it('past the drain deadline: what is still in flight gets an error that says so, and the child is stopped', async () => {
    const gw = await startCli(300);
    const client = await connect(gw.ws);
    const [child] = childrenOf(gw.process.pid as number);
    const slow = slowCall(client, 50, 200); // 10 s of work
    await slow.started;
    const signalledAt = performance.now();
    gw.process.kill('SIGTERM');
    await expect(slow.result).rejects.toThrow(/MCP error -32000: tools\/call: the gateway shut down before the upstream server answered \(drain timeout 300 ms\); the upstream server may or may not have completed the request/);
    expect(performance.now() - signalledAt).toBeLessThan(9_000);
    expect(await gw.exited).toBe(0);
    expect(isAlive(child as number)).toBe(false);
  });

  it('a repeat of the signal at once is the same request; a second one later stops at once (exit code 1), and the children still exit with their stdin', async () => {
    const gw = await startCli(30_000);
    const client = await connect(gw.http);
    const [child] = childrenOf(gw.process.pid as number);
    // The slow call reports progress every 200 ms: the clock for "later".
    let progress = 0;
    let onProgress: (() => void) | undefined;
    let started!: () => void;
    const startedPromise = new Promise<void>((resolve) => (started = resolve));
    void client
      .callTool({ name: 'slow_report', arguments: { steps: 50, stepMs: 200 } }, undefined, { timeout: 60_000, onprogress: () => (progress++, started(), onProgress?.()) })
      .catch(() => {});
    await startedPromise;
    // Ctrl-C under `npm start` arrives twice at once (the terminal, and npm forwarding it).
    gw.process.kill('SIGINT');
    gw.process.kill('SIGINT');
    await gw.log((r) => r['event'] === 'shutdown');
    const mark = progress;
    await new Promise<void>((resolve) => (onProgress = () => progress >= mark + 4 && resolve()));
    expect(gw.logs.some((r) => r['event'] === 'forced-exit')).toBe(false);
    gw.process.kill('SIGINT');
    expect(await gw.exited).toBe(1);
    // No waiting on a timer: the demo server exits when its stdin closes, which the OS does now.
    while (isAlive(child as number)) await new Promise((resolve) => setImmediate(resolve));
    expect(isAlive(child as number)).toBe(false);
  });
});

describe('startup failures', () => {
  it('a port in use: exit code 2, a clear message, no banner, nothing left running', async () => {
    const first = await startCli(1_000);
    const port = new URL(first.http).port;
    const second = spawn(process.execPath, [CLI, 'gateway', '--listen', `127.0.0.1:${port}`, '--', process.execPath, DEMO_SERVER], { stdio: ['ignore', 'pipe', 'pipe'] });
    running.push(second);
    let stdout = '';
    let stderr = '';
    second.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    second.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const [code] = (await once(second, 'exit')) as [number | null];
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr).toContain(`downstream.port: 127.0.0.1:${port} is already in use`);
    first.process.kill('SIGTERM');
    expect(await first.exited).toBe(0);
  });
});
