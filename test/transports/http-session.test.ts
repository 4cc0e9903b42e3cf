/**
 * The gateway's Streamable HTTP session transport (src/transports/http/session.ts) served
 * by McpHttpServer: how each response is written — one body when the answer is the whole
 * stream, an event stream when something comes before it, compression only where it pays
 * and was negotiated — and the SDK transport's checks it keeps.
 */
import http from 'node:http';
import zlib from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import type { JSONRPCMessage, JSONRPCRequest } from '#core/jsonrpc.ts';
import { McpHttpServer } from '#transports/http/server.ts';
import { type StreamableHttpSessionOptions, StreamableHttpSessionTransport } from '#transports/http/session.ts';

const INITIALIZE = { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '0' } } };
const ACCEPT = 'application/json, text/event-stream';

interface Raw {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

const servers: McpHttpServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

/** A session whose "application" answers each request by `answer`; `keepAliveMs` shortened where a test needs it. */
async function serve(
  answer: (transport: StreamableHttpSessionTransport, request: JSONRPCRequest) => void,
  options: Omit<StreamableHttpSessionOptions, 'sessionIdGenerator'> = {},
): Promise<{ url: string; sessions: StreamableHttpSessionTransport[] }> {
  const sessions: StreamableHttpSessionTransport[] = [];
  const server = new McpHttpServer({
    sessions: async () => {
      const transport = new StreamableHttpSessionTransport({ sessionIdGenerator: () => `session-${sessions.length}`, ...options });
      transport.onmessage = (message: JSONRPCMessage) => {
        if ('method' in message && 'id' in message) answer(transport, message as JSONRPCRequest);
      };
      await transport.start();
      sessions.push(transport);
      return transport;
    },
  });
  servers.push(server);
  await server.listen();
  return { url: server.url, sessions };
}

const result = (transport: StreamableHttpSessionTransport, request: JSONRPCRequest, value: Record<string, unknown>) =>
  void transport.send({ jsonrpc: '2.0', id: request.id, result: value }).catch(() => {});

function request(url: string, method: string, headers: Record<string, string>, body?: unknown, onFirstData?: (chunk: Buffer) => void): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => {
        if (chunks.length === 0) onFirstData?.(chunk);
        chunks.push(chunk);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

const post = (url: string, body: unknown, headers: Record<string, string> = {}) => request(url, 'POST', { 'content-type': 'application/json', accept: ACCEPT, ...headers }, body);

async function initialized(url: string): Promise<Record<string, string>> {
  const answer = await post(url, INITIALIZE);
  expect(answer.status).toBe(200);
  return { 'mcp-session-id': answer.headers['mcp-session-id'] as string, 'mcp-protocol-version': '2025-11-25' };
}

const answers = (transport: StreamableHttpSessionTransport, request: JSONRPCRequest) => result(transport, request, request.method === 'initialize' ? { protocolVersion: '2025-11-25', capabilities: {}, serverInfo: { name: 's', version: '1' } } : { echo: request.params });

describe('how a POST is answered', () => {
  it('an answer that is the whole stream: one text/event-stream body with a Content-Length and the session id', async () => {
    const { url } = await serve(answers);
    const answer = await post(url, INITIALIZE);
    expect(answer.status).toBe(200);
    expect(answer.headers['content-type']).toBe('text/event-stream');
    expect(answer.headers['mcp-session-id']).toBe('session-1');
    expect(answer.headers['transfer-encoding']).toBeUndefined();
    expect(Number(answer.headers['content-length'])).toBe(answer.body.length);
    expect(answer.body.toString()).toMatch(/^event: message\ndata: \{"jsonrpc":"2\.0","id":0,"result":\{"protocolVersion":"2025-11-25"/);
  });

  it('a message before the answer starts an event stream that carries both, in order', async () => {
    const { url } = await serve((transport, req) => {
      if (req.method !== 'tools/call') return answers(transport, req);
      void transport.send({ jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 1, progress: 1 } }, { relatedRequestId: req.id });
      setImmediate(() => result(transport, req, { done: true }));
    });
    const session = await initialized(url);
    const answer = await post(url, { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'x' } }, session);
    expect(answer.headers['content-type']).toBe('text/event-stream');
    expect(answer.headers['transfer-encoding']).toBe('chunked');
    const events = answer.body.toString().split('\n\n').filter((e) => e !== '');
    expect(events.map((e) => JSON.parse(e.replace(/^event: message\ndata: /, '')) as Record<string, unknown>)).toEqual([
      { jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 1, progress: 1 } },
      { jsonrpc: '2.0', id: 1, result: { done: true } },
    ]);
  });

  it('a batch of requests is answered once every one of them is', async () => {
    const { url } = await serve((transport, req) => (req.id === 2 ? setImmediate(() => answers(transport, req)) : answers(transport, req)));
    const session = await initialized(url);
    const answer = await post(url, [{ jsonrpc: '2.0', id: 1, method: 'ping' }, { jsonrpc: '2.0', id: 2, method: 'ping' }], session);
    const ids = answer.body.toString().split('\n\n').filter((e) => e !== '').map((e) => (JSON.parse(e.replace(/^event: message\ndata: /, '')) as { id: number }).id);
    expect(ids).toEqual([1, 2]);
  });

  it('compresses a whole answer from minBytes on, in a coding the client accepts; a small one goes as it is', async () => {
    const { url } = await serve(answers);
    const session = await initialized(url);
    const big = await post(url, { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { text: 'x'.repeat(4000) } }, { ...session, 'accept-encoding': 'gzip' });
    expect(big.headers['content-encoding']).toBe('gzip');
    expect(big.headers['vary']).toBe('accept-encoding');
    expect(zlib.gunzipSync(big.body).toString()).toContain('x'.repeat(4000));
    const small = await post(url, { jsonrpc: '2.0', id: 2, method: 'ping' }, { ...session, 'accept-encoding': 'gzip' });
    expect(small.headers['content-encoding']).toBeUndefined();
    expect(small.body.toString()).toMatch(/"id":2/);
  });

  it('a POST still waiting for its first message gets its headers and a keep-alive comment', async () => {
    const { url, sessions } = await serve((transport, req) => (req.method === 'initialize' ? answers(transport, req) : undefined), { keepAliveMs: 40 });
    const session = await initialized(url);
    let first = '';
    const waiting = request(url, 'POST', { 'content-type': 'application/json', accept: ACCEPT, ...session }, { jsonrpc: '2.0', id: 1, method: 'tools/call' }, (chunk) => {
      first = chunk.toString();
      result(sessions[0] as StreamableHttpSessionTransport, { jsonrpc: '2.0', id: 1, method: 'tools/call' }, { late: true });
    });
    const answer = await waiting;
    expect(answer.headers['content-type']).toBe('text/event-stream');
    expect(first).toBe(': keepalive\n\n');
    expect(answer.body.toString()).toMatch(/^: keepalive\n\n(: keepalive\n\n)*event: message\ndata: \{"jsonrpc":"2\.0","id":1,"result":\{"late":true\}\}\n\n$/);
  });

  it('a POST of notifications only gets 202 with no body', async () => {
    const { url } = await serve(answers);
    const session = await initialized(url);
    const accepted = await post(url, { jsonrpc: '2.0', method: 'notifications/initialized' }, session);
    expect(accepted.status).toBe(202);
    expect(accepted.body.length).toBe(0);
  });
});

describe('with jsonResponses', () => {
  const progressFirst = (transport: StreamableHttpSessionTransport, req: JSONRPCRequest) => {
    if (req.method !== 'tools/call') return answers(transport, req);
    void transport.send({ jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 1, progress: 1 } }, { relatedRequestId: req.id });
    setImmediate(() => result(transport, req, { done: true }));
  };

  it('a lone request whose answer is all there is gets it as one application/json body, with a Content-Length and the session id', async () => {
    const { url } = await serve(answers, { jsonResponses: true });
    const answer = await post(url, INITIALIZE);
    expect(answer.status).toBe(200);
    expect(answer.headers['content-type']).toBe('application/json');
    expect(answer.headers['mcp-session-id']).toBe('session-1');
    expect(Number(answer.headers['content-length'])).toBe(answer.body.length);
    expect(JSON.parse(answer.body.toString())).toMatchObject({ jsonrpc: '2.0', id: 0, result: { protocolVersion: '2025-11-25' } });
    const session = { 'mcp-session-id': 'session-1', 'mcp-protocol-version': '2025-11-25' };
    const call = await post(url, { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'x' } }, session);
    expect(call.headers['content-type']).toBe('application/json');
    expect(JSON.parse(call.body.toString())).toEqual({ jsonrpc: '2.0', id: 1, result: { echo: { name: 'x' } } });
  });

