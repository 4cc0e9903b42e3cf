/**
 * MCP over WebSocket with mcp-layers/ws: a server restarts under a connected SDK client,
 * and the client carries on.
 *
 *   node examples/websocket.ts
 *
 * In your own code import from 'mcp-layers' and 'mcp-layers/ws' instead of '../…'.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import { wrap } from '#mcp-layers';
import { listenWebSocket, WebSocketClientTransport } from '#mcp-layers/ws';

/** One McpServer per connection, as for any multi-client transport. */
function serve(port: number, generation: number) {
  return listenWebSocket({
    port, // host defaults to 127.0.0.1
    onconnection: async (transport) => {
      const server = new McpServer({ name: 'ws-example', version: `${generation}.0.0` });
      server.registerTool('whoami', { inputSchema: { name: z.string() }, annotations: { readOnlyHint: true } }, async ({ name }) => ({
        content: [{ type: 'text', text: `hello ${name}, this is server generation ${generation}` }],
      }));
      await server.connect(wrap(transport, []));
    },
  });
}

let server = await serve(0, 1);
const port = server.address.port;

const transport = new WebSocketClientTransport(server.url, { reconnect: { initialDelayMs: 50, maxDelayMs: 500 } });
transport.events.on('connection', (e) => console.log(`connection ${e.state}${e.code === undefined ? '' : ` (${e.code}${e.reason ? `: ${e.reason}` : ''})`}`));
transport.events.on('reconnect', (e) => console.log(`reconnect attempt ${e.attempt}: ${e.outcome}${e.outcome === 'scheduled' ? ` in ${Math.round(e.delayMs)} ms` : ''}`));

const client = new Client({ name: 'ws-example-client', version: '1.0.0' });
await client.connect(wrap(transport, []));
const say = async () => ((await client.callTool({ name: 'whoami', arguments: { name: 'ada' } })).content as Array<{ text: string }>)[0]?.text;

console.log(await say());
await server.close(); // clients are told 1001 (going away) and start reconnecting
server = await serve(port, 2); // the "new deployment" on the same port
console.log(await say()); // the same Client, unaware: the handshake was replayed for it

await client.close();
await server.close();
