/**
 * Issue 5 benchmarks: mcp-layers/ws and mcp-layers/http on loopback.
 *
 *   - WebSocket round trips per second, 1 and 64 in flight: bare vs wrapped;
 *   - small notifications per second, with vs without batching (2025-03-26);
 *   - wire bytes (counted by a TCP proxy) and compression MB/s for a 200-tool
 *     tools/list result and a 1 MB resources/read;
 *   - SDK StreamableHTTPClientTransport requests per second, createFetch vs global fetch.
 */
import net from 'node:net';
import { randomUUID } from 'node:crypto';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { WebStandardStreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js';
import { ListToolsRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import { batching, compression, standard } from '#middleware/index.ts';
import type { JSONRPCMessage, LayerLike, Transport } from '#mcp-layers';
import { wrap } from '#mcp-layers';
import { createFetch, listenHttp } from '#transports/http/index.ts';
import { listenWebSocket, WebSocketClientTransport, type McpWebSocketServer } from '#transports/ws/index.ts';
import { fivePassThrough } from './core.ts';
import { pingExchange, type Variant } from './harness.ts';

type Wrapper = ((t: WebSocketClientTransport) => Transport) | undefined;

/** A WebSocket server whose every connection answers requests at once and reports notifications. */
async function echoServer(onNotification?: (n: number) => void): Promise<McpWebSocketServer> {
  return listenWebSocket({
    heartbeat: false,
    onconnection: async (transport) => {
      transport.onmessage = (m: JSONRPCMessage) => {
        if ('method' in m && 'id' in m) void transport.send({ jsonrpc: '2.0', id: m.id, result: {} });
        else if ('method' in m) onNotification?.(m.params?.['n'] as number);
      };
      await transport.start();
    },
  });
}

export function wsRoundTrip(name: string, wrapper: Wrapper): Variant {
  return {
    name,
    async setup() {
      const server = await echoServer();
      const raw = new WebSocketClientTransport(server.url, { heartbeat: false, perMessageDeflate: false });
      const client = wrapper ? wrapper(raw) : raw;
      return {
        exchange: await pingExchange(client as Parameters<typeof pingExchange>[0]),
        close: async () => {
          await client.close();
          await server.close();
        },
      };
    },
  };
}

export const wsVariants = (): Variant[] => [
  wsRoundTrip('bare WebSocketClientTransport', undefined),
  wsRoundTrip('wrap(t, [])', (t) => wrap(t, [])),
  wsRoundTrip('wrap(t, [5 pass-through])', (t) => wrap(t, fivePassThrough)),
  wsRoundTrip('wrap(t, [standard()])', (t) => wrap(t, [standard()])),
];

/** One exchange = one notification sent and received by the server, in the 2025-03-26 era. */
export function notifications(name: string, layers: LayerLike[]): Variant {
  return {
    name,
    async setup() {
      const waiting = new Map<number, () => void>();
      const server = await echoServer((n) => waiting.get(n)?.());
      const client = wrap(new WebSocketClientTransport(server.url, { heartbeat: false, perMessageDeflate: false }), layers);
      client.onmessage = () => {};
      await client.start();
      client.setProtocolVersion('2025-03-26');
      return {
        exchange: (i) =>
          new Promise<void>((resolve) => {
            waiting.set(i, () => {
              waiting.delete(i);
              resolve();
            });
            void client.send({ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', n: i, data: 'tick' } });
          }),
        close: async () => {
          await client.close();
          await server.close();
        },
      };
    },
  };
}

/** 200 tools with schemas of the size real servers publish. */
export function toolList(): Array<Record<string, unknown>> {
  return Array.from({ length: 200 }, (_, i) => ({
    name: `workspace_tool_${i}`,
    description: `Reads, searches or edits files in the workspace (variant ${i}). Returns structured results with paths, line numbers and excerpts.`,
    inputSchema: {
      type: 'object',
      properties: {
        path: { type: 'string', description: 'Path of the file, relative to the workspace root' },
        query: { type: 'string', description: 'Text or regular expression to look for' },
        limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100, description: 'Most results to return' },
        include: { type: 'array', items: { type: 'string' }, description: 'Glob patterns of files to include' },
        options: {
          type: 'object',
          properties: { caseSensitive: { type: 'boolean', default: false }, wholeWord: { type: 'boolean', default: false } },
          additionalProperties: false,
        },
      },
      required: ['path'],
      additionalProperties: false,
    },
    annotations: { readOnlyHint: i % 2 === 0, idempotentHint: true },
  }));
}

/** About 1 MB of JSON records, as a resource. */
export function megabyteJson(): string {
  return JSON.stringify(
    Array.from({ length: 6000 }, (_, i) => ({
      id: i,
      path: `src/module_${i % 97}/file_${i}.ts`,
      size: (i * 7919) % 100_000,
      modified: new Date(1_700_000_000_000 + i * 60_000).toISOString(),
      owner: ['alice', 'bob', 'carol', 'dave'][i % 4],
      tags: ['typescript', i % 3 === 0 ? 'generated' : 'source'],
    })),
  );
}

interface WireRow {
  payload: string;
  mode: string;
  bytes: number;
  ratio: number;
  mbPerSecond: number;
}

/** Bytes from server to client (counted by a TCP proxy) for one exchange, and payload MB/s over `repeat` exchanges. */
async function measureWire(deflate: boolean, run: (client: Client) => Promise<number>, serverSetup: (s: McpServer) => void, repeat: number): Promise<{ bytes: number; mbPerSecond: number; size: number }> {
  const wss = await listenWebSocket({
    heartbeat: false,
    perMessageDeflate: deflate,
    onconnection: async (transport) => {
      const server = new McpServer({ name: 'wire', version: '1.0.0' });
      serverSetup(server);
      await server.connect(wrap(transport, deflate ? [compression()] : []));
    },
  });
  let down = 0;
  const proxy = net.createServer((socket) => {
    const upstream = net.connect(wss.address.port, '127.0.0.1');
    socket.pipe(upstream);
    upstream.on('data', (chunk: Buffer) => {
      down += chunk.length;
      socket.write(chunk);
    });
    socket.on('error', () => upstream.destroy());
    upstream.on('error', () => socket.destroy());
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  const port = (proxy.address() as net.AddressInfo).port;
  const client = new Client({ name: 'wire', version: '1.0.0' });
  await client.connect(wrap(new WebSocketClientTransport(`ws://127.0.0.1:${port}/mcp`, { heartbeat: false, perMessageDeflate: deflate }), deflate ? [compression()] : []));
  await run(client); // warm
  down = 0;
  const size = await run(client);
  const bytes = down;
  const start = performance.now();
  let total = 0;
  for (let i = 0; i < repeat; i++) total += await run(client);
  const seconds = (performance.now() - start) / 1000;
  await client.close();
  await wss.close();
  await new Promise((resolve) => proxy.close(resolve));
  return { bytes, mbPerSecond: total / 1e6 / seconds, size };
}

export async function wireBytes(repeat: number): Promise<WireRow[]> {
  const tools = toolList();
  const doc = megabyteJson();
  const rows: WireRow[] = [];
  const cases: Array<[string, (c: Client) => Promise<number>, (s: McpServer) => void]> = [
    [
      `tools/list, 200 tools`,
      async (c) => JSON.stringify((await c.listTools()).tools).length,
      (s) => {
        // registerTool wants zod schemas; answer tools/list directly with realistic JSON Schemas.
        s.server.registerCapabilities({ tools: {} });
        s.server.setRequestHandler(ListToolsRequestSchema, async () => ({ tools }) as never);
      },
    ],
    [
      `resources/read, ${(doc.length / 1e6).toFixed(2)} MB JSON`,
      async (c) => ((await c.readResource({ uri: 'doc://big' })).contents[0] as { text: string }).text.length,
      (s) => {
        s.registerResource('big', 'doc://big', { mimeType: 'application/json' }, async (uri) => ({ contents: [{ uri: uri.href, text: doc }] }));
      },
    ],
  ];
  for (const [name, run, setup] of cases) {
    const identity = await measureWire(false, run, setup, repeat);
    const deflated = await measureWire(true, run, setup, repeat);
    rows.push({ payload: name, mode: 'identity', bytes: identity.bytes, ratio: 1, mbPerSecond: identity.mbPerSecond });
    rows.push({ payload: name, mode: 'compression() (permessage-deflate)', bytes: deflated.bytes, ratio: identity.bytes / deflated.bytes, mbPerSecond: deflated.mbPerSecond });
  }
  return rows;
}

export function wireTable(rows: WireRow[]): string {
  return [
    '### Wire bytes server → client (TCP proxy) and payload throughput, WebSocket',
    '',
    '| payload | mode | bytes on the wire | fewer bytes | payload MB/s |',
    '| --- | --- | ---: | ---: | ---: |',
    ...rows.map((r) => `| ${r.payload} | ${r.mode} | ${r.bytes.toLocaleString('en-US')} | ${r.ratio.toFixed(1)}× | ${r.mbPerSecond.toFixed(1)} |`),
  ].join('\n');
}

/** SDK v1 Client → McpServer over Streamable HTTP (McpHttpServer), with the given fetch. */
export function httpVariant(name: string, makeFetch: () => { fetch?: typeof fetch; close(): Promise<void> }): Variant {
  return {
    name,
    async setup() {
      const http = await listenHttp({
        compression: false,
        sessions: async () => {
          const transport = new WebStandardStreamableHTTPServerTransport({ sessionIdGenerator: () => randomUUID(), enableJsonResponse: true });
          const server = new McpServer({ name: 'bench', version: '1.0.0' });
          server.registerTool('echo', { inputSchema: { text: z.string() } }, async ({ text }) => ({ content: [{ type: 'text', text }] }));
          await server.connect(transport);
          return transport as never;
        },
      });
      const made = makeFetch();
      const client = new Client({ name: 'bench', version: '1.0.0' });
      await client.connect(new StreamableHTTPClientTransport(new URL(http.url), made.fetch === undefined ? {} : { fetch: made.fetch }));
      return {
        exchange: async () => {
          await client.callTool({ name: 'echo', arguments: { text: 'hi' } });
        },
        close: async () => {
          await client.close();
          await http.close();
          await made.close();
        },
      };
    },
  };
}

export const httpVariants = (): Variant[] => [
  httpVariant('global fetch', () => ({ close: async () => {} })),
  httpVariant('createFetch()', () => {
    const fetch = createFetch();
    return { fetch: fetch as unknown as typeof globalThis.fetch, close: () => fetch.close() };
  }),
];

export const batchingVariants = (): Variant[] => [notifications('no batching', []), notifications('batching()', [batching()])];
