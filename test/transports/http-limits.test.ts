/**
 * McpHttpServer and the bodies it refuses: an oversized body's 413 reaches every kind of
 * client (also one that reads only after sending everything), the rest of a refused body
 * is read only up to a bound, and bodies that are not UTF-8 or not JSON-RPC get a 400
 * naming what is wrong, while real SDK clients keep working.
 */
import { isUtf8 } from 'node:buffer';
import net from 'node:net';
import zlib from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { firstInvalidUtf8 } from '#transports/http/body.ts';
import type { McpHttpServer, McpHttpServerOptions } from '#transports/http/index.ts';
import { makeClientTransport, serveSessions } from '../support/http.ts';
import { transportClient } from '../support/apps.ts';
import { textOf } from '../support/clients.ts';

const cleanup: Array<() => unknown> = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

const MiB = 1024 * 1024;

const serve = (options: Partial<McpHttpServerOptions> = {}): Promise<McpHttpServer> => serveSessions(cleanup, options);

async function post(url: string, body: RequestInit['body'], headers: Record<string, string> = {}): Promise<{ status: number; json: unknown }> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
    body,
  });
  return { status: response.status, json: JSON.parse(await response.text()) };
}

interface RawAnswer {
  outcome: string;
  status: number | undefined;
  body: string;
}

/**
 * A client that sends its whole request before it reads anything (as many HTTP/1.1
 * clients do): it sees the answer only if the server keeps the connection until the
 * body is in. Resolves once the answer's Content-Length bytes are in, or the socket failed.
 */
function sendAllThenRead(port: number, body: Buffer, framing: 'content-length' | 'chunked'): Promise<RawAnswer> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.pause();
    let received = Buffer.alloc(0);
    const settle = (outcome: string) => {
      const text = received.toString('latin1');
      const status = /^HTTP\/1\.1 (\d{3})/.exec(text)?.[1];
      resolve({ outcome, status: status === undefined ? undefined : Number(status), body: text.slice(text.indexOf('\r\n\r\n') + 4) });
      socket.destroy();
    };
    socket.on('error', (error: NodeJS.ErrnoException) => settle(`socket error ${error.code ?? error.message}`));
    socket.on('end', () => settle('ended'));
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      const text = received.toString('latin1');
      const split = text.indexOf('\r\n\r\n');
      const length = /\r\ncontent-length: (\d+)/i.exec(text)?.[1];
      if (split >= 0 && length !== undefined && received.length >= split + 4 + Number(length)) settle('answered');
    });
    const head = `POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n${
      framing === 'content-length' ? `Content-Length: ${body.length}` : 'Transfer-Encoding: chunked'
    }\r\n\r\n`;
    const payload = framing === 'content-length' ? body : Buffer.concat([Buffer.from(`${body.length.toString(16)}\r\n`), body, Buffer.from('\r\n0\r\n\r\n')]);
    socket.write(Buffer.concat([Buffer.from(head), payload]), (error) => {
      if (error === undefined || error === null) socket.resume();
    });
  });
}

const TOO_LARGE = {
  jsonrpc: '2.0',
  id: null,
  error: { code: -32600, message: "Payload Too Large: the request body exceeds the server's limit of 1048576 bytes (maxBodyBytes)" },
};

describe('McpHttpServer: a 413 reaches the client', () => {
  it.each(['content-length', 'chunked'] as const)('answers 413 to a client that sends all of a 5 MiB body (%s) before reading, every time', async (framing) => {
    const mcp = await serve({ maxBodyBytes: MiB });
    const body = Buffer.alloc(5 * MiB, 'x');
    for (let i = 0; i < 10; i++) {
      const answer = await sendAllThenRead(mcp.address.port, body, framing);
      expect(answer, `try ${i + 1}`).toMatchObject({ outcome: 'answered', status: 413 });
      expect(JSON.parse(answer.body)).toEqual(TOO_LARGE);
    }
  });

  it('answers 413 naming the limit to fetch posting 5 MiB, 20 times in a row, and then serves an SDK client', async () => {
    const mcp = await serve({ maxBodyBytes: MiB });
    const body = 'x'.repeat(5 * MiB);
    for (let i = 0; i < 20; i++) expect(await post(mcp.url, body), `try ${i + 1}`).toEqual({ status: 413, json: TOO_LARGE });
    const client = transportClient('v1');
    await client.connect(makeClientTransport('v1', mcp.url));
    cleanup.push(() => client.close());
    expect(textOf(await client.callTool({ name: 'echo', arguments: { text: 'after the refusals' } }))).toBe('after the refusals');
  });

  it('reads the rest of a refused body only up to 8 × maxBodyBytes: a client that never stops sending is cut off after its answer', async () => {
    const mcp = await serve({ maxBodyBytes: 64 * 1024 });
    const socket = net.connect(mcp.address.port, '127.0.0.1');
    let received = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => (received += chunk));
    socket.on('error', () => {});
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.write(`POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`);
    const chunk = Buffer.concat([Buffer.from('10000\r\n'), Buffer.alloc(0x10000, 'x'), Buffer.from('\r\n')]);
    let sent = 0;
    const pump = () => {
      while (!socket.destroyed && socket.writable) {
        sent += 0x10000;
        if (!socket.write(chunk)) return void socket.once('drain', pump);
      }
    };
    pump();
    await closed;
    expect(received).toMatch(/^HTTP\/1\.1 413 Payload Too Large\r\n/);
    expect(received).toContain('(maxBodyBytes)');
    // What was written may still sit in the socket buffers; the server did not read without end.
    expect(sent).toBeLessThan(64 * MiB);
  });
});

