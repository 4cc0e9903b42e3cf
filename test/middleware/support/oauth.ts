/**
 * Test doubles for the oauth unit tests, which run under fake timers: a scripted token
 * endpoint (a `fetch` answering like an OAuth server; the e2e tests use a real one,
 * oidc-provider, on real time) and an MCP peer that checks the Authorization header
 * of every message like a protected server and answers requests at once.
 */
import { StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { FetchLike } from '#middleware/oauth/token-endpoint.ts';
import type { JSONRPCMessage } from '#core/jsonrpc.ts';
import type { TransportSendOptions } from '#core/transport.ts';
import { ScriptedPeer } from '../../support/scripted-peer.ts';
import type { JSONRPCResponse } from '#core/jsonrpc.ts';
import type { Transport } from '#core/transport.ts';

/** The application's side: sends requests and awaits their responses. */
export class App {
  readonly #waiters = new Map<unknown, (response: JSONRPCResponse) => void>();
  readonly errors: Error[] = [];
  #id = 0;
  readonly transport: Transport;

  constructor(transport: Transport) {
    this.transport = transport;
    transport.onmessage = (message) => {
      if (!('method' in message) && message.id !== undefined) {
        this.#waiters.get(message.id)?.(message as JSONRPCResponse);
        this.#waiters.delete(message.id);
      }
    };
    transport.onerror = (error) => this.errors.push(error);
  }

  /** Sends a request; resolves with its response (a result or an error response). */
  async call(method = 'ping'): Promise<JSONRPCResponse> {
    const id = ++this.#id;
    const answered = new Promise<JSONRPCResponse>((resolve) => this.#waiters.set(id, resolve));
    await this.transport.send({ jsonrpc: '2.0', id, method });
    return answered;
  }
}

export const TOKEN_URL = 'https://idp.example.test/oauth/token';
export const CLIENT_SECRET = 'client-secret-3f9a7c2e1d';

export interface TokenCall {
  grant: string | null;
  refreshToken: string | null;
  scope: string | null;
  resource: string[];
  authorization: string | null;
}

type Answer = 'ok' | 'invalid_grant' | 'invalid_client' | 'unavailable' | 'network' | 'garbage';

/** Answers token requests: `at-N-…` access tokens, and a new `rt-N-…` refresh token each time (rotation). */
export class TokenEndpointDouble {
  readonly calls: TokenCall[] = [];
  /** Seconds in `expires_in`. */
  expiresIn = 100;
  rotate = true;
  /** What the next requests get; `ok` once the script runs out. */
  readonly script: Answer[] = [];
  /** Resolves requests only when released (to hold a refresh in flight). */
  hold: Promise<void> | undefined;
  #n = 0;
  /** Every token value this endpoint ever issued. */
  readonly issued: string[] = [];

  readonly fetch: FetchLike = async (input, init) => {
    const body = new URLSearchParams(String(init?.body ?? ''));
    const headers = new Headers(init?.headers);
    this.calls.push({
      grant: body.get('grant_type'),
      refreshToken: body.get('refresh_token'),
      scope: body.get('scope'),
      resource: body.getAll('resource'),
      authorization: headers.get('authorization'),
    });
    if (String(input) !== TOKEN_URL) throw new Error(`unexpected token request to ${String(input)}`);
    if (this.hold !== undefined) await this.hold;
    const answer = this.script.shift() ?? 'ok';
    switch (answer) {
      case 'network':
        throw new TypeError('fetch failed', { cause: Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED' }) });
      case 'unavailable':
        return new Response('<html>503 Service Unavailable</html>', { status: 503, headers: { 'content-type': 'text/html' } });
      case 'invalid_grant':
        return json(400, { error: 'invalid_grant', error_description: 'grant request is invalid' });
      case 'invalid_client':
        return json(401, { error: 'invalid_client', error_description: 'client authentication failed' });
      case 'garbage':
        return json(200, { access_token: `at-garbage-${CLIENT_SECRET}-x`, token_type: 'mac' });
      case 'ok': {
        const n = ++this.#n;
        const access = `at-${n}-${'a'.repeat(24)}`;
        this.issued.push(access);
        const result: Record<string, unknown> = { access_token: access, token_type: 'Bearer', expires_in: this.expiresIn };
        if (this.rotate || body.get('grant_type') === 'client_credentials') {
          const refresh = `rt-${n}-${'r'.repeat(24)}`;
          this.issued.push(refresh);
          if (body.get('grant_type') === 'refresh_token') result['refresh_token'] = refresh;
        }
        return json(200, result);
      }
    }
  };

  /** The n-th access token issued (1-based). */
  access(n: number): string {
    return `at-${n}-${'a'.repeat(24)}`;
  }

  refresh(n: number): string {
    return `rt-${n}-${'r'.repeat(24)}`;
  }
}

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json', 'cache-control': 'no-store' } });
}

/**
 * An MCP peer that checks `authorization` in the per-message headers like a protected
 * server: a token it does not accept fails the send the way the SDK v1 HTTP transport
 * does on a 401 (StreamableHTTPError with code 401); an accepted one is answered.
 */
export class ProtectedPeer extends ScriptedPeer {
  /** Tokens the server accepts; by default, any `at-…` token not revoked. */
  readonly revoked = new Set<string>();
  readonly seen: Array<string | undefined> = [];
  rejectWith: () => Error = () => new StreamableHTTPError(401, 'Error POSTing to endpoint: {"error":"invalid_token"}');

  override async send(message: JSONRPCMessage, options?: TransportSendOptions): Promise<void> {
    const authorization = options?.headers?.['authorization'];
    const token = authorization?.replace(/^Bearer /, '');
    this.seen.push(token);
    if (token === undefined || !token.startsWith('at-') || this.revoked.has(token)) throw this.rejectWith();
    await super.send(message, options);
    if ('method' in message && 'id' in message && message.id !== undefined) {
      const id = message.id;
      queueMicrotask(() => this.deliver({ jsonrpc: '2.0', id, result: { ok: true } }));
    }
  }
}
