/**
 * oauth(): OAuth 2.0 access tokens that are always fresh, on every transport.
 *
 *   const auth = oauth({ issuer, clientId, clientAuth: { method: 'client_secret_basic', clientSecret },
 *                        grant: 'client_credentials', resource: 'https://mcp.example.com/mcp' });
 *   const http = new StreamableHTTPClientTransport(url, { fetch: auth.fetch() });   // HTTP
 *   const ws = new WebSocketClientTransport(wsUrl, auth.webSocketOptions());      // WebSocket
 *   await client.connect(wrap(http, [auth, retry()]));
 *
 * Tokens come from the identity provider (oauth4webapi: client_credentials or
 * refresh_token grant), or from an SDK `AuthProvider` / `OAuthClientProvider`. They are
 * refreshed before they expire (one token request however many requests wait), and
 * after a server rejected one (HTTP 401 / `invalid_token`, a refused WebSocket upgrade,
 * close code 4401), with the request sent again once — a 401 proves it was not acted on.
 *
 * How the token reaches the wire depends on the transport (docs/oauth.md has the matrix):
 * per attempt in `ctx.options.headers.authorization` (transports that honour per-message
 * headers), through `auth.fetch()` (HTTP), through `auth.webSocketOptions()` (the
 * WebSocket handshake, renewed before expiry), or `auth.authProvider` (SDK v2 transports).
 *
 * Tokens, refresh tokens and client secrets never appear in errors, events or logs.
 */
import { inspect } from 'node:util';
import type { AccessToken } from './access-token.ts';
import { authorizedFetch } from './authorized-fetch.ts';
import { ConnectionRenewal, isReconnectable } from './connection-renewal.ts';
import { redactingHeaders, Secret } from './redact.ts';
import {
  AuthProviderTokenSource,
  isSdkAuthProvider,
  isSdkOAuthClientProvider,
  providerClient,
  providerLocation,
  providerTokenStore,
  type SdkAuthProvider,
  type SdkOAuthClientProvider,
} from './sdk-providers.ts';
import {
  type ClientAuthentication,
  clientAuthFunction,
  type FetchLike,
  isLoopback,
  TokenEndpoint,
  type TokenEndpointLocation,
} from './token-endpoint.ts';
import { GrantingTokenSource, type TokenSource } from './token-source.ts';
import { MemoryTokenStore, type TokenStore } from './token-store.ts';
import { UnauthorizedError } from './unauthorized.ts';
import type { Context, Session } from '../../src/core/context.ts';
import { McpLayersError, TransportError } from '../../src/core/errors.ts';
import { integerOption, invalidOption, numberOption, settingsObject } from '../../src/core/options.ts';
import { EventBus } from '../../src/core/events.ts';
import type { Layer, LayerHost, Next } from '../../src/core/layer.ts';

export type { AccessToken } from './access-token.ts';
export { FileTokenStore } from './file-token-store.ts';
export type { ClientAuthentication, FetchLike } from './token-endpoint.ts';
export type { SdkAuthProvider, SdkOAuthClientProvider } from './sdk-providers.ts';
export { MemoryTokenStore, type StoredTokens, type TokenStore } from './token-store.ts';
export { UnauthorizedError } from './unauthorized.ts';

declare module '../../src/core/events.ts' {
  interface LayerEvents {
    /** A token request ended (`reason`: initial, expired, proactive, rejected, renewal). Never carries a token. */
    'token-refresh': { outcome: 'ok' | 'failed'; durationMs: number; reason: string; error?: Error };
    /** The token store could not load or save; a rotated refresh token may be lost on restart. */
    'token-store-failed': { operation: 'load' | 'save'; error: Error };
  }
}

