/**
 * The small test servers beside the reference fixture, each a TestApp served by the same
 * SDK glue (server-v1.ts, server-v2.ts), and the connections the suites build on them:
 *
 * - transportApp: echo, count (progress), ask (sampling), a resource and a prompt — what
 *   the transport and e2e suites run every feature with (transportServer, transportClient);
 * - countingToolsApp: charge / lookup / upsert (no annotations, readOnlyHint,
 *   idempotentHint), counted in a Ledger and hanging on demand — the resilience suites'
 *   server, behind a FaultyLink (connectV1, connectV2);
 * - metaEchoApp: echo (recording each call's `_meta`), a tool error, a prompt and a
 *   resource — the observability suites' server, both sides wrapped (connectPair).
 */
import { Client as SdkV1Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import type { McpServer as McpServerV1 } from '@modelcontextprotocol/sdk/server/mcp.js';
import { Client as SdkV2Client } from '@modelcontextprotocol/client';
import { SUPPORTED_PROTOCOL_VERSIONS } from '@modelcontextprotocol/server';
import * as z from 'zod';
import type { LayerLike } from '#core/layer.ts';
import type { Transport } from '#core/transport.ts';
import { type LayeredTransport, wrap, type WrapOptions } from '#core/wrap.ts';
import { createClient, type Sdk, type TestClient } from './clients.ts';
import { FaultyLink } from './faulty-link.ts';
import { text } from './fixture.ts';
import { Ledger } from './ledger.ts';
import { serveAppV1 } from './server-v1.ts';
import { serveAppV2 } from './server-v2.ts';
import { prompt, type TestApp, tool } from './test-app.ts';

/** What a test does with a server, whatever its SDK. */
export interface TestServer {
  connect(transport: Transport): Promise<void>;
  close(): Promise<void>;
}

/** Serves `app` on the given SDK's McpServer. */
export function serveApp(sdk: Sdk, app: TestApp): TestServer {
  return (sdk === 'v1' ? serveAppV1(app) : serveAppV2(app)) as unknown as TestServer;
}

const README = 'mcp-layers test resource. '.repeat(20);

/** The transport suites' server; `supportedProtocolVersions` (v2) widens the eras it serves. */
export function transportApp(sdk: Sdk, supportedProtocolVersions?: string[]): TestApp {
  return {
    info: sdk === 'v1' ? { name: 'test-server-v1', version: '1.0.0' } : { name: 'test-server-v2', version: '2.0.0' },
    options: { capabilities: { logging: {} }, ...(supportedProtocolVersions === undefined ? {} : { supportedProtocolVersions: [...new Set(supportedProtocolVersions)] }) },
    tools: [
      tool({ name: 'echo', description: 'Echoes text', inputSchema: z.object({ text: z.string() }), annotations: { readOnlyHint: true }, run: ({ text: value }) => text(value) }),
      tool({ name: 'count', description: 'Counts with progress', inputSchema: z.object({ to: z.number() }), run: async ({ to }, call) => {
        for (let i = 1; i <= to; i++) {
          if (call.progressToken !== undefined) await call.progress({ progress: i, total: to });
        }
        return text(`counted to ${to}`);
      } }),
      tool({ name: 'ask', description: 'Asks the client to sample', inputSchema: z.object({ prompt: z.string() }), run: async ({ prompt: asked }, call) => {
        const result = await call.sample({ messages: [{ role: 'user', content: { type: 'text', text: asked } }], maxTokens: 10 }, { related: false });
        const content = result.content as { type: string; text?: string };
        return text(content.text ?? '');
      } }),
    ],
    resources: [{ name: 'readme', uri: 'doc://readme', metadata: { mimeType: 'text/plain' }, read: (uri: URL) => ({ contents: [{ uri: uri.href, text: README }] }) }],
    prompts: [prompt({ name: 'greet', argsSchema: z.object({ name: z.string() }), get: ({ name }) => ({ messages: [{ role: 'user', content: { type: 'text', text: `Hello, ${name}!` } }] }) })],
  };
}

export function transportServer(sdk: Sdk): TestServer {
  return serveApp(sdk, transportApp(sdk));
}

/** A v2 transport server that also serves the 2026-07-28 era (server/discover, per-request context). */
export function modernTransportServer(): TestServer {
  return serveApp('v2', transportApp('v2', [...SUPPORTED_PROTOCOL_VERSIONS, '2026-07-28']));
}

/** The transport suites' client: the one test client, as `test-client-v1` / `test-client-v2`, declaring sampling only. */
export function transportClient(sdk: Sdk, options: { modern?: boolean; protocolVersions?: string[] } = {}): TestClient {
  return createClient(sdk, {
    info: sdk === 'v1' ? { name: 'test-client-v1', version: '1.0.0' } : { name: 'test-client-v2', version: '2.0.0' },
    capabilities: { sampling: {} },
    ...(options.modern === true ? { negotiation: 'auto' as const } : {}),
    ...(options.protocolVersions === undefined ? {} : { protocolVersions: options.protocolVersions }),
  });
}

/**
 * Tools that count their runs in `ledger` and answer `<tool> #<run>`; a run hangs until
 * cancelled when `ledger.hang` says so (then it counts as aborted).
 */
export function countingToolsApp(ledger: Ledger, sdk: Sdk): TestApp {
  const counted = (name: string, annotations: { readOnlyHint?: boolean; idempotentHint?: boolean }) =>
    tool({ name, inputSchema: z.object({ n: z.number().optional() }), annotations, run: async (_args, call) => {
      const n = ledger.ran(name);
      if (ledger.takeHang(name)) {
        await new Promise<void>((resolve) => call.signal.addEventListener('abort', () => resolve(), { once: true }));
        ledger.abort(name, call.signal.reason);
      }
      return text(`${name} #${n}`);
    } });
  return {
    info: { name: `tools-${sdk}`, version: '1.0.0' },
    tools: [
      // No annotations: may have side effects, never sent twice.
      counted('charge', {}),
      counted('lookup', { readOnlyHint: true }),
      counted('upsert', { idempotentHint: true }),
    ],
  };
}

/** The counting tools on SDK v1 (for suites that wire their own client). */
export function serverV1(ledger: Ledger): McpServerV1 {
  return serveAppV1(countingToolsApp(ledger, 'v1'));
}

/** An SDK v1 client and the counting tools server through a fault-injecting link; the client's transport is wrapped in `layers`. */
export async function connectV1(layers: LayerLike[], options?: WrapOptions) {
  const ledger = new Ledger();
  const link = new FaultyLink();
  const server = serverV1(ledger);
  await server.connect(link.server);
  const transport = wrap(link.client, layers, options);
  const client = new SdkV1Client({ name: 'resilience-test', version: '1.0.0' });
  await client.connect(transport);
  return { ledger, link, server, transport, client };
}

/** The same on SDK v2. */
export async function connectV2(layers: LayerLike[], options?: WrapOptions) {
  const ledger = new Ledger();
  const link = new FaultyLink();
  const server = serveAppV2(countingToolsApp(ledger, 'v2'));
  await server.connect(link.server);
  const transport = wrap(link.client, layers, options);
  const client = new SdkV2Client({ name: 'resilience-test', version: '1.0.0' });
  await client.connect(transport);
  return { ledger, link, server, transport, client };
}

/** echo records the `_meta` of every call in `seenMeta`; fail answers a tool error. */
export function metaEchoApp(seenMeta: Array<Record<string, unknown> | undefined>): TestApp {
  return {
    info: { name: 'test-server', version: '1.0.0' },
    tools: [
      tool({ name: 'echo', description: 'Echoes its text', inputSchema: z.object({ text: z.string() }), annotations: { readOnlyHint: true }, run: ({ text: value }, call) => {
        seenMeta.push(call.meta);
        return text(value);
      } }),
      tool({ name: 'fail', description: 'Always reports a tool error', inputSchema: z.object({ why: z.string() }), run: ({ why }) => ({ ...text(`failed: ${why}`), isError: true }) }),
    ],
    prompts: [prompt({ name: 'greet', description: 'Greets', argsSchema: z.object({ name: z.string() }), get: ({ name }) => ({ messages: [{ role: 'user', content: { type: 'text', text: `Hello ${name}` } }] }) })],
    resources: [{ name: 'readme', uri: 'file:///readme.md', metadata: { description: 'A readme' }, read: (uri: URL) => ({ contents: [{ uri: uri.href, text: '# readme' }] }) }],
  };
}

/** A real SDK v1 client and the meta-echo server in one process, over the SDK's InMemoryTransport, each side wrapped in its layers. */
export interface Pair {
  client: SdkV1Client;
  server: McpServerV1;
  clientTransport: LayeredTransport;
  serverTransport: LayeredTransport;
  /** `_meta` of every tools/call the server's handlers saw. */
  seenMeta: Array<Record<string, unknown> | undefined>;
  close(): Promise<void>;
}

export async function connectPair(
  clientLayers: readonly LayerLike[],
  serverLayers: readonly LayerLike[],
  options: { client?: WrapOptions; server?: WrapOptions } = {},
): Promise<Pair> {
  const [a, b] = InMemoryTransport.createLinkedPair();
  const seenMeta: Pair['seenMeta'] = [];
  const server = serveAppV1(metaEchoApp(seenMeta));
  const serverTransport = wrap(b, serverLayers, { name: 'server', ...options.server });
  const clientTransport = wrap(a, clientLayers, { name: 'client', ...options.client });
  await server.connect(serverTransport);
  const client = new SdkV1Client({ name: 'test-client', version: '1.0.0' });
  await client.connect(clientTransport);
  return {
    client,
    server,
    clientTransport,
    serverTransport,
    seenMeta,
    close: async () => {
      await client.close();
      await server.close();
    },
  };
}
