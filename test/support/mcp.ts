/**
 * The same small MCP application built on SDK v1 and on SDK v2, so transport tests can
 * run every feature against both: a tool (echo), a tool that reports progress (count),
 * a tool that asks the client to sample (ask: a server→client request), a resource and
 * a prompt. Clients answer sampling with "sampled: <prompt>".
 */
import { Client as ClientV1 } from '@modelcontextprotocol/sdk/client/index.js';
import { McpServer as McpServerV1 } from '@modelcontextprotocol/sdk/server/mcp.js';
import { CreateMessageRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { Client as ClientV2 } from '@modelcontextprotocol/client';
import { McpServer as McpServerV2, SUPPORTED_PROTOCOL_VERSIONS } from '@modelcontextprotocol/server';
import { z } from 'zod';
import type { Transport } from '#core/transport.ts';

export type SdkVersion = 'v1' | 'v2';

/** What a test does with a connected client, whatever its SDK. */
export interface AnyClient {
  /** The SDK's own Client object. */
  readonly raw: unknown;
  connect(transport: Transport): Promise<void>;
  close(): Promise<void>;
  listTools(): Promise<{ tools: Array<{ name: string }> }>;
  callTool(params: { name: string; arguments?: Record<string, unknown> }, options?: { onprogress?: (p: { progress: number; total?: number }) => void; timeout?: number }): Promise<unknown>;
  readResource(params: { uri: string }): Promise<{ contents: Array<{ uri: string; text?: string }> }>;
  getPrompt(params: { name: string; arguments?: Record<string, string> }): Promise<{ messages: Array<{ content: unknown }> }>;
  ping(): Promise<unknown>;
  getServerVersion(): { name: string; version: string } | undefined;
}

export interface AnyServer {
  connect(transport: Transport): Promise<void>;
  close(): Promise<void>;
}

export interface ServerHooks {
  /** Called every time a tool runs (the restart test counts executions). */
  onCall?: (tool: string, args: Record<string, unknown>) => void;
}

const README = 'mcp-layers test resource. '.repeat(20);

export function makeServer(version: SdkVersion, hooks: ServerHooks = {}): AnyServer {
  return version === 'v1' ? makeServerV1(hooks) : makeServerV2(hooks);
}

/** A v2 server that also serves the 2026-07-28 era (server/discover, per-request context). */
export function makeModernServer(hooks: ServerHooks = {}): AnyServer {
  return makeServerV2(hooks, [...SUPPORTED_PROTOCOL_VERSIONS, '2026-07-28']);
}

function makeServerV1(hooks: ServerHooks): AnyServer {
  const server = new McpServerV1({ name: 'test-server-v1', version: '1.0.0' }, { capabilities: { logging: {} } });
  server.registerTool('echo', { description: 'Echoes text', inputSchema: { text: z.string() }, annotations: { readOnlyHint: true } }, async ({ text }) => {
    hooks.onCall?.('echo', { text });
    return { content: [{ type: 'text', text }] };
  });
  server.registerTool('count', { description: 'Counts with progress', inputSchema: { to: z.number() } }, async ({ to }, extra) => {
    hooks.onCall?.('count', { to });
    const token = extra._meta?.progressToken;
    for (let i = 1; i <= to; i++) {
      if (token !== undefined) await extra.sendNotification({ method: 'notifications/progress', params: { progressToken: token, progress: i, total: to } });
    }
    return { content: [{ type: 'text', text: `counted to ${to}` }] };
  });
  server.registerTool('ask', { description: 'Asks the client to sample', inputSchema: { prompt: z.string() } }, async ({ prompt }) => {
    hooks.onCall?.('ask', { prompt });
    const result = await server.server.createMessage({ messages: [{ role: 'user', content: { type: 'text', text: prompt } }], maxTokens: 10 });
    const content = result.content as { type: string; text?: string };
    return { content: [{ type: 'text', text: content.text ?? '' }] };
  });
  server.registerResource('readme', 'doc://readme', { mimeType: 'text/plain' }, async (uri) => ({ contents: [{ uri: uri.href, text: README }] }));
  server.registerPrompt('greet', { argsSchema: { name: z.string() } }, ({ name }) => ({
    messages: [{ role: 'user', content: { type: 'text', text: `Hello, ${name}!` } }],
  }));
  return server as unknown as AnyServer;
}

function makeServerV2(hooks: ServerHooks, supportedProtocolVersions?: string[]): AnyServer {
  const server = new McpServerV2(
    { name: 'test-server-v2', version: '2.0.0' },
    { capabilities: { logging: {} }, ...(supportedProtocolVersions === undefined ? {} : { supportedProtocolVersions: [...new Set(supportedProtocolVersions)] }) },
  );
  server.registerTool('echo', { description: 'Echoes text', inputSchema: z.object({ text: z.string() }), annotations: { readOnlyHint: true } }, async ({ text }) => {
    hooks.onCall?.('echo', { text });
    return { content: [{ type: 'text', text }] };
  });
  server.registerTool('count', { description: 'Counts with progress', inputSchema: z.object({ to: z.number() }) }, async ({ to }, ctx) => {
    hooks.onCall?.('count', { to });
    const token = ctx.mcpReq._meta?.progressToken;
    for (let i = 1; i <= to; i++) {
      if (token !== undefined) await ctx.mcpReq.notify({ method: 'notifications/progress', params: { progressToken: token, progress: i, total: to } });
    }
    return { content: [{ type: 'text', text: `counted to ${to}` }] };
  });
  server.registerTool('ask', { description: 'Asks the client to sample', inputSchema: z.object({ prompt: z.string() }) }, async ({ prompt }, ctx) => {
    hooks.onCall?.('ask', { prompt });
    const result = await ctx.mcpReq.requestSampling({ messages: [{ role: 'user', content: { type: 'text', text: prompt } }], maxTokens: 10 });
    const content = result.content as { type: string; text?: string };
    return { content: [{ type: 'text', text: content.text ?? '' }] };
  });
  server.registerResource('readme', 'doc://readme', { mimeType: 'text/plain' }, async (uri) => ({ contents: [{ uri: uri.href, text: README }] }));
  server.registerPrompt('greet', { argsSchema: z.object({ name: z.string() }) }, ({ name }) => ({
    messages: [{ role: 'user', content: { type: 'text', text: `Hello, ${name}!` } }],
  }));
  return server as unknown as AnyServer;
}

export interface ClientOptions {
  /** v2 only: negotiate the 2026-07-28 era (server/discover) instead of the 2025 initialize handshake. */
  modern?: boolean;
  /** v2 only: the protocol versions to offer (e.g. ['2025-03-26'] to get an era with batching). */
  protocolVersions?: string[];
}

export function makeClient(version: SdkVersion, options: ClientOptions = {}): AnyClient {
  if (version === 'v1') {
    const client = new ClientV1({ name: 'test-client-v1', version: '1.0.0' }, { capabilities: { sampling: {} } });
    client.setRequestHandler(CreateMessageRequestSchema, async (request) => {
      const first = request.params.messages[0]?.content as { text?: string } | undefined;
      return { model: 'test-model', role: 'assistant', content: { type: 'text', text: `sampled: ${first?.text ?? ''}` } };
    });
    return {
      raw: client,
      connect: (transport) => client.connect(transport as never),
      close: () => client.close(),
      listTools: () => client.listTools(),
      // v1 takes a result schema before the options.
      callTool: (params, options) => client.callTool(params, undefined, options),
      readResource: (params) => client.readResource(params) as never,
      getPrompt: (params) => client.getPrompt(params) as never,
      ping: () => client.ping(),
      getServerVersion: () => client.getServerVersion(),
    };
  }
  const client = new ClientV2(
    { name: 'test-client-v2', version: '2.0.0' },
    {
      capabilities: { sampling: {} },
      ...(options.modern === true ? { versionNegotiation: { mode: 'auto' as const } } : {}),
      ...(options.protocolVersions === undefined ? {} : { supportedProtocolVersions: options.protocolVersions }),
    },
  );
  client.setRequestHandler('sampling/createMessage', async (request) => {
    const first = (request.params.messages[0]?.content ?? undefined) as { text?: string } | undefined;
    return { model: 'test-model', role: 'assistant' as const, content: { type: 'text' as const, text: `sampled: ${first?.text ?? ''}` } };
  });
  return {
    raw: client,
    connect: (transport) => client.connect(transport as never),
    close: () => client.close(),
    listTools: () => client.listTools(),
    callTool: (params, options) => client.callTool(params, options) as Promise<unknown>,
    readResource: (params) => client.readResource(params) as never,
    getPrompt: (params) => client.getPrompt(params) as never,
    ping: () => client.ping(),
    getServerVersion: () => client.getServerVersion() as never,
  };
}

/** The text of the first content block of a tool result. */
export function textOf(result: unknown): string {
  const content = (result as { content?: Array<{ text?: string }> }).content;
  return content?.[0]?.text ?? '';
}
