/**
 * batching() and compression() on real transports, checked on the wire: frames as the
 * peer received them, bytes as a TCP proxy counted them.
 */
import type { AddressInfo } from 'node:net';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { WebSocketServer } from 'ws';
import { batching, compression } from '#middleware/index.ts';
import type { LayerEvents } from '#core/events.ts';
import { wrap } from '#core/index.ts';
import type { JSONRPCMessage } from '#core/jsonrpc.ts';
import type { Transport } from '#core/transport.ts';
import { createFetch, listenHttp } from '#transports/http/index.ts';
import { WIRE_CONTROL } from '#core/wire.ts';
import { listenWebSocket, WebSocketClientTransport } from '#transports/ws/index.ts';
import { makeClientTransport, makeServerTransport } from '../support/http.ts';
import { transportClient, transportServer } from '../support/apps.ts';
import { textOf } from '../support/clients.ts';
import { countingProxy } from '../support/proxy.ts';

const cleanup: Array<() => unknown> = [];
afterEach(async () => {
  vi.useRealTimers();
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

/** A raw MCP peer that negotiates `version` and records every frame it receives. */
async function stub(version: string): Promise<{ url: string; frames: unknown[] }> {
  const frames: unknown[] = [];
  const server = new WebSocketServer({ port: 0, host: '127.0.0.1', handleProtocols: () => 'mcp' });
  cleanup.push(() => new Promise((resolve) => server.close(resolve)));
  await new Promise((resolve) => server.once('listening', resolve));
  const answer = (m: { id?: unknown; method?: string }) =>
    m.id === undefined ? undefined : m.method === 'initialize'
      ? { jsonrpc: '2.0', id: m.id, result: { protocolVersion: version, capabilities: {}, serverInfo: { name: 'stub', version: '0' } } }
      : { jsonrpc: '2.0', id: m.id, result: {} };
  server.on('connection', (ws) => {
    ws.on('message', (data) => {
      const frame = JSON.parse(String(data)) as Record<string, unknown> | Array<Record<string, unknown>>;
      frames.push(frame);
      const replies = (Array.isArray(frame) ? frame : [frame]).map(answer).filter((r) => r !== undefined);
      if (replies.length > 0) ws.send(JSON.stringify(Array.isArray(frame) ? replies : replies[0]));
    });
  });
  return { url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`, frames };
}

async function sdkOverWs(url: string, layers: Parameters<typeof wrap>[1]): Promise<{ client: Client; transport: ReturnType<typeof wrap> }> {
  const client = new Client({ name: 'batcher', version: '1.0.0' });
  const transport = wrap(new WebSocketClientTransport(url), layers);
  await client.connect(transport);
  cleanup.push(() => client.close());
  return { client, transport };
}

describe('batching over WebSocket', () => {
  it('sends JSON-RPC arrays in the 2025-03-26 era (never initialize), and every request is answered', async () => {
    const peer = await stub('2025-03-26');
    const flushed: number[] = [];
    const { client, transport } = await sdkOverWs(peer.url, [batching({ maxMessages: 8 })]);
    transport.events.on('batch-flushed', (e) => flushed.push(e.size));
    await Promise.all(Array.from({ length: 20 }, () => client.ping()));
    const arrays = peer.frames.filter(Array.isArray) as unknown[][];
    expect(arrays.length).toBeGreaterThanOrEqual(3);
    expect(arrays.every((a) => a.length > 1 && a.length <= 8)).toBe(true);
    expect(arrays.flat()).toHaveLength(20 - (peer.frames.length - 2 - arrays.length));
    expect(peer.frames[0]).toMatchObject({ method: 'initialize' });
    expect(flushed.some((n) => n > 1)).toBe(true);
  });

  it.each(['2025-06-18', '2025-11-25', '2024-11-05'])('sends one message per frame in %s (no batching in that era)', async (version) => {
    const peer = await stub(version);
    const { client } = await sdkOverWs(peer.url, [batching()]);
    await Promise.all(Array.from({ length: 10 }, () => client.ping()));
    expect(peer.frames).toHaveLength(12);
    expect(peer.frames.some(Array.isArray)).toBe(false);
  });

  it('SDK client and server, both batching, in 2025-03-26 over mcp-layers/ws', async () => {
    const serverFlushes: number[] = [];
    const wss = await listenWebSocket({
      onconnection: async (transport) => {
        const wrapped = wrap(transport, [batching()]);
        wrapped.events.on('batch-flushed', (e) => serverFlushes.push(e.size));
        await transportServer('v2').connect(wrapped);
      },
    });
    cleanup.push(() => wss.close());
    const client = transportClient('v2', { protocolVersions: ['2025-03-26'] });
    const transport = wrap(new WebSocketClientTransport(wss.url), [batching()]);
    const clientFlushes: number[] = [];
    transport.events.on('batch-flushed', (e) => clientFlushes.push(e.size));
    await client.connect(transport);
    cleanup.push(() => client.close());
    expect(transport.protocolVersion).toBe('2025-03-26');
    const results = await Promise.all(Array.from({ length: 30 }, (_, i) => client.callTool({ name: 'echo', arguments: { text: `m${i}` } })));
    expect(results.map(textOf)).toEqual(Array.from({ length: 30 }, (_, i) => `m${i}`));
    expect(Math.max(...clientFlushes)).toBeGreaterThan(1);
    expect(Math.max(...serverFlushes)).toBeGreaterThan(1);
  });
});

describe('batching over Streamable HTTP', () => {
  it('POSTs arrays to the SDK server transport in 2025-03-26 and gets every answer', async () => {
    const bodies: unknown[] = [];
    const http = await listenHttp({
      sessions: async () => {
        const transport = wrap(makeServerTransport('v2'), []);
        await transportServer('v2').connect(transport);
        // What the HTTP server received, as parsed from each POST body.
        const handle = transport.handleRequest.bind(transport) as (request: Request, extra: { parsedBody?: unknown }) => Promise<Response>;
        return Object.assign(Object.create(transport) as typeof transport, {
          handleRequest: (request: Request, extra: { parsedBody?: unknown }) => {
            if (extra.parsedBody !== undefined) bodies.push(extra.parsedBody);
            return handle(request, extra);
          },
          close: () => transport.close(),
        });
      },
    });
    cleanup.push(() => http.close());
    const fetch = createFetch();
    cleanup.push(() => fetch.close());
    const client = transportClient('v2', { protocolVersions: ['2025-03-26'] });
    await client.connect(wrap(makeClientTransport('v2', http.url, fetch), [batching({ maxMessages: 10 })]));
    cleanup.push(() => client.close());
    const results = await Promise.all(Array.from({ length: 25 }, (_, i) => client.callTool({ name: 'echo', arguments: { text: `h${i}` } })));
    expect(results.map(textOf)).toEqual(Array.from({ length: 25 }, (_, i) => `h${i}`));
    const arrays = bodies.filter(Array.isArray) as unknown[][];
    expect(arrays.length).toBeGreaterThanOrEqual(3);
    expect(arrays.every((a) => a.length <= 10)).toBe(true);
  });

  it('refuses a maxMessages the SDK servers would reject', () => {
    expect(() => wrap(makeClientTransport('v1', 'http://127.0.0.1:1/mcp'), [batching({ maxMessages: 500 })])).toThrow(
      'batching.maxMessages: expected at most 100 over StreamableHTTPClientTransport (the SDK\'s HTTP servers refuse longer batches), got 500',
    );
  });
});

const note = (n: number) => ({ jsonrpc: '2.0' as const, method: 'notifications/message', params: { n } });

describe('batching: refusal and timing', () => {
  it('refuses stdio at wrap() time, saying where batching works', () => {
    const stdio = new StdioClientTransport({ command: process.execPath, args: ['-e', ''] });
    expect(() => wrap(stdio, [batching()])).toThrow(
      "batching: StdioClientTransport cannot carry JSON-RPC batches (its peer reads one message at a time); batching works over mcp-layers/ws transports and the SDK's Streamable HTTP client transport",
    );
  });

  it('validates its options', () => {
    expect(() => batching({ maxMessages: 0 })).toThrow('batching.maxMessages: expected an integer >= 1, got 0');
    expect(() => batching({ maxDelayMs: -1 })).toThrow('batching.maxDelayMs: expected a duration in milliseconds >= 0, got -1');
    expect(() => batching({ maxbatch: 4 } as never)).toThrow(/^batching\.maxbatch: expected one of the known options \(maxMessages, maxDelayMs\)/);
  });

  it('flushes at maxMessages or after maxDelayMs, keeps order around messages it cannot batch, and fails what is pending on close', async () => {
    vi.useFakeTimers();
    const written: Array<JSONRPCMessage | JSONRPCMessage[]> = [];
    const inner: Transport & { [WIRE_CONTROL]: unknown } = {
      async start() {},
      async send(message: JSONRPCMessage | JSONRPCMessage[]) {
        written.push(message);
      },
      async close() {
        (this as Transport).onclose?.();
      },
      [WIRE_CONTROL]: { kind: 'test', acceptsBatches: true, compress() {}, observe: () => () => {} },
    } as never;
    const transport = wrap(inner, [batching({ maxMessages: 3, maxDelayMs: 50 })]);
    transport.onmessage = () => {};
    await transport.start();
    transport.setProtocolVersion('2025-03-26');
    const sends = [1, 2, 3, 4].map((n) => transport.send(note(n)));
    await vi.advanceTimersByTimeAsync(0);
    expect(written).toEqual([[note(1), note(2), note(3)]]);
    await vi.advanceTimersByTimeAsync(49);
    expect(written).toHaveLength(1);
    // A message with a resumption token cannot share a frame: what is pending goes first.
    const alone = transport.send(note(5), { resumptionToken: 'abc' });
    await vi.advanceTimersByTimeAsync(0);
    expect(written).toEqual([[note(1), note(2), note(3)], note(4), note(5)]);
    await Promise.all([...sends, alone]);
    const late = transport.send(note(6));
    await transport.close();
    await expect(late).rejects.toMatchObject({ neverSent: true });
  });
});

describe('compression over WebSocket (permessage-deflate)', () => {
  const big = JSON.stringify(Array.from({ length: 400 }, (_, i) => ({ name: `tool_${i}`, description: 'Reads a file from the workspace', inputSchema: { type: 'object' } })));

  async function measure(serverDeflate: boolean): Promise<{ up: number; down: number; events: Array<LayerEvents['bytes-compressed']> }> {
    const wss = await listenWebSocket({
      perMessageDeflate: serverDeflate,
      onconnection: async (transport) => {
        await transportServer('v1').connect(wrap(transport, [compression()]));
      },
    });
    cleanup.push(() => wss.close());
    const proxy = await countingProxy(wss.address.port);
    cleanup.push(() => proxy.close());
    const client = transportClient('v1');
    const transport = wrap(new WebSocketClientTransport(`ws://127.0.0.1:${proxy.port}/mcp`), [compression()]);
    const events: Array<LayerEvents['bytes-compressed']> = [];
    transport.events.on('bytes-compressed', (e) => events.push(e));
    await client.connect(transport);
    cleanup.push(() => client.close());
    proxy.reset();
    expect(textOf(await client.callTool({ name: 'echo', arguments: { text: big } }))).toBe(big);
    return { ...proxy.bytes, events };
  }

  it('shrinks the bytes on the socket when the peer negotiates it, and still works with a peer that does not', async () => {
    const compressed = await measure(true);
    const identity = await measure(false);
    expect(identity.up).toBeGreaterThan(big.length);
    expect(identity.down).toBeGreaterThan(big.length);
    expect(compressed.up * 5).toBeLessThan(identity.up);
    expect(compressed.down * 5).toBeLessThan(identity.down);
    expect(compressed.events.some((e) => e.direction === 'outbound' && e.encoding === 'deflate' && e.after < e.before)).toBe(true);
    expect(identity.events).toEqual([]);
  });

  it('refuses a transport without native compression at wrap() time', () => {
    const stdio = new StdioClientTransport({ command: process.execPath, args: ['-e', ''] });
    expect(() => wrap(stdio, [compression()])).toThrow(/^compression: StdioClientTransport has no compression this layer can drive; use mcp-layers\/ws transports/);
    expect(() => compression({ minBytes: -5 })).toThrow('compression.minBytes: expected an integer >= 0, got -5');
  });
});

describe('compression over Streamable HTTP', () => {
  it('on a server transport served by McpHttpServer, chooses the response coding from its own list', async () => {
    const http = await listenHttp({
      compression: { encodings: ['br', 'gzip'], minBytes: 0 },
      sessions: async () => {
        const transport = wrap(makeServerTransport('v1', { json: true }), [compression({ encodings: ['gzip'], minBytes: 0 })]);
        await transportServer('v1').connect(transport);
        return transport;
      },
    });
    cleanup.push(() => http.close());
    const response = await fetch(http.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'accept-encoding': 'br, gzip' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'x', version: '0' } } }),
    });
    expect(response.headers.get('content-encoding')).toBe('gzip');
    expect(await response.json()).toMatchObject({ result: { protocolVersion: '2025-11-25' } });
  });

  it('turns on request-body compression of a createFetch() fetch, in the encodings the layer allows', async () => {
    const http = await listenHttp({
      sessions: async () => {
        const transport = wrap(makeServerTransport('v1'), []);
        await transportServer('v1').connect(transport);
        return transport;
      },
    });
    cleanup.push(() => http.close());
    const proxy = await countingProxy(http.address.port);
    cleanup.push(() => proxy.close());
    const fetch = createFetch({ compression: { requests: false } });
    cleanup.push(() => fetch.close());
    const client = new Client({ name: 'c', version: '1' });
    const transport = wrap(makeClientTransport('v1', `http://127.0.0.1:${proxy.port}/mcp`, fetch), [compression({ encodings: ['gzip'], minBytes: 512 })]);
    const compressed: Array<LayerEvents['bytes-compressed']> = [];
    transport.events.on('bytes-compressed', (e) => compressed.push(e));
    await client.connect(transport);
    cleanup.push(() => client.close());
    const text = 'compress me please '.repeat(2000);
    proxy.reset();
    expect(textOf(await client.callTool({ name: 'echo', arguments: { text } }))).toBe(text);
    expect(proxy.bytes.up * 10).toBeLessThan(text.length);
    expect(compressed).toContainEqual(expect.objectContaining({ encoding: 'gzip', direction: 'outbound' }));
  });
});
