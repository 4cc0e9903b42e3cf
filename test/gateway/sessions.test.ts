/**
 * The session model: one upstream session — for a stdio upstream, one child process —
 * per downstream session, at most `maxSessions` of them, each closed after
 * `idleTimeoutMs` without traffic (but never while a request is in flight).
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterEach, describe, expect, it } from 'vitest';
import { validateConfig } from '#gateway/config/load.ts';
import { checkGateway, settingsOf } from '#gateway/gateway.ts';
import { WebSocketClientTransport } from '#transports/ws/index.ts';
import { closed, rawClient, refusal } from '../support/ws.ts';
import { closeAll, DEMO_SERVER, isAlive, startTestGateway, type TestGateway } from '../support/gateway.ts';

const upstream = { command: process.execPath, args: [DEMO_SERVER] };
let gw: TestGateway | undefined;
const clients: Client[] = [];
afterEach(() => closeAll(clients, gw).then(() => (gw = undefined)));

async function connect(url: string): Promise<Client> {
  const client = new Client({ name: 'sessions-test', version: '1.0.0' });
  clients.push(client);
  await client.connect(url.startsWith('ws') ? new WebSocketClientTransport(url, { reconnect: false }) : new StreamableHTTPClientTransport(new URL(url)));
  return client;
}

/**
 * The pid of the child process behind each open session. A session that has said nothing
 * yet has no upstream (and no child): whether one exists at a given moment depends on
 * timing, so it is skipped rather than assumed.
 */
function childPids(gateway: TestGateway): number[] {
  return [...gateway.gateway.sessions].flatMap((s) => {
    const pid = (s.upstream?.inner as { pid?: number | null } | undefined)?.pid;
    return typeof pid === 'number' ? [pid] : [];
  });
}


/** Resolves when the next session has closed (children included). */
const nextClose = (gateway: TestGateway) => new Promise<void>((resolve) => gateway.gateway.once('session-close', () => resolve()));

describe('one upstream session per downstream session', () => {
  it('each HTTP or WebSocket session gets its own child process; none is started before the session speaks', async () => {
    gw = await startTestGateway({ upstream });
    const a = await connect(gw.http);
    const b = await connect(gw.ws);
    const pids = childPids(gw);
    expect(pids).toHaveLength(2);
    expect(new Set(pids).size).toBe(2);
    // A session only exists upstream once it says something: a bare HTTP GET without a session starts nothing.
    const probe = await fetch(gw.http, { headers: { accept: 'text/event-stream' } });
    expect(probe.status).toBe(400);
    expect(childPids(gw)).toHaveLength(2);
    await a.callTool({ name: 'echo', arguments: { text: 'a' } });
    await b.callTool({ name: 'echo', arguments: { text: 'b' } });
    await gw.stop(0);
    gw = undefined;
    expect(pids.filter(isAlive)).toEqual([]);
  });
});

describe('ending a session', () => {
  it('an HTTP client that ends its session (DELETE) ends the upstream session: the child exits', async () => {
    gw = await startTestGateway({ upstream });
    const transport = new StreamableHTTPClientTransport(new URL(gw.http));
    const client = new Client({ name: 'sessions-test', version: '1.0.0' });
    clients.push(client);
    await client.connect(transport);
    const [pid] = childPids(gw);
    const closing = new Promise<string>((resolve) => gw?.gateway.once('session-close', (e) => resolve(e.reason)));
    await transport.terminateSession();
    expect(await closing).toBe('downstream-closed');
    expect(isAlive(pid as number)).toBe(false);
    expect(gw.gateway.sessions.size).toBe(0);
  });
});

describe('maxSessions', () => {
  it('refuses sessions beyond the limit, over HTTP (503) and WebSocket (503), until one ends', async () => {
    gw = await startTestGateway({ upstream, downstream: { maxSessions: 2 } });
    await connect(gw.http);
    const second = await connect(gw.ws);

    const refusedHttp = await fetch(gw.http, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'x', version: '1' } } }),
    });
    expect(refusedHttp.status).toBe(503);
    expect(refusedHttp.headers.get('retry-after')).toBe('5');
    expect(((await refusedHttp.json()) as { error: { message: string } }).error.message).toMatch(/limit of 2 sessions \(downstream\.maxSessions\)/);
    const refusedWs = await refusal(gw.ws);
    expect(refusedWs.status).toBe(503);
    expect(refusedWs.body).toMatch(/limit of 2 sessions/);
    const ready = await fetch(`${gw.base}/readyz`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toEqual({ status: 'max-sessions', sessions: 2, maxSessions: 2 });
    expect(await (await fetch(`${gw.base}/metrics`)).text()).toMatch(/mcp_layers_gateway_sessions_refused_total\{listener="http",reason="max-sessions"\} 1\n[^]*listener="websocket",reason="max-sessions"\} 1/);

    const closing = nextClose(gw);
    await second.close();
    await closing;
    const third = await connect(gw.http);
    expect(await third.callTool({ name: 'add', arguments: { a: 1, b: 2 } })).toEqual({ content: [{ type: 'text', text: '3' }] });
    expect((await fetch(`${gw.base}/readyz`)).status).toBe(503);
  });
});

