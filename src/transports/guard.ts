/**
 * Admission checks for the servers (WebSocket upgrades and HTTP requests): the Host and
 * Origin allow-lists (DNS-rebinding protection for servers on loopback) and the
 * application's `authenticate(request)` hook. A refusal carries an HTTP status and a JSON-RPC style
 * body that says what to do about it.
 */
import type { IncomingMessage } from 'node:http';
import { isIPv6 } from 'node:net';
import { brand } from '../core/brand.ts';
import { ErrorCode, McpLayersError } from '../core/errors.ts';
import { globMatcher, type NameMatcher } from '../core/glob.ts';
import { durationOption, functionOption, invalidOption } from '../core/options.ts';

/** Resolve to accept (the value becomes `authInfo` on every message of the connection); resolve `false`/nullish or throw to refuse. */
export type Authenticate = (request: IncomingMessage) => unknown;

export interface GuardOptions {
  /**
   * Host names clients may address the server by (the `Host` header), as globs
   * (`*.example.com`; `example.com:8443` names a port too, otherwise any port matches),
   * or `'*'` for any. Default: on a connection that arrived at a loopback address, only
   * loopback names (`localhost`, `127.x.x.x`, `[::1]`), as a browser tricked by DNS
   * rebinding sends the attacker's name; on any other address, nothing is checked (the
   * names a public server answers to are the deployment's to list).
   */
  allowedHosts?: readonly string[] | '*';
  /**
   * Origins allowed to connect (globs: `https://*.example.com`), or `'*'` for any.
   * Requests without an Origin header (non-browser clients) are always allowed.
   * Default: loopback origins only (`http://localhost:*`, `http://127.0.0.1:*`, `http://[::1]:*`).
   */
  allowedOrigins?: readonly string[] | '*';
  /** Called for every upgrade / request before anything else; see {@link Authenticate}. */
  authenticate?: Authenticate;
  /** How long authenticate() may take before the request is refused with 503. Default 10 000 ms. */
  authenticateTimeoutMs?: number;
}

/**
 * Throw this from authenticate() to choose the status (e.g. 403) and headers
 * (e.g. `WWW-Authenticate`) of the refusal.
 */
export class AuthenticationError extends McpLayersError<number> {
  static {
    brand(this, 'error.AuthenticationError');
  }

  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  constructor(message: string, options: { status?: number; headers?: Record<string, string> } = {}) {
    super(ErrorCode.Unauthorized, message, { layer: 'server', reason: 'authentication-refused' });
    this.status = options.status ?? 401;
    this.headers = options.headers ?? {};
  }
}

/** The option names of GuardOptions, for the servers' unknown-option checks. */
export const GUARD_OPTIONS = ['allowedHosts', 'allowedOrigins', 'authenticate', 'authenticateTimeoutMs'] as const;

export type Admission =
  | { ok: true; authInfo: unknown }
  | { ok: false; status: number; message: string; code: number; headers: Record<string, string>; cause?: unknown };

const LOOPBACK_ORIGINS = [
  'http://localhost',
  'http://localhost:*',
  'https://localhost',
  'https://localhost:*',
  'http://127.0.0.1',
  'http://127.0.0.1:*',
  'https://127.0.0.1',
  'https://127.0.0.1:*',
  'http://[::1]',
  'http://[::1]:*',
  'https://[::1]',
  'https://[::1]:*',
];

/** What a refusal lists when the default (loopback names only) applied. */
const LOOPBACK_HOSTS_TEXT = 'localhost, 127.0.0.1, [::1]';

export class Guard {
  readonly #hosts: HostCheck;
  readonly #origin: NameMatcher;
  readonly #authenticate: Authenticate | undefined;
  readonly #timeoutMs: number;

