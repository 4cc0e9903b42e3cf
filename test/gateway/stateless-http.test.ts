/**
 * The 2026-07-28 era over the gateway's Streamable HTTP downstream (docs/gateway.md, "The
 * 2026-07-28 era over HTTP"): no session at all — every POST is one self-contained
 * exchange whose answer, and the progress of its request, come back on that POST's own
 * stream; `server/discover` instead of initialize; `Mcp-Method` / `Mcp-Name` checked
 * against the body; cancellation by closing the request.
 *
 * Over a broker upstream, two gateway replicas in front of two workers (the SDK v2 entry,
 * which serves each sessionless request with a server instance of its own), an SDK v2
 * client whose every request goes to the other replica: any replica serves any request,
 * and no replica holds anything between them. In front of a stdio upstream the era is
 * refused the way an SDK client falls back to initialize on.
 */
import { fileURLToPath } from 'node:url';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Transport } from '#core/transport.ts';
import { type BrokerServer, describeEachBroker, fixtureWorker, type FixtureWorker, uniqueService } from '../support/brokers.ts';
import { createV2Client, textOf } from '../support/clients.ts';
import { SLOW_STARTED_MESSAGE } from '../support/fixture.ts';
import { makeClientTransport } from '../support/http.ts';
import { Ledger } from '../support/ledger.ts';
import { startTestGateway, type TestGateway } from '../support/gateway.ts';
import { roundRobinFetch } from '../support/round-robin.ts';

const MODERN = '2026-07-28';

/** Resolves once the replica holds no 2026-07-28 exchange any more (each closes just after its answer is written). */
function exchangesOver(gw: TestGateway): Promise<void> {
  return new Promise((resolve) => {
    const check = () => {
      if (gw.gateway.exchanges.size > 0) return;
      gw.gateway.off('exchange-close', check);
      resolve();
    };
    gw.gateway.on('exchange-close', check);
    check();
  });
}

type Fetch = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

/** One HTTP exchange as the client saw it: what it sent, what came back. */
interface Seen {
  readonly method: string;
  readonly headers: Record<string, string>;
  readonly body: { method?: string; params?: Record<string, unknown> } | undefined;
  readonly status: number;
  readonly responseHeaders: Record<string, string>;
  /** The response body, read from a copy (undefined until it has ended). */
  text: string | undefined;
}

/** A fetch that records every exchange (request headers and body, response status, headers and body). */
function recording(fetch: Fetch): { fetch: Fetch; seen: Seen[] } {
  const seen: Seen[] = [];
  return {
    seen,
    fetch: async (input, init) => {
      const response = await fetch(input, init);
      const headers = Object.fromEntries(new Headers(init?.headers).entries());
      const entry: Seen = {
        method: init?.method ?? 'GET',
        headers,
        body: typeof init?.body === 'string' ? (JSON.parse(init.body) as Seen['body']) : undefined,
        status: response.status,
        responseHeaders: Object.fromEntries(response.headers.entries()),
        text: undefined,
      };
      seen.push(entry);
      void response
        .clone()
        .text()
        .then(
          (text) => void (entry.text = text),
          () => void (entry.text = ''),
        );
      return response;
    },
  };
}

/** A 2026-07-28 request as the SDK sends it: the envelope in `_meta`, its headers derived from it. */
function modernRequest(method: string, params: Record<string, unknown>, headers: Record<string, string> = {}, id: string | number = 1): RequestInit {
  return {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': MODERN, 'mcp-method': method, ...headers },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id,
      method,
      params: {
        ...params,
        _meta: {
          'io.modelcontextprotocol/protocolVersion': MODERN,
          'io.modelcontextprotocol/clientInfo': { name: 'raw', version: '1.0.0' },
          'io.modelcontextprotocol/clientCapabilities': {},
        },
      },
    }),
  };
}

