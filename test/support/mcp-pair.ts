/**
 * A real SDK v1 client and server in one process, over the SDK's InMemoryTransport,
 * each side wrapped in the layers a test gives.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import type { LayerLike } from '#core/layer.ts';
import { type LayeredTransport, wrap, type WrapOptions } from '#core/wrap.ts';

export interface Pair {
  client: Client;
  server: McpServer;
  clientTransport: LayeredTransport;
  serverTransport: LayeredTransport;
  /** `_meta` of every tools/call the server's handlers saw. */
  seenMeta: Array<Record<string, unknown> | undefined>;
  close(): Promise<void>;
}

export function testServer(seenMeta: Pair['seenMeta'] = []): McpServer {
  const server = new McpServer({ name: 'test-server', version: '1.0.0' });
  server.registerTool(
    'echo',
    { description: 'Echoes its text', inputSchema: { text: z.string() }, annotations: { readOnlyHint: true } },
    async ({ text }, extra) => {
      seenMeta.push(extra._meta as Record<string, unknown> | undefined);
      return { content: [{ type: 'text', text }] };
    },
  );
  server.registerTool('fail', { description: 'Always reports a tool error', inputSchema: { why: z.string() } }, async ({ why }) => ({
    content: [{ type: 'text', text: `failed: ${why}` }],
    isError: true,
  }));
  server.registerPrompt('greet', { description: 'Greets', argsSchema: { name: z.string() } }, ({ name }) => ({
    messages: [{ role: 'user', content: { type: 'text', text: `Hello ${name}` } }],
  }));
  server.registerResource('readme', 'file:///readme.md', { description: 'A readme' }, async (uri) => ({
    contents: [{ uri: uri.href, text: '# readme' }],
  }));
  return server;
}

export async function connectPair(
  clientLayers: readonly LayerLike[],
  serverLayers: readonly LayerLike[],
  options: { client?: WrapOptions; server?: WrapOptions } = {},
): Promise<Pair> {
  const [a, b] = InMemoryTransport.createLinkedPair();
  const seenMeta: Pair['seenMeta'] = [];
  const server = testServer(seenMeta);
  const serverTransport = wrap(b, serverLayers, { name: 'server', ...options.server });
  const clientTransport = wrap(a, clientLayers, { name: 'client', ...options.client });
  await server.connect(serverTransport);
  const client = new Client({ name: 'test-client', version: '1.0.0' });
  await client.connect(clientTransport);
  return {
    client,
    server,
    clientTransport,
    serverTransport,
    seenMeta,
    close: async () => {
      await client.close();
      await server.close();
    },
  };
}
