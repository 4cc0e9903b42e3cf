/**
 * An access token as the token machinery holds it: the value (never printed), when it
 * expires, and when to start replacing it.
 *
 * Timing, for a token that lives `lifetime` ms (from the token response's `expires_in`):
 *
 *   obtained ─────────── refreshAt ──────── usableUntil ── expiresAt
 *            use it          use it, and         wait for a new one
 *                            refresh in the
 *                            background
 *
 * - `refreshAt = expiresAt - min(refreshSkewMs, lifetime / 2)`: never earlier than half
 *   the lifetime, so a short-lived token is not refreshed on every request;
 * - `usableUntil = expiresAt - min(2 s, lifetime / 10)`: a token is not sent in its last
 *   moments, where it could expire on its way to the server.
 *
 * `expires_in` counts whole seconds from when the server issued the token, and servers
 * round their timestamps down: `expiresAt` is counted from when the request was *sent*,
 * minus one second.
 */
import { inspect } from 'node:util';
import { Secret } from './redact.ts';

/** How the machinery came by a token; reactive refreshes are not repeated for their own tokens. */
export type TokenOrigin = 'grant' | 'rejection' | 'store' | 'provider';

export class AccessToken {
  readonly #value: Secret;
  /** Lower-case token type: `bearer` (DPoP is not supported). */
  readonly tokenType: string;
  /** Epoch ms (Date.now() clock); undefined when the server did not say (refreshed on rejection only). */
  readonly expiresAt: number | undefined;
  /** Epoch ms when the request that produced it was sent (or when it was loaded). */
  readonly obtainedAt: number;
  readonly refreshAt: number | undefined;
  readonly usableUntil: number | undefined;
  /** Increases with every token a source obtains; tells stale rejections from fresh ones. */
  readonly generation: number;
  readonly origin: TokenOrigin;
  readonly scope: string | undefined;

  constructor(init: {
    value: string;
    tokenType?: string | undefined;
    expiresAt: number | undefined;
    obtainedAt: number;
    refreshSkewMs: number;
    generation: number;
    origin: TokenOrigin;
    scope?: string | undefined;
  }) {
    this.#value = new Secret(init.value, 'access token');
    this.tokenType = (init.tokenType ?? 'bearer').toLowerCase();
    this.expiresAt = init.expiresAt;
    this.obtainedAt = init.obtainedAt;
    this.generation = init.generation;
    this.origin = init.origin;
    this.scope = init.scope;
    if (init.expiresAt === undefined) {
      this.refreshAt = undefined;
      this.usableUntil = undefined;
    } else {
      const lifetime = Math.max(0, init.expiresAt - init.obtainedAt);
      this.refreshAt = init.expiresAt - Math.min(init.refreshSkewMs, lifetime / 2);
      this.usableUntil = init.expiresAt - Math.min(2000, lifetime / 10);
    }
  }

  /** The raw token. Only for putting it on the wire. */
  reveal(): string {
    return this.#value.reveal();
  }

  /** The `Authorization` header value. */
  authorization(): string {
    return `Bearer ${this.#value.reveal()}`;
  }

  /** True while the token may still be sent. */
  usable(now: number): boolean {
    return this.usableUntil === undefined || now < this.usableUntil;
  }

  /** True once a replacement should be fetched (the token stays usable meanwhile). */
  due(now: number): boolean {
    return this.refreshAt !== undefined && now >= this.refreshAt;
  }

  toString(): string {
    return '[redacted access token]';
  }

  toJSON(): Record<string, unknown> {
    return { token: '[redacted]', tokenType: this.tokenType, expiresAt: this.expiresAt, generation: this.generation, origin: this.origin };
  }

  [inspect.custom](): string {
    const expires = this.expiresAt === undefined ? 'unknown expiry' : `expires ${new Date(this.expiresAt).toISOString()}`;
    return `AccessToken { [redacted], ${this.tokenType}, ${expires}, generation ${this.generation} }`;
  }
}

/** When a token response that says `expires_in` seconds, for a request sent at `sentAt`, expires. */
export function expiryFrom(expiresIn: number | undefined, sentAt: number): number | undefined {
  if (expiresIn === undefined || !Number.isFinite(expiresIn) || expiresIn <= 0) return undefined;
  // Whole seconds, rounded down by the server: one second less, but never less than half.
  const ms = expiresIn * 1000;
  return sentAt + Math.max(ms / 2, ms - 1000);
}

/**
 * The `exp` claim of a JWT access token, read without verifying it — only to learn when
 * a token found in a store without a recorded expiry runs out. Undefined for opaque tokens.
 */
export function jwtExpiry(token: string): number | undefined {
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  try {
    const payload: unknown = JSON.parse(Buffer.from(parts[1] as string, 'base64url').toString('utf8'));
    const exp = (payload as { exp?: unknown } | null)?.exp;
    return typeof exp === 'number' && Number.isFinite(exp) ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}