describe('idleTimeoutMs', () => {
  it('closes a quiet session and its child; a WebSocket client is told with a normal close', async () => {
    gw = await startTestGateway({ upstream, downstream: { idleTimeoutMs: 300 } });
    const reasons: string[] = [];
    gw.gateway.on('session-close', (e) => reasons.push(e.reason));
    const ws = await rawClient(gw.ws);
    const wsClosed = closed(ws);
    const client = await connect(gw.http);
    await client.callTool({ name: 'echo', arguments: { text: 'hi' } });
    // The raw WebSocket never says anything: its session has no child, and closes too.
    const [pid] = childPids(gw);
    expect(await wsClosed).toEqual({ code: 1000, reason: 'session idle' });
    while (gw.gateway.sessions.size > 0) await nextClose(gw);
    expect(isAlive(pid as number)).toBe(false);
    expect(reasons).toEqual(['idle', 'idle']);
    // The HTTP client's session is gone: the gateway answers 404 and the client must initialize again.
    await expect(client.callTool({ name: 'echo', arguments: { text: 'again' } })).rejects.toThrow(/404|Session not found/);
  });

  it('never closes a session while a request is in flight, however long it takes', async () => {
    gw = await startTestGateway({ upstream, downstream: { idleTimeoutMs: 200 } });
    const client = await connect(gw.ws);
    // One step of 700 ms: no traffic at all for more than three idle timeouts, but busy.
    const result = await client.callTool({ name: 'slow_report', arguments: { steps: 1, stepMs: 700 } });
    expect(result).toEqual({ content: [{ type: 'text', text: 'report ready after 1 steps' }] });
    expect(gw.gateway.sessions.size).toBe(1);
  });
});

describe('downstream.bearerTokens', () => {
  it('admits only clients that present one of the tokens, over HTTP and WebSocket', async () => {
    gw = await startTestGateway({ upstream, downstream: { bearerTokens: ['t0ken-one', 't0ken-two'] } });
    const initialize = (authorization?: string) =>
      fetch(gw?.http as string, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...(authorization === undefined ? {} : { authorization }) },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'x', version: '1' } } }),
      });
    const missing = await initialize();
    expect(missing.status).toBe(401);
    expect(missing.headers.get('www-authenticate')).toBe('Bearer realm="mcp-layers gateway"');
    const wrong = await initialize('Bearer t0ken-three');
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get('www-authenticate')).toBe('Bearer realm="mcp-layers gateway", error="invalid_token"');
    expect(await wrong.text()).not.toContain('t0ken');
    expect((await refusal(gw.ws)).status).toBe(401);
    expect(childPids(gw)).toEqual([]);

    const overHttp = new Client({ name: 'sessions-test', version: '1.0.0' });
    clients.push(overHttp);
    await overHttp.connect(new StreamableHTTPClientTransport(new URL(gw.http), { requestInit: { headers: { authorization: 'Bearer t0ken-two' } } }));
    expect(await overHttp.callTool({ name: 'echo', arguments: { text: 'in' } })).toEqual({ content: [{ type: 'text', text: 'in' }] });
    const overWs = new Client({ name: 'sessions-test', version: '1.0.0' });
    clients.push(overWs);
    await overWs.connect(new WebSocketClientTransport(gw.ws, { reconnect: false, headers: { authorization: 'Bearer t0ken-one' } }));
    expect(await overWs.callTool({ name: 'echo', arguments: { text: 'in' } })).toEqual({ content: [{ type: 'text', text: 'in' }] });
  });
});

describe('observability.metrics.auth', () => {
  it('bearer: /metrics and /readyz ask for one of downstream.bearerTokens; /healthz stays open', async () => {
    gw = await startTestGateway({ upstream, downstream: { bearerTokens: ['t0ken-one'] }, observability: { metrics: { auth: 'bearer' } } });
    for (const path of ['/metrics', '/readyz']) {
      const refused = await fetch(`${gw.base}${path}`);
      expect(refused.status).toBe(401);
      expect(refused.headers.get('www-authenticate')).toBe('Bearer realm="mcp-layers gateway"');
      expect((await fetch(`${gw.base}${path}`, { headers: { authorization: 'Bearer wrong' } })).status).toBe(401);
      expect((await fetch(`${gw.base}${path}`, { headers: { authorization: 'Bearer t0ken-one' } })).status).toBe(200);
    }
    expect((await fetch(`${gw.base}/healthz`)).status).toBe(200);
  });

  it('defaults to bearer when tokens are set and the listener is not loopback, else none', () => {
    const tokens = { bearerTokens: ['t'] };
    expect(settingsOf({ upstream, downstream: { ...tokens, host: '0.0.0.0' } }).metricsAuth).toBe('bearer');
    expect(settingsOf({ upstream, downstream: { ...tokens, host: '::' } }).metricsAuth).toBe('bearer');
    expect(settingsOf({ upstream, downstream: { ...tokens, host: '127.0.0.1' } }).metricsAuth).toBe('none');
    expect(settingsOf({ upstream, downstream: { ...tokens, host: '[::1]' } }).metricsAuth).toBe('none');
    expect(settingsOf({ upstream, downstream: { host: '0.0.0.0' } }).metricsAuth).toBe('none');
    expect(settingsOf({ upstream, downstream: { ...tokens, host: '0.0.0.0' }, observability: { metrics: { auth: 'none' } } }).metricsAuth).toBe('none');
  });

  it('on loopback with tokens and no setting, /metrics stays open (a local Prometheus needs no token)', async () => {
    gw = await startTestGateway({ upstream, downstream: { bearerTokens: ['t0ken-one'] } });
    expect((await fetch(`${gw.base}/metrics`)).status).toBe(200);
  });

  it('bearer without downstream.bearerTokens is a config error', () => {
    const problems = checkGateway(validateConfig({ upstream, observability: { metrics: { auth: 'bearer' } } }, 'test config'));
    expect(problems).toEqual(['observability.metrics.auth: "bearer" needs downstream.bearerTokens or downstream.clients (the credentials /metrics and /readyz accept)']);
  });
});
