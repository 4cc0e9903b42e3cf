/**
 * mcp-layers/http: createFetch (status errors with Retry-After, pooling, negotiated
 * request compression) and McpHttpServer (limits, decoding, response compression,
 * sessions, admission), with SDK clients and servers on real sockets.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import zlib from 'node:zlib';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { TransportError } from '#core/errors.ts';
import { wrap } from '#core/index.ts';
import { parseRetryAfter } from '#core/retry-after.ts';
import { createFetch, McpHttpServer, type McpHttpServerOptions } from '#transports/http/index.ts';
import { makeClientTransport, makeServerTransport } from '../support/http.ts';
import { transportClient, transportServer } from '../support/apps.ts';
import { textOf } from '../support/clients.ts';
import { countingProxy } from '../support/proxy.ts';
import { retry } from '#middleware/index.ts';

const cleanup: Array<() => unknown> = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

/** McpHttpServer with a v1 McpServer per session, behind an optional front handler that can interfere. */
async function serve(
  options: Partial<McpHttpServerOptions> = {},
  front?: (req: IncomingMessage, res: ServerResponse, next: () => void) => void,
): Promise<{ url: string; port: number; mcp: McpHttpServer; sockets: () => number; auth: unknown[] }> {
  const auth: unknown[] = [];
  const mcp = new McpHttpServer({
    sessions: async () => {
      const transport = wrap(makeServerTransport('v1'), []);
      const server = transportServer('v1');
      const raw = server as unknown as McpServer;
      raw.registerTool('whoami', {}, async (extra) => {
        auth.push(extra.authInfo);
        return { content: [{ type: 'text', text: 'me' }] };
      });
      await server.connect(transport);
      return transport;
    },
    ...options,
  } as McpHttpServerOptions);
  let sockets = 0;
  const server = http.createServer((req, res) => (front === undefined ? void mcp.handle(req, res) : front(req, res, () => void mcp.handle(req, res))));
  server.on('connection', () => sockets++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanup.push(async () => {
    await mcp.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  const port = (server.address() as AddressInfo).port;
  return { url: `http://127.0.0.1:${port}/mcp`, port, mcp, sockets: () => sockets, auth };
}

async function sdkClient(url: string, fetch: ReturnType<typeof createFetch> | undefined, layers: Parameters<typeof wrap>[1] = []): Promise<Client> {
  const client = new Client({ name: 'http-client', version: '1.0.0' });
  await client.connect(wrap(new StreamableHTTPClientTransport(new URL(url), fetch === undefined ? {} : { fetch }), layers));
  cleanup.push(() => client.close());
  return client;
}

function fetchFor(options: Parameters<typeof createFetch>[0] = {}) {
  const fetch = createFetch(options);
  cleanup.push(() => fetch.close());
  return fetch;
}

describe('createFetch: HTTP failures the stack can act on', () => {
  it.each(['v1', 'v2'] as const)('turns a 503 with Retry-After into a TransportError (status, retryAfterMs); retry waits as asked and re-sends the idempotent request (SDK %s)', async (version) => {
    let posts = 0;
    const { url, port } = await serve({}, (req, res, next) => {
      if (req.method === 'POST' && ++posts === 3) {
        req.resume();
        res.writeHead(503, { 'retry-after': '1', 'content-type': 'text/plain' }).end('overloaded, come back later');
        return;
      }
      next();
    });
    const failures: unknown[] = [];
    const waits: number[] = [];
    // Inside retry: sees each attempt's failure as the transport raised it.
    const record = async (ctx: { direction: string }, next: () => Promise<void>) => {
      try {
        await next();
      } catch (error) {
        failures.push(error);
        throw error;
      }
    };
    const client = transportClient(version);
    const transport = wrap(makeClientTransport(version, url, fetchFor()), [retry({ budget: false }), record]);
    transport.events.on('retry', (e) => waits.push(e.delayMs));
    await client.connect(transport);
    cleanup.push(() => client.close());
    expect((await client.listTools()).tools.map((t) => t.name)).toContain('echo');
    expect(failures).toHaveLength(1);
    const failure = failures[0] as TransportError;
    expect(failure).toBeInstanceOf(TransportError);
    expect(failure.status).toBe(503);
    expect(failure.retryAfterMs).toBe(1000);
    expect(failure.retryable).toBe(true);
    expect(failure.message).toBe(`HTTP 503 Service Unavailable from POST http://127.0.0.1:${port}/mcp (Retry-After: 1 s): overloaded, come back later`);
    expect(waits).toEqual([1000]);
  });

  it.each(['v1', 'v2'] as const)('a 501 is final (docs/errors.md): retry does not send the request again, the application gets http-501 (SDK %s)', async (version) => {
    let posts = 0;
    const { url } = await serve({}, (req, res, next) => {
      if (req.method === 'POST' && ++posts === 3) {
        req.resume();
        res.writeHead(501, { 'retry-after': '1', 'content-type': 'text/plain' }).end('not implemented here');
        return;
      }
      next();
    });
    const retries: unknown[] = [];
    const client = transportClient(version);
    const transport = wrap(makeClientTransport(version, url, fetchFor()), [retry({ budget: false })]);
    transport.events.on('retry', (e) => retries.push(e));
    await client.connect(transport);
    cleanup.push(() => client.close());
    const error = await client.listTools().then(() => undefined, (e: unknown) => e);
    expect(error).toMatchObject({ code: -32054, data: { reason: 'http-501', attempts: 1 } });
    expect(retries).toEqual([]);
    expect(posts).toBe(3);
  });

  it('gives the application the status and Retry-After in the error data when nothing retries (429 → RateLimited)', async () => {
    let posts = 0;
    const { url } = await serve({}, (req, res, next) => {
      if (req.method === 'POST' && ++posts === 3) {
        req.resume();
        res.writeHead(429, { 'retry-after': 'Wed, 21 Oct 2099 07:28:00 GMT' }).end();
        return;
      }
      next();
    });
    const client = await sdkClient(url, fetchFor());
    const error = await client.callTool({ name: 'echo', arguments: { text: 'x' } }).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(McpError);
    expect((error as McpError).code).toBe(-32057);
    expect((error as McpError).data).toMatchObject({ layer: 'http', reason: 'http-429', attempts: 1, status: 429 });
    expect(((error as McpError).data as { retryAfterMs: number }).retryAfterMs).toBeGreaterThan(1000 * 60 * 60 * 24 * 365);
  });

  it('reads Retry-After as seconds or an HTTP date', () => {
    const now = Date.parse('2030-01-01T00:00:00Z');
    expect(parseRetryAfter('120', now)).toBe(120_000);
    expect(parseRetryAfter('Tue, 01 Jan 2030 00:00:30 GMT', now)).toBe(30_000);
    expect(parseRetryAfter('Mon, 31 Dec 2029 00:00:00 GMT', now)).toBe(0);
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter(null, now)).toBeUndefined();
  });
});

describe('createFetch: connections', () => {
  it('reuses keep-alive connections and never opens more than `connections`', async () => {
    const { url, sockets } = await serve();
    const client = await sdkClient(url, fetchFor({ connections: 2 }));
    for (let i = 0; i < 10; i++) await client.callTool({ name: 'echo', arguments: { text: String(i) } });
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => client.callTool({ name: 'echo', arguments: { text: `c${i}` } })));
    expect(results.map(textOf)).toEqual(Array.from({ length: 10 }, (_, i) => `c${i}`));
    expect(sockets()).toBeLessThanOrEqual(2);
  });

  it('names the option and the expectation when an option is wrong', () => {
    expect(() => createFetch({ connections: 0 })).toThrow('createFetch.connections: expected an integer >= 1, got 0');
    expect(() => createFetch({ compression: { encodings: ['lzma' as never] } })).toThrow(/createFetch.compression.encodings: expected an array of "zstd", "br", "gzip", "deflate"/);
  });
});