describe('McpHttpServer: bodies that are not UTF-8 or not JSON-RPC', () => {
  it('refuses a body that is not valid UTF-8 with 400 -32700 naming the byte, plain or gzip-encoded, instead of replacing it', async () => {
    const mcp = await serve();
    const bytes = Buffer.concat([Buffer.from('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}}}')]);
    const expected = { status: 400, json: { jsonrpc: '2.0', id: null, error: { code: -32700, message: 'Parse error: the body is not valid UTF-8 (at byte 91)' } } };
    expect(bytes[91]).toBe(0xc3);
    expect(await post(mcp.url, bytes)).toEqual(expected);
    expect(await post(mcp.url, zlib.gzipSync(bytes), { 'content-encoding': 'gzip' })).toEqual(expected);
  });

  it('finds the first invalid UTF-8 sequence exactly where Node sees the body as invalid', () => {
    const cases: Array<[number[], number]> = [
      [[0x41, 0xc0, 0x80], 1], // overlong NUL
      [[0x41, 0x42, 0xed, 0xa0, 0x80], 2], // a surrogate
      [[0xf4, 0x90, 0x80, 0x80], 0], // past U+10FFFF
      [[0x41, 0xe2, 0x82], 1], // truncated at the end
      [[0xe2, 0x82, 0xac, 0xff], 3],
      [[0xf0, 0x9f, 0x98, 0x80, 0x80], 4], // a lone continuation byte
      [[0xe2, 0x82, 0xac, 0xf0, 0x9f, 0x98, 0x80], -1],
    ];
    for (const [bytes, at] of cases) expect(firstInvalidUtf8(Uint8Array.from(bytes)), bytes.map((b) => b.toString(16)).join(' ')).toBe(at);
    // Random byte strings biased towards multi-byte sequences: both must agree on every one.
    let seed = 0x2545f491;
    const next = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 24;
    const alphabet = [0x41, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc2, 0xdf, 0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xff];
    for (let n = 0; n < 5000; n++) {
      const sample = Uint8Array.from({ length: 1 + (next() % 8) }, () => alphabet[next() % alphabet.length] as number);
      expect(firstInvalidUtf8(sample) === -1, [...sample].map((b) => b.toString(16)).join(' ')).toBe(isUtf8(sample));
    }
  });

  it.each([
    ['an object without "jsonrpc"', '{"foo":1}', null, '"jsonrpc" must be "2.0", got nothing'],
    ['a request whose method is a number', '{"jsonrpc":"2.0","method":5,"id":1}', 1, '"method" must be a non-empty string, got 5'],
    ['a string', '"hello"', null, 'expected a JSON-RPC 2.0 message object, got a string'],
    ['an empty batch', '[]', null, 'an empty JSON-RPC batch'],
    ['a batch with a number in it', '[{"jsonrpc":"2.0","method":"ping","id":1},7]', null, 'item 1 of the batch: expected a JSON-RPC 2.0 message object, got a number'],
  ])('answers JSON that is not JSON-RPC (%s) with 400 -32600 naming the field', async (_what, body, id, problem) => {
    const mcp = await serve();
    expect(await post(mcp.url, body)).toEqual({ status: 400, json: { jsonrpc: '2.0', id, error: { code: -32600, message: `Invalid Request: ${problem}` } } });
    expect(mcp.sessions.size).toBe(0);
  });

  it.each(['v1', 'v2'] as const)('still serves real SDK clients (%s), non-ASCII text included', async (version) => {
    const mcp = await serve();
    const client = transportClient(version);
    await client.connect(makeClientTransport(version, mcp.url));
    cleanup.push(() => client.close());
    expect(textOf(await client.callTool({ name: 'echo', arguments: { text: 'héllo ✓ 😀' } }))).toBe('héllo ✓ 😀');
  });
});
