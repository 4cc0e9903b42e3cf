/**
 * Secret redaction for what the stack writes to logs (and to spans when arguments are
 * captured). It runs on our own copy of a record before the record is handed to the
 * logger, so no format, transport or sink downstream ever sees a secret.
 *
 * Three nets, because secrets arrive in three shapes:
 * - by key, anywhere in a structure: `authorization`, `cookie`, `access_token`,
 *   `refresh_token`, `client_secret`, `password`... (case, `-` and `_` ignored);
 * - by path, as configured: `params.arguments.ssn`, `headers.x-tenant-key`, `*.pin`;
 * - inside text (an error message quoting a header or a token response):
 *   `Bearer …`, `Basic …`, `refresh_token=…`, `"client_secret": "…"`, `Cookie: …`, JWTs,
 *   plus any configured RegExp.
 */
import { invalidOption } from '../../src/core/options.ts';

export const REDACTED = '[REDACTED]';

/** Keys whose values are always secret, normalized (lowercase, no `-` or `_`). */
const SECRET_KEYS = [
  'authorization',
  'proxyauthorization',
  'cookie',
  'setcookie',
  'dpop',
  'accesstoken',
  'refreshtoken',
  'idtoken',
  'token',
  'clientsecret',
  'clientassertion',
  'secret',
  'password',
  'passwd',
  'apikey',
  'xapikey',
  'privatekey',
];

/** Cheap pre-check: strings without any of these words need no scrubbing. */
const SUSPICIOUS = /bearer|basic|token|secret|assertion|passw|api[-_]?key|authorization|cookie|eyJ/i;

/** A bearer credential in text: `Bearer <token>`. */
const BEARER: readonly [RegExp, string] = [/\b(Bearer)\s+[\w\-.~+/]+=*/gi, `$1 ${REDACTED}`];

/** Text with every `Bearer <token>` replaced: the one rule for bearer values, in logs, spans and error messages alike. */
export function redactBearer(text: string): string {
  return text.replace(BEARER[0], BEARER[1]);
}

