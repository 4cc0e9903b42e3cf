/**
 * The MCP SDKs' own auth objects as token sources, described structurally (no SDK code
 * is imported):
 *
 * - `AuthProvider` (v2, `@modelcontextprotocol/client`): `token()` before every request,
 *   `onUnauthorized()` after a 401. It owns refreshing; we call it once per rejected
 *   token however many requests saw the rejection (single-flight).
 * - `OAuthClientProvider` (v1 `@modelcontextprotocol/sdk`, and v2's): a holder of the
 *   tokens and the client registration that the SDK's interactive flow filled in. We
 *   refresh its tokens ourselves (oauth4webapi, `refresh_token` grant), save the rotated
 *   ones back through `saveTokens()`, and call `invalidateCredentials('tokens')` on
 *   `invalid_grant`, as the SDK does.
 */
import * as oauth from 'oauth4webapi';
import { UnauthorizedError } from './unauthorized.ts';
import { EventBus } from '../../src/core/events.ts';
import { AccessToken, jwtExpiry } from './access-token.ts';
import { SingleFlight } from './single-flight.ts';
import type { ClientCredentials, FetchLike, TokenEndpointLocation } from './token-endpoint.ts';
import type { Rejection, TokenSource } from './token-source.ts';
import type { StoredTokens, TokenStore } from './token-store.ts';
import { redactBearer } from '../observability/redact.ts';

type MaybePromise<T> = T | Promise<T>;

/** v2 `AuthProvider`. */
export interface SdkAuthProvider {
  token(): Promise<string | undefined>;
  onUnauthorized?(context: { response: Response; serverUrl: URL; fetchFn: FetchLike }): Promise<void>;
}

/** The token shape both SDKs store (RFC 6749 names). */
export interface SdkOAuthTokens {
  access_token: string;
  token_type: string;
  expires_in?: number | undefined;
  refresh_token?: string | undefined;
  scope?: string | undefined;
}

/** v1 / v2 `OAuthClientProvider`: the members we use. */
export interface SdkOAuthClientProvider {
  tokens(context?: { issuer: string }): MaybePromise<SdkOAuthTokens | undefined>;
  saveTokens(tokens: SdkOAuthTokens, context?: { issuer: string }): MaybePromise<void>;
  clientInformation(context?: { issuer: string }): MaybePromise<{ client_id: string; client_secret?: string | undefined; token_endpoint_auth_method?: string | undefined } | undefined>;
  invalidateCredentials?(scope: 'all' | 'client' | 'tokens' | 'verifier' | 'discovery'): MaybePromise<void>;
  addClientAuthentication?(headers: Headers, params: URLSearchParams, url: string | URL, metadata?: never): MaybePromise<void>;
  discoveryState?(): MaybePromise<{ authorizationServerUrl?: string; authorizationServerMetadata?: { issuer?: string; token_endpoint?: string } } | undefined>;
}

export function isSdkAuthProvider(value: unknown): value is SdkAuthProvider {
  return typeof value === 'object' && value !== null && typeof (value as SdkAuthProvider).token === 'function' && !isSdkOAuthClientProvider(value);
}

export function isSdkOAuthClientProvider(value: unknown): value is SdkOAuthClientProvider {
  const v = value as SdkOAuthClientProvider | null;
  return typeof v === 'object' && v !== null && typeof v.tokens === 'function' && typeof v.saveTokens === 'function' && typeof v.clientInformation === 'function';
}

/** A v2 AuthProvider as a TokenSource. */
export class AuthProviderTokenSource implements TokenSource {
  readonly events: EventBus;
  readonly #provider: SdkAuthProvider;
  readonly #serverUrl: URL | undefined;
  readonly #tokens = new SingleFlight<AccessToken>();
  readonly #refresh = new SingleFlight<AccessToken>();
  #token: AccessToken | undefined;
  #generation = 0;

