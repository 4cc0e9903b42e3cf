/**
 * Where tokens live between refreshes and between runs. Refresh tokens rotate — the
 * identity provider invalidates the old one when it issues a new one — so the new one
 * must be saved before the old one is forgotten, or the next run is locked out.
 *
 * A store is two functions; the in-memory one is the default, `FileTokenStore` is an
 * example of a durable one. Keep the stored object opaque to logs: it holds secrets.
 */
import { inspect } from 'node:util';

/** What a store keeps. Plain JSON: times are epoch milliseconds. */
export interface StoredTokens {
  accessToken?: string | undefined;
  tokenType?: string | undefined;
  /** When the access token expires (epoch ms). */
  expiresAt?: number | undefined;
  refreshToken?: string | undefined;
  scope?: string | undefined;
}

export interface TokenStore {
  /** The saved tokens, or undefined when there are none. */
  load(): StoredTokens | undefined | Promise<StoredTokens | undefined>;
  /** Replaces the saved tokens. Called after every successful token request. */
  save(tokens: StoredTokens): void | Promise<void>;
}

/** Keeps tokens in this process only (the default). Seed it with tokens obtained elsewhere. */
export class MemoryTokenStore implements TokenStore {
  #tokens: StoredTokens | undefined;

  constructor(initial?: StoredTokens) {
    this.#tokens = initial === undefined ? undefined : { ...initial };
  }

  load(): StoredTokens | undefined {
    return this.#tokens === undefined ? undefined : { ...this.#tokens };
  }

  save(tokens: StoredTokens): void {
    this.#tokens = { ...tokens };
  }

  toString(): string {
    return 'MemoryTokenStore { [redacted] }';
  }

  toJSON(): string {
    return this.toString();
  }

  [inspect.custom](): string {
    return this.toString();
  }
}

/** Checks what a store returned, naming the store in the error; never echoes values. */
export function validateStored(value: unknown, where: string): StoredTokens | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'object' || Array.isArray(value)) throw new TypeError(`${where}: expected an object of tokens, got ${typeof value}`);
  const v = value as Record<string, unknown>;
  for (const key of ['accessToken', 'tokenType', 'refreshToken', 'scope'] as const) {
    if (v[key] !== undefined && typeof v[key] !== 'string') throw new TypeError(`${where}: "${key}" must be a string`);
  }
  if (v['expiresAt'] !== undefined && (typeof v['expiresAt'] !== 'number' || !Number.isFinite(v['expiresAt']))) {
    throw new TypeError(`${where}: "expiresAt" must be a number of epoch milliseconds`);
  }
  return {
    accessToken: v['accessToken'] as string | undefined,
    tokenType: v['tokenType'] as string | undefined,
    expiresAt: v['expiresAt'] as number | undefined,
    refreshToken: v['refreshToken'] as string | undefined,
    scope: v['scope'] as string | undefined,
  };
}
