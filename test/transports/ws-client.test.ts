/**
 * WebSocketClientTransport: reconnection and what happens to each kind of message
 * around a drop, heartbeats, backpressure, JSON-RPC arrays, and option validation.
 */
import type { AddressInfo } from 'node:net';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { afterEach, describe, expect, it } from 'vitest';
import { type WebSocket, WebSocketServer } from 'ws';
import { z } from 'zod';
import type { LayerEvents } from '#core/events.ts';
import type { JSONRPCMessage } from '#core/jsonrpc.ts';
import { wrap } from '#core/index.ts';
import {
  AuthenticationError,
  listenWebSocket,
  type McpWebSocketServer,
  WebSocketClientTransport,
  type WebSocketServerOptions,
} from '#transports/ws/index.ts';

const cleanup: Array<() => unknown> = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

interface App {
  wss: McpWebSocketServer;
  calls: string[];
  /** Resolves when a tool has started `n` times in total. */
  called: (n: number) => Promise<void>;
  /** Resolves the pending `hang` calls. */
  release: () => void;
}

/** Our server with an SDK McpServer per connection; `port` reuses a port (a restart). */
async function app(port = 0, options: Partial<WebSocketServerOptions> = {}): Promise<App> {
  const calls: string[] = [];
  const waiting: Array<() => void> = [];
  const watchers: Array<{ n: number; resolve: () => void }> = [];
  const record = (call: string) => {
    calls.push(call);
    for (const w of watchers.filter((w) => calls.length >= w.n)) w.resolve();
  };
  const wss = await listenWebSocket({
    port,
    ...options,
    onconnection: async (transport) => {
      const server = new McpServer({ name: 'app', version: '1.0.0' });
      server.registerTool('hang', { inputSchema: { key: z.string() } }, async ({ key }) => {
        record(`hang ${key}`);
        await new Promise<void>((resolve) => waiting.push(resolve));
        return { content: [{ type: 'text', text: 'done' }] };
      });
      server.registerTool('write', { inputSchema: { key: z.string() } }, async ({ key }) => {
        record(`write ${key}`);
        return { content: [{ type: 'text', text: `wrote ${key}` }] };
      });
      await server.connect(wrap(transport, []));
    },
  });
  cleanup.push(() => wss.close());
  const called = (n: number) => (calls.length >= n ? Promise.resolve() : new Promise<void>((resolve) => watchers.push({ n, resolve })));
  return { wss, calls, called, release: () => waiting.splice(0).forEach((f) => f()) };
}

function next<K extends keyof LayerEvents>(transport: WebSocketClientTransport, type: K, match: (e: LayerEvents[K]) => boolean = () => true): Promise<LayerEvents[K]> {
  return new Promise((resolve) => {
    const off = transport.events.on(type, (event) => {
      if (!match(event)) return;
      off();
      resolve(event);
    });
  });
}

async function connected(url: string, options: ConstructorParameters<typeof WebSocketClientTransport>[1] = {}): Promise<{ client: Client; transport: WebSocketClientTransport; errors: Error[] }> {
  const transport = new WebSocketClientTransport(url, { reconnect: { initialDelayMs: 10, maxDelayMs: 50 }, ...options });
  const client = new Client({ name: 'client', version: '1.0.0' });
  const errors: Error[] = [];
  client.onerror = (e) => errors.push(e);
  await client.connect(transport);
  cleanup.push(() => client.close());
  return { client, transport, errors };
}

