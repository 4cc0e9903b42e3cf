/**
 * `downstream.clients` end to end (docs/gateway.md, "Clients and policies"): the real
 * gateway in front of the fixture over stdio, SDK v1 clients over Streamable HTTP and
 * SDK v2 clients over WebSocket, told apart by bearer token or by `x-api-key`; each
 * client's rate limit (shared by its sessions on both listeners), in-flight limit and
 * tool allow-list; what happens to unknown clients; the client's name on logs, metrics
 * and spans, and its token nowhere.
 *
 * The rate limit runs on performance.now(), which these tests fake (nothing else is:
 * sockets and children run in real time), so the bucket refills only when a test says.
 */
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { validateConfig } from '#gateway/config/load.ts';
import type { GatewayConfig } from '#gateway/config/gateway.ts';
import { WebSocketClientTransport } from '#transports/ws/index.ts';
import { createClient, type TestClient, textOf } from '../support/clients.ts';
import { nextEvent, within } from '../support/events.ts';
import { closeAll, fixtureUpstream, startTestGateway, type TestGateway } from '../support/gateway.ts';
import type { LedgerSnapshot } from '../support/ledger.ts';
import { startOtel, type OtelHarness } from '../support/otel.ts';
import { parseExposition, value } from '../support/prom-text.ts';
import { INITIALIZE, refusal } from '../support/ws.ts';

const SECRETS = { alice: 'alice-s3cret-bearer-0001', bob: 'bob-s3cret-bearer-0002', ci: 'ci-s3cret-api-key-0003', anonymous: 'anon-s3cret-bearer-0004' };

const CLIENTS: NonNullable<GatewayConfig['downstream']> = {
  clients: [
    { name: 'alice', token: SECRETS.alice, rateLimit: { rate: 1, burst: 4 } },
    { name: 'bob', token: SECRETS.bob, maxInFlight: 1 },
    { name: 'ci', value: SECRETS.ci, tools: ['echo', 'ledger'] },
  ],
  clientHeader: 'x-api-key',
};

let otel: OtelHarness;
beforeAll(() => void (otel = startOtel()));
afterAll(() => otel.shutdown());

let gw: TestGateway | undefined;
const clients: TestClient[] = [];
afterEach(async () => {
  vi.useRealTimers();
  await closeAll(clients, gw);
  gw = undefined;
});

async function start(downstream: NonNullable<GatewayConfig['downstream']> = CLIENTS): Promise<TestGateway> {
  gw = await startTestGateway({ upstream: fixtureUpstream(), downstream }, 'debug');
  return gw;
}

/** SDK v1 over Streamable HTTP, presenting `headers`. */
async function overHttp(gateway: TestGateway, headers: Record<string, string>): Promise<{ client: TestClient; transport: StreamableHTTPClientTransport }> {
  const client = createClient('v1');
  clients.push(client);
  const transport = new StreamableHTTPClientTransport(new URL(gateway.http), { requestInit: { headers } });
  await client.connect(transport as never);
  return { client, transport };
}

/** SDK v2 over WebSocket, presenting `headers` on the upgrade. */
async function overWs(gateway: TestGateway, headers: Record<string, string>): Promise<TestClient> {
  const client = createClient('v2');
  clients.push(client);
  await client.connect(new WebSocketClientTransport(gateway.ws, { reconnect: false, headers }));
  return client;
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

/** The JSON-RPC error an SDK call rejected with (v1 McpError, v2 ProtocolError: both carry code and data). */
async function refusedWith(call: Promise<unknown>): Promise<{ code: number; message: string; data: Record<string, unknown> }> {
  const error = (await call.then(
    () => {
      throw new Error('the call was admitted');
    },
    (e: unknown) => e,
  )) as { code: number; message: string; data: Record<string, unknown> };
  return error;
}

async function ledgerOf(client: TestClient): Promise<LedgerSnapshot> {
  return JSON.parse(textOf(await client.callTool('ledger', {}))) as LedgerSnapshot;
}

async function scrape(gateway: TestGateway) {
  return parseExposition(await (await fetch(`${gateway.base}/metrics`)).text());
}

function post(gateway: TestGateway, body: unknown, headers: Record<string, string>): Promise<Response> {
  return fetch(gateway.http, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-11-25', ...headers },
    body: JSON.stringify(body),
  });
}

