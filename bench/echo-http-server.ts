/**
 * The SDK's own Streamable HTTP server (stateful, a session per client) with the demo
 * server's `echo` tool, on 127.0.0.1: the peers bench's ceiling (no gateway) and the
 * remote upstream of the memory bench. `node bench/echo-http-server.ts <port>`; the
 * endpoint is /mcp. Ends on SIGTERM.
 */
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { z } from 'zod';

const port = Number(process.argv[2]);
const sessions = new Map<string, StreamableHTTPServerTransport>();

async function open(): Promise<StreamableHTTPServerTransport> {
  const server = new McpServer({ name: 'bench-echo', version: '1.0.0' });
  server.registerTool('echo', { description: 'Returns the text', inputSchema: { text: z.string() }, annotations: { readOnlyHint: true } }, async ({ text }) => ({ content: [{ type: 'text', text }] }));
  const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({ sessionIdGenerator: randomUUID, onsessioninitialized: (id) => void sessions.set(id, transport) });
  transport.onclose = () => {
    if (transport.sessionId !== undefined) sessions.delete(transport.sessionId);
  };
  await server.connect(transport);
  return transport;
}

const http = createServer((req, res) => {
  const id = req.headers['mcp-session-id'];
  const known = typeof id === 'string' ? sessions.get(id) : undefined;
  if (new URL(req.url ?? '/', 'http://localhost').pathname !== '/mcp' || (known === undefined && (req.method !== 'POST' || id !== undefined))) {
    res.writeHead(404, { 'content-type': 'application/json' }).end('{"jsonrpc":"2.0","id":null,"error":{"code":-32001,"message":"Session not found"}}');
    return;
  }
  void (known === undefined ? open() : Promise.resolve(known)).then((transport) => transport.handleRequest(req, res)).catch(() => res.headersSent || res.writeHead(500).end());
});
http.keepAliveTimeout = 30_000;
http.listen(port, '127.0.0.1');
process.on('SIGTERM', () => {
  for (const transport of sessions.values()) void transport.close();
  http.closeAllConnections();
  http.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 1_000).unref();
});
