/** SDK Streamable HTTP transports of both majors, for tests that serve or call them. */
import { randomUUID } from 'node:crypto';
import { StreamableHTTPClientTransport as ClientTransportV1 } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { StreamableHTTPServerTransport as NodeServerTransportV1 } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { WebStandardStreamableHTTPServerTransport as WebServerTransportV1 } from '@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js';
import { StreamableHTTPClientTransport as ClientTransportV2 } from '@modelcontextprotocol/client';
import { WebStandardStreamableHTTPServerTransport as WebServerTransportV2 } from '@modelcontextprotocol/server';
import type { Transport } from '#core/transport.ts';
import { type HttpServerTransportLike, listenHttp, type McpHttpServer, type McpHttpServerOptions } from '#transports/http/index.ts';
import { wrap } from '#core/wrap.ts';
import { transportServer } from './apps.ts';
import type { Sdk } from './clients.ts';

export type ServerTransport = Transport & HttpServerTransportLike;

/** A stateful (session id) server transport of the given SDK; `node` picks v1's Node-style one. */
export function makeServerTransport(version: Sdk | 'v1-node', options: { json?: boolean; stateless?: boolean } = {}): ServerTransport {
  const common = { sessionIdGenerator: options.stateless === true ? undefined : () => randomUUID(), enableJsonResponse: options.json === true };
  if (version === 'v1') return new WebServerTransportV1(common) as unknown as ServerTransport;
  if (version === 'v1-node') return new NodeServerTransportV1(common) as unknown as ServerTransport;
  return new WebServerTransportV2(common) as unknown as ServerTransport;
}

export function makeClientTransport(version: Sdk, url: string, fetch?: (input: string | URL | Request, init?: RequestInit) => Promise<Response>): Transport {
  const options = fetch === undefined ? {} : { fetch };
  if (version === 'v1') return new ClientTransportV1(new URL(url), options) as unknown as Transport;
  return new ClientTransportV2(new URL(url), options) as unknown as Transport;
}

/** McpHttpServer on its own listener, a v1 McpServer (wrapped, no layers) per session; `cleanup` gets its close. */
export async function serveSessions(cleanup: Array<() => unknown>, options: Partial<McpHttpServerOptions> = {}): Promise<McpHttpServer> {
  const mcp = await listenHttp({
    sessions: async () => {
      const transport = wrap(makeServerTransport('v1'), []);
      await transportServer('v1').connect(transport);
      return transport;
    },
    ...options,
  } as McpHttpServerOptions);
  cleanup.push(() => mcp.close());
  return mcp;
}