  constructor(prefix: string, options: GuardOptions) {
    this.#hosts = hostCheck(`${prefix}.allowedHosts`, options.allowedHosts);
    const origins = options.allowedOrigins;
    if (origins === '*') this.#origin = () => true;
    else if (origins === undefined) this.#origin = globMatcher(LOOPBACK_ORIGINS, `${prefix}.allowedOrigins`);
    else if (Array.isArray(origins)) this.#origin = globMatcher(origins.map((o: string) => (typeof o === 'string' ? o.toLowerCase().replace(/\/$/, '') : o)), `${prefix}.allowedOrigins`);
    else throw invalidOption(`${prefix}.allowedOrigins`, 'an array of origin patterns or "*"', origins);
    this.#authenticate = functionOption<Authenticate>(`${prefix}.authenticate`, options.authenticate);
    this.#timeoutMs = durationOption(`${prefix}.authenticateTimeoutMs`, options.authenticateTimeoutMs, 10_000, 1);
  }

  /** A promise only when there is an authenticate() hook to wait for. */
  admit(request: IncomingMessage): Admission | Promise<Admission> {
    const hostRefusal = this.#hosts(request);
    if (hostRefusal !== undefined) return refuse(403, ErrorCode.Unauthorized, hostRefusal);
    const origin = request.headers.origin;
    if (origin !== undefined && !this.#origin(origin.toLowerCase())) {
      return refuse(403, ErrorCode.Unauthorized, `Forbidden: origin ${JSON.stringify(origin.slice(0, 200))} is not in the server's allowedOrigins`);
    }
    const authenticate = this.#authenticate;
    if (authenticate === undefined) return { ok: true, authInfo: undefined };
    return this.#authenticated(request, authenticate);
  }

  async #authenticated(request: IncomingMessage, authenticate: Authenticate): Promise<Admission> {
    let timer: NodeJS.Timeout | undefined;
    try {
      const verdict = await Promise.race([
        Promise.resolve().then(() => authenticate(request)),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new AuthenticationError(`Service Unavailable: authentication did not finish within ${this.#timeoutMs} ms`, { status: 503 })), this.#timeoutMs);
          timer.unref();
        }),
      ]);
      if (verdict === false || verdict === null || verdict === undefined) {
        return refuse(401, ErrorCode.Unauthorized, 'Unauthorized: the server rejected the credentials of this request (authenticate() refused it)');
      }
      return { ok: true, authInfo: verdict === true ? undefined : verdict };
    } catch (error) {
      if (error instanceof AuthenticationError) {
        const status = error.status >= 400 && error.status <= 599 ? error.status : 401;
        const message = /^[A-Z][a-z]+( [A-Z][a-z]+)*:/.test(error.message) ? error.message : `Unauthorized: ${error.message}`;
        return refuse(status, ErrorCode.Unauthorized, message, error.headers);
      }
      // Anything else is a bug in the hook: refuse without echoing its message (it may hold
      // secrets); the server reports the error itself to its onerror.
      return { ...refuse(401, ErrorCode.Unauthorized, 'Unauthorized: authentication failed (authenticate() threw)'), cause: error } as Admission;
    } finally {
      clearTimeout(timer);
    }
  }
}

function refuse(status: number, code: number, message: string, headers: Record<string, string> = {}): Admission {
  return { ok: false, status, code, message, headers };
}

/** The body of a refusal: the JSON-RPC error shape the SDKs' HTTP transports use (id null unless the request's id is known). */
export function errorBody(code: number, message: string, id: string | number | null = null): string {
  return JSON.stringify({ jsonrpc: '2.0', id, error: { code, message } });
}

/** Says why a request's Host is refused, or undefined to let it through. */
type HostCheck = (request: IncomingMessage) => string | undefined;

