/**
 * Keeping credentials out of logs. Every object of ours that holds a token, a refresh
 * token or a client secret prints as `[redacted …]` however it is printed: template
 * literals, `String()`, `JSON.stringify`, `util.inspect` / `console.log`.
 */
import { inspect } from 'node:util';

/** A string that must never be printed. `reveal()` is the only way to read it. */
export class Secret {
  readonly #value: string;
  /** What it is, for the redacted form: `access token`, `refresh token`, `client secret`. */
  readonly label: string;

  constructor(value: string, label: string) {
    this.#value = value;
    this.label = label;
  }

  reveal(): string {
    return this.#value;
  }

  equals(other: Secret | string | undefined): boolean {
    if (other === undefined) return false;
    return this.#value === (typeof other === 'string' ? other : other.#value);
  }

  toString(): string {
    return `[redacted ${this.label}]`;
  }

  toJSON(): string {
    return this.toString();
  }

  [Symbol.toPrimitive](): string {
    return this.toString();
  }

  [inspect.custom](): string {
    return this.toString();
  }
}

/**
 * Removes every occurrence of the given secret values from a text that came from
 * elsewhere (an identity provider's `error_description`, a network error message)
 * before it goes into one of our error messages.
 */
export function scrub(text: string, secrets: Iterable<string | Secret | undefined>): string {
  let out = text;
  for (const secret of secrets) {
    const value = secret instanceof Secret ? secret.reveal() : secret;
    // Very short values would redact ordinary words; real credentials are long.
    if (value === undefined || value.length < 8) continue;
    out = out.split(value).join('[redacted]');
  }
  return out;
}

/**
 * Copies a headers record with `toJSON` and `util.inspect` that hide the credential
 * headers, while `Object.entries` / `for…in` (what transports use) still see the real
 * values. Defence in depth against a layer that logs `ctx.options`.
 */
export function redactingHeaders(headers: Record<string, string>): Readonly<Record<string, string>> {
  const copy = { ...headers };
  const redacted = (): Record<string, string> => {
    const out: Record<string, string> = {};
    for (const [name, value] of Object.entries(copy)) out[name] = isCredentialHeader(name) ? '[redacted]' : value;
    return out;
  };
  Object.defineProperty(copy, 'toJSON', { value: redacted, enumerable: false });
  Object.defineProperty(copy, inspect.custom, { value: () => redacted(), enumerable: false });
  return copy;
}

const CREDENTIAL_HEADERS = new Set(['authorization', 'proxy-authorization', 'cookie', 'dpop']);

export function isCredentialHeader(name: string): boolean {
  return CREDENTIAL_HEADERS.has(name.toLowerCase());
}