describe('WebSocketClientTransport used bare (no wrap) across a restart', () => {
  it('fails a request in flight at once with -32000, then carries on after reconnecting', async () => {
    const first = await app();
    const url = first.wss.url;
    const port = first.wss.address.port;
    const { client, transport } = await connected(url);
    const pending = client.callTool({ name: 'hang', arguments: { key: 'x' } });
    pending.catch(() => {});
    await first.called(1);
    const dropped = next(transport, 'connection', (e) => e.state === 'closed');
    await first.wss.close();
    const error = await pending.then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(McpError);
    expect((error as McpError).code).toBe(-32000);
    expect((error as McpError).message).toMatch(/connection .* closed \(code 1001: server shutting down\); the request may or may not have been executed/);
    await dropped;
    const second = await app(port);
    const back = next(transport, 'reconnect', (e) => e.outcome === 'connected');
    await back;
    expect(await client.callTool({ name: 'write', arguments: { key: 'y' } })).toEqual({ content: [{ type: 'text', text: 'wrote y' }] });
    expect(second.calls).toEqual(['write y']);
  });

  it('never sends a request that was cancelled while waiting for the reconnection', async () => {
    const first = await app();
    const port = first.wss.address.port;
    const { client, transport } = await connected(first.wss.url);
    const dropped = next(transport, 'connection', (e) => e.state === 'closed');
    await first.wss.close();
    await dropped;
    const controller = new AbortController();
    const cancelled = client.callTool({ name: 'write', arguments: { key: 'cancelled' } }, undefined, { signal: controller.signal });
    controller.abort('changed my mind');
    await expect(cancelled).rejects.toThrow(/changed my mind|cancel/i);
    const second = await app(port);
    await next(transport, 'reconnect', (e) => e.outcome === 'connected');
    // Order is kept: had the cancelled call been sent, it would have run before this one.
    await client.callTool({ name: 'write', arguments: { key: 'after' } });
    expect(second.calls).toEqual(['write after']);
  });
});

describe('WebSocketClientTransport: answers that lost their peer', () => {
  it('drops the answer to a server request that arrived on a connection that died, instead of confusing the new server', async () => {
    const strays: unknown[] = [];
    let asked!: () => void;
    const samplingAsked = new Promise<void>((resolve) => (asked = resolve));
    const serve = (port: number) =>
      listenWebSocket({
        port,
        onconnection: async (transport) => {
          const server = new McpServer({ name: 'asker', version: '1.0.0' });
          server.registerTool('ask', {}, async () => {
            const result = await server.server.createMessage({ messages: [{ role: 'user', content: { type: 'text', text: 'hi' } }], maxTokens: 5 });
            return { content: [{ type: 'text', text: String((result.content as { text?: string }).text) }] };
          });
          server.registerTool('write', { inputSchema: { key: z.string() } }, async ({ key }) => ({ content: [{ type: 'text', text: `wrote ${key}` }] }));
          const wrapped = wrap(transport, []);
          wrapped.events.on('stray-response', (e) => strays.push(e));
          await server.connect(wrapped);
        },
      });
    const first = await serve(0);
    const port = first.address.port;
    const transport = new WebSocketClientTransport(first.url, { reconnect: { initialDelayMs: 10, maxDelayMs: 50 } });
    const client = new Client({ name: 'client', version: '1.0.0' }, { capabilities: { sampling: {} } });
    let answer!: () => void;
    const { CreateMessageRequestSchema } = await import('@modelcontextprotocol/sdk/types.js');
    client.setRequestHandler(CreateMessageRequestSchema, async () => {
      asked();
      await new Promise<void>((resolve) => (answer = resolve));
      return { model: 'm', role: 'assistant', content: { type: 'text', text: 'late' } };
    });
    await client.connect(transport);
    cleanup.push(() => client.close());
    const call = client.callTool({ name: 'ask', arguments: {} });
    call.catch(() => {});
    await samplingAsked;
    const dropped = next(transport, 'connection', (e) => e.state === 'closed');
    await first.close();
    await dropped;
    await expect(call).rejects.toThrow(/may or may not have been executed/);
    // The SDK answers while no server is there; that answer belongs to the dead connection.
    const send = transport.send.bind(transport);
    let sent!: (settled: string) => void;
    const answerSent = new Promise<string>((resolve) => (sent = resolve));
    transport.send = (message, options) => {
      const result = send(message, options);
      if (!('method' in message)) result.then(() => sent('resolved'), () => sent('rejected'));
      return result;
    };
    answer();
    expect(await answerSent).toBe('resolved');
    const second = await serve(port);
    cleanup.push(() => second.close());
    await next(transport, 'reconnect', (e) => e.outcome === 'connected');
    expect(await client.callTool({ name: 'write', arguments: { key: 'z' } })).toEqual({ content: [{ type: 'text', text: 'wrote z' }] });
    expect(strays).toEqual([]);
  });
});