export interface OAuthOptions {
  /** The authorization server; its token endpoint is discovered (RFC 8414, then OpenID Connect). */
  issuer?: string | URL;
  /** The token endpoint, when there is no discovery (with `issuer` too, the issuer is still the assertion audience). */
  tokenEndpoint?: string | URL;
  clientId?: string;
  /** How the client authenticates to the token endpoint. Default `{ method: 'none' }` (public client, refresh_token only). */
  clientAuth?: ClientAuthentication;
  /** `client_credentials` (a service), or `refresh_token` (a user authorized once; its tokens are in `store`). */
  grant?: 'client_credentials' | 'refresh_token';
  /** Scopes to ask for with client_credentials (a refresh keeps what the user granted). Default: none (the server's default). */
  scopes?: readonly string[];
  /** The MCP server(s) the token is for (RFC 8707 resource indicators), e.g. `https://mcp.example.com/mcp`. */
  resource?: string | URL | ReadonlyArray<string | URL>;
  /** Refresh this long before the token expires (at most half its lifetime). Default 60 000 ms. */
  refreshSkewMs?: number;
  /** Where tokens are kept; a rotated refresh token is saved here. Default: a MemoryTokenStore. */
  store?: TokenStore;
  /** An SDK `AuthProvider` (v2) or `OAuthClientProvider` (v1 or v2) as the source of tokens. */
  provider?: SdkAuthProvider | SdkOAuthClientProvider;
  /** How long one token request may take. Default 10 000 ms. */
  timeoutMs?: number;
  /** Retries of a token request that failed for a transient reason. Default `{ maxRetries: 3, initialDelayMs: 250, maxDelayMs: 5000 }`. */
  retry?: { maxRetries?: number; initialDelayMs?: number; maxDelayMs?: number };
  /** The token endpoint's own circuit breaker. Default `{ consecutiveFailures: 5, halfOpenAfterMs: 30 000 }`. */
  breaker?: { consecutiveFailures?: number; halfOpenAfterMs?: number };
  /** The fetch used for token requests (a proxy, custom TLS). Default: global fetch. */
  fetch?: FetchLike;
  /** Put `authorization` in `ctx.options.headers` of every attempt. Default true. */
  perMessageHeaders?: boolean;
}

/** What the unauthorized hook of mcp-layers/ws passes (a refused upgrade or an unauthorized close). */
export interface UnauthorizedEvent {
  status?: number | undefined;
  code?: number | undefined;
  reason?: string | undefined;
}

export interface OAuthLayer extends Layer {
  readonly name: 'oauth';
  /** `token-refresh` and `token-store-failed`, also forwarded to every transport the layer is attached to. */
  readonly events: EventBus;
  /** A token to send now (refreshed as needed), for transports of your own. */
  token(signal?: AbortSignal): Promise<AccessToken>;
  /** A fetch for HTTP transports: authorizes every request; on a 401 refreshes and sends it again once. */
  fetch(base?: FetchLike): FetchLike;
  /** Options for mcp-layers/ws WebSocketClientTransport: the handshake's Authorization header, and the hook for refused ones. */
  webSocketOptions(): { headers: () => Promise<Record<string, string>>; onunauthorized: (event: UnauthorizedEvent) => Promise<void> };
  /** The SDK v2 AuthProvider shape, for `new StreamableHTTPClientTransport(url, { authProvider })`. */
  readonly authProvider: Required<SdkAuthProvider>;
}

const DEFAULT_REFRESH_SKEW_MS = 60_000;
const DEFAULT_TOKEN_TIMEOUT_MS = 10_000;
const DEFAULT_TOKEN_RETRY = { maxRetries: 3, initialDelayMs: 250, maxDelayMs: 5000 } as const;
const DEFAULT_TOKEN_BREAKER = { consecutiveFailures: 5, halfOpenAfterMs: 30_000 } as const;

/** Per wrapped transport. */
interface HostState {
  renewal: ConnectionRenewal | undefined;
}

