/**
 * The gateway's cost: an SDK Client calling a tool of the example stdio server, directly
 * (the bare baseline) and through `mcp-layers gateway` over WebSocket and Streamable HTTP,
 * with the default stacks (tracing, metrics, logging upstream; tracing, metrics downstream)
 * and with none.
 */
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { LayerEntry } from '#gateway/config/layers.ts';
import { createGatewayLogger, Gateway, validateConfig } from '#gateway/index.ts';
import { WebSocketClientTransport } from '#transports/ws/index.ts';
import type { Variant } from './harness.ts';

const SERVER = fileURLToPath(new URL('../examples/demo-server.ts', import.meta.url));

function variant(name: string, connect: () => Promise<{ client: Client; close: () => Promise<void> }>): Variant {
  return {
    name,
    async setup() {
      const { client, close } = await connect();
      return {
        exchange: async () => void (await client.callTool({ name: 'echo', arguments: { text: 'bench' } })),
        close: async () => {
          await client.close();
          await close();
        },
      };
    },
  };
}

function throughGateway(name: string, listener: 'http' | 'websocket', layers?: { upstream: LayerEntry[]; downstream: LayerEntry[] }): Variant {
  return variant(name, async () => {
    const config = {
      upstream: { command: process.execPath, args: [SERVER], ...(layers === undefined ? {} : { layers: layers.upstream }) },
      downstream: { port: 0, ...(layers === undefined ? {} : { layers: layers.downstream }) },
    };
    const gateway = await Gateway.start(validateConfig(config, 'bench'), { logger: createGatewayLogger({ level: 'error', format: 'json' }) });
    const client = new Client({ name: 'bench', version: '1.0.0' });
    const { http, websocket } = gateway.urls;
    await client.connect(listener === 'http' ? new StreamableHTTPClientTransport(new URL(http as string)) : new WebSocketClientTransport(websocket as string, { reconnect: false }));
    return { client, close: () => gateway.shutdown(0) };
  });
}

export function gatewayVariants(): Variant[] {
  return [
    variant('direct over stdio (bare)', async () => {
      const client = new Client({ name: 'bench', version: '1.0.0' });
      await client.connect(new StdioClientTransport({ command: process.execPath, args: [SERVER] }));
      return { client, close: async () => {} };
    }),
    throughGateway('gateway over WebSocket, no layers', 'websocket', { upstream: [], downstream: [] }),
    throughGateway('gateway over WebSocket, default stacks', 'websocket'),
    throughGateway('gateway over Streamable HTTP, default stacks', 'http'),
  ];
}
