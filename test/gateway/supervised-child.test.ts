/**
 * Supervised stdio children (docs/gateway.md "Supervised stdio children"): a child that
 * exits under an open session is restarted and the session restored on the new one by
 * replaying its handshake. Requests in flight follow the exactly-once rules
 * (docs/architecture.md#invariant-3): the idempotent ones are sent again, the others get
 * one error and run at most once (the count file, written by the server before it does
 * anything, is the ledger across processes). A crash loop ends the session, saying so.
 *
 * Real processes throughout: the gateway in this process, the fixture server
 * (failover-stdio-server.ts) as its child, SDK v1 and v2 clients over HTTP and WebSocket.
 * Waits are on events and log records, never on time.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { LayerEvents } from '#core/events.ts';
import type { UpstreamConfig } from '#gateway/config/gateway.ts';
import { validateConfig } from '#gateway/config/load.ts';
import { WebSocketClientTransport } from '#transports/ws/index.ts';
import { createClient, type Sdk, type TestClient, textOf } from '../support/clients.ts';
import { nextEvent, within } from '../support/events.ts';
import { closeAll, startTestGateway, type TestGateway } from '../support/gateway.ts';
import { makeClientTransport } from '../support/http.ts';
import { parseExposition, value } from '../support/prom-text.ts';

const SERVER = fileURLToPath(new URL('../support/failover-stdio-server.ts', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'mcp-layers-supervised-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let gw: TestGateway | undefined;
const clients: TestClient[] = [];
afterEach(() => closeAll(clients, gw).then(() => (gw = undefined)));

let runs = 0;
/** A fresh count file and the upstream that writes to it. */
function upstream(mode: '0' | 'first' | 'crash', restart: UpstreamConfig['restart'] = { initialDelayMs: 10, maxDelayMs: 100 }) {
  const file = join(dir, `runs-${++runs}.txt`);
  const lines = () => readFileSync(file, 'utf8').trim().split('\n');
  return {
    config: { command: process.execPath, args: [SERVER, 'sup', mode, file], stderr: 'log', restart } satisfies UpstreamConfig,
    /** How many times `tool` ran for `key`, in every child. */
    ran: (tool: string, key: string) => lines().filter((l) => l.endsWith(` ${tool} ${key}`)).length,
    /** The pid of each child that completed a handshake, in order. */
    handshakes: () => lines().filter((l) => l.includes(' initialized ')).map((l) => Number(l.split(' ')[2])),
  };
}

const COMBOS: Array<[Sdk, 'http' | 'websocket']> = [
  ['v1', 'http'],
  ['v2', 'websocket'],
];

async function connect(sdk: Sdk, listener: 'http' | 'websocket', gateway: TestGateway): Promise<TestClient> {
  const client = createClient(sdk);
  clients.push(client);
  await client.connect(listener === 'http' ? makeClientTransport(sdk, gateway.http) : new WebSocketClientTransport(gateway.ws, { reconnect: false }));
  return client;
}

/** The one session's upstream child. */
function childPid(gateway: TestGateway): number {
  const [session] = gateway.gateway.sessions;
  const pid = (session?.upstream?.inner as { pid?: number | null } | undefined)?.pid;
  if (typeof pid !== 'number') throw new Error('no upstream child');
  return pid;
}

/** Every `reconnect` event on the upstream bus from now on. */
function recordRestarts(gateway: TestGateway): Array<LayerEvents['reconnect']> {
  const seen: Array<LayerEvents['reconnect']> = [];
  gateway.gateway.upstreamEvents.on('reconnect', (event) => seen.push(event));
  return seen;
}

const ranOnStderr = (gateway: TestGateway, line: string) => gateway.waitForLog((r) => r['event'] === 'upstream-stderr' && r['message'] === line);