const TEXT_RULES: ReadonlyArray<readonly [RegExp, string]> = [
  // A whole header line (or JSON member) whose value may hold spaces: `Authorization: Basic x`, `Cookie: a=1; b=2`.
  [/\b((?:proxy-)?authorization|(?:set-)?cookie|dpop)(\\?["']?\s*[:=]\s*)(\\?["']?)[^"\\\r\n]*/gi, `$1$2$3${REDACTED}`],
  BEARER,
  [/\b(Basic)\s+[A-Za-z0-9+/]{8,}={0,2}/g, `$1 ${REDACTED}`],
  // key=value and "key": "value", for form bodies, query strings and quoted JSON.
  [
    /(?<![A-Za-z0-9])((?:access|refresh|id)[-_]?token|token|client[-_]?secret|client[-_]?assertion|secret|password|passwd|api[-_]?key|private[-_]?key)(\\?["']?\s*[:=]\s*\\?["']?)(?!\[REDACTED\])([^"'\\&\s,;}\]]+)/gi,
    `$1$2${REDACTED}`,
  ],
  // JSON Web Tokens, wherever they appear.
  [/\beyJ[\w-]{5,}\.[\w-]{5,}\.[\w-]*/g, REDACTED],
];

/** Deeper structures are cut here (logs want the shape, not the whole tree). */
const MAX_DEPTH = 24;

export type RedactRule = string | RegExp;

export class Redactor {
  readonly #keys: Set<string>;
  readonly #paths: string[][];
  readonly #patterns: RegExp[];

  /**
   * `rules`: extra key names (no dot: matched anywhere), dotted paths from the record's
   * root (`*` matches any one key), or RegExps to scrub from every string.
   */
  constructor(rules: readonly RedactRule[] = [], option = 'redact') {
    if (!Array.isArray(rules)) throw invalidOption(option, 'an array of key names, dotted paths or RegExps', rules);
    this.#keys = new Set(SECRET_KEYS);
    this.#paths = [];
    this.#patterns = [];
    rules.forEach((rule: unknown, i) => {
      if (rule instanceof RegExp) {
        this.#patterns.push(new RegExp(rule.source, rule.flags.includes('g') ? rule.flags : `${rule.flags}g`));
      } else if (typeof rule === 'string' && rule !== '' && !rule.startsWith('.') && !rule.endsWith('.')) {
        if (rule.includes('.')) this.#paths.push(rule.split('.').map((segment) => segment.toLowerCase()));
        else this.#keys.add(normalize(rule));
      } else {
        throw invalidOption(`${option}[${i}]`, 'a key name, a dotted path (params.arguments.ssn) or a RegExp', rule);
      }
    });
  }

  /** A redacted deep copy of `value`; the original is never touched. */
  redact(value: unknown): unknown {
    return this.#copy(value, this.#paths.length === 0 ? undefined : [], 0, []);
  }

  /** True when dotted-path rules were configured (they apply to a whole record, from its root). */
  get hasPathRules(): boolean {
    return this.#paths.length > 0;
  }

  /** True when a value under `key` is always replaced, wherever it is. */
  isSecretKey(key: string): boolean {
    return this.#keys.has(normalize(key));
  }

  /**
   * Redacts a flat record in place, cheaply: strings are scrubbed, structures are
   * replaced by redacted copies unless `clean` says they already are, and top-level
   * keys named like secrets lose their values. Fields named in `trusted` hold values the
   * caller produced itself (a direction, a duration, an id it generated) and are skipped.
   * For log records built by this library, whose payloads were redacted as they were added.
   */
  redactRecord<T extends Record<string, unknown>>(record: T, clean?: WeakSet<object>, trusted?: ReadonlySet<string>): T {
    const out = record as Record<string, unknown>;
    for (const key in out) {
      if (trusted?.has(key) === true) continue;
      const value = out[key];
      if (this.#keys.has(normalize(key))) out[key] = REDACTED;
      else if (typeof value === 'string') out[key] = this.text(value);
      else if (typeof value === 'object' && value !== null && clean?.has(value) !== true) out[key] = this.redact(value);
    }
    if (this.#paths.length > 0) return this.redact(out) as T;
    return record;
  }

  /** `text` with every secret-looking substring replaced. */
  text(text: string): string {
    let out = text;
    if (SUSPICIOUS.test(out)) for (const [pattern, replacement] of TEXT_RULES) out = out.replace(pattern, replacement);
    for (const pattern of this.#patterns) out = out.replace(pattern, REDACTED);
    return out;
  }

  /**
   * `path` is tracked only when path rules exist (it costs an array per key). `seen`
   * holds the objects above this one (never more than MAX_DEPTH), to tell a cycle from
   * an object that merely appears twice.
   */
  #copy(value: unknown, path: string[] | undefined, depth: number, seen: object[]): unknown {
    if (typeof value === 'string') return this.text(value);
    if (typeof value === 'bigint') return value.toString();
    if (typeof value === 'function' || typeof value === 'symbol') return undefined;
    if (typeof value !== 'object' || value === null) return value;
    if (seen.includes(value)) return '[Circular]';
    if (depth >= MAX_DEPTH) return '[Truncated]';
    if (value instanceof Error) return { name: value.name, message: this.text(value.message) };
    if (value instanceof Date) return value.toISOString();
    if (ArrayBuffer.isView(value)) return `[${value.byteLength} bytes]`;
    seen.push(value);
    try {
      if (Array.isArray(value)) return value.map((item, i) => this.#copy(item, path && [...path, String(i)], depth + 1, seen));
      const out: Record<string, unknown> = {};
      for (const [key, item] of entriesOf(value)) {
        const at = path && [...path, key.toLowerCase()];
        out[key] = this.#isSecret(key, at) ? REDACTED : this.#copy(item, at, depth + 1, seen);
      }
      return out;
    } finally {
      seen.pop();
    }
  }

  #isSecret(key: string, path: string[] | undefined): boolean {
    if (this.#keys.has(normalize(key))) return true;
    return path !== undefined && this.#paths.some((rule) => rule.length === path.length && rule.every((segment, i) => segment === '*' || segment === path[i]));
  }
}

const normalized = new Map<string, string>();

/** Lowercase, without `-` and `_`; memoized for the few hundred key names records use. */
function normalize(key: string): string {
  let out = normalized.get(key);
  if (out === undefined) {
    out = key.toLowerCase().replace(/[-_]/g, '');
    if (normalized.size < 4096) normalized.set(key, out);
  }
  return out;
}

/** Own entries of plain objects; `Headers` and `Map` contribute theirs. */
function entriesOf(value: object): Iterable<[string, unknown]> {
  if (value instanceof Map) return [...value].map(([k, v]) => [String(k), v] as [string, unknown]);
  const entries = (value as { entries?: unknown }).entries;
  if (typeof entries === 'function' && typeof (value as { get?: unknown }).get === 'function') {
    // A fetch `Headers` object (or anything shaped like one).
    return [...(entries.call(value) as Iterable<[string, unknown]>)];
  }
  return Object.entries(value);
}