export function oauth(options?: OAuthOptions): OAuthLayer {
  const settings = resolve(options);
  const events = new EventBus();
  const source = settings.source(events);
  const hosts = new WeakMap<Session, HostState>();
  /** The token the latest WebSocket handshake carried. */
  let handshakeToken: AccessToken | undefined;
  /** The token the latest authProvider.token() gave. */
  let providedToken: AccessToken | undefined;

  const handle = async (ctx: Context, next: Next): Promise<void> => {
    const renewal = hosts.get(ctx.session)?.renewal;
    if (ctx.direction === 'inbound') {
      if (renewal === undefined || ctx.kind !== 'request') return next();
      // A request from the server (sampling...) is answered on the connection it came on: a renewal waits for it.
      renewal.track();
      try {
        return await next();
      } finally {
        renewal.leave();
      }
    }
    if (renewal === undefined) return authorize(ctx, next);
    await renewal.enter(ctx.signal);
    try {
      await authorize(ctx, next);
    } finally {
      renewal.leave();
    }
  };

  const authorize = async (ctx: Context, next: Next): Promise<void> => {
    let token = await source.token(ctx.signal);
    if (settings.perMessageHeaders) ctx.options = withAuthorization(ctx, token);
    try {
      await next();
      return;
    } catch (error) {
      if (!rejectsToken(error)) throw error;
      token = await source.rejected(token, { reason: 'rejected' }, ctx.signal);
    }
    // A 401 proves the request was not acted on: sending it again is safe whatever it is.
    if (settings.perMessageHeaders) ctx.options = withAuthorization(ctx, token);
    try {
      await next();
    } catch (error) {
      if (!rejectsToken(error)) throw error;
      throw new UnauthorizedError(`The server rejected the access token for ${ctx.method} even after a refresh; check that the token is meant for this server (resource / audience) and carries the scopes it needs`, {
        reason: 'token-rejected',
        neverSent: true,
      });
    }
  };

  const attach = (host: LayerHost): (() => void) => {
    const stops: Array<() => void> = [];
    stops.push(events.on('token-refresh', (event) => host.events.emit('token-refresh', event)));
    stops.push(events.on('token-store-failed', (event) => host.events.emit('token-store-failed', event)));
    stops.push(events.on('breaker-state', (event) => host.events.emit('breaker-state', event)));
    const state: HostState = { renewal: undefined };
    const inner = host.inner as unknown as { events?: unknown };
    // A transport whose connection carries the token from its handshake, and tells when it (re)connects.
    if (isReconnectable(inner) && inner.events instanceof EventBus) {
      const renewal = new ConnectionRenewal(source, inner);
      state.renewal = renewal;
      stops.push(
        inner.events.on('connection', (event) => {
          if (event.state === 'open') renewal.opened(handshakeToken);
        }),
      );
      stops.push(() => renewal.close());
    }
    hosts.set(host.session, state);
    return () => {
      for (const stop of stops) stop();
    };
  };

  const layer: OAuthLayer = {
    name: 'oauth',
    handle,
    attach,
    events,
    token: (signal) => source.token(signal),
    fetch: (base) => authorizedFetch(source, base),
    webSocketOptions: () => ({
      headers: async () => {
        const token = await source.token();
        handshakeToken = token;
        return redactingHeaders({ authorization: token.authorization() }) as Record<string, string>;
      },
      onunauthorized: async (_event) => {
        const rejected = handshakeToken;
        if (rejected !== undefined) await source.rejected(rejected, { reason: 'rejected', url: settings.serverUrl });
      },
    }),
    authProvider: {
      token: async () => {
        providedToken = await source.token();
        return providedToken.reveal();
      },
      onUnauthorized: async (context) => {
        const rejected = providedToken ?? source.current;
        if (rejected !== undefined) await source.rejected(rejected, { reason: 'rejected', response: context.response, url: context.serverUrl });
      },
    },
  };
  Object.defineProperty(layer, inspect.custom, { value: () => `OAuthLayer { ${settings.describe} }`, enumerable: false });
  Object.defineProperty(layer, 'toJSON', { value: () => `OAuthLayer { ${settings.describe} }`, enumerable: false });
  return layer;
}

/** A failed attempt that says the server refused the token (and that we did not already handle). */
function rejectsToken(error: unknown): boolean {
  // Ours: the fetch wrapper already refreshed and tried again, or the token could not be had.
  if (error instanceof McpLayersError && error.layer === 'oauth') return false;
  if (error instanceof TransportError && error.status === 401) return true;
  // The SDK v2 HTTP transport throws its UnauthorizedError on a 401 when it has no authProvider.
  for (let cause: unknown = error, depth = 0; cause instanceof Error && depth < 4; cause = cause.cause, depth++) {
    if (cause instanceof McpLayersError) continue;
    if (cause.name === 'UnauthorizedError') return true;
    const { status, code } = cause as { status?: unknown; code?: unknown };
    if (status === 401 || code === 401) return true;
  }
  return false;
}