describe.each(COMBOS)('an SDK %s client over %s, its stdio child killed', (sdk, listener) => {
  it('between calls: the next call succeeds on a restarted child, under the same session, after the handshake was replayed; the client notices nothing', async () => {
    const server = upstream('0');
    gw = await startTestGateway({ upstream: server.config });
    const client = await connect(sdk, listener, gw);
    const errors: Error[] = [];
    client.onerror = (error) => errors.push(error);
    expect(textOf(await client.callTool('write', { key: 'before' }))).toBe('wrote before on sup');
    const [session] = gw.gateway.sessions;
    const sessionId = session?.sessionId;
    const first = childPid(gw);
    const restored = nextEvent(gw.gateway.upstreamEvents, 'reconnect', (e) => e.outcome === 'connected');
    process.kill(first, 'SIGKILL');
    await within(restored, 'the child restarted');
    expect(textOf(await client.callTool('write', { key: 'after' }))).toBe('wrote after on sup');
    expect([...gw.gateway.sessions]).toEqual([session]);
    expect(session?.sessionId).toBe(sessionId);
    // Two children, each initialized once: the second by the replayed handshake.
    const handshakes = server.handshakes();
    expect(handshakes).toHaveLength(2);
    expect(handshakes[0]).toBe(first);
    expect(handshakes[1]).toBe(childPid(gw));
    expect(server.ran('write', 'after')).toBe(1);
    expect(errors).toEqual([]);
  });

  it('with calls in flight: the idempotent ones (a readOnlyHint tool, resources/read) succeed on the new child, a non-idempotent one gets one error and ran once', async () => {
    const server = upstream('first');
    gw = await startTestGateway({ upstream: server.config }, 'info');
    const client = await connect(sdk, listener, gw);
    await client.listTools(); // the gateway learns that `read` is readOnlyHint
    const read = client.callTool('read', { key: 'r' });
    const note = client.readResource('note://n');
    const write = client.callTool('write', { key: 'w' }).then(
      () => undefined,
      (error: unknown) => error as { code?: number; message?: string; data?: Record<string, unknown> },
    );
    await within(Promise.all([ranOnStderr(gw, 'RAN read r'), ranOnStderr(gw, 'RAN note n'), ranOnStderr(gw, 'RAN write w')]), 'the three calls reached the child');
    process.kill(childPid(gw), 'SIGKILL');
    expect(textOf(await within(read, 'read answered'))).toBe('read r on sup');
    expect((await within(note, 'resources/read answered')).contents).toEqual([{ uri: 'note://n', text: 'note n on sup' }]);
    const error = await within(write, 'write answered');
    expect(error?.code).toBe(-32000);
    expect(error?.message).toMatch(/The upstream server was killed by SIGKILL while tools\/call was in flight; its last stderr line: RAN write w; the gateway restarted it, but tools\/call is not safe to send twice: it may or may not have completed$/);
    expect(error?.data).toMatchObject({ layer: 'gateway', reason: 'upstream-restarted', exitCode: null, signal: 'SIGKILL' });
    expect({ read: server.ran('read', 'r'), note: server.ran('note', 'n'), write: server.ran('write', 'w') }).toEqual({ read: 2, note: 2, write: 1 });
    // The session goes on: asked again, the client's write runs again (this mode holds only a first run).
    expect(textOf(await client.callTool('write', { key: 'w' }))).toBe('wrote w on sup');
    expect(server.ran('write', 'w')).toBe(2);
    expect(gw.gateway.sessions.size).toBe(1);
  });
});

describe('a crash loop', () => {
  it.each(COMBOS)('an SDK %s client over %s: ends the session after maxRestarts restarts, with an error that says so', async (sdk, listener) => {
    const server = upstream('crash', { initialDelayMs: 5, maxDelayMs: 20, maxRestarts: 3, windowMs: 60_000 });
    gw = await startTestGateway({ upstream: server.config });
    const restarts = recordRestarts(gw);
    const gaveUp = nextEvent(gw.gateway.upstreamEvents, 'reconnect', (e) => e.outcome === 'gave-up');
    const closed = gw.waitForLog((r) => r['event'] === 'session-close');
    const client = await connect(sdk, listener, gw);
    const call = client.readResource('note://x').then(
      () => undefined,
      (error: unknown) => error as { code?: number; message?: string; data?: Record<string, unknown> },
    );
    const event = await within(gaveUp, 'the gateway gave up');
    expect(event.error?.message).toMatch(/^The upstream server is in a crash loop: it crashed 4 times in \d+ ms and the gateway stopped restarting it \(upstream\.restart\.maxRestarts: 3 restarts within upstream\.restart\.windowMs: 60000 ms\); the last time it exited with code 7; its last stderr line: crashing on purpose after the handshake$/);
    expect(restarts.filter((e) => e.outcome === 'scheduled').map((e) => e.attempt)).toEqual([1, 2, 3]);
    expect(server.handshakes()).toHaveLength(4);
    const error = await within(call, 'the call in flight answered');
    expect(error?.code).toBe(-32000);
    expect(error?.message).toMatch(/crash loop: it crashed 4 times .*; resources\/read may or may not have completed$/);
    expect(error?.data).toMatchObject({ layer: 'gateway', reason: 'crash-loop', exitCode: 7 });
    const record = await within(closed, 'the session closed');
    expect(record).toMatchObject({ level: 'warn', reason: 'upstream-failed', exit_code: 7 });
    expect(String(record['message'])).toMatch(/^session closed \(upstream-failed\): The upstream server is in a crash loop/);
    expect(gw.logs.find((r) => r['event'] === 'upstream-crash-loop')).toMatchObject({ level: 'error', reason: 'crash-loop', exit_code: 7 });
  });

  it('a child that exits before it ever answered is a start failure: not restarted', async () => {
    gw = await startTestGateway({ upstream: { command: process.execPath, args: ['-e', 'process.exit(3)'], stderr: 'ignore' } });
    const restarts = recordRestarts(gw);
    const client = createClient('v1');
    clients.push(client);
    const error = await client.connect(makeClientTransport('v1', gw.http)).then(
      () => undefined,
      (e: unknown) => e as { code?: number; message?: string },
    );
    expect(error?.code).toBe(-32054);
    expect(error?.message).toMatch(/The upstream server exited with code 3 before it answered initialize/);
    expect(restarts).toEqual([]);
  });
});