describeEachBroker('test/gateway/stateless-http.test.ts', (b) => `2026-07-28 over HTTP: two gateway replicas in front of two workers on ${b.title}`, (kind) => {
  let broker: BrokerServer | undefined;
  const ledger = new Ledger();
  const workers: FixtureWorker[] = [];
  const gateways: TestGateway[] = [];
  let upstreamUrl = '';
  beforeAll(async () => {
    broker = await kind.start();
    const service = uniqueService('stateless-http');
    upstreamUrl = `${broker.url}/${service}`;
    for (let i = 0; i < 2; i++) workers.push(await fixtureWorker(kind, broker.url, service, 'v2-entry', { ledger }));
    for (let i = 0; i < 2; i++) gateways.push(await startTestGateway({ upstream: { url: upstreamUrl } }));
  });
  afterAll(async () => {
    await Promise.all(gateways.map((gw) => gw.stop(0)));
    await Promise.all(workers.map((w) => w.close()));
    await broker?.stop();
  });

  const clients: Array<{ close(): Promise<void> }> = [];
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close().catch(() => {})));
  });

  const origin = (gw: TestGateway) => new URL(gw.http).origin;

  it('server/discover, tools/list and tools/call, every request to the other replica, with no session at all; progress comes on its request\'s own stream', async () => {
    const balancer = roundRobinFetch(gateways.map(origin));
    const { fetch, seen } = recording(balancer.fetch);
    const c = createV2Client({ negotiation: 'auto' });
    clients.push(c);
    await c.connect(makeClientTransport('v2', gateways[0]!.http, fetch));
    expect(c.era()).toBe('modern');
    const { tools } = await c.listTools();
    expect(tools.map((t) => t.name)).toEqual(expect.arrayContaining(['echo', 'add', 'progress', 'slow']));
    expect(await c.callTool('add', { a: 2, b: 3 })).toMatchObject({ content: [{ type: 'text', text: '5' }] });
    const progress: number[] = [];
    const result = await c.callTool('progress', { steps: 3 }, { onprogress: (p) => void progress.push(p.progress) });
    expect(textOf(result)).toContain('3');
    expect(progress).toEqual([1, 2, 3]);
    // Multi-round-trip input: the second round is a request of its own, on either replica.
    expect(await c.callTool('ask', { question: 'continue?' })).toMatchObject({ content: [{ type: 'text', text: expect.stringContaining('yes to continue?') }] });

    // Every request was a POST of its own, alternating replicas, with the era's headers and no session anywhere.
    expect(seen.map((s) => s.method)).toEqual(seen.map(() => 'POST'));
    expect(seen[0]!.body?.method).toBe('server/discover');
    expect(balancer.sent.filter((s, i) => i > 0 && s.replica === balancer.sent[i - 1]!.replica)).toEqual([]);
    expect(new Set(balancer.sent.map((s) => s.replica))).toEqual(new Set([0, 1]));
    for (const s of seen) {
      expect(s.status).toBe(200);
      expect(s.headers['mcp-protocol-version']).toBe(MODERN);
      expect(s.headers['mcp-method']).toBe(s.body?.method);
      expect(s.headers['mcp-session-id']).toBeUndefined();
      expect(s.responseHeaders['mcp-session-id']).toBeUndefined();
    }
    expect(seen.find((s) => s.body?.params?.['name'] === 'add')?.headers['mcp-name']).toBe('add');
    // The progress went on the stream of the POST that carried its call, before the answer, which ended it.
    const progressPost = seen.find((s) => s.body?.params?.['name'] === 'progress')!;
    const events = (progressPost.text ?? '').split('\n\n').filter((e) => e.startsWith('event: message'));
    expect(events.map((e) => (JSON.parse(e.slice(e.indexOf('data: ') + 6)) as { method?: string }).method ?? 'answer')).toEqual([
      'notifications/progress',
      'notifications/progress',
      'notifications/progress',
      'answer',
    ]);
    // Nothing outlives a request: no replica holds a session or an exchange, no worker a session.
    await Promise.all(gateways.map(exchangesOver));
    for (const gw of gateways) {
      expect(gw.gateway.sessions.size).toBe(0);
      expect(gw.logs.filter((r) => r['level'] === 'error')).toEqual([]);
    }
    expect(workers.reduce((n, w) => n + w.worker.sessions, 0)).toBe(0);
  });

  it('a client that aborts its request cancels it upstream: the server\'s handler sees its abort, and the client gets no answer', async () => {
    const balancer = roundRobinFetch(gateways.map(origin));
    const c = createV2Client({ negotiation: 'auto' });
    clients.push(c);
    await c.connect(makeClientTransport('v2', gateways[0]!.http, balancer.fetch));
    expect(c.era()).toBe('modern');
    const abortsBefore = ledger.aborted.get('slow') ?? 0;
    const controller = new AbortController();
    const call = c.callTool('slow', {}, {
      signal: controller.signal,
      onprogress: (p) => {
        if (p.message === SLOW_STARTED_MESSAGE) controller.abort(new Error('the user gave up'));
      },
    });
    await expect(call).rejects.toThrow('the user gave up');
    await ledger.whenAborted('slow', abortsBefore + 1);
    expect(ledger.aborted.get('slow')).toBe(abortsBefore + 1);
    // The exchange is over on the replica that served it; the next request goes on as usual.
    expect(await c.callTool('echo', { text: 'after the abort' })).toMatchObject({ content: [{ type: 'text', text: 'after the abort' }] });
    await Promise.all(gateways.map(exchangesOver));
    for (const gw of gateways) expect(gw.gateway.exchanges.size).toBe(0);
  });

  it('headers that disagree with the body are a 400 naming the header and what the body says; GET and DELETE are 405', async () => {
    const url = gateways[0]!.http;
    const name = await fetch(url, modernRequest('tools/call', { name: 'echo', arguments: { text: 'x' } }, { 'mcp-name': 'add' }, 7));
    expect(name.status).toBe(400);
    const nameBody = (await name.json()) as { id: unknown; error: { code: number; message: string; data: unknown } };
    expect(nameBody.id).toBe(7);
    expect(nameBody.error.code).toBe(-32020);
    expect(nameBody.error.message).toContain('the Mcp-Name header says "add", but params.name is "echo"');
    expect(nameBody.error.data).toEqual({ mismatch: { header: 'Mcp-Name', sent: 'add', body: 'params.name is "echo"' } });

    const method = await fetch(url, modernRequest('tools/list', {}, { 'mcp-method': 'prompts/list' }));
    expect(method.status).toBe(400);
    expect(((await method.json()) as { error: { message: string } }).error.message).toContain('the Mcp-Method header says "prompts/list", but the method is tools/list');

    const missing = await fetch(url, modernRequest('tools/call', { name: 'echo', arguments: { text: 'x' } }));
    expect(missing.status).toBe(400);
    expect(((await missing.json()) as { error: { message: string } }).error.message).toContain('the required Mcp-Name header is absent, but params.name is "echo"');

    const version = await fetch(url, modernRequest('tools/list', {}, { 'mcp-protocol-version': '2025-11-25' }));
    expect(version.status).toBe(400);
    expect(((await version.json()) as { error: { code: number; message: string } }).error).toMatchObject({ code: -32020, message: expect.stringContaining('MCP-Protocol-Version header says "2025-11-25"') });

    // Base64 for a name that is not plain ASCII, as the SDK encodes it: accepted, and answered.
    const encoded = await fetch(url, modernRequest('tools/call', { name: 'echo', arguments: { text: 'ü' } }, { 'mcp-name': `=?base64?${Buffer.from('echo').toString('base64')}?=` }));
    expect(encoded.status).toBe(200);
    expect(await encoded.text()).toContain('"text":"ü"');

    // The header names the era, the body does not carry its envelope: the missing key is named.
    const bare = await fetch(url, { ...modernRequest('tools/list', {}), body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' }) });
    expect(bare.status).toBe(400);
    expect(((await bare.json()) as { error: { code: number; message: string } }).error).toMatchObject({ code: -32602, message: expect.stringContaining('io.modelcontextprotocol/protocolVersion') });
    // A batch cannot carry the era's requests.
    const batch = await fetch(url, { ...modernRequest('tools/list', {}), body: JSON.stringify([JSON.parse(modernRequest('tools/list', {}).body as string)]) });
    expect(batch.status).toBe(400);
    expect(((await batch.json()) as { error: { message: string } }).error.message).toContain('a JSON-RPC batch cannot carry 2026-07-28 requests');

    for (const verb of ['GET', 'DELETE']) {
      const res = await fetch(url, { method: verb, headers: { accept: 'text/event-stream', 'mcp-protocol-version': MODERN } });
      expect(res.status).toBe(405);
      expect(res.headers.get('allow')).toBe('POST');
      await res.body?.cancel();
    }
    // Nothing was opened for any of them.
    expect(gateways[0]!.gateway.sessions.size).toBe(0);
  });

  it('a replica shutting down answers the request it still holds with the shutdown error: one answer, and the server hears the cancellation', async () => {
    const leaving = await startTestGateway({ upstream: { url: upstreamUrl } });
    clients.push({ close: () => leaving.stop(0) });
    const c = createV2Client({ negotiation: 'auto' });
    clients.push(c);
    await c.connect(makeClientTransport('v2', leaving.http));
    const abortsBefore = ledger.aborted.get('slow') ?? 0;
    let started!: () => void;
    const running = new Promise<void>((resolve) => (started = resolve));
    const outcome = c.callTool('slow', {}, { onprogress: (p) => void (p.message === SLOW_STARTED_MESSAGE && started()) }).then(
      () => 'answered',
      (error: Error) => error.message,
    );
    await running;
    expect(leaving.gateway.exchanges.size).toBe(1);
    await leaving.stop(50);
    expect(await outcome).toContain('the gateway shut down before the upstream server answered');
    // This call's abort, not one an earlier test left in the shared ledger.
    await ledger.whenAborted('slow', abortsBefore + 1);
    expect(ledger.aborted.get('slow')).toBeGreaterThan(abortsBefore);
    expect(leaving.gateway.exchanges.size).toBe(0);
  });

  it('a raw request gets one answer on its own POST, under its own id', async () => {
    const res = await fetch(gateways[1]!.http, modernRequest('tools/call', { name: 'add', arguments: { a: 40, b: 2 } }, { 'mcp-name': 'add' }, 'mine'));
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    const text = await res.text();
    const answers = text.split('\n\n').filter((e) => e.startsWith('event: message'));
    expect(answers).toHaveLength(1);
    expect(JSON.parse(answers[0]!.slice(answers[0]!.indexOf('data: ') + 6))).toMatchObject({ id: 'mine', result: { content: [{ type: 'text', text: '42' }] } });
  });

  it('with downstream.jsonResponses the same answer is one application/json body', async () => {
    const gw = await startTestGateway({ upstream: { url: upstreamUrl }, downstream: { jsonResponses: true } });
    try {
      const res = await fetch(gw.http, modernRequest('tools/call', { name: 'add', arguments: { a: 40, b: 2 } }, { 'mcp-name': 'add' }, 'json'));
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('application/json');
      expect(await res.json()).toMatchObject({ jsonrpc: '2.0', id: 'json', result: { content: [{ type: 'text', text: '42' }] } });
      await exchangesOver(gw);
    } finally {
      await gw.stop(0);
    }
  });
});

