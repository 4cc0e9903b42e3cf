/**
 * McpWebSocketServer under hostile and broken peers: every bad input gets a clear close
 * code and an error report, and the server keeps serving everyone else.
 */
import http from 'node:http';
import net from 'node:net';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { afterEach, describe, expect, it } from 'vitest';
import type { WebSocket } from 'ws';
import { z } from 'zod';
import { wrap } from '#core/index.ts';
import { CloseCode } from '#transports/ws/channel.ts';
import {
  AuthenticationError,
  listenWebSocket,
  McpWebSocketServer,
  type WebSocketServerOptions,
} from '#transports/ws/index.ts';
import { closed, INITIALIZE, rawClient, refusal, request } from '../support/ws.ts';

interface Harness {
  wss: McpWebSocketServer;
  errors: Error[];
  authInfos: unknown[];
}

const open: Array<{ close(): unknown }> = [];
afterEach(async () => {
  for (const item of open.splice(0).reverse()) await item.close();
});

async function serve(options: Partial<WebSocketServerOptions> = {}): Promise<Harness> {
  const errors: Error[] = [];
  const authInfos: unknown[] = [];
  const wss = await listenWebSocket({
    ...options,
    onconnection: async (transport) => {
      const server = new McpServer({ name: 'hardy', version: '1.0.0' });
      server.server.onerror = (error) => errors.push(error);
      server.registerTool('whoami', { inputSchema: { x: z.string().optional() } }, async (_args, extra) => {
        authInfos.push(extra.authInfo);
        return { content: [{ type: 'text', text: 'ok' }] };
      });
      await server.connect(wrap(transport, []));
    },
  });
  wss.onerror = (error) => errors.push(error);
  open.push(wss);
  return { wss, errors, authInfos };
}

async function client(url: string, options = {}): Promise<WebSocket> {
  const ws = await rawClient(url, options);
  open.push({ close: () => ws.terminate() });
  return ws;
}

/** A second, well-behaved session: proves the server still serves others. */
async function healthy(url: string): Promise<void> {
  const ws = await client(url);
  const init = await request(ws, INITIALIZE);
  expect(init['result']).toBeDefined();
  ws.send(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }));
  expect(await request(ws, { jsonrpc: '2.0', id: 2, method: 'ping' })).toEqual({ jsonrpc: '2.0', id: 2, result: {} });
}