describe('restart: false', () => {
  it.each(COMBOS)('an SDK %s client over %s: the child exits and the session ends with it, as without supervision', async (sdk, listener) => {
    const server = upstream('0', false);
    gw = await startTestGateway({ upstream: server.config });
    const restarts = recordRestarts(gw);
    const client = await connect(sdk, listener, gw);
    expect(textOf(await client.callTool('write', { key: 'once' }))).toBe('wrote once on sup');
    const closed = gw.waitForLog((r) => r['event'] === 'session-close');
    process.kill(childPid(gw), 'SIGKILL');
    expect(await within(closed, 'the session closed')).toMatchObject({ reason: 'upstream-closed', signal: 'SIGKILL' });
    // The session is gone: over HTTP the gateway no longer knows its id, over WebSocket the connection closed.
    await expect(client.callTool('write', { key: 'again' })).rejects.toThrow(listener === 'http' ? /Session not found/ : /code 1011: the upstream server closed the session|Not connected/);
    expect(server.handshakes()).toHaveLength(1);
    expect(restarts).toEqual([]);
  });
});

describe('events, metrics and logs', () => {
  it('a restart is a reconnect on the upstream bus (scheduled, connected), counted in mcp_layers_reconnects_total{transport="upstream"}, and a warning naming the exit', async () => {
    const server = upstream('0');
    gw = await startTestGateway({ upstream: server.config });
    const restarts = recordRestarts(gw);
    const client = await connect('v1', 'http', gw);
    await client.ping();
    const restored = nextEvent(gw.gateway.upstreamEvents, 'reconnect', (e) => e.outcome === 'connected');
    process.kill(childPid(gw), 'SIGKILL');
    await within(restored, 'the child restarted');
    expect(restarts.map((e) => [e.outcome, e.attempt])).toEqual([
      ['scheduled', 1],
      ['connected', 1],
    ]);
    expect(restarts[0]?.delayMs).toBeGreaterThanOrEqual(0);
    expect(restarts[0]?.delayMs).toBeLessThanOrEqual(100);
    const samples = parseExposition(await (await fetch(`${gw.base}/metrics`)).text());
    expect(value(samples, 'mcp_layers_reconnects_total', { transport: 'upstream', outcome: 'scheduled' })).toBe(1);
    expect(value(samples, 'mcp_layers_reconnects_total', { transport: 'upstream', outcome: 'connected' })).toBe(1);
    const warning = gw.logs.find((r) => r['event'] === 'upstream-restart');
    expect(warning).toMatchObject({ level: 'warn', attempt: 1, signal: 'SIGKILL', exit_code: null });
    expect(String(warning?.['message'])).toMatch(/^the upstream server was killed by SIGKILL; restarting it in \d+ ms \(restart 1 of at most 5 within 60000 ms\)$/);
    await client.ping();
    expect(server.handshakes()).toHaveLength(2);
  });
});

describe('upstream.restart in the config', () => {
  it('is refused where it cannot apply or does not add up, naming the field', () => {
    const check = (upstream: Record<string, unknown>) => () => validateConfig({ upstream }, 'test config');
    expect(check({ url: 'https://x.example/mcp', restart: false })).toThrow('upstream.restart: applies only to a stdio upstream (command)');
    expect(check({ command: 'node', restart: { initialDelayMs: 500, maxDelayMs: 100 } })).toThrow('upstream.restart.maxDelayMs: expected at least restart.initialDelayMs (500), got 100');
    expect(check({ command: 'node', restart: { maxDelayMs: 50 } })).toThrow('upstream.restart.maxDelayMs: expected at least restart.initialDelayMs (100), got 50');
    expect(check({ command: 'node', restart: { maxRestarts: 0 } })).toThrow(/upstream\.restart\.maxRestarts: /);
    expect(check({ command: 'node', restart: true })).toThrow(/upstream\.restart: expected restart options, or false/);
    expect(validateConfig({ upstream: { command: 'node', restart: { windowMs: 1_000 } } }, 'test config').config.upstream?.restart).toEqual({ windowMs: 1_000 });
  });
});