describe('rate limit: one token bucket per client, across its sessions and both listeners', () => {
  it('admits the burst, then refuses with 429 + Retry-After over HTTP and -32057 with retryAfterMs over WebSocket; nothing refused reaches the upstream', async () => {
    vi.useFakeTimers({ toFake: ['performance'] });
    const gateway = await start();
    // Burst 4: the two initializes, and one echo from each session.
    const ws = await overWs(gateway, bearer(SECRETS.alice));
    const { client: http, transport } = await overHttp(gateway, bearer(SECRETS.alice));
    expect(textOf(await http.callTool('echo', { text: 'one' }))).toBe('one');
    expect(textOf(await ws.callTool('echo', { text: 'two' }))).toBe('two');

    await expect(http.callTool('echo', { text: 'over' })).rejects.toThrow(/-32057.*client alice is over its limit/);
    const raw = await post(gateway, { jsonrpc: '2.0', id: 77, method: 'tools/call', params: { name: 'echo', arguments: { text: 'over' } } }, { ...bearer(SECRETS.alice), 'mcp-session-id': transport.sessionId as string });
    expect(raw.status).toBe(429);
    expect(raw.headers.get('retry-after')).toBe('1');
    const body = (await raw.json()) as { id: unknown; error: { code: number; message: string; data: Record<string, unknown> } };
    expect(body.id).toBe(77);
    expect(body.error).toMatchObject({ code: -32057, data: { layer: 'gateway', reason: 'client-rate-limit', retryAfterMs: 1000, client: 'alice' } });
    expect(body.error.message).toContain('client alice is over its limit of 1 requests/s (burst 4, downstream.clients[0].rateLimit)');

    const overWsError = await refusedWith(ws.callTool('echo', { text: 'over' }));
    expect(overWsError.code).toBe(-32057);
    expect(overWsError.data).toMatchObject({ reason: 'client-rate-limit', retryAfterMs: 1000, client: 'alice' });

    // One ms short of the time the gateway gave, still refused; at it, admitted.
    vi.advanceTimersByTime(999);
    expect((await refusedWith(ws.callTool('echo', { text: 'early' }))).data['retryAfterMs']).toBe(1);
    vi.advanceTimersByTime(1);
    expect(textOf(await ws.callTool('echo', { text: 'due' }))).toBe('due');

    vi.advanceTimersByTime(2_000);
    // Each session has its own child: what each upstream ran is exactly what was admitted.
    expect((await ledgerOf(http)).runs['echo']).toBe(1);
    expect((await ledgerOf(ws)).runs['echo']).toBe(2);
    const samples = await scrape(gateway);
    expect(value(samples, 'mcp_layers_gateway_client_requests_total', { client: 'alice', outcome: 'rate-limited' })).toBe(4);
    expect(value(samples, 'mcp_layers_gateway_client_requests_total', { client: 'alice', outcome: 'admitted' })).toBe(7);
  });

  it('a POST carrying only notifications and answers is never refused: a client can always answer the server', async () => {
    vi.useFakeTimers({ toFake: ['performance'] });
    const gateway = await start({ ...CLIENTS, clients: [{ name: 'alice', token: SECRETS.alice, rateLimit: { rate: 1, burst: 1 } }], clientHeader: undefined });
    const init = await post(gateway, INITIALIZE, bearer(SECRETS.alice));
    expect(init.status).toBe(200);
    const sessionId = init.headers.get('mcp-session-id') as string;
    await init.text();
    const headers = { ...bearer(SECRETS.alice), 'mcp-session-id': sessionId };
    expect((await post(gateway, { jsonrpc: '2.0', method: 'notifications/initialized' }, headers)).status).toBe(202);
    expect((await post(gateway, { jsonrpc: '2.0', id: 5, result: {} }, headers)).status).toBe(202);
    expect((await post(gateway, { jsonrpc: '2.0', id: 2, method: 'ping' }, headers)).status).toBe(429);
  });
});

