/**
 * An MCP server behind OAuth for the e2e tests: an SDK McpServer served over Streamable
 * HTTP (McpHttpServer) or WebSocket (McpWebSocketServer), whose authenticate() verifies
 * the JWT access token of every request / upgrade with jose (issuer, audience = the
 * server's URL, expiry) and refuses with 401 + `WWW-Authenticate: Bearer error="invalid_token"`.
 *
 * Over WebSocket it also ends a connection with close code 4401 when the token the
 * connection was opened with expires: a connection lives no longer than its credential.
 */
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { IncomingMessage } from 'node:http';
import { z } from 'zod';
import { wrap } from '#core/index.ts';
import type { Transport } from '#core/transport.ts';
import { AuthenticationError, listenHttp } from '#transports/http/index.ts';
import { listenWebSocket } from '#transports/ws/index.ts';
import { makeServerTransport } from './http.ts';
import type { IdentityProvider } from './identity-provider.ts';

export interface ProtectedServer {
  readonly url: string;
  /** Access tokens presented, in order (accepted or not). */
  readonly presented: string[];
  /** The HTTP method of each request in `presented` (the client's GET stream reconnects on its own schedule). */
  readonly presentedMethods: string[];
  readonly rejected: number;
  /** Tool executions. */
  readonly executions: number;
  /** Access tokens refused whatever their signature says (the server learned they were revoked). */
  readonly denied: Set<string>;
  /** WebSocket connections ended with 4401 because their token expired. */
  readonly expiredCloses: number;
  /** Ends every open WebSocket connection with `code` (4401: the server stopped trusting their tokens). */
  closeAll(code: number, reason: string): Promise<void>;
  readonly errors: Error[];
  close(): Promise<void>;
}

interface State {
  presented: string[];
  presentedMethods: string[];
  rejected: number;
  executions: number;
  denied: Set<string>;
  expiredCloses: number;
  errors: Error[];
}

function app(state: State): McpServer {
  const server = new McpServer({ name: 'protected', version: '1.0.0' });
  // Not idempotent, no annotations: nothing may retry it unless a 401 proved it never ran.
  server.registerTool('work', { inputSchema: { ms: z.number() } }, async ({ ms }) => {
    state.executions++;
    if (ms > 0) await new Promise((resolve) => setTimeout(resolve, ms));
    return { content: [{ type: 'text', text: `done ${state.executions}` }] };
  });
  return server;
}

function authenticator(idp: IdentityProvider, state: State, audience: () => string) {
  return async (request: IncomingMessage) => {
    const header = request.headers.authorization;
    const token = header?.startsWith('Bearer ') === true ? header.slice(7) : undefined;
    if (token !== undefined) {
      state.presented.push(token);
      state.presentedMethods.push(request.method ?? '');
    }
    const refuse = (description: string): never => {
      state.rejected++;
      throw new AuthenticationError(description, { status: 401, headers: { 'www-authenticate': `Bearer error="invalid_token", error_description="${description}"` } });
    };
    if (token === undefined) return refuse('no bearer token');
    if (state.denied.has(token)) return refuse('the token was revoked');
    try {
      const claims = await idp.verify(token, audience());
      return { token, clientId: String(claims['client_id']), scopes: String(claims['scope'] ?? '').split(' '), expiresAt: claims.exp };
    } catch (error) {
      return refuse((error as { code?: string }).code === 'ERR_JWT_EXPIRED' ? 'the token expired' : 'the token is not valid');
    }
  };
}

export async function serveHttp(idp: IdentityProvider): Promise<ProtectedServer> {
  const state: State = { presented: [], presentedMethods: [], rejected: 0, executions: 0, denied: new Set(), expiredCloses: 0, errors: [] };
  const servers: McpServer[] = [];
  let url = '';
  const http = await listenHttp({
    authenticate: authenticator(idp, state, () => url),
    sessions: async () => {
      const transport = wrap(makeServerTransport('v1', { json: true }), []);
      const server = app(state);
      servers.push(server);
      await server.connect(transport as Transport as never);
      return transport;
    },
  });
  http.onerror = (error) => state.errors.push(error);
  url = http.url;
  return new Served(state, url, async () => {
    throw new Error('HTTP has no connections to close');
  }, async () => {
    await http.close();
    await Promise.all(servers.map((s) => s.close()));
  });
}

export async function serveWebSocket(idp: IdentityProvider): Promise<ProtectedServer> {
  const state: State = { presented: [], presentedMethods: [], rejected: 0, executions: 0, denied: new Set(), expiredCloses: 0, errors: [] };
  let url = '';
  const wss = await listenWebSocket({
    authenticate: authenticator(idp, state, () => url),
    onconnection: async (transport) => {
      const expiresAt = (transport.authInfo as { expiresAt?: number }).expiresAt;
      if (expiresAt !== undefined) {
        const timer = setTimeout(() => {
          state.expiredCloses++;
          void transport.close(4401, 'the access token expired');
        }, expiresAt * 1000 - Date.now());
        timer.unref();
        transport.events.on('connection', (event) => event.state === 'closed' && clearTimeout(timer));
      }
      await app(state).connect(wrap(transport, []) as never);
    },
  });
  wss.onerror = (error) => state.errors.push(error);
  // The resource the tokens are for: the server's HTTP identity (RFC 8707 wants an http(s) URI).
  url = wss.url.replace(/^ws/, 'http');
  return new Served(
    state,
    url,
    async (code, reason) => {
      await Promise.all([...wss.connections].map((c) => c.close(code, reason)));
    },
    () => wss.close(),
  );
}

class Served implements ProtectedServer {
  readonly #state: State;
  readonly url: string;
  readonly closeAll: (code: number, reason: string) => Promise<void>;
  readonly close: () => Promise<void>;

  constructor(state: State, url: string, closeAll: (code: number, reason: string) => Promise<void>, close: () => Promise<void>) {
    this.#state = state;
    this.url = url;
    this.closeAll = closeAll;
    this.close = close;
  }

  get presented(): string[] {
    return this.#state.presented;
  }
  get presentedMethods(): string[] {
    return this.#state.presentedMethods;
  }
  get rejected(): number {
    return this.#state.rejected;
  }
  get executions(): number {
    return this.#state.executions;
  }
  get denied(): Set<string> {
    return this.#state.denied;
  }
  get expiredCloses(): number {
    return this.#state.expiredCloses;
  }
  get errors(): Error[] {
    return this.#state.errors;
  }
}