function withAuthorization(ctx: Context, token: AccessToken): Context['options'] {
  const options = ctx.options;
  return { ...options, headers: redactingHeaders({ ...options?.headers, authorization: token.authorization() }) };
}

// ── options ─────────────────────────────────────────────────────────────────────

interface Resolved {
  source: (events: EventBus) => TokenSource;
  perMessageHeaders: boolean;
  serverUrl: URL | undefined;
  describe: string;
}

const KNOWN = new Set([
  'issuer',
  'tokenEndpoint',
  'clientId',
  'clientAuth',
  'grant',
  'scopes',
  'resource',
  'refreshSkewMs',
  'store',
  'provider',
  'timeoutMs',
  'retry',
  'breaker',
  'fetch',
  'perMessageHeaders',
]);

function resolve(options: OAuthOptions | undefined): Resolved {
  if (typeof options !== 'object' || options === null) throw invalidOption('oauth options', 'an object', options);
  for (const key of Object.keys(options)) if (!KNOWN.has(key)) throw invalidOption(`oauth.${key}`, `one of the oauth options (${[...KNOWN].join(', ')})`, key);
  const issuer = urlOption('oauth.issuer', options.issuer);
  const tokenEndpoint = urlOption('oauth.tokenEndpoint', options.tokenEndpoint);
  const resource = resourceOption(options.resource);
  const scopes = scopesOption(options.scopes);
  const refreshSkewMs = numberOption('oauth.refreshSkewMs', options.refreshSkewMs, DEFAULT_REFRESH_SKEW_MS, 0);
  const timeoutMs = numberOption('oauth.timeoutMs', options.timeoutMs, DEFAULT_TOKEN_TIMEOUT_MS, 1);
  const retry = settingsObject('oauth.retry', options.retry, ['maxRetries', 'initialDelayMs', 'maxDelayMs']);
  const retrySettings = {
    maxRetries: integerOption('oauth.retry.maxRetries', retry['maxRetries'], DEFAULT_TOKEN_RETRY.maxRetries, 0),
    initialDelayMs: numberOption('oauth.retry.initialDelayMs', retry['initialDelayMs'], DEFAULT_TOKEN_RETRY.initialDelayMs, 0),
    maxDelayMs: numberOption('oauth.retry.maxDelayMs', retry['maxDelayMs'], DEFAULT_TOKEN_RETRY.maxDelayMs, 0),
  };
  if (retrySettings.maxDelayMs < retrySettings.initialDelayMs) {
    throw invalidOption('oauth.retry.maxDelayMs', `a number >= retry.initialDelayMs (${retrySettings.initialDelayMs})`, retrySettings.maxDelayMs);
  }
  const breaker = settingsObject('oauth.breaker', options.breaker, ['consecutiveFailures', 'halfOpenAfterMs']);
  const breakerSettings = {
    consecutiveFailures: integerOption('oauth.breaker.consecutiveFailures', breaker['consecutiveFailures'], DEFAULT_TOKEN_BREAKER.consecutiveFailures, 1),
    halfOpenAfterMs: numberOption('oauth.breaker.halfOpenAfterMs', breaker['halfOpenAfterMs'], DEFAULT_TOKEN_BREAKER.halfOpenAfterMs, 0),
  };
  if (options.fetch !== undefined && typeof options.fetch !== 'function') throw invalidOption('oauth.fetch', 'a fetch function', options.fetch);
  if (options.perMessageHeaders !== undefined && typeof options.perMessageHeaders !== 'boolean') {
    throw invalidOption('oauth.perMessageHeaders', 'a boolean', options.perMessageHeaders);
  }
  if (options.store !== undefined && (typeof options.store?.load !== 'function' || typeof options.store?.save !== 'function')) {
    throw invalidOption('oauth.store', 'a token store (an object with load() and save())', options.store);
  }
  if (options.grant !== undefined && options.grant !== 'client_credentials' && options.grant !== 'refresh_token') {
    throw invalidOption('oauth.grant', '"client_credentials" or "refresh_token"', options.grant);
  }
  const perMessageHeaders = options.perMessageHeaders ?? true;
  const serverUrl = resource?.[0] === undefined ? undefined : new URL(resource[0]);
  const provider = options.provider;

  if (provider !== undefined && isSdkAuthProvider(provider)) {
    for (const key of ['issuer', 'tokenEndpoint', 'clientId', 'clientAuth', 'grant', 'scopes', 'store', 'retry', 'breaker', 'fetch', 'timeoutMs'] as const) {
      if (options[key] !== undefined) throw invalidOption(`oauth.${key}`, 'nothing: an AuthProvider (oauth.provider) obtains its tokens itself', options[key]);
    }
    return { source: (events) => new AuthProviderTokenSource(provider, { serverUrl, events }), perMessageHeaders, serverUrl, describe: 'AuthProvider' };
  }
  if (provider !== undefined && !isSdkOAuthClientProvider(provider)) {
    throw invalidOption('oauth.provider', 'an SDK AuthProvider (token()) or OAuthClientProvider (tokens(), saveTokens(), clientInformation())', provider);
  }

  const grant = options.grant ?? (provider !== undefined ? 'refresh_token' : undefined);
  if (grant === undefined) throw invalidOption('oauth.grant', '"client_credentials" or "refresh_token"', undefined);
  if (provider === undefined) {
    if (issuer === undefined && tokenEndpoint === undefined) throw invalidOption('oauth.issuer', 'an issuer URL (or oauth.tokenEndpoint)', undefined);
    if (typeof options.clientId !== 'string' || options.clientId === '') throw invalidOption('oauth.clientId', 'a non-empty string', options.clientId);
  } else if (options.store !== undefined) {
    throw invalidOption('oauth.store', 'nothing: the OAuthClientProvider (oauth.provider) keeps the tokens', options.store);
  }
  if (options.clientId !== undefined && (typeof options.clientId !== 'string' || options.clientId === '')) {
    throw invalidOption('oauth.clientId', 'a non-empty string', options.clientId);
  }
  const clientAuth = clientAuthOption(options.clientAuth, grant, provider !== undefined);
  const secret = clientSecretOf(options.clientAuth);

  const location: () => TokenEndpointLocation | Promise<TokenEndpointLocation> =
    issuer !== undefined || tokenEndpoint !== undefined || provider === undefined ? () => ({ issuer, tokenEndpoint }) : providerLocation(provider);
  let knownIssuer: string | undefined = issuer?.href;
  const client =
    provider !== undefined && (options.clientId === undefined || clientAuth === undefined)
      ? providerClient(provider, () => knownIssuer)
      : () => ({ clientId: options.clientId as string, clientAuth: clientAuth ?? clientAuthFunction({ method: 'none' }) });
  const store = provider !== undefined ? providerTokenStore(provider, () => knownIssuer) : (options.store ?? new MemoryTokenStore());
  const where = (tokenEndpoint ?? issuer)?.href ?? 'the provider’s authorization server';

  return {
    perMessageHeaders,
    serverUrl,
    describe: `${grant} at ${where}${options.clientId === undefined ? '' : ` for client "${options.clientId}"`}`,
    source: (events) => {
      let tokens: GrantingTokenSource | undefined;
      const endpoint = new TokenEndpoint({
        locate: async () => {
          const found = await location();
          knownIssuer ??= found.issuer?.href;
          return found;
        },
        client,
        secrets: () => [...(tokens?.secrets() ?? []), secret],
        scopes,
        resource: resource?.map((r) => r.toString()),
        timeoutMs,
        retry: retrySettings,
        breaker: breakerSettings,
        fetch: options.fetch,
        onBreakerState: (from, to) => events.emit('breaker-state', { key: 'oauth-token-endpoint', from, to, reason: to === 'open' ? 'token endpoint failing' : undefined }),
      });
      tokens = new GrantingTokenSource({
        grant,
        endpoint,
        store,
        refreshSkewMs,
        events,
        onInvalidGrant: provider === undefined ? undefined : () => provider.invalidateCredentials?.('tokens'),
      });
      return tokens;
    },
  };
}

