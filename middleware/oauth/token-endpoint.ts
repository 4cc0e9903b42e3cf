/**
 * Token requests, made by oauth4webapi (no hand-written OAuth here), behind a retry with
 * exponential backoff and a circuit breaker of their own (cockatiel):
 *
 *   refresh ─► retry (transient failures only) ─► breaker ─► oauth4webapi ─► token endpoint
 *
 * Only failures that say nothing about the credentials are retried: the endpoint was
 * unreachable, timed out, answered a status the one table calls retryable (503, 429…;
 * docs/errors.md), or said `temporarily_unavailable`. They
 * also count against the breaker, which fails fast once the identity provider looks
 * dead, so that a fleet of clients does not hammer it while it recovers. An OAuth error
 * (`invalid_grant`, `invalid_client`...) is final: retrying cannot change the answer.
 *
 * Every failure becomes an UnauthorizedError whose message says what to do, and which
 * never carries a token, a refresh token or a client secret — not even in its `cause`.
 */
import {
  BrokenCircuitError,
  circuitBreaker,
  ConsecutiveBreaker,
  type CircuitBreakerPolicy,
  ExponentialBackoff,
  handleWhen,
  retry,
  type RetryPolicy,
} from 'cockatiel';
import * as oauth from 'oauth4webapi';
import { classifyConnectionError, classifyStatus } from '../../src/core/failure.ts';
// The token endpoint's breaker reports in the circuit breaker's vocabulary, on its `breaker-state` event.
import { type BreakerState, breakerStateOf } from '../circuit-breaker.ts';
import { UnauthorizedError } from './unauthorized.ts';
import { scrub, type Secret } from './redact.ts';

/** How the client proves who it is to the token endpoint. */
export type ClientAuthentication =
  | { method: 'client_secret_basic' | 'client_secret_post' | 'client_secret_jwt'; clientSecret: string }
  | { method: 'private_key_jwt'; privateKey: oauth.CryptoKey; keyId?: string }
  | { method: 'none' }
  /** An oauth4webapi `ClientAuth` function, for anything else (mTLS, a custom assertion). */
  | oauth.ClientAuth;

export type FetchLike = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

/** Where tokens come from: a token endpoint, or an issuer whose metadata names it. */
export interface TokenEndpointLocation {
  /** Discovered from (RFC 8414, then OpenID Connect) unless `tokenEndpoint` is given. */
  issuer?: URL | undefined;
  tokenEndpoint?: URL | undefined;
}

export interface ClientCredentials {
  clientId: string;
  clientAuth: oauth.ClientAuth;
}

export interface TokenEndpointSettings {
  /** Called before each request until it has answered once (an SDK provider may know it only later). */
  locate: () => TokenEndpointLocation | Promise<TokenEndpointLocation>;
  /** Called before each request. */
  client: () => ClientCredentials | Promise<ClientCredentials>;
  /** Values scrubbed from any text that reaches an error message. */
  secrets: () => Iterable<Secret | string | undefined>;
  scopes: readonly string[] | undefined;
  resource: readonly string[] | undefined;
  /** One token request (or discovery request) may take this long. */
  timeoutMs: number;
  retry: { maxRetries: number; initialDelayMs: number; maxDelayMs: number };
  breaker: { consecutiveFailures: number; halfOpenAfterMs: number };
  fetch: FetchLike | undefined;
  onBreakerState?: ((from: BreakerState, to: BreakerState) => void) | undefined;
}

/** A successful token response, its secrets already wrapped. */
export interface GrantResult {
  accessToken: string;
  tokenType: string;
  expiresIn: number | undefined;
  refreshToken: string | undefined;
  scope: string | undefined;
  /** When the (successful) request was sent: the base for `expires_in`. */
  sentAt: number;
}

/** Turns the `clientAuth` option into oauth4webapi's ClientAuth. */
export function clientAuthFunction(auth: ClientAuthentication): oauth.ClientAuth {
  if (typeof auth === 'function') return auth;
  switch (auth.method) {
    case 'client_secret_basic':
      return oauth.ClientSecretBasic(auth.clientSecret);
    case 'client_secret_post':
      return oauth.ClientSecretPost(auth.clientSecret);
    case 'client_secret_jwt':
      return oauth.ClientSecretJwt(auth.clientSecret);
    case 'private_key_jwt':
      return oauth.PrivateKeyJwt(auth.keyId === undefined ? auth.privateKey : { key: auth.privateKey, kid: auth.keyId });
    case 'none':
      return oauth.None();
  }
}