describe('McpWebSocketServer: invalid frames', () => {
  // [case, what the client sends, the problem reported to onerror, the close reason the client reads]
  const cases: Array<[string, (ws: WebSocket) => void, RegExp, string | RegExp]> = [
    ['text that is not JSON', (ws) => ws.send('this is not json {'), /not valid JSON/, "Invalid MCP message: a message that is not valid JSON (Unexpected token 'h')"],
    ['JSON cut short', (ws) => ws.send('{"jsonrpc":"2.0",'), /not valid JSON/, 'Invalid MCP message: a message that is not valid JSON (Expected double-quoted property name in JSON at position 17)'],
    ['JSON that is not JSON-RPC', (ws) => ws.send(JSON.stringify({ hello: 'world' })), /not JSON-RPC 2\.0/, 'Invalid MCP message: a message that is not JSON-RPC 2.0: "jsonrpc" must be "2.0", got nothing'],
    ['a method that is not a string', (ws) => ws.send(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 7 })), /"method"/, 'Invalid MCP message: a message that is not JSON-RPC 2.0: "method" must be a non-empty string, got 7'],
    ['an empty batch', (ws) => ws.send('[]'), /empty JSON-RPC batch/, 'Invalid MCP message: an empty JSON-RPC batch'],
    [
      'a batch with a bad item',
      (ws) => ws.send(JSON.stringify([{ jsonrpc: '2.0', id: 1, method: 'ping' }, 42])),
      /item 1 of a batch/,
      'Invalid MCP message: item 1 of a batch is not a JSON-RPC message: expected a JSON-RPC 2.0 message object, got a number',
    ],
    ['a binary frame that is not UTF-8', (ws) => ws.send(Buffer.from([0xff, 0xfe, 0x00]), { binary: true }), /not valid UTF-8/, 'Invalid MCP message: a binary message that is not valid UTF-8 text'],
    [
      'nesting 10 000 levels deep',
      (ws) => ws.send(`{"jsonrpc":"2.0","id":1,"method":"ping","params":{"a":${'['.repeat(10_000)}${']'.repeat(10_000)}}}`),
      /too deep \(10002 levels, limit 1000\) at \$\.params\.a\[0\]/,
      /^Invalid MCP message: a message that is not JSON-RPC 2\.0: too deep \(10002 levels, limit 1000\) at \$\.params\.a(\[0\])+\[0…$/,
    ],
  ];

  it.each(cases)('closes with 1007 on %s, says which problem in the close reason, reports it, and keeps serving others', async (_name, send, problem, reason) => {
    const { wss, errors } = await serve();
    const bad = await client(wss.url);
    const done = closed(bad);
    send(bad);
    const closedWith = await done;
    expect(closedWith).toEqual({ code: CloseCode.InvalidPayload, reason: typeof reason === 'string' ? reason : expect.stringMatching(reason) });
    expect(Buffer.byteLength(closedWith.reason)).toBeLessThanOrEqual(123);
    expect(errors.map((e) => e.message)).toEqual([expect.stringMatching(problem)]);
    expect(errors[0]?.message).toMatch(/closing the connection with 1007/);
    await healthy(wss.url);
  });

  it('closes with 1007 on a text frame with invalid UTF-8, and says so in the close reason', async () => {
    const { wss, errors } = await serve();
    const bad = await client(wss.url, { skipUTF8Validation: true });
    const done = closed(bad);
    // A text frame whose bytes are not UTF-8: only a client that skips its own validation can send it.
    bad.send(Buffer.from([0x22, 0xc3, 0x28, 0x22]), { binary: false });
    expect(await done).toEqual({ code: CloseCode.InvalidPayload, reason: 'Invalid MCP message: a text message that is not valid UTF-8' });
    expect(errors.map((e) => e.message)).toEqual([expect.stringMatching(/a text message that is not valid UTF-8; closing the connection with 1007/)]);
    await healthy(wss.url);
  });

  it('keeps a long reason within the 123 bytes a close frame allows, cut between characters', async () => {
    const { wss } = await serve();
    const bad = await client(wss.url);
    const done = closed(bad);
    // The problem quotes the method; 4-byte characters put the cut inside a character unless it is made with care.
    bad.send(JSON.stringify({ jsonrpc: '2.0', id: 1, method: '😀'.repeat(60), params: 5 }));
    const { code, reason } = await done;
    expect(code).toBe(CloseCode.InvalidPayload);
    expect(Buffer.byteLength(reason)).toBeLessThanOrEqual(123);
    expect(reason).toMatch(/^Invalid MCP message: a message that is not JSON-RPC 2\.0: "params" of (😀)+…$/u);
    expect(reason).not.toContain('\uFFFD');
  });
});

describe('McpWebSocketServer: a 10 000-message batch in one frame', () => {
  it('answers every message, in order, without a MaxListenersExceededWarning', async () => {
    const warnings: Error[] = [];
    const onWarning = (warning: Error) => warnings.push(warning);
    process.on('warning', onWarning);
    open.push({ close: () => process.off('warning', onWarning) });
    const { wss, errors } = await serve();
    const ws = await client(wss.url);
    await request(ws, INITIALIZE);
    ws.send(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }));
    const n = 10_000;
    const ids: unknown[] = [];
    const answered = new Promise<void>((resolve) => {
      ws.on('message', (data: Buffer) => {
        const parsed = JSON.parse(data.toString()) as Record<string, unknown> | Array<Record<string, unknown>>;
        for (const message of Array.isArray(parsed) ? parsed : [parsed]) ids.push(message['id']);
        if (ids.length >= n) resolve();
      });
    });
    ws.send(JSON.stringify(Array.from({ length: n }, (_, i) => ({ jsonrpc: '2.0', id: 100 + i, method: 'ping' }))));
    await answered;
    // Warnings are emitted on the next tick after the listener that crossed the limit.
    await new Promise<void>((resolve) => setImmediate(resolve));
    expect(ids).toEqual(Array.from({ length: n }, (_, i) => 100 + i));
    expect(warnings.map((w) => `${w.name}: ${w.message}`)).toEqual([]);
    expect(errors).toEqual([]);
  });
});