function clientAuthOption(value: unknown, grant: string, hasProvider: boolean) {
  if (value === undefined) {
    if (grant === 'client_credentials' && !hasProvider) {
      throw invalidOption('oauth.clientAuth', 'client authentication for the client_credentials grant ({ method: "client_secret_basic", clientSecret } ...)', undefined);
    }
    return undefined;
  }
  if (typeof value === 'function') return clientAuthFunction(value as ClientAuthentication);
  const v = value as { method?: unknown; clientSecret?: unknown; privateKey?: unknown };
  if (typeof v !== 'object' || v === null) throw invalidOption('oauth.clientAuth', 'an object with a method', value);
  switch (v.method) {
    case 'client_secret_basic':
    case 'client_secret_post':
    case 'client_secret_jwt':
      // Never echo a secret back, not even a wrong one.
      if (typeof v.clientSecret !== 'string' || v.clientSecret === '') throw invalidOption('oauth.clientAuth.clientSecret', 'a non-empty string', typeof v.clientSecret === 'string' ? '' : v.clientSecret);
      break;
    case 'private_key_jwt':
      if (typeof v.privateKey !== 'object' || v.privateKey === null || (v.privateKey as { type?: unknown }).type !== 'private') {
        // A string here may well be a secret pasted into the wrong field: never echo it.
        throw invalidOption(
          'oauth.clientAuth.privateKey',
          'a private CryptoKey',
          typeof v.privateKey === 'string' ? '[redacted]' : typeof v.privateKey === 'object' && v.privateKey !== null ? { type: (v.privateKey as { type?: unknown }).type } : v.privateKey,
        );
      }
      break;
    case 'none':
      if (grant === 'client_credentials') throw invalidOption('oauth.clientAuth.method', 'a confidential client method for client_credentials', 'none');
      break;
    default:
      throw invalidOption('oauth.clientAuth.method', '"client_secret_basic", "client_secret_post", "client_secret_jwt", "private_key_jwt" or "none"', v.method);
  }
  return clientAuthFunction(value as ClientAuthentication);
}

