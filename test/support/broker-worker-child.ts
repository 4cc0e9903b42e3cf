/**
 * A real worker process for the broker failover tests: SDK v1 McpServer per session, over
 * mcp-layers/nats or mcp-layers/redis (test/support/brokers.ts).
 *
 *   node test/support/broker-worker-child.ts <nats|redis> <broker url> <service> <worker id> <hold: 0|1> <count-file>
 *
 * Prints `READY <id>` once serving and `RAN <tool> <key>` when a tool starts. Every run is
 * appended to <count-file> (`<id> <tool> <key>`) before anything else happens, so the test
 * can prove what ran where, and how many times, even for a process killed with SIGKILL.
 * With hold=1 the tools never finish: the process is killed under them.
 *
 *   write { key }   not idempotent (no annotations)
 *   read  { key }   readOnlyHint
 */
import { appendFileSync } from 'node:fs';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import { wrap } from '#core/index.ts';
import { brokerNamed } from './brokers.ts';

const [name, url, service, id, holdArg, countFile] = process.argv.slice(2);
if (name === undefined || url === undefined || service === undefined || id === undefined || countFile === undefined) {
  console.error('usage: broker-worker-child.ts <nats|redis> <broker url> <service> <worker id> <hold: 0|1> <count-file>');
  process.exit(2);
}
const broker = brokerNamed(name);
const hold = holdArg === '1';
const never = new Promise<never>(() => {});

function ran(tool: string, key: string): void {
  appendFileSync(countFile as string, `${id} ${tool} ${key}\n`);
  process.stdout.write(`RAN ${tool} ${key}\n`);
}

const worker = await broker.serve({
  servers: url,
  service,
  id,
  // Short, so that a killed worker's requests move within a test's patience.
  ackWaitMs: 1_000,
  onsession: async (transport) => {
    const server = new McpServer({ name: 'failover', version: '1.0.0' });
    server.registerTool('write', { inputSchema: { key: z.string() } }, async ({ key }) => {
      ran('write', key);
      if (hold) await never;
      return { content: [{ type: 'text', text: `wrote ${key} on ${id}` }] };
    });
    server.registerTool('read', { inputSchema: { key: z.string() }, annotations: { readOnlyHint: true } }, async ({ key }) => {
      ran('read', key);
      if (hold) await never;
      return { content: [{ type: 'text', text: `read ${key} on ${id}` }] };
    });
    await server.connect(wrap(transport, [], { events: transport.events }));
  },
});
worker.onerror = (error) => process.stderr.write(`worker ${id}: ${error.message}\n`);
process.on('SIGTERM', () => void worker.close().then(() => process.exit(0)));
process.stdout.write(`READY ${id}\n`);
