/**
 * The server side of the scale-out bench (bench/scale-out.ts): one SDK v1 McpServer per
 * connection, session or stdio process, with the same two tools whatever carries them.
 *
 *   node bench/scale-out-server.ts stdio                       MCP on stdin/stdout
 *   node bench/scale-out-server.ts ws                          mcp-layers/ws on a free 127.0.0.1 port
 *   node bench/scale-out-server.ts nats  <url> <service> <id> [flags]  a worker: serveNats
 *   node bench/scale-out-server.ts redis <url> <service> <id>  a worker: serveRedis
 *
 * NATS flags, comma-separated: `memory` (the stream in memory rather than in files, the
 * default), `async-traces` (the client library's connect option `noAsyncTraces: false`, its own default).
 *
 * Tools: `echo { text }` returns the text; `burn { rounds }` does a fixed amount of CPU
 * work (bench/burn.ts; the bench calibrates `rounds` to 2 ms), synchronously like real
 * CPU-bound work, so one Node process runs one call at a time. Except over stdio it prints `READY <url or id>`
 * once serving; it stops on SIGTERM (a worker closes first: it hands back what it holds)
 * and when its stdin closes (the bench is gone).
 */
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { z } from 'zod';
import type { Transport } from '#mcp-layers';
import { serveNats } from '#mcp-layers/nats';
import { serveRedis } from '#mcp-layers/redis';
import { listenWebSocket } from '#mcp-layers/ws';
import { burn } from './burn.ts';

const [kind, url, service, id, flags = ''] = process.argv.slice(2);

function newServer(): McpServer {
  const server = new McpServer({ name: 'bench-scale-out', version: '1.0.0' });
  server.registerTool('echo', { inputSchema: { text: z.string() }, annotations: { readOnlyHint: true } }, async ({ text }) => ({ content: [{ type: 'text', text }] }));
  server.registerTool('burn', { inputSchema: { rounds: z.number().int().min(0).max(1e9) }, annotations: { readOnlyHint: true } }, async ({ rounds }) => ({
    content: [{ type: 'text', text: String(burn(rounds)) }],
  }));
  return server;
}

const connect = async (transport: Transport) => void (await newServer().connect(transport));

let close: () => Promise<unknown>;
if (kind === 'stdio') {
  await connect(new StdioServerTransport());
  close = async () => {};
} else if (kind === 'ws') {
  const server = await listenWebSocket({ host: '127.0.0.1', port: 0, onconnection: connect });
  server.onerror = (error) => console.error(`bench ws server: ${error.message}`);
  close = () => server.close();
  process.stdout.write(`READY ${server.url}\n`);
} else if ((kind === 'nats' || kind === 'redis') && url !== undefined && service !== undefined && id !== undefined) {
  const options = { servers: url, service, id, onsession: (transport: Transport) => connect(transport) };
  const nats = flags.split(',');
  const worker =
    kind === 'nats'
      ? await serveNats({
          ...options,
          ...(nats.includes('memory') ? { storage: 'memory' as const } : {}),
          ...(nats.includes('async-traces') ? { connectOptions: { noAsyncTraces: false } } : {}),
        })
      : await serveRedis(options);
  worker.onerror = (error) => console.error(`bench worker ${id}: ${error.message}`);
  close = () => worker.close();
  process.stdout.write(`READY ${id}\n`);
} else {
  console.error('usage: scale-out-server.ts stdio | ws | <nats|redis> <broker url> <service> <worker id>');
  process.exit(2);
}

const end = () => void close().finally(() => process.exit(0));
process.once('SIGTERM', end);
// Over stdio, stdin is the protocol and the SDK transport ends with it; elsewhere it is only the bench's lifeline.
if (kind !== 'stdio') process.stdin.once('end', end).resume();