describe('WebSocketClientTransport: when it stops reconnecting', () => {
  it('gives up after maxRetries: queued messages fail as never sent, and the transport closes', async () => {
    const first = await app();
    const transport = new WebSocketClientTransport(first.wss.url, { reconnect: { initialDelayMs: 5, maxDelayMs: 10, maxRetries: 2 } });
    const errors: Error[] = [];
    transport.onerror = (e) => errors.push(e);
    const closedOnce = new Promise<void>((resolve) => (transport.onclose = resolve));
    transport.onmessage = () => {};
    await transport.start();
    cleanup.push(() => transport.close());
    const outcomes: string[] = [];
    transport.events.on('reconnect', (e) => outcomes.push(`${e.attempt}:${e.outcome}`));
    const dropped = next(transport, 'connection', (e) => e.state === 'closed');
    await first.wss.close();
    await dropped;
    const queued = transport.send({ jsonrpc: '2.0', id: 1, method: 'ping' });
    await expect(queued).rejects.toMatchObject({ neverSent: true, retryable: true, code: -32000, reason: 'reconnect-failed' });
    await expect(queued).rejects.toThrow(/^websocket client: ping was never sent: gave up reconnecting to ws:\/\/127\.0\.0\.1:\d+\/mcp: .*could not connect/);
    await closedOnce;
    expect(outcomes).toEqual(['1:scheduled', '1:failed', '2:scheduled', '2:failed']);
    expect(errors.at(-1)?.message).toMatch(/gave up reconnecting to ws:\/\/127\.0\.0\.1:\d+\/mcp: .*could not connect/);
    expect(transport.state).toBe('closed');
    await expect(transport.send({ jsonrpc: '2.0', id: 2, method: 'ping' })).rejects.toThrow(/the transport is closed/);
  });

  it('does not reconnect when the server ends the session on purpose (1000)', async () => {
    const server = await app();
    const { transport } = await connected(server.wss.url);
    const closedOnce = new Promise<void>((resolve) => {
      const previous = transport.onclose;
      transport.onclose = () => {
        previous?.();
        resolve();
      };
    });
    const scheduled: unknown[] = [];
    transport.events.on('reconnect', (e) => scheduled.push(e));
    await [...server.wss.connections][0]?.close(1000, 'bye');
    await closedOnce;
    expect(transport.state).toBe('closed');
    expect(scheduled).toEqual([]);
  });

  it('closes with a clear error when the restarted server negotiates another protocol version', async () => {
    const first = await app();
    const port = first.wss.address.port;
    const { transport, errors } = await connected(first.wss.url);
    const closedOnce = new Promise<void>((resolve) => {
      const previous = transport.onclose;
      transport.onclose = () => {
        previous?.();
        resolve();
      };
    });
    await first.wss.close();
    // The "new version" of the server only speaks 2024-11-05.
    const old = new WebSocketServer({ port, host: '127.0.0.1', handleProtocols: () => 'mcp' });
    cleanup.push(() => new Promise((resolve) => old.close(resolve)));
    old.on('connection', (ws) => {
      ws.on('message', (data) => {
        const message = JSON.parse(String(data)) as { id?: unknown; method?: string };
        if (message.method === 'initialize') {
          ws.send(JSON.stringify({ jsonrpc: '2.0', id: message.id, result: { protocolVersion: '2024-11-05', capabilities: {}, serverInfo: { name: 'old', version: '0' } } }));
        }
      });
    });
    await closedOnce;
    expect(errors.map((e) => e.message)).toContainEqual(expect.stringMatching(/negotiated protocol version "2024-11-05" but the session uses 2025-11-25; the session cannot be restored/));
  });

  it('stops when the restarted server refuses the upgrade with 401', async () => {
    const first = await app();
    const port = first.wss.address.port;
    const { transport, errors } = await connected(first.wss.url);
    const closedOnce = new Promise<void>((resolve) => {
      const previous = transport.onclose;
      transport.onclose = () => {
        previous?.();
        resolve();
      };
    });
    await first.wss.close();
    await app(port, { authenticate: () => false });
    await closedOnce;
    expect(errors.at(-1)?.message).toMatch(/gave up reconnecting .*HTTP 401 Unauthorized: .*authenticate\(\) refused it/);
  });
});

