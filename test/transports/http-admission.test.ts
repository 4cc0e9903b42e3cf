/**
 * The shared admission guard's Host check (DNS-rebinding protection without an Origin)
 * on McpHttpServer and McpWebSocketServer, and the shared clientError answers (431, 408,
 * 400 with a JSON-RPC style body) of their listeners and the gateway's.
 */
import http, { type IncomingMessage } from 'node:http';
import net from 'node:net';
import { Duplex } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { wrap } from '#core/index.ts';
import { Guard } from '#transports/guard.ts';
import type { McpHttpServer, McpHttpServerOptions } from '#transports/http/index.ts';
import { answerClientError } from '#transports/listen.ts';
import { listenWebSocket, type McpWebSocketServer, type WebSocketServerOptions } from '#transports/ws/index.ts';
import { fixtureUpstream, startTestGateway } from '../support/gateway.ts';
import { serveSessions } from '../support/http.ts';
import { transportServer } from '../support/apps.ts';
import { rawClient, refusal } from '../support/ws.ts';

const cleanup: Array<() => unknown> = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

const serveHttp = (options: Partial<McpHttpServerOptions> = {}): Promise<McpHttpServer> => serveSessions(cleanup, options);

async function serveWs(options: Partial<WebSocketServerOptions> = {}): Promise<McpWebSocketServer> {
  const wss = await listenWebSocket({
    ...options,
    onconnection: async (transport) => {
      await transportServer('v1').connect(wrap(transport, []));
    },
  });
  cleanup.push(() => wss.close());
  return wss;
}

const INITIALIZE = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 't', version: '1' } } });

/** A POST with the headers as given (fetch does not let a caller choose Host). */
function request(url: string, headers: Record<string, string>, body = INITIALIZE): Promise<{ status: number; json: unknown }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: text.startsWith('{') ? JSON.parse(text) : text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

function forbidden(message: string) {
  return { status: 403, json: { jsonrpc: '2.0', id: null, error: { code: -32053, message } } };
}

describe('Host check: McpHttpServer', () => {
  it('on 127.0.0.1 refuses a foreign Host with 403 naming it and allowedHosts, and admits loopback names on any port', async () => {
    const mcp = await serveHttp();
    expect(await request(mcp.url, { host: 'evil.example' })).toEqual(forbidden('Forbidden: host "evil.example" is not in the server\'s allowedHosts (localhost, 127.0.0.1, [::1])'));
    expect(await request(mcp.url, { host: '127.0.0.1.evil.example:80' })).toMatchObject({ status: 403 });
    expect(await request(mcp.url, { host: 'evil.example@localhost' })).toMatchObject({ status: 403, json: { error: { message: expect.stringMatching(/^Forbidden: the Host header "evil.example@localhost" is not a valid host name/) } } });
    for (const host of ['localhost:1234', 'LOCALHOST', 'localhost.', '127.0.0.1', '127.1.2.3:9', '[::1]:80']) {
      expect((await request(mcp.url, { host })).status, host).toBe(200);
    }
  });

  it('admits the names allowedHosts lists (globs; a port only where one is named), and only those', async () => {
    const mcp = await serveHttp({ allowedHosts: ['mcp.example.com', '*.internal.example', 'pinned.example:8443'] });
    for (const host of ['mcp.example.com', 'MCP.example.com:8080', 'a.internal.example', 'pinned.example:8443']) expect((await request(mcp.url, { host })).status, host).toBe(200);
    for (const host of ['localhost', 'evil.example', 'pinned.example:9000', 'pinned.example']) expect((await request(mcp.url, { host })).status, host).toBe(403);
    expect(await request(mcp.url, { host: 'localhost' })).toEqual(forbidden('Forbidden: host "localhost" is not in the server\'s allowedHosts (mcp.example.com, *.internal.example, pinned.example:8443)'));
  });

  it('checks nothing with allowedHosts "*"; names the option and the expectation when it is wrong', async () => {
    const mcp = await serveHttp({ allowedHosts: '*' });
    expect((await request(mcp.url, { host: 'evil.example' })).status).toBe(200);
    expect(() => new Guard('McpHttpServer', { allowedHosts: 'localhost' as never })).toThrow(/McpHttpServer\.allowedHosts/);
    expect(() => new Guard('McpHttpServer', { allowedHosts: ['ok', ''] })).toThrow(/McpHttpServer\.allowedHosts\[1\].*non-empty host name pattern/);
  });

  it('by default checks only connections that arrived at a loopback address', async () => {
    const guard = new Guard('test', {});
    const at = (localAddress: string, host: string | undefined) => ({ socket: { localAddress }, headers: host === undefined ? {} : { host } }) as unknown as IncomingMessage;
    expect(await guard.admit(at('10.1.2.3', 'evil.example'))).toEqual({ ok: true, authInfo: undefined });
    expect(await guard.admit(at('::ffff:127.0.0.1', 'evil.example'))).toMatchObject({ ok: false, status: 403 });
    expect(await guard.admit(at('::1', 'evil.example'))).toMatchObject({ ok: false, status: 403 });
    expect(await guard.admit(at('127.0.0.1', undefined))).toMatchObject({ ok: false, status: 403, message: expect.stringMatching(/^Forbidden: the request has no Host header/) });
    // Listed names are checked on every connection.
    expect(await new Guard('test', { allowedHosts: ['mcp.example.com'] }).admit(at('10.1.2.3', 'evil.example'))).toMatchObject({ ok: false, status: 403 });
  });
});