describe('in-flight limit: requests of one client across its sessions', () => {
  it('refuses the extra request at once with -32051 while a slow call is held, on any of its sessions; admits again once it ends', async () => {
    const gateway = await start();
    const { client: http } = await overHttp(gateway, bearer(SECRETS.bob));
    const ws = await overWs(gateway, bearer(SECRETS.bob));
    const stop = new AbortController();
    const started = new Promise<void>((resolve) => {
      void http.callTool('slow', {}, { signal: stop.signal, onprogress: () => resolve() }).catch(() => {});
    });
    await within(started, 'the slow call runs upstream');

    for (const client of [http, ws]) {
      const shed = await within(refusedWith(client.callTool('echo', { text: 'extra' })), 'the extra call is refused at once');
      expect(shed.code).toBe(-32051);
      expect(shed.data).toMatchObject({ layer: 'gateway', reason: 'client-concurrency-limit', client: 'bob', inFlight: 1, maxInFlight: 1 });
      expect(shed.message).toContain('downstream.clients[1].maxInFlight');
    }
    expect(value(await scrape(gateway), 'mcp_layers_gateway_client_in_flight', { client: 'bob' })).toBe(1);

    // The cancellation goes upstream only once the session has given the slot back.
    const cancelled = nextEvent(gateway.gateway.upstreamEvents, 'cancelled');
    stop.abort('enough');
    await within(cancelled, 'the slow call is cancelled upstream');
    expect(textOf(await ws.callTool('echo', { text: 'now' }))).toBe('now');
    expect((await ledgerOf(ws)).runs['echo']).toBe(1);
    const samples = await scrape(gateway);
    expect(value(samples, 'mcp_layers_gateway_client_in_flight', { client: 'bob' })).toBe(0);
    expect(value(samples, 'mcp_layers_gateway_client_requests_total', { client: 'bob', outcome: 'concurrency-limited' })).toBe(2);
  });
});

describe('tool allow-list', () => {
  it('hides the tools a client may not use from tools/list, and refuses a call to one with -32058 naming the tool and the policy', async () => {
    const gateway = await start();
    const { client } = await overHttp(gateway, { 'x-api-key': SECRETS.ci });
    expect((await client.listTools()).tools.map((t) => t.name).toSorted()).toEqual(['echo', 'ledger']);
    const denied = await refusedWith(client.callTool('add', { a: 1, b: 2 }));
    expect(denied.code).toBe(-32058);
    expect(denied.message).toContain('client ci may not call tool "add" (downstream.clients[2].tools)');
    expect(denied.data).toMatchObject({ layer: 'gateway', reason: 'tool-not-allowed', client: 'ci', tool: 'add' });
    expect((await ledgerOf(client)).runs['add']).toBeUndefined();
    // Other clients see every tool.
    const other = await overWs(gateway, bearer(SECRETS.bob));
    expect((await other.listTools()).tools.map((t) => t.name)).toContain('add');
    expect(value(await scrape(gateway), 'mcp_layers_gateway_client_requests_total', { client: 'ci', outcome: 'denied' })).toBe(1);
  });

  it("the upstream allow-list: a client whose upstreams exclude `default` connects (initialize and ping are its session's own), and every request for the upstream is refused", async () => {
    const gateway = await start({ clients: [{ name: 'elsewhere', token: SECRETS.alice, upstreams: ['search-*'] }] });
    const client = await overWs(gateway, bearer(SECRETS.alice));
    const denied = await refusedWith(client.listTools());
    expect(denied).toMatchObject({ code: -32058, data: { reason: 'upstream-not-allowed', upstream: 'default', client: 'elsewhere' } });
    expect(denied.message).toContain('(downstream.clients[0].upstreams)');
    expect(await client.ping()).toEqual({});
  });
});

