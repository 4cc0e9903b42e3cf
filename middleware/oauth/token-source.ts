/**
 * Token sources: where the oauth layer, its fetch wrapper and its WebSocket hooks get
 * the access token to send, and what they tell when the server rejected one.
 *
 * `GrantingTokenSource` runs the grants itself (through TokenEndpoint / oauth4webapi):
 *
 *   - proactive: a token past its `refreshAt` is still handed out while one refresh
 *     runs in the background; a token past `usableUntil` is not — callers wait for the
 *     refresh (see access-token.ts for the timing);
 *   - single-flight: however many callers find the token stale at once, one token
 *     request runs and all of them get its outcome;
 *   - reactive: `rejected(token)` refreshes unless a newer token already replaced the
 *     rejected one; a token that was itself obtained because of a rejection is not
 *     refreshed again when rejected (the server refuses fresh tokens: refreshing again
 *     would loop), the caller gets an UnauthorizedError instead;
 *   - rotation: a new refresh token replaces the old one in memory and in the store
 *     before anyone is handed the new access token;
 *   - final failures (`invalid_grant`...) stick: no token request is made again until
 *     the store holds different credentials (re-authorization happened) or, for other
 *     than `invalid_grant`, a minute has passed.
 */
import { UnauthorizedError } from './unauthorized.ts';
import { EventBus } from '../../src/core/events.ts';
import { AccessToken, expiryFrom, jwtExpiry, type TokenOrigin } from './access-token.ts';
import { scrub, Secret } from './redact.ts';
import { SingleFlight } from './single-flight.ts';
import type { GrantResult, TokenEndpoint } from './token-endpoint.ts';
import { type StoredTokens, type TokenStore, validateStored } from './token-store.ts';

/** Why a token was requested: the `reason` of `token-refresh` events. */
export type RefreshReason = 'initial' | 'expired' | 'proactive' | 'rejected' | 'renewal';

/** What a server said when it rejected a token (for SDK providers that want the response). */
export interface Rejection {
  reason: RefreshReason;
  /** The HTTP response that carried the 401, when there was one. */
  response?: Response | undefined;
  /** The URL of the MCP server that rejected it. */
  url?: URL | undefined;
}

export interface TokenSource {
  /** Where `token-refresh` and `token-store-failed` are published. */
  readonly events: EventBus;
  /** The latest token, without refreshing (undefined before the first one). */
  readonly current: AccessToken | undefined;
  /** A token to send now; waits for a refresh only when the cached one may no longer be sent. */
  token(signal?: AbortSignal): Promise<AccessToken>;
  /** The server rejected `token`: resolves with the token to try once more, or rejects with an UnauthorizedError. */
  rejected(token: AccessToken, rejection: Rejection, signal?: AbortSignal): Promise<AccessToken>;
  /** A token newer than `than` (a connection opened with `than` is about to outlive it). */
  newer(than: AccessToken, signal?: AbortSignal): Promise<AccessToken>;
}

export interface GrantingTokenSourceOptions {
  grant: 'client_credentials' | 'refresh_token';
  endpoint: TokenEndpoint;
  store: TokenStore;
  refreshSkewMs: number;
  /** Called once when the identity provider answers `invalid_grant` (SDK providers drop their tokens). */
  onInvalidGrant?: (() => void | Promise<void>) | undefined;
  events?: EventBus | undefined;
}

/** How long a final failure other than invalid_grant holds before one new token request is allowed. */
const FAILURE_HOLD_MS = 60_000;

interface Failure {
  readonly error: UnauthorizedError;
  readonly until: number;
  /** The refresh token that was refused (a different one in the store ends the failure). */
  readonly refreshToken: Secret | undefined;
}

export class GrantingTokenSource implements TokenSource {
  readonly events: EventBus;
  readonly #options: GrantingTokenSourceOptions;
  readonly #flight = new SingleFlight<AccessToken>();
  #token: AccessToken | undefined;
  #refreshToken: Secret | undefined;
  #loaded = false;
  #generation = 0;
  /** Tokens up to this generation were rejected by a server: never handed out again. */
  #rejectedUpTo = 0;
  #failure: Failure | undefined;
  /** After a transient failure, no refresh ahead of time before this (epoch ms): callers are not slowed, the endpoint not hammered. */
  #quietUntil = 0;