describe('McpWebSocketServer: maxPayloadBytes', () => {
  it('closes with 1009 on a 64 MiB frame (default limit 4 MiB) and keeps serving others', async () => {
    const { wss, errors } = await serve();
    const big = await client(wss.url, { perMessageDeflate: false });
    big.on('error', () => {});
    const done = closed(big);
    big.send(Buffer.alloc(64 * 1024 * 1024, 0x20), { binary: false });
    expect((await done).code).toBe(CloseCode.MessageTooBig);
    expect(errors.map((e) => e.message)).toEqual([expect.stringMatching(/larger than maxPayloadBytes \(4194304 bytes\); closing the connection with 1009/)]);
    await healthy(wss.url);
  });

  it('counts decompressed bytes: a small permessage-deflate bomb is closed with 1009 too', async () => {
    const { wss, errors } = await serve({ maxPayloadBytes: 1024 * 1024 });
    const bomb = await client(wss.url, { perMessageDeflate: { minBytes: 0 } });
    expect(bomb.extensions).toContain('permessage-deflate');
    const done = closed(bomb);
    bomb.send(`"${' '.repeat(8 * 1024 * 1024)}"`, { compress: true });
    expect((await done).code).toBe(CloseCode.MessageTooBig);
    expect(errors).toHaveLength(1);
    await healthy(wss.url);
  });
});

describe('McpWebSocketServer: upgrade checks', () => {
  it('refuses a browser Origin that is not allowed with 403 and says why', async () => {
    const { wss } = await serve();
    const refused = await refusal(wss.url, { origin: 'https://evil.example' });
    expect(refused.status).toBe(403);
    expect(JSON.parse(refused.body)).toEqual({
      jsonrpc: '2.0',
      id: null,
      error: { code: -32053, message: 'Forbidden: origin "https://evil.example" is not in the server\'s allowedOrigins' },
    });
    // Loopback origins and clients without an Origin are allowed by default.
    await client(wss.url, { origin: 'http://localhost:5173' });
    await healthy(wss.url);
  });

  it('allows the origins it is told to', async () => {
    const { wss } = await serve({ allowedOrigins: ['https://*.example.com'] });
    await client(wss.url, { origin: 'https://app.example.com' });
    expect((await refusal(wss.url, { origin: 'http://localhost:3000' })).status).toBe(403);
  });

  it('answers 401 with a clear body when authenticate() refuses, and keeps serving others', async () => {
    const { wss } = await serve({
      authenticate: (request) => (request.headers.authorization === 'Bearer good' ? { token: 'good', clientId: 'c1', scopes: [] } : false),
    });
    const refused = await refusal(wss.url, { headers: { authorization: 'Bearer bad' } });
    expect(refused.status).toBe(401);
    expect(JSON.parse(refused.body).error).toEqual({
      code: -32053,
      message: 'Unauthorized: the server rejected the credentials of this request (authenticate() refused it)',
    });
    const good = await client(wss.url, { headers: { authorization: 'Bearer good' } });
    expect((await request(good, INITIALIZE))['result']).toBeDefined();
  });

  it('uses the status and headers of an AuthenticationError, and hides the message of other errors', async () => {
    const { wss, errors } = await serve({
      authenticate: (request) => {
        if (request.headers['x-case'] === 'expired') {
          throw new AuthenticationError('the token expired', { headers: { 'WWW-Authenticate': 'Bearer error="invalid_token"' } });
        }
        if (request.headers['x-case'] === 'scope') throw new AuthenticationError('Forbidden: missing scope mcp:tools', { status: 403 });
        throw new Error('database password is hunter2');
      },
    });
    const expired = await refusal(wss.url, { headers: { 'x-case': 'expired' } });
    expect(expired.status).toBe(401);
    expect(expired.headers['www-authenticate']).toBe('Bearer error="invalid_token"');
    expect(JSON.parse(expired.body).error.message).toBe('Unauthorized: the token expired');
    const scope = await refusal(wss.url, { headers: { 'x-case': 'scope' } });
    expect(scope.status).toBe(403);
    expect(JSON.parse(scope.body).error.message).toBe('Forbidden: missing scope mcp:tools');
    const broken = await refusal(wss.url);
    expect(broken.status).toBe(401);
    expect(broken.body).not.toContain('hunter2');
    // The application still learns what went wrong, through onerror.
    expect(errors.some((e) => e.message.includes('authenticate() threw') && (e.cause as Error).message.includes('hunter2'))).toBe(true);
  });

  it('passes what authenticate() resolved to the handlers as authInfo', async () => {
    const { wss, authInfos } = await serve({ authenticate: () => ({ token: 't', clientId: 'alice', scopes: ['mcp'] }) });
    const ws = await client(wss.url);
    await request(ws, INITIALIZE);
    ws.send(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }));
    const result = await request(ws, { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'whoami', arguments: {} } });
    expect(result['result']).toBeDefined();
    expect(authInfos).toEqual([{ token: 't', clientId: 'alice', scopes: ['mcp'] }]);
  });

  it('refuses other paths (404), other subprotocols (400), plain HTTP (426) and connections over the limit (503)', async () => {
    const { wss } = await serve({ maxConnections: 1 });
    expect((await refusal(wss.url.replace('/mcp', '/other'))).status).toBe(404);
    const wrongProtocol = await refusal(wss.url, { protocols: ['graphql-ws'] });
    expect(wrongProtocol.status).toBe(400);
    expect(JSON.parse(wrongProtocol.body).error.message).toMatch(/speaks the "mcp" WebSocket subprotocol/);
    const plain = await fetch(wss.url.replace('ws:', 'http:'));
    expect(plain.status).toBe(426);
    await client(wss.url);
    const full = await refusal(wss.url);
    expect(full.status).toBe(503);
    expect(full.headers['retry-after']).toBe('1');
  });

  it('drops a client whose upgrade request never finishes, and serves others meanwhile', async () => {
    const { wss } = await serve({ upgradeTimeoutMs: 200 });
    const slow = net.connect(wss.address.port, '127.0.0.1');
    open.push({ close: () => slow.destroy() });
    slow.on('error', () => {});
    let answer = '';
    slow.on('data', (chunk: Buffer) => (answer += chunk.toString()));
    const gone = new Promise<void>((resolve) => slow.once('close', () => resolve()));
    slow.write('GET /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n'); // and never the rest
    await healthy(wss.url);
    await gone;
    expect(answer).toMatch(/^HTTP\/1\.1 40[08] /);
  });
});