describe('WebSocketClientTransport: a refused upgrade while reconnecting', () => {
  /** A transport connected to `first`, and a way to wait for it to close. */
  async function droppedFrom(first: App) {
    const { transport, errors } = await connected(first.wss.url, { reconnect: { initialDelayMs: 5, maxDelayMs: 20, maxRetries: 50 } });
    const closedOnce = new Promise<void>((resolve) => {
      const previous = transport.onclose;
      transport.onclose = () => {
        previous?.();
        resolve();
      };
    });
    const outcomes: string[] = [];
    transport.events.on('reconnect', (e) => outcomes.push(`${e.attempt}:${e.outcome}`));
    const dropped = next(transport, 'connection', (e) => e.state === 'closed');
    await first.wss.close();
    await dropped;
    return { transport, errors, closedOnce, outcomes };
  }

  it('a 404 ends it: one attempt, one clear error, no more connections', async () => {
    const first = await app();
    const port = first.wss.address.port;
    const { transport, errors, closedOnce, outcomes } = await droppedFrom(first);
    // The restarted server serves MCP at another path: /mcp is answered 404.
    const moved = await app(port, { path: '/v2/mcp' });
    const refused: unknown[] = [];
    moved.wss.events.on('connection', (e) => e.state === 'rejected' && refused.push(e.code));
    const held = transport.send({ jsonrpc: '2.0', id: 'held', method: 'ping' });
    await closedOnce;
    expect(refused).toEqual([404]);
    expect(outcomes).toEqual(['1:scheduled', '1:failed']);
    expect(errors.map((e) => e.message)).toEqual([
      expect.stringMatching(/^websocket client: gave up reconnecting to ws:\/\/127\.0\.0\.1:\d+\/mcp: .*refused the WebSocket upgrade: HTTP 404 Not Found: .*endpoint is \/v2\/mcp.*; HTTP 404 is final \(only 408, 425, 429 and 5xx are tried again\)$/),
    ]);
    await expect(held).rejects.toMatchObject({ neverSent: true, reason: 'reconnect-failed' });
    expect(transport.state).toBe('closed');
  });

  it.each([501, 505])('a %i ends it too: it says what the server is, not how it is (docs/errors.md)', async (status) => {
    const first = await app();
    const port = first.wss.address.port;
    const { transport, errors, closedOnce, outcomes } = await droppedFrom(first);
    const refusals: number[] = [];
    const unable = await app(port, {
      authenticate: () => {
        refusals.push(status);
        throw new AuthenticationError('not here', { status, headers: { 'retry-after': '1' } });
      },
    });
    unable.wss.onerror = () => {};
    await closedOnce;
    expect(refusals).toEqual([status]);
    expect(outcomes).toEqual(['1:scheduled', '1:failed']);
    expect(errors.map((e) => e.message)).toEqual([
      expect.stringMatching(new RegExp(`refused the WebSocket upgrade: HTTP ${status} .*; HTTP ${status} is final \\(it says what the server is, not how it is: it answers the same until it is redeployed\\)$`)),
    ]);
    expect(transport.state).toBe('closed');
  });

  it.each([
    [503, 'Service Unavailable'],
    [429, 'Too Many Requests'],
  ])('a %i is tried again, no sooner than its Retry-After asks', async (status) => {
    const first = await app();
    const port = first.wss.address.port;
    const { transport, errors } = await droppedFrom(first);
    const refusals: number[] = [];
    // The restarted server is not ready for this client yet, and says when to come back.
    const busy = await app(port, {
      authenticate: () => {
        refusals.push(status);
        throw new AuthenticationError('not now', { status, headers: { 'retry-after': '1' } });
      },
    });
    busy.wss.onerror = () => {};
    let failed: LayerEvents['reconnect'] | undefined;
    const again = await next(transport, 'reconnect', (e) => {
      if (e.outcome === 'failed' && (e.error as { status?: number } | undefined)?.status === status) failed = e;
      return e.outcome === 'scheduled' && failed !== undefined && e.attempt === failed.attempt + 1;
    });
    expect(failed?.error).toMatchObject({ retryable: true, retryAfterMs: 1000 });
    expect(again.delayMs).toBeGreaterThanOrEqual(1000);
    expect(transport.state).toBe('reconnecting');
    expect(errors).toEqual([]);
    expect(refusals.length).toBeGreaterThanOrEqual(1);
  });
});