  constructor(options: GrantingTokenSourceOptions) {
    this.#options = options;
    this.events = options.events ?? new EventBus();
  }

  get current(): AccessToken | undefined {
    return this.#token;
  }

  /** Values to scrub from any message: the live secrets. */
  secrets(): Array<Secret | string | undefined> {
    return [this.#token?.reveal(), this.#refreshToken];
  }

  token(signal?: AbortSignal): Promise<AccessToken> {
    const token = this.#token;
    const now = Date.now();
    if (token !== undefined && this.#sendable(token, now)) {
      if (token.due(now) && !this.#flight.running && this.#failure === undefined && now >= this.#quietUntil) {
        // Refresh ahead: this caller goes on with the current token. The outcome is in the events.
        this.#flight.run(() => this.#obtain('proactive', 'grant')).catch(() => {});
      }
      return Promise.resolve(token);
    }
    return this.#flight.run(() => this.#obtain(token === undefined ? 'initial' : 'expired', 'grant'), signal);
  }

  rejected(token: AccessToken, rejection: Rejection, signal?: AbortSignal): Promise<AccessToken> {
    if (token.generation > this.#rejectedUpTo) this.#rejectedUpTo = token.generation;
    const latest = this.#token;
    if (latest !== undefined && latest.generation > token.generation && this.#sendable(latest, Date.now())) return Promise.resolve(latest);
    if (token.origin === 'rejection') {
      return Promise.reject(
        new UnauthorizedError(
          'The server rejected an access token that was issued moments ago in place of a rejected one; not refreshing again. Check that the token is meant for this server (resource / audience) and carries the scopes it needs.',
          { reason: 'token-rejected', neverSent: true },
        ),
      );
    }
    return this.#flight.run(() => this.#replacement(token, rejection.reason, 'rejection'), signal);
  }

  newer(than: AccessToken, signal?: AbortSignal): Promise<AccessToken> {
    const latest = this.#token;
    if (latest !== undefined && latest.generation > than.generation && this.#sendable(latest, Date.now())) return Promise.resolve(latest);
    return this.#flight.run(() => this.#replacement(than, 'renewal', 'grant'), signal);
  }

  #sendable(token: AccessToken, now: number): boolean {
    return token.generation > this.#rejectedUpTo && token.usable(now);
  }

  /** Inside the flight: a token newer than `old` — the one a flight that just ended brought, or a new one. */
  async #replacement(old: AccessToken, reason: RefreshReason, origin: TokenOrigin): Promise<AccessToken> {
    const latest = this.#token;
    if (latest !== undefined && latest.generation > old.generation && this.#sendable(latest, Date.now())) return latest;
    return this.#obtain(reason, origin);
  }

  async #obtain(reason: RefreshReason, origin: TokenOrigin): Promise<AccessToken> {
    const started = performance.now();
    try {
      if (!this.#loaded || this.#failure !== undefined) await this.#load();
      // The store may hold a token that is still good (a restart, another process refreshed).
      const stored = this.#token;
      if ((reason === 'initial' || reason === 'expired') && stored !== undefined && this.#sendable(stored, Date.now())) return stored;
      const failure = this.#failure;
      if (failure !== undefined) {
        if (Date.now() < failure.until) throw failure.error;
        this.#failure = undefined;
      }
      const result = await this.#grant();
      const token = this.#adopt(result, origin);
      await this.#save(token);
      this.#emit('ok', reason, started);
      return token;
    } catch (error) {
      const failure = error instanceof UnauthorizedError ? error : this.#unexpected(error);
      if (this.#failure?.error !== failure) {
        this.#emit('failed', reason, started, failure);
        if (!failure.retryable) await this.#fail(failure);
        else this.#quietUntil = Date.now() + Math.max(1000, failure.retryAfterMs ?? 0);
      }
      throw failure;
    }
  }

  #grant(): Promise<GrantResult> {
    const { grant, endpoint } = this.#options;
    if (grant === 'client_credentials') return endpoint.clientCredentials();
    const refreshToken = this.#refreshToken;
    if (refreshToken === undefined) {
      return Promise.reject(
        new UnauthorizedError(
          'Authorization is needed: there is no refresh token. Run the authorization flow once and save its tokens in the token store (grant: "refresh_token"), or use grant: "client_credentials".',
          { reason: 'no-refresh-token', neverSent: true },
        ),
      );
    }
    return endpoint.refresh(refreshToken);
  }

  #adopt(result: GrantResult, origin: TokenOrigin): AccessToken {
    if (result.tokenType !== 'bearer') {
      throw new UnauthorizedError(`The identity provider issued a "${result.tokenType}" token; only bearer tokens are supported`, {
        reason: 'unsupported-token-type',
        neverSent: true,
      });
    }
    const token = new AccessToken({
      value: result.accessToken,
      tokenType: result.tokenType,
      expiresAt: expiryFrom(result.expiresIn, result.sentAt),
      obtainedAt: result.sentAt,
      refreshSkewMs: this.#options.refreshSkewMs,
      generation: ++this.#generation,
      origin,
      scope: result.scope,
    });
    // Rotation: the identity provider may have invalidated the old refresh token already.
    if (result.refreshToken !== undefined) this.#refreshToken = new Secret(result.refreshToken, 'refresh token');
    this.#token = token;
    return token;
  }

  async #save(token: AccessToken): Promise<void> {
    const tokens: StoredTokens = {
      accessToken: token.reveal(),
      tokenType: token.tokenType,
      expiresAt: token.expiresAt,
      refreshToken: this.#refreshToken?.reveal(),
      scope: token.scope,
    };
    try {
      await this.#options.store.save(tokens);
    } catch (error) {
      // The tokens are good and stay in memory; only a restart would miss them. Say so loudly.
      this.events.emit('token-store-failed', { operation: 'save', error: this.#sanitized(error, 'Saving the tokens to the token store failed') });
    }
  }

  /** Reads the store: at first use, and while failed (re-authorization may have saved new tokens). */
  async #load(): Promise<void> {
    let stored: StoredTokens | undefined;
    try {
      stored = validateStored(await this.#options.store.load(), 'token store');
    } catch (error) {
      const failure = this.#sanitized(error, 'Loading the tokens from the token store failed');
      this.events.emit('token-store-failed', { operation: 'load', error: failure });
      if (!this.#loaded) throw new UnauthorizedError(failure.message, { reason: 'token-store-failed', neverSent: true });
      return;
    }
    this.#loaded = true;
    if (stored === undefined) return;
    const failure = this.#failure;
    if (failure !== undefined) {
      // Only new credentials end a failure: the same refresh token would be refused again.
      if (stored.refreshToken === undefined || failure.refreshToken?.equals(stored.refreshToken) === true) return;
      this.#failure = undefined;
    }
    if (stored.refreshToken !== undefined) this.#refreshToken = new Secret(stored.refreshToken, 'refresh token');
    if (stored.accessToken !== undefined && this.#token?.reveal() !== stored.accessToken) {
      this.#token = new AccessToken({
        value: stored.accessToken,
        tokenType: stored.tokenType,
        expiresAt: stored.expiresAt ?? jwtExpiry(stored.accessToken),
        obtainedAt: Date.now(),
        refreshSkewMs: this.#options.refreshSkewMs,
        generation: ++this.#generation,
        origin: 'store',
        scope: stored.scope,
      });
    }
  }

  async #fail(error: UnauthorizedError): Promise<void> {
    const invalidGrant = error.reason === 'invalid-grant';
    this.#failure = { error, until: invalidGrant ? Infinity : Date.now() + FAILURE_HOLD_MS, refreshToken: this.#refreshToken };
    if (invalidGrant) {
      // The refresh token is dead; the access token may still be good until it expires or is rejected.
      try {
        await this.#options.onInvalidGrant?.();
      } catch {
        // The provider's own cleanup failing changes nothing for the caller.
      }
    }
  }

  #unexpected(error: unknown): UnauthorizedError {
    return new UnauthorizedError(this.#sanitized(error, 'Obtaining an access token failed').message, { reason: 'token-request-failed', neverSent: true });
  }

  /** An Error whose message cannot contain a secret we hold, and which carries no cause. */
  #sanitized(error: unknown, prefix: string): Error {
    const message = error instanceof Error ? error.message : String(error);
    return new Error(`${prefix}: ${scrub(message, this.secrets())}`);
  }

  #emit(outcome: 'ok' | 'failed', reason: RefreshReason, started: number, error?: UnauthorizedError): void {
    const durationMs = performance.now() - started;
    this.events.emit('token-refresh', error === undefined ? { outcome, durationMs, reason } : { outcome, durationMs, reason, error });
  }
}