export class TokenEndpoint {
  readonly #settings: TokenEndpointSettings;
  #clientId = 'unknown';
  #location: TokenEndpointLocation | undefined;
  readonly #policy: RetryPolicy;
  readonly #breaker: CircuitBreakerPolicy;
  #server: oauth.AuthorizationServer | undefined;
  #lastState: BreakerState = 'closed';

  constructor(settings: TokenEndpointSettings) {
    this.#settings = settings;
    this.#breaker = circuitBreaker(handleWhen(isTransient), {
      halfOpenAfter: settings.breaker.halfOpenAfterMs,
      breaker: new ConsecutiveBreaker(settings.breaker.consecutiveFailures),
    });
    this.#breaker.onStateChange((state) => {
      const to = breakerStateOf(state);
      settings.onBreakerState?.(this.#lastState, to);
      this.#lastState = to;
    });
    // The retry is outside the breaker: each attempt counts, and an open breaker (not transient) ends the retries.
    this.#policy = retry(handleWhen(isTransient), {
      maxAttempts: settings.retry.maxRetries,
      backoff: new ExponentialBackoff({ initialDelay: settings.retry.initialDelayMs, maxDelay: settings.retry.maxDelayMs }),
    }).dangerouslyUnref();
  }

  /** Where tokens come from, for messages. */
  get location(): string {
    return (this.#server?.token_endpoint ?? this.#location?.tokenEndpoint ?? this.#location?.issuer)?.toString() ?? 'the token endpoint';
  }

  /** The `client_credentials` grant. */
  clientCredentials(): Promise<GrantResult> {
    return this.#request('client_credentials', async (server, client, options) => {
      const parameters = new URLSearchParams();
      if (this.#settings.scopes !== undefined && this.#settings.scopes.length > 0) parameters.set('scope', this.#settings.scopes.join(' '));
      for (const resource of this.#settings.resource ?? []) parameters.append('resource', resource);
      const response = await oauth.clientCredentialsGrantRequest(server, { client_id: client.clientId }, client.clientAuth, parameters, options);
      return oauth.processClientCredentialsResponse(server, { client_id: client.clientId }, response);
    });
  }

  /** The `refresh_token` grant. The response may carry a new (rotated) refresh token. */
  refresh(refreshToken: Secret): Promise<GrantResult> {
    return this.#request('refresh_token', async (server, client, options) => {
      // No scope: a refresh keeps what the user granted (RFC 6749 §6); asking again risks invalid_scope.
      const additionalParameters = new URLSearchParams();
      for (const resource of this.#settings.resource ?? []) additionalParameters.append('resource', resource);
      const response = await oauth.refreshTokenGrantRequest(server, { client_id: client.clientId }, client.clientAuth, refreshToken.reveal(), {
        ...options,
        additionalParameters,
      });
      return oauth.processRefreshTokenResponse(server, { client_id: client.clientId }, response);
    });
  }

  async #request(
    grant: string,
    exchange: (server: oauth.AuthorizationServer, client: ClientCredentials, options: oauth.TokenEndpointRequestOptions) => Promise<oauth.TokenEndpointResponse>,
  ): Promise<GrantResult> {
    let attempts = 0;
    try {
      return await this.#policy.execute(() =>
        this.#breaker.execute(async () => {
          attempts++;
          const server = await this.#authorizationServer();
          const client = await this.#own('the client credentials', () => this.#settings.client());
          this.#clientId = client.clientId;
          const sentAt = Date.now();
          const response = await exchange(server, client, this.#httpOptions(server.token_endpoint as string));
          return {
            accessToken: response.access_token,
            tokenType: response.token_type,
            expiresIn: response.expires_in,
            refreshToken: response.refresh_token,
            scope: response.scope,
            sentAt,
          };
        }),
      );
    } catch (error) {
      throw this.#failure(error, grant, attempts);
    }
  }

  /** The authorization server's metadata: given, or discovered once (and again after a failure). */
  async #authorizationServer(): Promise<oauth.AuthorizationServer> {
    if (this.#server !== undefined) return this.#server;
    const location = (this.#location ??= await this.#own('where the token endpoint is', () => this.#settings.locate()));
    const { issuer, tokenEndpoint } = location;
    if (tokenEndpoint !== undefined) {
      // No discovery: the issuer (when known) is still the audience of client assertions.
      this.#server = { issuer: (issuer ?? new URL(tokenEndpoint.origin)).href.replace(/\/$/, ''), token_endpoint: tokenEndpoint.href };
      return this.#server;
    }
    if (issuer === undefined) {
      this.#location = undefined;
      throw new UnauthorizedError('No token endpoint is known: give oauth() an issuer or a tokenEndpoint', { reason: 'no-token-endpoint', neverSent: true });
    }
    const url = issuer;
    for (const algorithm of ['oauth2', 'oidc'] as const) {
      const response = await oauth.discoveryRequest(url, { ...(this.#httpOptions(url.href) as oauth.DiscoveryRequestOptions), algorithm });
      // RFC 8414 metadata first, then OpenID Connect's, as the MCP authorization spec does.
      if (response.status === 404 && algorithm === 'oauth2') {
        await response.body?.cancel();
        continue;
      }
      const server = await oauth.processDiscoveryResponse(url, response);
      if (typeof server.token_endpoint !== 'string') {
        throw new UnauthorizedError(`The authorization server ${url.href} publishes no token_endpoint in its metadata`, { reason: 'no-token-endpoint', neverSent: true });
      }
      this.#server = server;
      return server;
    }
    throw new UnauthorizedError(`No authorization server metadata found for ${url.href}`, { reason: 'discovery-failed', neverSent: true });
  }

  /** Runs a callback of the caller's (an SDK provider's); its failure is final, and says whose it was. */
  async #own<T>(what: string, callback: () => T | Promise<T>): Promise<T> {
    try {
      return await callback();
    } catch (error) {
      if (error instanceof UnauthorizedError) throw error;
      const message = error instanceof Error ? scrub(error.message, this.#settings.secrets()) : String(error);
      throw new UnauthorizedError(`Could not learn ${what}: ${message}`, { reason: 'credentials-unavailable', neverSent: true });
    }
  }

  #httpOptions(target: string): oauth.TokenEndpointRequestOptions {
    const options: oauth.TokenEndpointRequestOptions = { signal: AbortSignal.timeout(this.#settings.timeoutMs) };
    // Plain http only for the loopback interface (a local identity provider, tests).
    if (isLoopback(new URL(target))) options[oauth.allowInsecureRequests] = true;
    const fetchImpl = this.#settings.fetch;
    if (fetchImpl !== undefined) options[oauth.customFetch] = (url, init) => fetchImpl(url, init as unknown as RequestInit);
    return options;
  }

  /** The error a caller sees: what happened and what to do, never a secret. */
  #failure(error: unknown, grant: string, attempts: number): UnauthorizedError {
    if (error instanceof UnauthorizedError) return error;
    const where = this.location;
    const secrets = this.#settings.secrets();
    if (error instanceof BrokenCircuitError) {
      const retryAfterMs = Math.max(0, this.#settings.breaker.halfOpenAfterMs);
      return new UnauthorizedError(
        `The token endpoint ${where} was not contacted: its circuit breaker is open after ${this.#settings.breaker.consecutiveFailures} consecutive failures; it is tried again within ${Math.ceil(retryAfterMs / 1000)} s`,
        { reason: 'token-endpoint-circuit-open', retryable: true, neverSent: true, retryAfterMs },
      );
    }
    if (error instanceof oauth.ResponseBodyError) {
      const code = error.error;
      const description = error.error_description === undefined ? '' : `: ${scrub(String(error.error_description).slice(0, 300), secrets)}`;
      const data = { oauthError: code, status: error.status, grant };
      if (isTransient(error)) {
        return new UnauthorizedError(`The token endpoint ${where} failed ${attempts} time(s), last with HTTP ${error.status} ${code}${description}`, {
          reason: 'token-endpoint-unavailable',
          retryable: true,
          neverSent: true,
          data,
        });
      }
      if (code === 'invalid_grant') {
        return new UnauthorizedError(
          grant === 'refresh_token'
            ? `Re-authorization is needed: the identity provider rejected the refresh token (invalid_grant${description}). It was revoked or expired; run the authorization flow again and save the new tokens in the token store.`
            : `The identity provider rejected the ${grant} grant (invalid_grant${description}); re-authorization is needed.`,
          { reason: 'invalid-grant', neverSent: true, data },
        );
      }
      if (code === 'invalid_client' || code === 'unauthorized_client') {
        return new UnauthorizedError(
          `The identity provider rejected client "${this.#clientId}" (${code}${description}): check clientId and clientAuth, and that the client may use the ${grant} grant`,
          { reason: code === 'invalid_client' ? 'invalid-client' : 'unauthorized-client', neverSent: true, data },
        );
      }
      return new UnauthorizedError(`The identity provider refused the ${grant} token request (${code}${description})`, {
        reason: 'token-request-rejected',
        neverSent: true,
        data,
      });
    }
    if (error instanceof oauth.WWWAuthenticateChallengeError) {
      return new UnauthorizedError(
        `The token endpoint ${where} refused client "${this.#clientId}" with HTTP ${error.status} (a WWW-Authenticate challenge): check clientId and clientAuth`,
        { reason: 'invalid-client', neverSent: true, data: { status: error.status, grant } },
      );
    }
    const status = responseStatus(error);
    if (isTransient(error)) {
      const what = status !== undefined ? `HTTP ${status}` : describeNetworkError(error, secrets);
      return new UnauthorizedError(`The token endpoint ${where} could not be reached (${attempts} attempt(s), last: ${what}); requests wait for it or fail until it recovers`, {
        reason: 'token-endpoint-unavailable',
        retryable: true,
        neverSent: true,
        data: { grant, ...(status === undefined ? {} : { status }) },
      });
    }
    // oauth4webapi refused the response itself; its `cause` may hold the response body (and tokens): dropped.
    const code = (error as { code?: unknown }).code;
    const message = error instanceof Error ? scrub(error.message, secrets) : 'unknown error';
    return new UnauthorizedError(`The token endpoint ${where} sent a response that could not be used (${message}${typeof code === 'string' ? `, ${code}` : ''})`, {
      reason: 'invalid-token-response',
      neverSent: true,
      data: { grant, ...(status === undefined ? {} : { status }) },
    });
  }
}

/**
 * Failures that say nothing about the credentials: worth another try later. An HTTP status
 * or a network error code goes by the one table (src/core/failure.ts, docs/errors.md);
 * an OAuth error body may say so itself (`temporarily_unavailable`, `server_error`).
 */
export function isTransient(error: unknown): boolean {
  if (error instanceof BrokenCircuitError) return false;
  if (error instanceof oauth.ResponseBodyError) {
    return classifyStatus(error.status).retryable || error.error === 'temporarily_unavailable' || error.error === 'server_error';
  }
  if (error instanceof oauth.WWWAuthenticateChallengeError) return false;
  const status = responseStatus(error);
  if (status !== undefined) return classifyStatus(status).retryable;
  if (error instanceof oauth.OperationProcessingError || error instanceof oauth.UnsupportedOperationError) return false;
  if (error instanceof UnauthorizedError) return false;
  const { name, code } = (error ?? {}) as { name?: unknown; code?: unknown };
  // fetch() rejects with a TypeError when the connection fails; our timeout aborts with a TimeoutError.
  if (error instanceof TypeError || name === 'TimeoutError' || name === 'AbortError') return true;
  return typeof code === 'string' && classifyConnectionError(code).retryable;
}

function responseStatus(error: unknown): number | undefined {
  const cause = (error as { cause?: unknown } | null)?.cause;
  return cause instanceof Response ? cause.status : undefined;
}

function describeNetworkError(error: unknown, secrets: Iterable<Secret | string | undefined>): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause as { code?: unknown; message?: unknown } | undefined;
  const detail = typeof cause?.code === 'string' ? cause.code : typeof cause?.message === 'string' ? cause.message : undefined;
  return scrub(detail === undefined ? error.message : `${error.message}: ${detail}`, secrets);
}

/** True for 127.0.0.0/8, ::1 and localhost: the only hosts plain http is allowed to. */
export function isLoopback(url: URL): boolean {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  return host === 'localhost' || host === '::1' || /^127(?:\.\d{1,3}){3}$/.test(host);
}
