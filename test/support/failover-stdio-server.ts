/**
 * A stdio MCP server (SDK v1) for the worker failover tests: `mcp-layers worker` runs one
 * per session, and the test kills a worker under them (test/gateway/worker-failover.test.ts).
 *
 *   node test/support/failover-stdio-server.ts <label> <hold: 0|1> <count-file>
 *
 * Every run is appended to <count-file> (`<label> <tool> <key>`) before anything else
 * happens, so the test can prove what ran where, and how many times, even for a worker
 * killed with SIGKILL; then `RAN <tool> <key>` goes to stderr (the worker passes it on).
 * With hold=1 the tools never finish: the worker is killed under them.
 *
 *   write { key }   not idempotent (no annotations)
 *   read  { key }   readOnlyHint
 */
import { appendFileSync } from 'node:fs';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { z } from 'zod';

const [label, holdArg, countFile] = process.argv.slice(2);
if (label === undefined || countFile === undefined) {
  console.error('usage: failover-stdio-server.ts <label> <hold: 0|1> <count-file>');
  process.exit(2);
}
const hold = holdArg === '1';
const never = new Promise<never>(() => {});

function ran(tool: string, key: string): void {
  appendFileSync(countFile as string, `${label} ${tool} ${key}\n`);
  process.stderr.write(`RAN ${tool} ${key}\n`);
}

const server = new McpServer({ name: 'failover', version: '1.0.0' });
server.registerTool('write', { inputSchema: { key: z.string() } }, async ({ key }) => {
  ran('write', key);
  if (hold) await never;
  return { content: [{ type: 'text', text: `wrote ${key} on ${label}` }] };
});
server.registerTool('read', { inputSchema: { key: z.string() }, annotations: { readOnlyHint: true } }, async ({ key }) => {
  ran('read', key);
  if (hold) await never;
  return { content: [{ type: 'text', text: `read ${key} on ${label}` }] };
});
// MCP's stdio shutdown: the worker closes our stdin (or dies, which closes it too).
process.stdin.once('end', () => process.exit(0));
await server.connect(new StdioServerTransport());