  it('a message before the answer still makes an event stream, and a batch stays one', async () => {
    const { url } = await serve(progressFirst, { jsonResponses: true });
    const session = await initialized(url);
    const streamed = await post(url, { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'x' } }, session);
    expect(streamed.headers['content-type']).toBe('text/event-stream');
    expect(streamed.body.toString().split('\n\n').filter((e) => e !== '')).toHaveLength(2);
    const batch = await post(url, [{ jsonrpc: '2.0', id: 2, method: 'ping' }], session);
    expect(batch.headers['content-type']).toBe('text/event-stream');
    expect(batch.body.toString()).toMatch(/^event: message\ndata: \{"jsonrpc":"2\.0","id":2,/);
  });
});

describe("the SDK transport's checks", () => {
  it('refuses what the SDK refuses, with its answers', async () => {
    const { url, sessions } = await serve(answers);
    const session = await initialized(url);
    const refused = async (answer: Promise<Raw>) => {
      const { status, body } = await answer;
      return [status, (JSON.parse(body.toString()) as { error: { message: string } }).error.message];
    };
    expect(await refused(post(url, { jsonrpc: '2.0', id: 1, method: 'ping' }, { ...session, accept: 'application/json' }))).toEqual([406, 'Not Acceptable: Client must accept both application/json and text/event-stream']);
    expect(await refused(post(url, { jsonrpc: '2.0', id: 1, method: 'ping' }, { ...session, 'content-type': 'text/plain' }))).toEqual([415, 'Unsupported Media Type: Content-Type must be application/json']);
    expect(await refused(post(url, { jsonrpc: '2.0', id: 1, method: 'ping' }, { ...session, 'mcp-protocol-version': '1999-01-01' }))).toEqual([400, expect.stringMatching(/^Bad Request: Unsupported protocol version: 1999-01-01/)]);
    expect(await refused(post(url, { ...INITIALIZE, id: 9 }, session))).toEqual([400, 'Invalid Request: Server already initialized']);
    expect(await refused(post(url, Array.from({ length: 101 }, (_, i) => ({ jsonrpc: '2.0', id: i, method: 'ping' })), session))).toEqual([400, 'Invalid Request: Batch must not exceed 100 messages']);
    expect(await refused(request(url, 'GET', { accept: 'application/json', ...session }))).toEqual([406, 'Not Acceptable: Client must accept text/event-stream']);
    expect(await refused(request(url, 'PUT', { ...session }))).toEqual([405, 'Method not allowed.']);
    // A bare request without a session opens one that was never initialized.
    expect(await refused(post(url, { jsonrpc: '2.0', id: 1, method: 'ping' }))).toEqual([400, 'Bad Request: Server not initialized']);

    // One standalone stream per session.
    const opened = new Promise<http.IncomingMessage>((resolve) => http.get(url, { headers: { accept: 'text/event-stream', ...session } }, resolve));
    const stream = await opened;
    expect(stream.statusCode).toBe(200);
    expect(stream.headers['content-type']).toBe('text/event-stream');
    expect(await refused(request(url, 'GET', { accept: 'text/event-stream', ...session }))).toEqual([409, 'Conflict: Only one SSE stream is allowed per session']);

    // DELETE ends the session: its streams end, and the id is unknown from then on.
    const ended = new Promise<void>((resolve) => stream.once('end', () => resolve())).then(() => 'ended');
    stream.resume();
    const closed = new Promise<void>((resolve) => ((sessions[0] as StreamableHttpSessionTransport).onclose = resolve));
    expect((await request(url, 'DELETE', session)).status).toBe(200);
    await closed;
    expect(await ended).toBe('ended');
    expect((await post(url, { jsonrpc: '2.0', id: 2, method: 'ping' }, session)).status).toBe(404);
  });
});