function clientSecretOf(value: unknown): Secret | undefined {
  const secret = (value as { clientSecret?: unknown } | undefined)?.clientSecret;
  return typeof secret === 'string' ? new Secret(secret, 'client secret') : undefined;
}

function urlOption(name: string, value: unknown): URL | undefined {
  if (value === undefined) return undefined;
  let url: URL;
  try {
    url = new URL(value as string | URL);
  } catch {
    throw invalidOption(name, 'an absolute https:// URL', value);
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && isLoopback(url))) {
    throw invalidOption(name, 'an https:// URL (http:// only for 127.0.0.1, ::1 or localhost)', url.href);
  }
  return url;
}

function resourceOption(value: unknown): URL[] | undefined {
  if (value === undefined) return undefined;
  const list = Array.isArray(value) ? value : [value];
  if (list.length === 0) throw invalidOption('oauth.resource', 'a URL or a non-empty list of URLs', value);
  return list.map((item: unknown, i) => {
    const name = Array.isArray(value) ? `oauth.resource[${i}]` : 'oauth.resource';
    let url: URL;
    try {
      url = new URL(item as string | URL);
    } catch {
      throw invalidOption(name, 'an absolute URL (the MCP server, RFC 8707)', item);
    }
    if (url.hash !== '') throw invalidOption(name, 'a URL without a #fragment (RFC 8707)', url.href);
    return url;
  });
}

function scopesOption(value: unknown): string[] | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value)) throw invalidOption('oauth.scopes', 'an array of scope strings', value);
  value.forEach((scope: unknown, i) => {
    if (typeof scope !== 'string' || scope === '' || /\s/.test(scope)) throw invalidOption(`oauth.scopes[${i}]`, 'a scope without spaces', scope);
  });
  return [...(value as string[])];
}

