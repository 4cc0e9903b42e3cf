/**
 * Streamable HTTP with mcp-layers/http on both ends: an SDK McpServer served by
 * listenHttp() (sessions, body limit, compression negotiated per response) and an SDK
 * Client whose StreamableHTTPClientTransport uses createFetch() — pooled keep-alive
 * connections on undici, compressed bodies once the server says it reads them, and HTTP
 * failures (503 + Retry-After...) turned into errors the retry layer acts on.
 *
 *   node examples/http-fetch.ts
 *
 * In your own code import from 'mcp-layers' and 'mcp-layers/http': here `#mcp-layers` (package.json
 * imports) names the same entry points in this repository.
 */
import { randomUUID } from 'node:crypto';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { WebStandardStreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js';
import { z } from 'zod';
import { retry, wrap } from '#mcp-layers';
import { createFetch, listenHttp } from '#mcp-layers/http';

// The server: one McpServer per session, on 127.0.0.1 and a free port.
const http = await listenHttp({
  sessions: async () => {
    const transport = new WebStandardStreamableHTTPServerTransport({ sessionIdGenerator: randomUUID });
    const server = new McpServer({ name: 'http-example', version: '1.0.0' });
    server.registerTool('repeat', { inputSchema: { word: z.string(), times: z.number().int() }, annotations: { readOnlyHint: true } }, async ({ word, times }) => ({
      content: [{ type: 'text', text: Array.from({ length: times }, () => word).join(' ') }],
    }));
    await server.connect(transport);
    return transport;
  },
});
let compressed = { before: 0, after: 0 };
http.events.on('bytes-compressed', (e) => void (compressed = { before: compressed.before + e.before, after: compressed.after + e.after }));

// The client: createFetch() under the SDK's own transport, retry on top.
const fetch = createFetch({ connections: 8 });
const transport = wrap(new StreamableHTTPClientTransport(new URL(http.url), { fetch }), [retry({ maxAttempts: 3 })]);
const client = new Client({ name: 'http-example-client', version: '1.0.0' });
await client.connect(transport);

const short = await client.callTool({ name: 'repeat', arguments: { word: 'hi', times: 3 } });
const long = await client.callTool({ name: 'repeat', arguments: { word: 'compressible', times: 2000 } });
console.log(`short: ${(short.content as Array<{ text: string }>)[0]?.text}`);
console.log(`long: ${(long.content as Array<{ text: string }>)[0]?.text.length} characters`);
console.log(`server → client bytes: ${compressed.before} before compression, ${compressed.after} after`);
console.log(`session ${transport.sessionId === undefined ? 'none' : 'established'}, protocol ${transport.protocolVersion}`);

await client.close();
await fetch.close();
await http.close();