describe('McpWebSocketServer: many idle connections', () => {
  it('holds 1 000 idle connections, keeps serving a working session, and releases them all on close', async () => {
    let started = 0;
    const wss = await listenWebSocket({
      onconnection: async (transport, request) => {
        if (request.url?.endsWith('?live') === true) {
          await new McpServer({ name: 'live', version: '1.0.0' }).connect(wrap(transport, []));
          return;
        }
        transport.onmessage = () => {};
        await transport.start();
        started++;
      },
    });
    open.push(wss);
    const heapBefore = process.memoryUsage().heapUsed;
    const idle = await Promise.all(Array.from({ length: 1000 }, () => rawClient(wss.url)));
    for (const ws of idle) open.push({ close: () => ws.terminate() });
    expect(wss.connections.size).toBe(1000);
    expect(started).toBe(1000);
    // Both ends live in this process: a loose bound that still catches a per-connection leak of buffers.
    expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(1000 * 100 * 1024);
    await healthy(`${wss.url}?live`);
    const closes = idle.map((ws) => closed(ws));
    await wss.close();
    const codes = new Set((await Promise.all(closes)).map((c) => c.code));
    expect([...codes]).toEqual([CloseCode.GoingAway]);
    expect(wss.connections.size).toBe(0);
  });
});

describe('McpWebSocketServer attached to an existing http.Server', () => {
  it('serves MCP at its path and leaves the other routes to the application', async () => {
    const server = http.createServer((_req, res) => res.end('ok'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    open.push({ close: () => new Promise((resolve) => server.close(resolve)) });
    const wss = new McpWebSocketServer({
      server,
      path: '/rpc',
      onconnection: async (transport) => {
        await new McpServer({ name: 'attached', version: '1.0.0' }).connect(wrap(transport, []));
      },
    });
    open.push(wss);
    expect(wss.url).toMatch(/^ws:\/\/127\.0\.0\.1:\d+\/rpc$/);
    expect(await (await fetch(`http://127.0.0.1:${wss.address.port}/health`)).text()).toBe('ok');
    const ws = await client(wss.url);
    expect(((await request(ws, INITIALIZE))['result'] as { serverInfo: { name: string } }).serverInfo.name).toBe('attached');
    expect((await refusal(wss.url.replace('/rpc', '/nope'))).status).toBe(404);
  });

  it('binds 127.0.0.1 by default', async () => {
    const { wss } = await serve();
    expect(wss.address.address).toBe('127.0.0.1');
  });
});
