/**
 * The official SDKs, unchanged, over mcp-layers/ws: every pairing of v1/v2 Client with
 * v1/v2 McpServer, both sides wrapped (the client with standard()), over a real socket
 * on 127.0.0.1.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { standard } from '#middleware/index.ts';
import { wrap } from '#core/index.ts';
import { listenWebSocket, type McpWebSocketServer, WebSocketClientTransport } from '#transports/ws/index.ts';
import { modernTransportServer, type TestServer, transportClient, transportServer } from '../support/apps.ts';
import { type Sdk, type TestClient, textOf } from '../support/clients.ts';

const pairs: Array<[Sdk, Sdk]> = [
  ['v1', 'v1'],
  ['v1', 'v2'],
  ['v2', 'v1'],
  ['v2', 'v2'],
];

describe.each(pairs)('SDK %s Client ↔ SDK %s McpServer over WebSocket', (clientVersion, serverVersion) => {
  let wss: McpWebSocketServer | undefined;
  let client: TestClient | undefined;
  const servers: TestServer[] = [];

  afterEach(async () => {
    await client?.close();
    await wss?.close();
    await Promise.all(servers.splice(0).map((s) => s.close()));
  });

  async function connect(): Promise<TestClient> {
    wss = await listenWebSocket({
      onconnection: async (transport) => {
        const server = transportServer(serverVersion);
        servers.push(server);
        await server.connect(wrap(transport, [], { events: transport.events }));
      },
    });
    client = transportClient(clientVersion);
    const transport = new WebSocketClientTransport(wss.url);
    await client.connect(wrap(transport, [standard()], { events: transport.events }));
    return client;
  }

  it('lists and calls tools, reads resources and gets prompts', async () => {
    const c = await connect();
    expect(c.getServerVersion()?.name).toBe(`test-server-${serverVersion}`);
    const { tools } = await c.listTools();
    expect(tools.map((t) => t.name).toSorted()).toEqual(['ask', 'count', 'echo']);
    expect(textOf(await c.callTool({ name: 'echo', arguments: { text: 'over ws' } }))).toBe('over ws');
    const resource = await c.readResource({ uri: 'doc://readme' });
    expect(resource.contents[0]?.text).toContain('mcp-layers test resource.');
    const prompt = await c.getPrompt({ name: 'greet', arguments: { name: 'Ada' } });
    expect(prompt.messages[0]?.content).toEqual({ type: 'text', text: 'Hello, Ada!' });
    await c.ping();
  });

  it('relays progress notifications to the caller, in order, before the result', async () => {
    const c = await connect();
    const seen: number[] = [];
    const result = await c.callTool({ name: 'count', arguments: { to: 5 } }, { onprogress: (p) => seen.push(p.progress) });
    expect(seen).toEqual([1, 2, 3, 4, 5]);
    expect(textOf(result)).toBe('counted to 5');
  });

  it('carries a server→client request (sampling) inside a tool call', async () => {
    const c = await connect();
    expect(textOf(await c.callTool({ name: 'ask', arguments: { prompt: 'why?' } }))).toBe('sampled: why?');
  });
});

/*
 * The v2 SDK serves the 2026-07-28 era only through its own HTTP and stdio entries (they
 * classify each opening message); `McpServer.connect()` on a plain transport — any, ours
 * included — answers `server/discover` with -32601. A negotiating v2 client then falls
 * back to the 2025 handshake: the probe and the fallback must cross our transport intact.
 */
describe('SDK v2 Client in negotiating mode over WebSocket', () => {
  let wss: McpWebSocketServer | undefined;
  let client: TestClient | undefined;
  afterEach(async () => {
    await client?.close();
    await wss?.close();
  });

  it('probes with server/discover, falls back to initialize, and works', async () => {
    wss = await listenWebSocket({
      onconnection: async (transport) => {
        await modernTransportServer().connect(wrap(transport, []));
      },
    });
    client = transportClient('v2', { modern: true });
    const transport = new WebSocketClientTransport(wss.url);
    const sent: string[] = [];
    const wrapped = wrap(transport, [
      async (ctx, next) => {
        if (ctx.direction === 'outbound') sent.push(ctx.method);
        await next();
      },
    ]);
    await client.connect(wrapped);
    expect(sent.slice(0, 3)).toEqual(['server/discover', 'initialize', 'notifications/initialized']);
    expect(wrapped.protocolVersion).toBe('2025-11-25');
    expect(textOf(await client.callTool({ name: 'echo', arguments: { text: 'negotiated' } }))).toBe('negotiated');
  });
});