describe('WebSocketClientTransport: how long a message waits for the reconnection', () => {
  it('fails a held request after reconnect.queueTimeoutMs as never sent, and keeps reconnecting', async () => {
    const first = await app();
    const { transport } = await connected(first.wss.url, { reconnect: { initialDelayMs: 5, maxDelayMs: 20, maxRetries: Infinity, queueTimeoutMs: 50 } });
    const dropped = next(transport, 'connection', (e) => e.state === 'closed');
    await first.wss.close();
    await dropped;
    const held = transport.send({ jsonrpc: '2.0', id: 'late', method: 'tools/call', params: { name: 'write', arguments: { key: 'k' } } });
    await expect(held).rejects.toMatchObject({ code: -32000, neverSent: true, retryable: true, reason: 'reconnect-timeout' });
    await expect(held).rejects.toThrow(/^websocket client: tools\/call waited 50 ms \(reconnect\.queueTimeoutMs\) for the connection to ws:\/\/127\.0\.0\.1:\d+\/mcp to be restored; it was never sent$/);
    expect(transport.state).toBe('reconnecting');
  });
});

describe('WebSocketClientTransport: what the server sends', () => {
  it.each([
    ['text that is not JSON', (ws: WebSocket) => ws.send('{oops'), 'Invalid MCP message: a message that is not valid JSON (Expected property name or \'}\' in JSON at position 1)'],
    ['text that is not valid UTF-8', (ws: WebSocket) => ws.send(Buffer.from([0x22, 0xc3, 0x28, 0x22]), { binary: false }), 'Invalid MCP message: a text message that is not valid UTF-8'],
  ])('closes with 1007 on %s, and the server reads which problem it was', async (_name, send, reason) => {
    const bad = new WebSocketServer({ port: 0, host: '127.0.0.1', handleProtocols: () => 'mcp', skipUTF8Validation: true });
    cleanup.push(() => new Promise((resolve) => bad.close(resolve)));
    await new Promise((resolve) => bad.once('listening', resolve));
    const closedAtServer = new Promise<{ code: number; reason: string }>((resolve) =>
      bad.once('connection', (ws) => {
        ws.once('close', (code, why) => resolve({ code, reason: why.toString() }));
        send(ws);
      }),
    );
    const transport = new WebSocketClientTransport(`ws://127.0.0.1:${(bad.address() as AddressInfo).port}/mcp`);
    const errors: Error[] = [];
    transport.onerror = (e) => errors.push(e);
    transport.onmessage = () => {};
    cleanup.push(() => transport.close());
    await transport.start();
    expect(await closedAtServer).toEqual({ code: 1007, reason });
    expect(errors[0]?.message).toMatch(/^websocket client: the peer sent .*; closing the connection with 1007$/);
  });
});

describe('WebSocketClientTransport: heartbeats', () => {
  it('the server drops a client that stops answering pings', async () => {
    const server = await app(0, { heartbeat: { intervalMs: 30, timeoutMs: 30 } });
    server.wss.onerror = () => {};
    const missed = new Promise<void>((resolve) => server.wss.events.on('heartbeat', (e) => e.outcome === 'missed' && resolve()));
    const gone = new Promise<void>((resolve) => server.wss.events.on('connection', (e) => e.state === 'closed' && resolve()));
    const { WebSocket } = await import('ws');
    const mute = new WebSocket(server.wss.url, ['mcp'], { autoPong: false });
    cleanup.push(() => mute.terminate());
    const code = await new Promise<number>((resolve) => mute.once('close', resolve));
    await missed;
    await gone;
    expect(code).toBe(1006);
    expect(server.wss.connections.size).toBe(0);
  });

  it('the client detects a server that stopped answering, drops the connection and reconnects', async () => {
    const dead = new WebSocketServer({ port: 0, host: '127.0.0.1', autoPong: false, handleProtocols: () => 'mcp' });
    cleanup.push(() => new Promise((resolve) => dead.close(resolve)));
    await new Promise((resolve) => dead.once('listening', resolve));
    const port = (dead.address() as AddressInfo).port;
    const transport = new WebSocketClientTransport(`ws://127.0.0.1:${port}/`, { heartbeat: { intervalMs: 30, timeoutMs: 30 }, reconnect: { initialDelayMs: 5, maxDelayMs: 5 } });
    transport.onmessage = () => {};
    transport.onerror = () => {};
    cleanup.push(() => transport.close());
    const missed = next(transport, 'heartbeat', (e) => e.outcome === 'missed');
    const reconnected = next(transport, 'reconnect', (e) => e.outcome === 'connected');
    await transport.start();
    const heartbeat = await missed;
    const reconnect = await reconnected;
    expect(heartbeat).toEqual({ outcome: 'missed' });
    expect(reconnect).toMatchObject({ attempt: 1, outcome: 'connected' });
  });
});

