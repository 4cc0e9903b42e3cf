/**
 * Which client sent a request: secrets compared as SHA-256 digests with timingSafeEqual,
 * so neither a secret's content nor its length leaks through timing, and against every
 * accepted digest (no early exit). The one rule for `downstream.bearerTokens` and the
 * clients' tokens and header values. A refusal names no secret.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { AuthenticationError } from '../../transports/guard.ts';

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

/** Accepted secrets, each naming what it stands for. */
export class Credentials<T> {
  readonly #entries: ReadonlyArray<{ digest: Buffer; owner: T }>;

  constructor(entries: Iterable<readonly [secret: string, owner: T]>) {
    this.#entries = [...entries].map(([secret, owner]) => ({ digest: digest(secret), owner }));
  }

  get size(): number {
    return this.#entries.length;
  }

  /** Whose secret `presented` is, if anyone's. */
  find(presented: string | undefined): T | undefined {
    if (presented === undefined || this.#entries.length === 0) return undefined;
    const seen = digest(presented);
    let found: T | undefined;
    for (const entry of this.#entries) if (timingSafeEqual(entry.digest, seen) && found === undefined) found = entry.owner;
    return found;
  }
}

/** The token of `Authorization: Bearer <token>`, if the request has one. */
export function bearerOf(request: IncomingMessage): string | undefined {
  const header = request.headers.authorization;
  return header !== undefined && /^Bearer /i.test(header) ? header.slice(7).trim() : undefined;
}

/** The value of a header that names a client (the first, if it was sent twice). */
export function headerOf(request: IncomingMessage, name: string): string | undefined {
  const value = request.headers[name.toLowerCase()];
  return Array.isArray(value) ? value[0] : value;
}

/**
 * The 401: what to send when nothing was presented, or which credential is not accepted.
 * `bearer`: whether bearer tokens are accepted at all (then WWW-Authenticate says so).
 */
export function unauthorized(presented: 'bearer' | 'header' | undefined, header: string | undefined, bearer: boolean): AuthenticationError {
  const ways = [bearer ? 'Authorization: Bearer <token>' : undefined, header === undefined ? undefined : `${header}: <value>`].filter((s) => s !== undefined);
  const why = presented === 'bearer' ? 'the bearer token is not accepted' : presented === 'header' ? `the ${header} value is not accepted` : `send ${ways.join(' or ')}`;
  return new AuthenticationError(`Unauthorized: ${why}`, {
    status: 401,
    headers: bearer ? { 'www-authenticate': `Bearer realm="mcp-layers gateway"${presented === 'bearer' ? ', error="invalid_token"' : ''}` } : {},
  });
}
