/**
 * Issue 2 benchmark: what wrap() itself costs. Exchanges per second over the SDK's
 * InMemoryTransport, bare vs wrap(t, []) vs wrap(t, [five pass-through layers]):
 *   - "raw": a minimal JSON-RPC responder on the far end (the core's cost, undiluted);
 *   - "sdk": an SDK v1 Client calling a tool on an SDK McpServer (what users run).
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import type { JSONRPCMessage, LayerLike, Middleware, Transport } from '#mcp-layers';
import { wrap } from '#mcp-layers';
import { pingExchange, type Variant } from './harness.ts';

const passThrough: Middleware = async (_ctx, next) => {
  await next();
};
export const fivePassThrough: LayerLike[] = Array.from({ length: 5 }, () => passThrough);

type Wrapper = ((t: Transport) => Transport) | undefined;

/** A far end that answers every request at once, and a client side that awaits each response. */
export function rawVariant(name: string, wrapper: Wrapper): Variant {
  return {
    name,
    async setup() {
      const [near, far] = InMemoryTransport.createLinkedPair();
      far.onmessage = (m: JSONRPCMessage) => {
        if ('method' in m && 'id' in m) void far.send({ jsonrpc: '2.0', id: m.id, result: {} });
      };
      await far.start();
      const client = wrapper ? wrapper(near) : near;
      return {
        exchange: await pingExchange(client as Parameters<typeof pingExchange>[0]),
        close: () => client.close(),
      };
    },
  };
}

/** The SDK v1 server every SDK-level scenario calls: one `echo` tool. */
export function echoServer(): McpServer {
  const server = new McpServer({ name: 'bench', version: '1.0.0' });
  server.registerTool('echo', { inputSchema: { text: z.string() } }, async ({ text }) => ({ content: [{ type: 'text', text }] }));
  return server;
}

/** SDK v1 Client → McpServer tools/call, the client transport wrapped. */
export function sdkVariant(name: string, wrapper: Wrapper): Variant {
  return {
    name,
    async setup() {
      const server = echoServer();
      const [near, far] = InMemoryTransport.createLinkedPair();
      await server.connect(far);
      const client = new Client({ name: 'bench', version: '1.0.0' });
      await client.connect(wrapper ? wrapper(near) : near);
      return {
        exchange: async () => {
          await client.callTool({ name: 'echo', arguments: { text: 'hi' } });
        },
        close: () => client.close(),
      };
    },
  };
}

export type MakeVariant = (name: string, wrapper: Wrapper) => Variant;

export const coreVariants = (make: MakeVariant): Variant[] => [
  make('bare', undefined),
  make('wrap(t, [])', (t) => wrap(t, [])),
  make('wrap(t, [5 pass-through])', (t) => wrap(t, fivePassThrough)),
];
