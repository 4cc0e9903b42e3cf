/**
 * A real MCP server process for the restart tests: SDK v1 McpServer over mcp-layers/ws.
 *
 *   node test/support/ws-child.ts <port> <count-file> <hang: 0|1>
 *
 * Prints `READY <port>` once listening and `EXEC <tool>` when a tool starts. Every tool
 * execution is appended to <count-file> (`<pid> <tool> <arg>`), so the test can prove what
 * ran where, and how many times. With hang=1 the slow tools never finish (the process
 * is killed under them).
 */
import { appendFileSync } from 'node:fs';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import { wrap } from '#core/index.ts';
import { listenWebSocket } from '#transports/ws/index.ts';

const [portArg, countFile, hangArg] = process.argv.slice(2);
if (portArg === undefined || countFile === undefined) {
  console.error('usage: ws-child.ts <port> <count-file> <hang>');
  process.exit(2);
}
const hang = hangArg === '1';

function executed(tool: string, arg: string): void {
  appendFileSync(countFile as string, `${process.pid} ${tool} ${arg}\n`);
  process.stdout.write(`EXEC ${tool} ${arg}\n`);
}

const never = new Promise<never>(() => {});

const wss = await listenWebSocket({
  port: Number(portArg),
  heartbeat: { intervalMs: 1000, timeoutMs: 1000 },
  onconnection: async (transport) => {
    const server = new McpServer({ name: 'restartable', version: '1.0.0' });
    server.registerTool('slow_read', { inputSchema: { key: z.string() }, annotations: { readOnlyHint: true } }, async ({ key }) => {
      executed('slow_read', key);
      if (hang) await never;
      return { content: [{ type: 'text', text: `value of ${key} from ${process.pid}` }] };
    });
    server.registerTool('slow_write', { inputSchema: { key: z.string() } }, async ({ key }) => {
      executed('slow_write', key);
      if (hang) await never;
      return { content: [{ type: 'text', text: `wrote ${key} in ${process.pid}` }] };
    });
    server.registerTool('write', { inputSchema: { key: z.string() } }, async ({ key }) => {
      executed('write', key);
      return { content: [{ type: 'text', text: `wrote ${key} in ${process.pid}` }] };
    });
    server.server.oninitialized = () => process.stdout.write(`INITIALIZED ${server.server.getClientVersion()?.name}\n`);
    await server.connect(wrap(transport, []));
  },
});
process.stdout.write(`READY ${wss.address.port}\n`);
process.on('SIGTERM', () => {
  void wss.close().then(() => process.exit(0));
});
