/**
 * A stdio MCP server (SDK v1) for the tests that kill its process: `mcp-layers worker` runs
 * one per session and the test kills a worker under them (test/gateway/worker-failover.test.ts),
 * or the gateway runs one per session and restarts it (test/gateway/supervised-child.test.ts).
 *
 *   node test/support/failover-stdio-server.ts <label> <mode> <count-file>
 *
 * Every run is appended to <count-file> (`<label> <tool> <key>`) before anything else
 * happens, so the test can prove what ran where, and how many times, even for a process
 * killed with SIGKILL; then `RAN <tool> <key>` goes to stderr (the worker passes it on).
 * Every handshake is appended too (`<label> initialized <pid>`: a replayed one shows). Modes:
 *
 *   0       every run answers
 *   1       the tools never finish: the process is killed under them
 *   first   the first run of each tool and key (as the count file has it) never finishes,
 *           later ones answer: a restarted server answers what its predecessor held
 *   crash   the process exits (code 7) right after each handshake: a crash loop
 *
 *   write { key }        not idempotent (no annotations)
 *   read  { key }        readOnlyHint
 *   note://{key}         a resource (resources/read is idempotent), counted as `note <key>`
 */
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { McpServer, ResourceTemplate } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { z } from 'zod';

const [label, mode, countFile] = process.argv.slice(2);
if (label === undefined || countFile === undefined || !['0', '1', 'first', 'crash'].includes(mode ?? '')) {
  console.error('usage: failover-stdio-server.ts <label> <mode: 0|1|first|crash> <count-file>');
  process.exit(2);
}
const never = new Promise<never>(() => {});

/** Counts the run; resolves when it may answer (never, when this mode holds it). */
function ran(tool: string, key: string): Promise<void> {
  const earlier = existsSync(countFile as string) ? readFileSync(countFile as string, 'utf8').split('\n').filter((l) => l.endsWith(` ${tool} ${key}`)).length : 0;
  appendFileSync(countFile as string, `${label} ${tool} ${key}\n`);
  process.stderr.write(`RAN ${tool} ${key}\n`);
  return mode === '1' || (mode === 'first' && earlier === 0) ? never : Promise.resolve();
}

const server = new McpServer({ name: 'failover', version: '1.0.0' });
server.registerTool('write', { inputSchema: { key: z.string() } }, async ({ key }) => {
  await ran('write', key);
  return { content: [{ type: 'text', text: `wrote ${key} on ${label}` }] };
});
server.registerTool('read', { inputSchema: { key: z.string() }, annotations: { readOnlyHint: true } }, async ({ key }) => {
  await ran('read', key);
  return { content: [{ type: 'text', text: `read ${key} on ${label}` }] };
});
server.registerResource('note', new ResourceTemplate('note://{key}', { list: undefined }), {}, async (uri, { key }) => {
  await ran('note', String(key));
  return { contents: [{ uri: uri.href, text: `note ${String(key)} on ${label}` }] };
});
server.server.oninitialized = () => {
  appendFileSync(countFile, `${label} initialized ${process.pid}\n`);
  if (mode !== 'crash') return;
  process.stderr.write('crashing on purpose after the handshake\n');
  process.exit(7);
};
// MCP's stdio shutdown: the worker closes our stdin (or dies, which closes it too).
process.stdin.once('end', () => process.exit(0));
await server.connect(new StdioServerTransport());