describe('WebSocketClientTransport: backpressure', () => {
  it('send() waits while more than highWaterMarkBytes bytes are buffered, and nothing is lost', async () => {
    const sink = new WebSocketServer({ port: 0, host: '127.0.0.1', handleProtocols: () => 'mcp', maxPayload: 1 << 30 });
    cleanup.push(() => new Promise((resolve) => sink.close(resolve)));
    await new Promise((resolve) => sink.once('listening', resolve));
    const received: number[] = [];
    let allReceived!: () => void;
    const everything = new Promise<void>((resolve) => (allReceived = resolve));
    let peer: WebSocket | undefined;
    sink.on('connection', (ws) => {
      peer = ws;
      ws.pause(); // a peer that does not read
      ws.on('message', (data) => {
        received.push((JSON.parse(String(data)) as { params: { n: number } }).params.n);
        if (received.length === total) allReceived();
      });
    });
    const total = 200; // 50 MiB: far more than the kernel buffers of a loopback connection
    const highWaterMark = 64 * 1024;
    const transport = new WebSocketClientTransport(`ws://127.0.0.1:${(sink.address() as AddressInfo).port}/`, { highWaterMarkBytes: highWaterMark, perMessageDeflate: false, heartbeat: false });
    transport.onmessage = () => {};
    cleanup.push(() => transport.close());
    await transport.start();
    const payload = 'x'.repeat(256 * 1024);
    let waited = 0;
    let maxBufferedAfterSend = 0;
    for (let n = 0; n < total; n++) {
      const sent = transport.send({ jsonrpc: '2.0', method: 'notifications/data', params: { n, payload } });
      if (transport.bufferedAmount > highWaterMark) {
        waited++;
        if (peer?.isPaused === true) peer.resume(); // the sender is now waiting: let the peer read
      }
      await sent;
      maxBufferedAfterSend = Math.max(maxBufferedAfterSend, transport.bufferedAmount);
    }
    expect(waited).toBeGreaterThan(0);
    // After each send() resolved, at most what the high-water mark allows (plus one message) was held in memory.
    expect(maxBufferedAfterSend).toBeLessThanOrEqual(highWaterMark + payload.length + 1024);
    await everything;
    expect(received).toEqual(Array.from({ length: total }, (_, i) => i));
  });
});