describe('sessions belong to their client', () => {
  it("a request for another client's HTTP session is answered 404, as for a session that does not exist", async () => {
    const gateway = await start();
    const { transport } = await overHttp(gateway, bearer(SECRETS.alice));
    const stolen = await post(gateway, { jsonrpc: '2.0', id: 9, method: 'tools/list' }, { ...bearer(SECRETS.bob), 'mcp-session-id': transport.sessionId as string });
    expect(stolen.status).toBe(404);
    expect(((await stolen.json()) as { error: { code: number } }).error.code).toBe(-32001);
  });
});

describe('unknown clients', () => {
  it('are refused with 401 by default (no credential, or one no client has), over HTTP and WebSocket; nothing is started', async () => {
    const gateway = await start();
    const missing = await post(gateway, INITIALIZE, {});
    expect(missing.status).toBe(401);
    expect(missing.headers.get('www-authenticate')).toBe('Bearer realm="mcp-layers gateway"');
    expect(await missing.text()).toContain('send Authorization: Bearer <token> or x-api-key: <value>');
    const wrong = await post(gateway, INITIALIZE, bearer('not-a-known-token'));
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get('www-authenticate')).toBe('Bearer realm="mcp-layers gateway", error="invalid_token"');
    expect((await post(gateway, INITIALIZE, { 'x-api-key': 'nope' })).status).toBe(401);
    expect((await refusal(gateway.ws)).status).toBe(401);
    expect((await refusal(gateway.ws, { headers: bearer('not-a-known-token') })).status).toBe(401);
    expect(gateway.gateway.sessions.size).toBe(0);
  });

  it('with unknownClients as a policy, are admitted under the shared label `unknown` with it; bearerTokens holders are `unknown` too', async () => {
    const gateway = await start({ ...CLIENTS, unknownClients: { tools: ['echo'] }, bearerTokens: [SECRETS.anonymous] });
    // bearerTokens still ask for a credential: one of them, or a client's.
    expect((await post(gateway, INITIALIZE, {})).status).toBe(401);
    const guest = await overWs(gateway, bearer(SECRETS.anonymous));
    expect((await guest.listTools()).tools.map((t) => t.name)).toEqual(['echo']);
    expect((await refusedWith(guest.callTool('add', { a: 1, b: 1 }))).message).toContain('client unknown may not call tool "add" (downstream.unknownClients.tools)');
    const samples = await scrape(gateway);
    expect(value(samples, 'mcp_layers_gateway_client_requests_total', { client: 'unknown', outcome: 'denied' })).toBe(1);
    expect(value(samples, 'mcp_layers_gateway_client_requests_total', { client: 'unknown', outcome: 'admitted' })).toBe(2);
  });

  it('without downstream.clients, everyone is `unknown` with no limits, as before clients existed', async () => {
    const gateway = await start({});
    const { client } = await overHttp(gateway, bearer('whatever-the-client-sends'));
    expect(textOf(await client.callTool('echo', { text: 'in' }))).toBe('in');
    expect(value(await scrape(gateway), 'mcp_layers_gateway_client_requests_total', { client: 'unknown', outcome: 'admitted' })).toBe(2);
  });
});

describe("the client's name on logs, metrics and spans; its token nowhere", () => {
  it('labels the session log records and the downstream spans; no secret in any log record (debug), metric or refusal', async () => {
    otel.reset();
    const gateway = await start({ ...CLIENTS, bearerTokens: [SECRETS.anonymous] });
    const { client } = await overHttp(gateway, { 'x-api-key': SECRETS.ci });
    await client.callTool('echo', { text: 'labelled' });
    const ws = await overWs(gateway, bearer(SECRETS.alice));
    await ws.ping();
    const wrong = await post(gateway, INITIALIZE, bearer(`${SECRETS.alice}x`));
    // The session's own records (its logger) carry the name too, not only the gateway's session-open.
    await within(gateway.waitForLog((r) => r['event'] === 'upstream-start' && r['client'] === 'ci'), "the ci session's upstream start is logged");

    expect(gateway.logs.filter((r) => r['event'] === 'session-open').map((r) => r['client'])).toEqual(['ci', 'alice']);
    const span = otel.spans().find((s) => s.attributes['mcp.method.name'] === 'tools/call' && s.attributes['mcp_layers.client.name'] !== undefined);
    expect(span?.attributes['mcp_layers.client.name']).toBe('ci');
    expect(otel.spans().some((s) => s.attributes['mcp.method.name'] === 'ping' && s.attributes['mcp_layers.client.name'] === 'alice')).toBe(true);

    const everything = [JSON.stringify(gateway.logs), await (await fetch(`${gateway.base}/metrics`)).text(), await wrong.text()].join('\n');
    expect(gateway.logs.length).toBeGreaterThan(5);
    for (const secret of Object.values(SECRETS)) expect(everything).not.toContain(secret);
  });
});