describe('Host check: McpWebSocketServer upgrades', () => {
  it('refuses Host evil.example on 127.0.0.1 with 403, accepts localhost:1234, and accepts a name allowedHosts lists', async () => {
    const wss = await serveWs();
    const refused = await refusal(wss.url, { headers: { host: 'evil.example' } });
    expect(refused.status).toBe(403);
    expect(JSON.parse(refused.body)).toEqual(forbidden('Forbidden: host "evil.example" is not in the server\'s allowedHosts (localhost, 127.0.0.1, [::1])').json);
    const ws = await rawClient(wss.url, { headers: { host: 'localhost:1234' } });
    ws.terminate();
    const listed = await serveWs({ allowedHosts: ['mcp.example.com'] });
    const admitted = await rawClient(listed.url, { headers: { host: 'mcp.example.com' } });
    admitted.terminate();
    expect((await refusal(listed.url, { headers: { host: 'localhost' } })).status).toBe(403);
  });
});

/** The status line and body a raw request gets back (the server closes the connection after it). */
function rawExchange(port: number, bytes: string): Promise<{ status: number; json: unknown }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let text = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => (text += chunk));
    socket.on('error', reject);
    socket.on('close', () => {
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
      const body = text.slice(text.indexOf('\r\n\r\n') + 4);
      resolve({ status, json: body.startsWith('{') ? JSON.parse(body) : body });
    });
    socket.write(bytes);
  });
}

const HUGE_HEADER = `GET /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Filler: ${'a'.repeat(20 * 1024)}\r\n\r\n`;
const TOO_LARGE_HEADERS = {
  status: 431,
  json: { jsonrpc: '2.0', id: null, error: { code: -32600, message: `Request Header Fields Too Large: the request's headers exceed the server's limit of ${http.maxHeaderSize} bytes (maxHeaderSize)` } },
};

describe('clientError: one answer for every listener', () => {
  it('answers a 20 KiB header with 431 and a JSON-RPC body: McpHttpServer, McpWebSocketServer and the gateway', async () => {
    const mcp = await serveHttp();
    expect(await rawExchange(mcp.address.port, HUGE_HEADER)).toEqual(TOO_LARGE_HEADERS);
    const wss = await serveWs();
    expect(await rawExchange(wss.address.port, HUGE_HEADER)).toEqual(TOO_LARGE_HEADERS);
    const gateway = await startTestGateway({ upstream: fixtureUpstream() });
    cleanup.push(() => gateway.stop());
    expect(await rawExchange(gateway.gateway.address.port, HUGE_HEADER)).toEqual(TOO_LARGE_HEADERS);
  });

  it('answers what is not HTTP with 400 naming the parser error, and a request that never finishes its headers with 408', async () => {
    const mcp = await serveHttp();
    expect(await rawExchange(mcp.address.port, 'HELLO\r\n\r\n')).toEqual({
      status: 400,
      json: { jsonrpc: '2.0', id: null, error: { code: -32600, message: 'Bad Request: the request is not valid HTTP/1.1 (HPE_INVALID_METHOD)' } },
    });
    const wss = await serveWs({ upgradeTimeoutMs: 300 });
    expect(await rawExchange(wss.address.port, 'GET /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n')).toMatchObject({ status: 408, json: { error: { message: expect.stringMatching(/^Request Timeout: /) } } });
  });

  it('writes nothing on a socket with a response in progress or that is not writable, answers once, and never throws', () => {
    const written: string[] = [];
    const socket = (state: Record<string, unknown>) => {
      const duplex = new Duplex({
        read() {},
        write(chunk: Buffer, _encoding, done) {
          written.push(chunk.toString());
          done();
        },
      });
      return Object.assign(duplex, state);
    };
    const busy = socket({ bytesWritten: 10, _httpMessage: {} });
    answerClientError(Object.assign(new Error('overflow'), { code: 'HPE_HEADER_OVERFLOW' }), busy);
    expect(written).toEqual([]);
    expect(busy.destroyed).toBe(true);
    const idle = socket({ bytesWritten: 10, _httpMessage: null });
    answerClientError(Object.assign(new Error('overflow'), { code: 'HPE_HEADER_OVERFLOW' }), idle);
    answerClientError(Object.assign(new Error('again'), { code: 'HPE_INVALID_METHOD' }), idle);
    expect(written).toHaveLength(1);
    expect(written[0]).toMatch(/^HTTP\/1\.1 431 Request Header Fields Too Large\r\n/);
    const reset = socket({ bytesWritten: 0 });
    answerClientError(Object.assign(new Error('reset'), { code: 'ECONNRESET' }), reset);
    expect(written).toHaveLength(1);
    const broken = socket({ bytesWritten: 0 });
    broken.end = () => {
      throw new Error('end failed');
    };
    expect(() => answerClientError(new Error('odd'), broken)).not.toThrow();
    expect(broken.destroyed).toBe(true);
  });
});

describe('gateway: downstream.allowedHosts reaches both listeners', () => {
  it('admits a listed name over HTTP and refuses loopback names it does not list, over HTTP and WebSocket', async () => {
    const gateway = await startTestGateway({ upstream: fixtureUpstream(), downstream: { allowedHosts: ['mcp.example.com'] } });
    cleanup.push(() => gateway.stop());
    // Admitted: it gets as far as the body check (no session, no child process).
    expect(await request(gateway.http, { host: 'mcp.example.com:8080' }, '{"foo":1}')).toMatchObject({ status: 400, json: { error: { code: -32600 } } });
    expect(await request(gateway.http, { host: 'localhost' }, '{"foo":1}')).toMatchObject({ status: 403, json: { error: { message: expect.stringContaining('allowedHosts (mcp.example.com)') } } });
    expect((await refusal(gateway.ws, { headers: { host: 'localhost' } })).status).toBe(403);
  });
});