describe('WebSocketClientTransport: backpressure with many concurrent senders', () => {
  it('holds all but what fits, then delivers every message in the order send() was called', async () => {
    const sink = new WebSocketServer({ port: 0, host: '127.0.0.1', handleProtocols: () => 'mcp', maxPayload: 1 << 30 });
    cleanup.push(() => new Promise((resolve) => sink.close(resolve)));
    await new Promise((resolve) => sink.once('listening', resolve));
    const total = 100;
    const received: number[] = [];
    let allReceived!: () => void;
    const everything = new Promise<void>((resolve) => (allReceived = resolve));
    let peer: WebSocket | undefined;
    const connected = new Promise<void>((resolve) =>
      sink.on('connection', (ws) => {
        peer = ws;
        ws.pause();
        ws.on('message', (data) => {
          received.push((JSON.parse(String(data)) as { params: { n: number } }).params.n);
          if (received.length === total) allReceived();
        });
        resolve();
      }),
    );
    const transport = new WebSocketClientTransport(`ws://127.0.0.1:${(sink.address() as AddressInfo).port}/`, { highWaterMarkBytes: 1024, perMessageDeflate: false, heartbeat: false });
    transport.onmessage = () => {};
    cleanup.push(() => transport.close());
    await transport.start();
    await connected;
    const payload = 'y'.repeat(64 * 1024);
    const sends = Array.from({ length: total }, (_, n) => transport.send({ jsonrpc: '2.0', method: 'notifications/data', params: { n, payload } }));
    // Only the first message went to the socket; the other 99 wait their turn in this process, not in the socket's buffer.
    expect(transport.bufferedAmount).toBeLessThanOrEqual(payload.length + 1024);
    peer?.resume();
    await Promise.all(sends);
    await everything;
    expect(received).toEqual(Array.from({ length: total }, (_, i) => i));
  });
});

describe('WebSocketClientTransport: backpressure when the connection drops', () => {
  it('holds the messages still waiting for the socket, and writes them in order on the next connection', async () => {
    const sink = new WebSocketServer({ port: 0, host: '127.0.0.1', handleProtocols: () => 'mcp', maxPayload: 1 << 30 });
    cleanup.push(
      () =>
        new Promise((resolve) => {
          for (const ws of sink.clients) ws.terminate();
          sink.close(resolve);
        }),
    );
    await new Promise((resolve) => sink.once('listening', resolve));
    const onSecond: number[] = [];
    let markerSeen!: () => void;
    const marker = new Promise<void>((resolve) => (markerSeen = resolve));
    let connections = 0;
    let first: WebSocket | undefined;
    const firstOpen = new Promise<void>((resolve) => sink.once('connection', () => resolve()));
    sink.on('connection', (ws) => {
      // The first connection reads nothing: the client's sends pile up behind its socket.
      if (++connections === 1) {
        first = ws;
        return void ws.pause();
      }
      ws.on('message', (data) => {
        const n = (JSON.parse(String(data)) as { params: { n: number } }).params.n;
        if (n === -1) markerSeen();
        else onSecond.push(n);
      });
    });
    const transport = new WebSocketClientTransport(`ws://127.0.0.1:${(sink.address() as AddressInfo).port}/`, {
      highWaterMarkBytes: 1024,
      perMessageDeflate: false,
      heartbeat: false,
      reconnect: { initialDelayMs: 5, maxDelayMs: 20, maxQueuedBytes: 64 * 1024 * 1024 },
    });
    transport.onmessage = () => {};
    transport.onerror = () => {};
    cleanup.push(() => transport.close());
    await transport.start();
    await firstOpen;
    // 20 MiB: more than the socket buffers of the first connection can take.
    const total = 20;
    const payload = 'y'.repeat(1024 * 1024);
    const sends = Array.from({ length: total }, (_, n) =>
      transport.send({ jsonrpc: '2.0', method: 'notifications/data', params: { n, payload } }).then(
        () => 'sent',
        (error: { neverSent?: boolean }) => `failed, neverSent: ${error.neverSent}`,
      ),
    );
    first?.terminate();
    const outcomes = await Promise.all(sends);
    await transport.send({ jsonrpc: '2.0', method: 'notifications/data', params: { n: -1 } });
    await marker;
    // Those handed to the dropped socket are lost with it (sent, or failed as possibly sent:
    // never sent again); every one still waiting was held and written on the second connection.
    const held = onSecond[0] as number;
    expect(onSecond.length).toBeGreaterThan(0);
    expect(onSecond).toEqual(Array.from({ length: total - held }, (_, i) => held + i));
    expect(outcomes.filter((o) => o !== 'sent' && o !== 'failed, neverSent: false')).toEqual([]);
    expect(outcomes.slice(held)).toEqual(Array.from({ length: total - held }, () => 'sent'));
  });
});