  constructor(provider: SdkAuthProvider, options: { serverUrl?: URL | undefined; events?: EventBus | undefined } = {}) {
    this.#provider = provider;
    this.#serverUrl = options.serverUrl;
    this.events = options.events ?? new EventBus();
  }

  get current(): AccessToken | undefined {
    return this.#token;
  }

  token(signal?: AbortSignal): Promise<AccessToken> {
    // The provider caches and refreshes; concurrent callers share one call.
    return this.#tokens.run(() => this.#ask('provider'), signal);
  }

  rejected(token: AccessToken, rejection: Rejection, signal?: AbortSignal): Promise<AccessToken> {
    const latest = this.#token;
    if (latest !== undefined && latest.generation > token.generation) return Promise.resolve(latest);
    if (token.origin === 'rejection') {
      return Promise.reject(
        new UnauthorizedError('The server rejected the token the AuthProvider gave after its onUnauthorized(); not asking again.', { reason: 'token-rejected', neverSent: true }),
      );
    }
    return this.#refresh.run(() => this.#reauthorize(token, rejection), signal);
  }

  newer(_than: AccessToken, signal?: AbortSignal): Promise<AccessToken> {
    return this.token(signal);
  }

  async #ask(origin: 'provider' | 'rejection'): Promise<AccessToken> {
    let value: string | undefined;
    try {
      value = await this.#provider.token();
    } catch (error) {
      throw new UnauthorizedError(`The AuthProvider failed to give a token: ${message(error)}`, { reason: 'provider-failed', neverSent: true });
    }
    if (typeof value !== 'string' || value === '') {
      throw new UnauthorizedError('Authorization is needed: the AuthProvider has no token', { reason: 'no-token', neverSent: true });
    }
    const latest = this.#token;
    if (latest !== undefined && latest.reveal() === value) return latest;
    const token = new AccessToken({
      value,
      expiresAt: undefined,
      obtainedAt: Date.now(),
      refreshSkewMs: 0,
      generation: ++this.#generation,
      origin,
    });
    this.#token = token;
    return token;
  }

  async #reauthorize(rejected: AccessToken, rejection: Rejection): Promise<AccessToken> {
    const started = performance.now();
    const emit = (error?: UnauthorizedError) =>
      this.events.emit('token-refresh', { outcome: error === undefined ? 'ok' : 'failed', durationMs: performance.now() - started, reason: rejection.reason, ...(error === undefined ? {} : { error }) });
    try {
      const onUnauthorized = this.#provider.onUnauthorized;
      if (onUnauthorized === undefined) {
        throw new UnauthorizedError('The server rejected the access token, and the AuthProvider cannot refresh it (it has no onUnauthorized)', {
          reason: 'token-rejected',
          neverSent: true,
        });
      }
      const serverUrl = rejection.url ?? this.#serverUrl;
      if (serverUrl === undefined) {
        throw new UnauthorizedError('The server rejected the access token; give oauth() a `resource` (the MCP server URL) so that the AuthProvider can re-authorize', {
          reason: 'token-rejected',
          neverSent: true,
        });
      }
      try {
        await onUnauthorized.call(this.#provider, {
          response: rejection.response ?? new Response(null, { status: 401, statusText: 'Unauthorized' }),
          serverUrl,
          fetchFn: (input, init) => fetch(input, init),
        });
      } catch (error) {
        throw new UnauthorizedError(`Re-authorization is needed: the AuthProvider could not recover from a rejected token (${message(error)})`, {
          reason: 'reauthorization-required',
          neverSent: true,
        });
      }
      const token = await this.#ask('rejection');
      if (token.reveal() === rejected.reveal()) {
        throw new UnauthorizedError('The AuthProvider gave the rejected token again after onUnauthorized(); re-authorization is needed', {
          reason: 'token-rejected',
          neverSent: true,
        });
      }
      emit();
      return token;
    } catch (error) {
      const failure = error instanceof UnauthorizedError ? error : new UnauthorizedError(message(error), { reason: 'provider-failed', neverSent: true });
      emit(failure);
      throw failure;
    }
  }
}

