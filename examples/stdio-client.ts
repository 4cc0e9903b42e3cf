/**
 * A wrapped stdio client: the SDK's Client talks to a stdio MCP server (examples/demo-server.ts,
 * itself a wrapped server) through standard() — bulkhead, total timeout, retry, circuit
 * breaker, attempt timeout — plus a layer of our own that prints every exchange.
 *
 *   node examples/stdio-client.ts
 *
 * In your own code import from 'mcp-layers': here `#mcp-layers` (package.json
 * imports) names the same entry points in this repository.
 */
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { type Middleware, standard, timeout, when, wrap } from '#mcp-layers';

const print: Middleware = async (ctx, next) => {
  const started = performance.now();
  await next();
  if (ctx.kind !== 'request') return;
  const outcome = ctx.response !== undefined && 'error' in ctx.response ? `error ${ctx.response.error.code}` : 'ok';
  console.log(`  ${`${ctx.method}${ctx.target === undefined ? '' : ` ${ctx.target}`}`.padEnd(30)} ${outcome.padEnd(6)} attempts=${ctx.attempts} ${(performance.now() - started).toFixed(1)} ms`);
};

const server = new StdioClientTransport({ command: process.execPath, args: [fileURLToPath(new URL('./demo-server.ts', import.meta.url))] });
const transport = wrap(server, [
  print,
  // Slow tools get two minutes; standard()'s own 30 s total / 10 s attempt deadlines cover the rest.
  when({ method: 'tools/call', tool: 'slow_*' }, timeout({ totalMs: 120_000 })),
  standard({ totalTimeout: 30_000, attemptTimeout: 10_000 }),
]);

const client = new Client({ name: 'stdio-client-example', version: '1.0.0' });
console.log('exchanges:');
await client.connect(transport);
const { tools } = await client.listTools();
const sum = await client.callTool({ name: 'add', arguments: { a: 20, b: 22 } });
const report = await client.callTool({ name: 'slow_report', arguments: { steps: 3, stepMs: 50 } }, undefined, {
  onprogress: (p) => console.log(`  progress ${p.progress}/${p.total}`),
});
const note = await client.readResource({ uri: 'notes://note/1' });

const text = (result: Record<string, unknown>) => (result['content'] as Array<{ text: string }>)[0]?.text;
console.log(`tools: ${tools.map((t) => t.name).join(', ')}`);
console.log(`add(20, 22) = ${text(sum)}`);
console.log(`slow_report: ${text(report)}`);
console.log(`note 1: ${(note.contents[0] as { text: string }).text.split('\n')[0]}`);
console.log(`open exchanges after the run: ${JSON.stringify(transport.stats())}`);
await client.close();