describe('WebSocketClientTransport: JSON-RPC arrays', () => {
  it('sends an array as one frame and hands a received array over one message at a time', async () => {
    const peer = new WebSocketServer({ port: 0, host: '127.0.0.1', handleProtocols: () => 'mcp' });
    cleanup.push(() => new Promise((resolve) => peer.close(resolve)));
    await new Promise((resolve) => peer.once('listening', resolve));
    const frames: unknown[] = [];
    peer.on('connection', (ws) => {
      ws.on('message', (data) => {
        const frame = JSON.parse(String(data)) as Array<{ id: number }>;
        frames.push(frame);
        ws.send(JSON.stringify(frame.map((m) => ({ jsonrpc: '2.0', id: m.id, result: { echoed: m.id } }))));
      });
    });
    const transport = new WebSocketClientTransport(`ws://127.0.0.1:${(peer.address() as AddressInfo).port}/`);
    const delivered: JSONRPCMessage[] = [];
    const both = new Promise<void>((resolve) => {
      transport.onmessage = (m) => {
        delivered.push(m);
        if (delivered.length === 2) resolve();
      };
    });
    cleanup.push(() => transport.close());
    await transport.start();
    await transport.send([
      { jsonrpc: '2.0', id: 1, method: 'ping' },
      { jsonrpc: '2.0', id: 2, method: 'ping' },
    ]);
    await both;
    expect(frames).toEqual([[{ jsonrpc: '2.0', id: 1, method: 'ping' }, { jsonrpc: '2.0', id: 2, method: 'ping' }]]);
    expect(delivered).toEqual([
      { jsonrpc: '2.0', id: 1, result: { echoed: 1 } },
      { jsonrpc: '2.0', id: 2, result: { echoed: 2 } },
    ]);
  });
});

describe('WebSocketClientTransport: options', () => {
  it('names the option and the expectation when an option is wrong', () => {
    expect(() => new WebSocketClientTransport('http://127.0.0.1/mcp')).toThrow('WebSocketClientTransport(url): expected a ws:// or wss:// URL, got "http://127.0.0.1/mcp"');
    expect(() => new WebSocketClientTransport('ws://127.0.0.1/mcp', { reconnect: { maxRetries: 'three' as never } })).toThrow(
      'WebSocketClientTransport.reconnect.maxRetries: expected an integer >= 1, got "three"',
    );
    expect(() => new WebSocketClientTransport('ws://127.0.0.1/mcp', { heartbeat: { intervalMs: -1 } })).toThrow(
      'WebSocketClientTransport.heartbeat.intervalMs: expected a duration in milliseconds >= 1, got -1',
    );
    expect(() => new WebSocketClientTransport('ws://127.0.0.1/mcp', { reconnect: { initialDelayMs: 500, maxDelayMs: 100 } })).toThrow(/maxDelayMs: expected a number >= initialDelayMs/);
    expect(() => new WebSocketClientTransport('ws://127.0.0.1/mcp', { reconect: false } as never)).toThrow(/^WebSocketClientTransport\.reconect: expected one of the known options \(maxPayloadBytes, .*reconnect.*\), got "an unknown option"$/);
    expect(() => new WebSocketClientTransport('ws://127.0.0.1/mcp', { heartbeat: { interval: 5 } as never })).toThrow(/^WebSocketClientTransport\.heartbeat\.interval: expected one of the known options \(intervalMs, timeoutMs\)/);
    expect(() => new WebSocketClientTransport('ws://127.0.0.1/mcp', { reconnect: { queueTimeoutMs: 0 } })).toThrow(
      'WebSocketClientTransport.reconnect.queueTimeoutMs: expected a duration in milliseconds >= 1, got 0',
    );
  });

  it('fails start() with a clear error when nothing listens, and never reconnects before the first connection', async () => {
    const probe = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    await new Promise((resolve) => probe.once('listening', resolve));
    const port = (probe.address() as AddressInfo).port;
    await new Promise((resolve) => probe.close(resolve));
    const transport = new WebSocketClientTransport(`ws://127.0.0.1:${port}/mcp`);
    const scheduled: unknown[] = [];
    transport.events.on('reconnect', (e) => scheduled.push(e));
    await expect(transport.start()).rejects.toThrow(/could not connect to ws:\/\/127\.0\.0\.1:\d+\/mcp: .*ECONNREFUSED/);
    expect(scheduled).toEqual([]);
  });
});