describe('createFetch: request compression is negotiated', () => {
  const big = 'the same words again and again, '.repeat(4000); // 128 KB of very compressible text

  it('compresses request bodies for a server that lists Accept-Encoding (McpHttpServer), shrinking what crosses the socket', async () => {
    const { port } = await serve();
    const proxy = await countingProxy(port);
    cleanup.push(() => proxy.close());
    const url = `http://127.0.0.1:${proxy.port}/mcp`;
    const compressed = await sdkClient(url, fetchFor());
    const plain = await sdkClient(url, fetchFor({ compression: false }));
    proxy.reset();
    expect(textOf(await compressed.callTool({ name: 'echo', arguments: { text: big } }))).toBe(big);
    const withCompression = { ...proxy.bytes };
    proxy.reset();
    expect(textOf(await plain.callTool({ name: 'echo', arguments: { text: big } }))).toBe(big);
    const without = { ...proxy.bytes };
    expect(without.up).toBeGreaterThan(big.length);
    expect(withCompression.up * 20).toBeLessThan(without.up);
    expect(withCompression.down * 20).toBeLessThan(without.down); // the response was compressed too
  });

  it('sends identity to a server that never lists Accept-Encoding, and it works', async () => {
    const encodings: Array<string | undefined> = [];
    const transport = wrap(makeServerTransport('v1-node'), []);
    await transportServer('v1').connect(transport);
    const server = http.createServer((req, res) => {
      encodings.push(req.headers['content-encoding']);
      void (transport as unknown as { handleRequest: (a: unknown, b: unknown) => Promise<void> }).handleRequest(req, res);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanup.push(async () => {
      await transport.close();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    });
    const client = await sdkClient(`http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`, fetchFor());
    expect(textOf(await client.callTool({ name: 'echo', arguments: { text: big } }))).toBe(big);
    expect(encodings.length).toBeGreaterThan(2);
    expect(encodings.every((e) => e === undefined)).toBe(true);
  });

  it('re-sends as identity after a 415, and stops compressing for that server', async () => {
    const seen: Array<string | undefined> = [];
    const { url } = await serve({ compression: false }, (req, res, next) => {
      res.setHeader('accept-encoding', 'gzip'); // claims support it does not have
      seen.push(req.headers['content-encoding']);
      if (req.headers['content-encoding'] !== undefined) {
        req.resume();
        res.writeHead(415, { 'content-type': 'application/json' }).end('{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"no"}}');
        return;
      }
      next();
    });
    const client = await sdkClient(url, fetchFor({ compression: { encodings: ['gzip'] } }));
    expect(textOf(await client.callTool({ name: 'echo', arguments: { text: big } }))).toBe(big);
    expect(textOf(await client.callTool({ name: 'echo', arguments: { text: big } }))).toBe(big);
    expect(seen.filter((e) => e === 'gzip')).toHaveLength(1);
  });
});

async function post(url: string, body: RequestInit['body'], headers: Record<string, string> = {}): Promise<{ status: number; json: unknown; headers: Headers }> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
    body,
    duplex: 'half',
  } as RequestInit);
  return { status: response.status, json: await response.json(), headers: response.headers };
}

