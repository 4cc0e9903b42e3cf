/**
 * A wrapped SDK client talking to a wrapped SDK server, printing what flowed.
 *
 *   node examples/quickstart.ts
 *
 * In your own code import from 'mcp-layers': here `#mcp-layers` (package.json
 * imports) names the same entry points in this repository.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import { type Middleware, wrap } from '#mcp-layers';

/** A layer is a function: this one prints every exchange with its duration and outcome. */
const trace =
  (side: string): Middleware =>
  async (ctx, next) => {
    const started = performance.now();
    try {
      await next();
    } finally {
      const ms = (performance.now() - started).toFixed(2);
      const outcome = ctx.kind === 'notification' ? (ctx.direction === 'outbound' ? 'sent' : 'delivered') : ctx.response && 'error' in ctx.response ? `error ${ctx.response.error.code}` : 'ok';
      const arrow = ctx.direction === 'outbound' ? '→' : '←';
      console.log(`${side.padEnd(6)} ${arrow} ${ctx.kind.padEnd(12)} ${`${ctx.method}${ctx.target ? ` ${ctx.target}` : ''}`.padEnd(34)} ${outcome.padEnd(8)} ${ms} ms`);
    }
  };

const server = new McpServer({ name: 'quickstart-server', version: '1.0.0' });
server.registerTool('add', { description: 'Adds two numbers', inputSchema: { a: z.number(), b: z.number() }, annotations: { readOnlyHint: true } }, async ({ a, b }) => ({
  content: [{ type: 'text', text: String(a + b) }],
}));
server.registerResource('greeting', 'greeting://hello', { mimeType: 'text/plain' }, async (uri) => ({ contents: [{ uri: uri.href, text: 'Hello from the server' }] }));

const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
await server.connect(wrap(serverSide, [trace('server')], { name: 'server' }));

const client = new Client({ name: 'quickstart-client', version: '1.0.0' });
const transport = wrap(clientSide, [trace('client')], { name: 'client' });
await client.connect(transport);

const { tools } = await client.listTools();
const sum = await client.callTool({ name: 'add', arguments: { a: 2, b: 3 } });
const greeting = await client.readResource({ uri: 'greeting://hello' });
await client.ping();

console.log('');
console.log(`tools: ${tools.map((t) => t.name).join(', ')}`);
console.log(`add(2, 3) = ${(sum.content as Array<{ text: string }>)[0]?.text}`);
console.log(`greeting: ${(greeting.contents[0] as { text: string }).text}`);
console.log(`negotiated protocol ${transport.protocolVersion}; open exchanges after the run: ${JSON.stringify(transport.stats())}`);
await client.close();
