/**
 * The official SDKs over Streamable HTTP with mcp-layers/http on both ends: the client's
 * StreamableHTTPClientTransport uses createFetch(), the server's transports are served by
 * McpHttpServer (sessions, compression, limits). Both sides wrapped, the client with
 * standard().
 */
import { createMcpHandler } from '@modelcontextprotocol/server';
import { afterEach, describe, expect, it } from 'vitest';
import { standard } from '#middleware/index.ts';
import { wrap } from '#core/index.ts';
import { createFetch, listenHttp, type McpFetch, type McpHttpServer } from '#transports/http/index.ts';
import { makeClientTransport, makeServerTransport } from '../support/http.ts';
import { type TestServer, transportClient, transportServer } from '../support/apps.ts';
import { type Sdk, type TestClient, textOf } from '../support/clients.ts';

const pairs: Array<[Sdk, Sdk | 'v1-node']> = [
  ['v1', 'v1'],
  ['v2', 'v2'],
  ['v1', 'v2'],
  ['v2', 'v1-node'],
];

describe.each(pairs)('SDK %s Client ↔ SDK %s McpServer over Streamable HTTP', (clientVersion, serverKind) => {
  let http: McpHttpServer | undefined;
  let fetch: McpFetch | undefined;
  let client: TestClient | undefined;
  const servers: TestServer[] = [];

  afterEach(async () => {
    await client?.close();
    await http?.close();
    await fetch?.close();
    await Promise.all(servers.splice(0).map((s) => s.close()));
  });

  async function connect(): Promise<TestClient> {
    http = await listenHttp({
      sessions: async () => {
        const transport = wrap(makeServerTransport(serverKind), []);
        const server = transportServer(serverKind === 'v2' ? 'v2' : 'v1');
        servers.push(server);
        await server.connect(transport);
        return transport;
      },
    });
    fetch = createFetch({ connections: 8 });
    client = transportClient(clientVersion);
    await client.connect(wrap(makeClientTransport(clientVersion, http.url, fetch), [standard()]));
    return client;
  }

  it('lists and calls tools, reads resources and gets prompts', async () => {
    const c = await connect();
    expect((await c.listTools()).tools.map((t) => t.name).toSorted()).toEqual(['ask', 'count', 'echo']);
    expect(textOf(await c.callTool({ name: 'echo', arguments: { text: 'over http' } }))).toBe('over http');
    expect((await c.readResource({ uri: 'doc://readme' })).contents[0]?.text).toContain('mcp-layers test resource.');
    expect((await c.getPrompt({ name: 'greet', arguments: { name: 'Grace' } })).messages[0]?.content).toEqual({ type: 'text', text: 'Hello, Grace!' });
    expect(http?.sessions.size).toBe(1);
  });

  it('relays progress notifications before the result', async () => {
    const c = await connect();
    const seen: number[] = [];
    const result = await c.callTool({ name: 'count', arguments: { to: 4 } }, { onprogress: (p) => seen.push(p.progress) });
    expect(seen).toEqual([1, 2, 3, 4]);
    expect(textOf(result)).toBe('counted to 4');
  });

  it('carries a server→client request (sampling) on the request stream', async () => {
    const c = await connect();
    expect(textOf(await c.callTool({ name: 'ask', arguments: { prompt: 'how?' } }))).toBe('sampled: how?');
  });
});

/*
 * The 2026-07-28 era over Streamable HTTP: v2's createMcpHandler (per-request servers)
 * served as a fetch-style handler by McpHttpServer, a negotiating v2 Client on createFetch.
 */
describe('SDK v2 in the 2026-07-28 era over Streamable HTTP', () => {
  let http: McpHttpServer | undefined;
  let fetch: McpFetch | undefined;
  let client: TestClient | undefined;
  let handler: { close(): Promise<void> } | undefined;

  afterEach(async () => {
    await client?.close();
    await http?.close();
    await handler?.close();
    await fetch?.close();
  });

  it('negotiates with server/discover and calls tools (with progress), resources and prompts', async () => {
    const mcp = createMcpHandler(() => transportServer('v2') as never);
    handler = mcp;
    http = await listenHttp({ handler: (request, extra) => mcp.fetch(request, extra as never) });
    fetch = createFetch();
    client = transportClient('v2', { modern: true });
    const wrapped = wrap(makeClientTransport('v2', http.url, fetch), [standard()]);
    await client.connect(wrapped);
    expect(wrapped.protocolVersion).toBe('2026-07-28');
    expect(textOf(await client.callTool({ name: 'echo', arguments: { text: 'modern http' } }))).toBe('modern http');
    const seen: number[] = [];
    expect(textOf(await client.callTool({ name: 'count', arguments: { to: 3 } }, { onprogress: (p) => seen.push(p.progress) }))).toBe('counted to 3');
    expect(seen).toEqual([1, 2, 3]);
    expect((await client.readResource({ uri: 'doc://readme' })).contents).toHaveLength(1);
    expect((await client.getPrompt({ name: 'greet', arguments: { name: 'Lin' } })).messages[0]?.content).toEqual({ type: 'text', text: 'Hello, Lin!' });
  });
});