describe('McpHttpServer: limits and bad bodies', () => {
  it('answers 413 with a JSON-RPC error to a body over maxBodyBytes (declared or streamed) and keeps serving', async () => {
    const { url } = await serve({ maxBodyBytes: 64 * 1024 });
    const declared = await post(url, 'x'.repeat(100 * 1024));
    expect(declared.status).toBe(413);
    expect(declared.json).toEqual({
      jsonrpc: '2.0',
      id: null,
      error: { code: -32600, message: "Payload Too Large: the request body exceeds the server's limit of 65536 bytes (maxBodyBytes)" },
    });
    const chunk = new TextEncoder().encode('y'.repeat(16 * 1024));
    let sent = 0;
    const streamed = await post(
      url,
      new ReadableStream({
        pull(controller) {
          if (sent++ < 10) controller.enqueue(chunk);
          else controller.close();
        },
      }),
    );
    expect(streamed.status).toBe(413);
    const client = await sdkClient(url, fetchFor());
    expect(textOf(await client.callTool({ name: 'echo', arguments: { text: 'still here' } }))).toBe('still here');
  });

  it('counts decoded bytes: a 64 MiB gzip bomb of a few KiB is refused with 413', async () => {
    const { url } = await serve();
    const bomb = zlib.gzipSync(Buffer.alloc(64 * 1024 * 1024, 0x20), { level: 9 });
    expect(bomb.length).toBeLessThan(100 * 1024);
    const answer = await post(url, bomb, { 'content-encoding': 'gzip' });
    expect(answer.status).toBe(413);
  });

  it('answers 415 for a Content-Encoding it cannot read, 400 for a body that is not JSON, 404 for unknown sessions and paths', async () => {
    const { url } = await serve();
    const unsupported = await post(url, '{}', { 'content-encoding': 'compress' });
    expect(unsupported.status).toBe(415);
    expect((unsupported.json as { error: { message: string } }).error.message).toMatch(/Content-Encoding "compress" is not supported; use one of: .*gzip/);
    const notJson = await post(url, '{"jsonrpc": "2.0", "method": ');
    expect(notJson.status).toBe(400);
    expect(notJson.json).toMatchObject({ error: { code: -32700, message: expect.stringMatching(/^Parse error: the request body is not valid JSON/) } });
    const stale = await post(url, JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }), { 'mcp-session-id': 'gone' });
    expect(stale.status).toBe(404);
    expect(stale.json).toMatchObject({ error: { code: -32001, message: expect.stringMatching(/^Session not found/) } });
    expect((await fetch(url.replace('/mcp', '/elsewhere'))).status).toBe(404);
  });
});

