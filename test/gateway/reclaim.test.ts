/**
 * Reclaiming sessions nobody uses, with the defaults designed for the clients people run
 * (docs/gateway.md "Sessions"): an HTTP client that exits without DELETE (the Inspector
 * CLI, mcp-remote, an SDK client that calls close() without terminateSession()) holds no
 * stream, and its session goes after `detachedTimeoutMs`; a WebSocket that never says
 * anything goes after `handshakeTimeoutMs`; at `maxSessions` the least recently active
 * of those is closed to admit a newcomer instead of refusing it; and an initialize the
 * gateway refuses leaves no session behind.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterEach, describe, expect, it } from 'vitest';
import type { GatewayEvents } from '#gateway/gateway.ts';
import { closed, rawClient } from '../support/ws.ts';
import { closeAll, DEMO_SERVER, isAlive, startTestGateway, type TestGateway } from '../support/gateway.ts';

const upstream = { command: process.execPath, args: [DEMO_SERVER] };
let gw: TestGateway | undefined;
const clients: Client[] = [];
afterEach(() => closeAll(clients, gw).then(() => (gw = undefined)));

type Closed = GatewayEvents['session-close'][0];

async function httpClient(url: string): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
  const client = new Client({ name: 'reclaim-test', version: '1.0.0' });
  clients.push(client);
  const transport = new StreamableHTTPClientTransport(new URL(url));
  await client.connect(transport);
  return { client, transport };
}

/** Resolves with the close event of the session that has `sessionId` (or of the next session, without one). */
function closeOf(gateway: TestGateway, sessionId?: string): Promise<Closed> {
  return new Promise((resolve) => {
    const listener = (event: Closed) => {
      if (sessionId !== undefined && event.sessionId !== sessionId) return;
      gateway.gateway.off('session-close', listener);
      resolve(event);
    };
    gateway.gateway.on('session-close', listener);
  });
}


const initialize = (url: string) =>
  fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'x', version: '1' } } }),
  });

describe('detachedTimeoutMs: an HTTP client that went away without DELETE', () => {
  it('loses its session (and the child) after detachedTimeoutMs, while a client that holds its GET stream keeps its own', async () => {
    gw = await startTestGateway({ upstream, downstream: { idleTimeoutMs: 600_000, detachedTimeoutMs: 1_000 } });
    const live = await httpClient(gw.http);
    const gone = await httpClient(gw.http);
    await gone.client.callTool({ name: 'echo', arguments: { text: 'last words' } });
    const goneId = gone.transport.sessionId as string;
    const pid = [...gw.gateway.sessions].find((s) => s.sessionId === goneId)?.upstream?.inner as { pid?: number } | undefined;
    const closing = closeOf(gw, goneId);
    // What the Inspector CLI does on exit: close the transport (its GET stream), no DELETE.
    await gone.transport.close();
    expect(await closing).toMatchObject({ reason: 'detached', listener: 'http' });
    expect(isAlive(pid?.pid as number)).toBe(false);
    expect(await live.client.callTool({ name: 'echo', arguments: { text: 'still here' } })).toEqual({ content: [{ type: 'text', text: 'still here' }] });
    expect([...gw.gateway.sessions].map((s) => s.sessionId)).toEqual([live.transport.sessionId]);
  });
});

describe('handshakeTimeoutMs: a WebSocket that never says anything', () => {
  it('is closed with 1008 after handshakeTimeoutMs, long before the idle timeout', async () => {
    gw = await startTestGateway({ upstream, downstream: { handshakeTimeoutMs: 200 } });
    const closing = closeOf(gw);
    const ws = await rawClient(gw.ws);
    expect(await closed(ws)).toEqual({ code: 1008, reason: 'nothing was sent within the handshake timeout' });
    expect((await closing).reason).toBe('handshake-timeout');
  });
});

