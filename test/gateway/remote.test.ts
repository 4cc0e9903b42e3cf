/**
 * Remote upstreams: a Streamable HTTP server (one upstream session per downstream session,
 * over one pooled undici Agent that every session shares) and a WebSocket server (one
 * connection per session), with server→client requests going all the way through; an
 * upstream that cannot be reached answers the client with an error, never silence.
 */
import http from 'node:http';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterEach, describe, expect, it } from 'vitest';
import { McpHttpServer } from '#transports/http/index.ts';
import { listenWebSocket, WebSocketClientTransport } from '#transports/ws/index.ts';
import type { Transport } from '#core/transport.ts';
import { createV1Client, type TestClient } from '../support/clients.ts';
import { makeServerTransport } from '../support/http.ts';
import { startServer } from '../support/run.ts';
import { startTestGateway, type TestGateway } from '../support/gateway.ts';

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function gateway(upstream: Parameters<typeof startTestGateway>[0]['upstream']): Promise<TestGateway> {
  const gw = await startTestGateway({ upstream });
  cleanups.push(() => gw.stop(0));
  return gw;
}

async function client(url: string): Promise<TestClient> {
  const c = createV1Client();
  await c.connect(url.startsWith('ws') ? new WebSocketClientTransport(url, { reconnect: false }) : (new StreamableHTTPClientTransport(new URL(url)) as unknown as Transport));
  cleanups.push(() => c.close());
  return c;
}

describe('an http(s) upstream', () => {
  it('gets one upstream session per downstream session, over a shared pool of connections', async () => {
    const server = http.createServer();
    let accepted = 0;
    server.on('connection', () => void accepted++);
    const upstream = new McpHttpServer({ server, sessions: async () => {
      const transport = makeServerTransport('v1');
      await startServer('v1', transport);
      return transport;
    } });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(async () => {
      await upstream.close();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    });
    const { port } = server.address() as { port: number };
    const gw = await gateway({ url: `http://127.0.0.1:${port}/mcp`, http: { connections: 8 } });

    const clients = await Promise.all([client(gw.http), client(gw.http), client(gw.ws)]);
    let requests = 0;
    for (const [i, c] of clients.entries()) {
      for (let n = 0; n < 5; n++) {
        expect(await c.callTool('add', { a: i, b: n })).toEqual({ content: [{ type: 'text', text: String(i + n) }] });
        requests++;
      }
      // A server→client request travels upstream server → gateway → client, and the answer back.
      expect(await c.callTool('sample', { prompt: `hi ${i}` })).toMatchObject({ content: [{ type: 'text', text: expect.stringContaining(`sampled: hi ${i}`) }] });
    }
    expect(upstream.sessions.size).toBe(3);
    expect(new Set([...gw.gateway.sessions].map((s) => s.upstream?.sessionId)).size).toBe(3);
    // initialize, initialized, a GET stream, 6 calls and a sampling answer per session: far more
    // requests than connections — they were pooled, and the pool's limit held.
    expect(requests).toBe(15);
    expect(accepted).toBeLessThanOrEqual(8);
  });

  it('an upstream that cannot be reached: initialize fails with an error that says why', async () => {
    const unused = http.createServer();
    await new Promise<void>((resolve) => unused.listen(0, '127.0.0.1', resolve));
    const { port } = unused.address() as { port: number };
    await new Promise((resolve) => unused.close(resolve));
    const gw = await gateway({ url: `http://127.0.0.1:${port}/mcp` });
    const c = new Client({ name: 'unreachable', version: '1.0.0' });
    await expect(c.connect(new StreamableHTTPClientTransport(new URL(gw.http)))).rejects.toThrow(/MCP error -3205\d: .*(fetch failed|ECONNREFUSED)/);
  });
});

describe('a ws(s) upstream', () => {
  it('gets one WebSocket connection per downstream session; sampling and elicitation go through', async () => {
    const wss = await listenWebSocket({ onconnection: async (transport) => void (await startServer('v1', transport)) });
    cleanups.push(() => wss.close());
    const gw = await gateway({ url: wss.url });
    const [a, b] = await Promise.all([client(gw.http), client(gw.ws)]);
    expect(wss.connections.size).toBe(2);
    expect(await (a as TestClient).callTool('elicit', { question: 'ok?' })).toMatchObject({ content: [{ type: 'text', text: expect.stringContaining('accept') }] });
    expect(await (b as TestClient).callTool('sample', { prompt: 'hello' })).toMatchObject({ content: [{ type: 'text', text: expect.stringContaining('sampled: hello') }] });
  });
});