describe('McpHttpServer: response compression', () => {
  function rawPost(port: number, acceptEncoding: string | undefined): Promise<{ headers: http.IncomingHttpHeaders; body: Buffer }> {
    return new Promise((resolve, reject) => {
      const body = JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '0' } },
      });
      const request = http.request(
        {
          port,
          host: '127.0.0.1',
          path: '/mcp',
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            accept: 'application/json, text/event-stream',
            ...(acceptEncoding === undefined ? {} : { 'accept-encoding': acceptEncoding }),
          },
        },
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('end', () => resolve({ headers: response.headers, body: Buffer.concat(chunks) }));
        },
      );
      request.on('error', reject);
      request.end(body);
    });
  }

  it('compresses an SSE response in the coding the client prefers, flushing each event; identity when none is accepted', async () => {
    const { port } = await serve({ compression: { minBytes: 0 } });
    const br = await rawPost(port, 'br;q=1, gzip;q=0.5');
    expect(br.headers['content-type']).toBe('text/event-stream');
    expect(br.headers['content-encoding']).toBe('br');
    expect(br.headers['accept-encoding']).toMatch(/gzip/);
    expect(zlib.brotliDecompressSync(br.body).toString()).toMatch(/^event: message\n(id: .*\n)?data: \{"result":\{"protocolVersion":"2025-11-25"/m);
    const plain = await rawPost(port, undefined);
    expect(plain.headers['content-encoding']).toBeUndefined();
    expect(plain.body.toString()).toMatch(/data: \{"result"/);
  });

  it('compresses JSON responses at or above the threshold only', async () => {
    const { port } = await serve({
      compression: { minBytes: 100 },
      sessions: async () => {
        const transport = wrap(makeServerTransport('v1', { json: true }), []);
        await transportServer('v1').connect(transport);
        return transport;
      },
    });
    const gzip = await rawPost(port, 'gzip');
    expect(gzip.headers['content-type']).toBe('application/json');
    expect(gzip.headers['content-encoding']).toBe('gzip');
    expect(JSON.parse(zlib.gunzipSync(gzip.body).toString())).toMatchObject({ result: { protocolVersion: '2025-11-25' } });
  });
});

describe('McpHttpServer: admission and sessions', () => {
  it('refuses with 401 when authenticate() does, and hands authInfo to the handlers otherwise', async () => {
    const { url, auth } = await serve({ authenticate: (req) => (req.headers.authorization === 'Bearer ok' ? { token: 'ok', clientId: 'bob', scopes: [] } : false) });
    const refused = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(refused.status).toBe(401);
    expect(await refused.json()).toMatchObject({ error: { code: -32053, message: expect.stringMatching(/^Unauthorized:/) } });
    const client = new Client({ name: 'c', version: '1' });
    await client.connect(wrap(new StreamableHTTPClientTransport(new URL(url), { fetch: fetchFor(), requestInit: { headers: { authorization: 'Bearer ok' } } }), []));
    cleanup.push(() => client.close());
    await client.callTool({ name: 'whoami', arguments: {} });
    expect(auth).toEqual([{ token: 'ok', clientId: 'bob', scopes: [] }]);
  });

  it('closes a stateless transport once its response is done', async () => {
    let closed = 0;
    let closedOnce!: () => void;
    const done = new Promise<void>((resolve) => (closedOnce = resolve));
    const { url, mcp } = await serve({
      sessions: async () => {
        const transport = wrap(makeServerTransport('v1', { json: true, stateless: true }), []);
        const server = new McpServer({ name: 'stateless', version: '1' });
        server.registerTool('n', { inputSchema: { x: z.number() } }, async ({ x }) => ({ content: [{ type: 'text', text: String(x + 1) }] }));
        await server.connect(transport);
        const previous = transport.onclose;
        transport.onclose = () => {
          closed++;
          closedOnce();
          previous?.();
        };
        return transport;
      },
    });
    const answer = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'x', version: '0' } } }),
    });
    expect(answer.status).toBe(200);
    expect(await answer.json()).toMatchObject({ result: { serverInfo: { name: 'stateless' } } });
    await done;
    expect(closed).toBe(1);
    expect(mcp.sessions.size).toBe(0);
  });
});