describe('2026-07-28 over HTTP in front of a stdio upstream', () => {
  // The fixture behind the SDK v2 stdio entry, which serves both eras (2025 and 2026-07-28).
  const bothEras = { command: process.execPath, args: [fileURLToPath(new URL('../support/stdio-server.ts', import.meta.url)), '--sdk', 'v2'] };
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startTestGateway({ upstream: bothEras });
  });
  afterAll(async () => {
    await gw.stop(0);
  });

  it('is refused with the 400 an SDK client falls back to initialize on, naming why; the client then works in a 2025 session', async () => {
    const res = await fetch(gw.http, modernRequest('server/discover', {}, {}, 3));
    expect(res.status).toBe(400);
    const body = (await res.json()) as { id: unknown; error: { code: number; message: string; data: unknown } };
    expect(body.id).toBe(3);
    expect(body.error.code).toBe(-32022);
    expect(body.error.message).toContain('only in front of a broker');
    expect(body.error.data).toEqual({ supported: expect.arrayContaining(['2025-11-25']), requested: MODERN });
    // No child was started for it.
    expect(gw.gateway.sessions.size).toBe(0);

    const c = createV2Client({ negotiation: 'auto' });
    try {
      await c.connect(new StreamableHTTPClientTransport(new URL(gw.http)) as unknown as Transport);
      expect(c.era()).toBe('legacy');
      expect(await c.callTool('add', { a: 2, b: 3 })).toMatchObject({ content: [{ type: 'text', text: '5' }] });
    } finally {
      await c.close();
    }
  });
});