describe('evictIdleSessions: at maxSessions', () => {
  it('admits a new client by closing the least recently active session nobody uses, over HTTP and WebSocket', async () => {
    gw = await startTestGateway({ upstream, downstream: { maxSessions: 2, detachedTimeoutMs: false, handshakeTimeoutMs: false } }, 'debug');
    const gateway = gw;
    // The gateway has seen the client's last stream close (a close is not seen at once on the other end).
    const detached = (id: string) => {
      const from = gateway.logs.length;
      return gateway.waitForLog((r) => r['event'] === 'session-detached' && r['mcp_session_id'] === id && gateway.logs.indexOf(r) >= from);
    };
    // Two clients that went away without DELETE: the first left earlier.
    const first = await httpClient(gw.http);
    const second = await httpClient(gw.http);
    const firstId = first.transport.sessionId as string;
    const firstDetached = detached(firstId);
    await first.transport.close();
    await firstDetached;
    await second.client.callTool({ name: 'echo', arguments: { text: 'later' } });
    const secondId = second.transport.sessionId as string;
    const secondDetached = detached(secondId);
    await second.transport.close();
    await secondDetached;

    const evicted = closeOf(gw, firstId);
    const third = await httpClient(gw.http);
    expect(await evicted).toMatchObject({ reason: 'evicted' });
    expect(await third.client.callTool({ name: 'add', arguments: { a: 1, b: 2 } })).toEqual({ content: [{ type: 'text', text: '3' }] });

    // A WebSocket client gets in the same way, reclaiming the other detached session.
    const next = closeOf(gw, secondId);
    const ws = await rawClient(gw.ws);
    expect(await next).toMatchObject({ reason: 'evicted' });
    ws.close();
  });

  it('silent WebSockets cannot lock out HTTP clients: one that never spoke makes room', async () => {
    gw = await startTestGateway({ upstream, downstream: { maxSessions: 2, handshakeTimeoutMs: false } });
    const silent = [await rawClient(gw.ws), await rawClient(gw.ws)];
    const firstClosed = closed(silent[0] as Parameters<typeof closed>[0]);
    const client = await httpClient(gw.http);
    expect(await client.client.callTool({ name: 'echo', arguments: { text: 'in' } })).toEqual({ content: [{ type: 'text', text: 'in' }] });
    // The one connected first was the least recently active.
    expect(await firstClosed).toEqual({ code: 1013, reason: 'session reclaimed for a new client' });
    silent[1]?.close();
  });

  it('still refuses with 503 when every session is in use', async () => {
    gw = await startTestGateway({ upstream, downstream: { maxSessions: 1 } });
    await httpClient(gw.http); // holds its GET stream: in use
    const refused = await initialize(gw.http);
    expect(refused.status).toBe(503);
    expect(((await refused.json()) as { error: { message: string } }).error.message).toMatch(/limit of 1 sessions \(downstream\.maxSessions\), all in use/);
  });
});

describe('an initialize the gateway refuses', () => {
  it('leaves no session: its Mcp-Session-Id is unknown afterwards and holds no slot', async () => {
    // The upstream stack fails every attempt: the initialize is answered with an error.
    gw = await startTestGateway({ upstream: { ...upstream, layers: [{ chaos: { seed: 1, errorRate: 1 } }] }, downstream: { maxSessions: 1 } });
    const closing = closeOf(gw);
    const refused = await initialize(gw.http);
    const sessionId = refused.headers.get('mcp-session-id');
    expect(await refused.text()).toMatch(/"error":\{"code":-32055/);
    expect((await closing).reason).toBe('initialize-failed');
    expect(gw.gateway.sessions.size).toBe(0);
    const reused = await fetch(gw.http, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-session-id': sessionId ?? 'none', 'mcp-protocol-version': '2025-11-25' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' }),
    });
    expect(reused.status).toBe(404);
  });

  it('refused by a downstream layer (it never reaches the upstream) leaves no session either', async () => {
    gw = await startTestGateway({ upstream, downstream: { layers: [{ when: { method: 'initialize' }, layers: [{ chaos: { seed: 1, errorRate: 1, direction: 'inbound' } }] }] } });
    const closing = closeOf(gw);
    const refused = await initialize(gw.http);
    expect(await refused.text()).toMatch(/"error":\{"code":-32055/);
    expect((await closing).reason).toBe('initialize-failed');
    expect(gw.gateway.sessions.size).toBe(0);
    // Nothing was started for it.
    expect(gw.logs.filter((r) => r['event'] === 'upstream-start')).toEqual([]);
  });
});