function hostCheck(option: string, allowed: GuardOptions['allowedHosts']): HostCheck {
  if (allowed === '*') return () => undefined;
  if (allowed === undefined) {
    const admitted = admittedHosts();
    return (request) => {
      if (!isLoopbackAddress(request.socket.localAddress)) return undefined;
      const header = request.headers.host;
      if (header !== undefined && admitted.has(header)) return undefined;
      return admitted.note(header, checkHost(header, (host) => isLoopbackHost(host.name), LOOPBACK_HOSTS_TEXT));
    };
  }
  if (!Array.isArray(allowed)) throw invalidOption(option, 'an array of host name patterns or "*"', allowed);
  const withPort: string[] = [];
  const nameOnly: string[] = [];
  allowed.forEach((pattern: unknown, i) => {
    if (typeof pattern !== 'string' || pattern.trim() === '') throw invalidOption(`${option}[${i}]`, 'a non-empty host name pattern (`example.com`, `*.example.com`, `example.com:8443`)', pattern);
    const normalized = normalizePattern(pattern);
    (normalized.port ? withPort : nameOnly).push(normalized.text);
  });
  const byName = globMatcher(nameOnly, option);
  const byNameAndPort = globMatcher(withPort, option);
  const listed = allowed.slice(0, 10).join(', ') + (allowed.length > 10 ? ', …' : '');
  const admitted = admittedHosts();
  return (request) => {
    const header = request.headers.host;
    if (header !== undefined && admitted.has(header)) return undefined;
    return admitted.note(header, checkHost(header, (host) => byName(host.name) || (host.port !== '' && byNameAndPort(`${host.name}:${host.port}`)), listed));
  };
}

/**
 * Host headers already admitted, so a client's every request is not parsed again (the
 * same few values come back on every request). Only admissions are kept, and at most
 * 64 of them: a refusal is always worked out, and nobody can grow the set.
 */
function admittedHosts(): { has(header: string): boolean; note(header: string | undefined, refusal: string | undefined): string | undefined } {
  const seen = new Set<string>();
  return {
    has: (header) => seen.has(header),
    note(header, refusal) {
      if (refusal === undefined && header !== undefined && seen.size < 64) seen.add(header);
      return refusal;
    },
  };
}

function checkHost(header: string | undefined, allowed: (host: { name: string; port: string }) => boolean, listed: string): string | undefined {
  if (header === undefined || header === '') return `Forbidden: the request has no Host header; this server admits only the host names in its allowedHosts (${listed})`;
  const host = parseHost(header);
  const shown = JSON.stringify(header.slice(0, 200));
  if (host === undefined) return `Forbidden: the Host header ${shown} is not a valid host name; this server admits only the host names in its allowedHosts (${listed})`;
  if (allowed(host)) return undefined;
  return `Forbidden: host ${shown} is not in the server's allowedHosts (${listed})`;
}

/**
 * `name[:port]` of a Host header, the name lowercased without a trailing dot. The URL
 * parser does the normalizing a browser does (`0x7f.1` is 127.0.0.1), so a name cannot
 * pass in a spelling the check does not know.
 */
function parseHost(header: string): { name: string; port: string } | undefined {
  const match = /^(\[[0-9A-Fa-f:.]+\]|[^\s[\]@/\\?#:%]+)(?::(\d{1,5}))?$/.exec(header);
  if (match === null) return undefined;
  let url: URL;
  try {
    url = new URL(`http://${match[1] as string}`);
  } catch {
    return undefined;
  }
  return { name: url.hostname.replace(/\.$/, ''), port: match[2] ?? '' };
}

/** Patterns compare like Host headers: lowercase, no trailing dot, bare IPv6 in brackets. */
function normalizePattern(pattern: string): { text: string; port: boolean } {
  let text = pattern.trim().toLowerCase();
  if (isIPv6(text)) text = `[${text}]`;
  const port = /^\[[^\]]*\]:(\d+|\*)$/.test(text) || /^[^[:]*:(\d+|\*)$/.test(text);
  if (port) {
    const at = text.lastIndexOf(':');
    return { text: `${text.slice(0, at).replace(/\.$/, '')}${text.slice(at)}`, port };
  }
  return { text: text.replace(/\.$/, ''), port };
}

/** Whether a host name or address (an IPv6 one bare or in brackets) names this machine only. */
export function isLoopbackHost(name: string): boolean {
  const host = name.toLowerCase().replace(/^\[(.*)\]$/, '$1');
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}


function isLoopbackAddress(address: string | undefined): boolean {
  if (address === undefined) return false;
  return address === '::1' || address.startsWith('127.') || address.startsWith('::ffff:127.');
}