describe('config', () => {
  const problems = (downstream: unknown): string[] => {
    try {
      validateConfig({ upstream: fixtureUpstream(), downstream }, 'test config');
      return [];
    } catch (error) {
      return [...(error as { problems: string[] }).problems];
    }
  };

  it('names the field and what was expected, and never shows a token', () => {
    const found = problems({
      clients: [
        { name: 'bad name!', token: 12345 },
        { name: 'limits', token: SECRETS.anonymous, rateLimit: { rate: 0, burst: 0 }, maxInFlight: 0 },
      ],
      unknownClients: 'admit',
    });
    expect(found).toEqual([
      'downstream.clients[0].name: expected a client name: letters, digits, "_", "." or "-", at most 64, starting with a letter or digit, got "bad name!"',
      'downstream.clients[0].token: expected a bearer token (a non-empty string; not shown: it is a secret)',
      'downstream.clients[1].rateLimit.rate: expected a number > 0, got 0',
      'downstream.clients[1].rateLimit.burst: expected an integer >= 1, got 0',
      'downstream.clients[1].maxInFlight: expected an integer >= 1, got 0',
      'downstream.unknownClients: expected "refuse" or a policy ({ rateLimit, maxInFlight, upstreams, tools }), got "admit"',
    ]);
    for (const secret of [...Object.values(SECRETS), '12345']) expect(found.join('\n')).not.toContain(secret);
  });

  it('across clients: names unique, each token and value naming one client, one way to recognize each', () => {
    const found = problems({
      clients: [
        { name: 'alice', token: SECRETS.alice },
        { name: 'alice', token: SECRETS.alice },
        { name: 'unknown', value: SECRETS.ci },
        { name: 'both', token: SECRETS.bob, value: SECRETS.bob },
        { name: 'neither' },
        { name: 'shared', token: SECRETS.anonymous },
      ],
      bearerTokens: [SECRETS.anonymous],
    });
    expect(found).toEqual([
      'downstream.clients[1].name: "alice" is already the name of downstream.clients[0]; each client needs its own (it labels metrics)',
      'downstream.clients[1].token: the same token as downstream.clients[0].token: each token must name one client',
      'downstream.clients[2].name: "unknown" is the label of requests from no listed client (downstream.unknownClients); pick another name',
      'downstream.clients[2].value: needs downstream.clientHeader (the header the value is sent in, e.g. x-api-key)',
      'downstream.clients[3]: expected exactly one of token (Authorization: Bearer) or value (the downstream.clientHeader header), got both',
      'downstream.clients[3].value: needs downstream.clientHeader (the header the value is sent in, e.g. x-api-key)',
      'downstream.clients[4]: expected exactly one of token (Authorization: Bearer) or value (the downstream.clientHeader header), got neither',
      'downstream.clients[5].token: the same token as downstream.bearerTokens[0]: each token must name one client',
    ]);
    for (const secret of Object.values(SECRETS)) expect(found.join('\n')).not.toContain(secret);
  });

  it('a clientHeader with no client to read it for, or the authorization header, is refused', () => {
    expect(problems({ clients: [{ name: 'a', token: 't' }], clientHeader: 'x-api-key' })).toEqual(['downstream.clientHeader: applies only when a client in downstream.clients has a value']);
    expect(problems({ clients: [{ name: 'a', value: 'v' }], clientHeader: 'Authorization' })[0]).toMatch(/^downstream\.clientHeader: expected a header other than authorization/);
  });
});