/** A v1/v2 OAuthClientProvider's tokens() / saveTokens() as a TokenStore. */
export function providerTokenStore(provider: SdkOAuthClientProvider, issuer: () => string | undefined): TokenStore {
  // expires_in is relative and the provider does not say to what: remember our own answer.
  let saved: { accessToken: string; expiresAt: number | undefined } | undefined;
  const context = () => {
    const value = issuer();
    return value === undefined ? undefined : { issuer: value };
  };
  return {
    async load(): Promise<StoredTokens | undefined> {
      const tokens = await provider.tokens(context());
      if (tokens === undefined || tokens === null) return undefined;
      const known = saved?.accessToken === tokens.access_token ? saved.expiresAt : undefined;
      return {
        accessToken: tokens.access_token,
        tokenType: tokens.token_type,
        refreshToken: tokens.refresh_token,
        scope: tokens.scope,
        expiresAt: known ?? (tokens.access_token === undefined ? undefined : jwtExpiry(tokens.access_token)),
      };
    },
    async save(tokens: StoredTokens): Promise<void> {
      if (tokens.accessToken === undefined) return;
      saved = { accessToken: tokens.accessToken, expiresAt: tokens.expiresAt };
      const expiresIn = tokens.expiresAt === undefined ? undefined : Math.max(0, Math.floor((tokens.expiresAt - Date.now()) / 1000));
      await provider.saveTokens(
        {
          access_token: tokens.accessToken,
          token_type: 'Bearer',
          ...(expiresIn === undefined ? {} : { expires_in: expiresIn }),
          ...(tokens.refreshToken === undefined ? {} : { refresh_token: tokens.refreshToken }),
          ...(tokens.scope === undefined ? {} : { scope: tokens.scope }),
        },
        context(),
      );
    },
  };
}

/** The provider's client registration as client credentials (its own client authentication first). */
export function providerClient(provider: SdkOAuthClientProvider, issuer: () => string | undefined): () => Promise<ClientCredentials> {
  return async () => {
    const value = issuer();
    const info = await provider.clientInformation(value === undefined ? undefined : { issuer: value });
    if (info === undefined || typeof info.client_id !== 'string') {
      throw new UnauthorizedError('Authorization is needed: the OAuthClientProvider has no client registration (clientInformation() is empty)', {
        reason: 'no-client',
        neverSent: true,
      });
    }
    const custom = provider.addClientAuthentication;
    let clientAuth: oauth.ClientAuth;
    if (custom !== undefined) {
      clientAuth = (server, _client, body, headers) => custom.call(provider, headers, body, server.token_endpoint as string, server as never);
    } else if (info.client_secret !== undefined) {
      clientAuth = info.token_endpoint_auth_method === 'client_secret_post' ? oauth.ClientSecretPost(info.client_secret) : oauth.ClientSecretBasic(info.client_secret);
    } else {
      clientAuth = oauth.None();
    }
    return { clientId: info.client_id, clientAuth };
  };
}

/** Where the provider's discovery state says the token endpoint is. */
export function providerLocation(provider: SdkOAuthClientProvider): () => Promise<TokenEndpointLocation> {
  return async () => {
    const state = await provider.discoveryState?.();
    const metadata = state?.authorizationServerMetadata;
    if (metadata?.token_endpoint !== undefined) {
      return { tokenEndpoint: new URL(metadata.token_endpoint), issuer: metadata.issuer === undefined ? undefined : new URL(metadata.issuer) };
    }
    if (state?.authorizationServerUrl !== undefined) return { issuer: new URL(state.authorizationServerUrl) };
    throw new UnauthorizedError('No token endpoint is known: give oauth() an issuer or a tokenEndpoint (the OAuthClientProvider has no discovery state)', {
      reason: 'no-token-endpoint',
      neverSent: true,
    });
  };
}

function message(error: unknown): string {
  // Provider errors are the application's own; still, never let a bearer value through.
  return redactBearer(error instanceof Error ? error.message : String(error));
}
