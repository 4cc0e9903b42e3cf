/**
 * Admission checks for the servers (WebSocket upgrades and HTTP requests): the Origin
 * allow-list (DNS-rebinding protection for servers on loopback) and the application's
 * `authenticate(request)` hook. A refusal carries an HTTP status and a JSON-RPC style
 * body that says what to do about it.
 */
import type { IncomingMessage } from 'node:http';
import { ErrorCode, InvalidOptionError } from '../errors.ts';
import { globMatcher, type NameMatcher } from '../glob.ts';
import { durationOption, functionOption } from './options.ts';

/** Resolve to accept (the value becomes `authInfo` on every message of the connection); resolve `false`/nullish or throw to refuse. */
export type Authenticate = (request: IncomingMessage) => unknown;

export interface GuardOptions {
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
export class AuthenticationError extends Error {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  constructor(message: string, options: { status?: number; headers?: Record<string, string> } = {}) {
    super(message);
    this.name = 'AuthenticationError';
    this.status = options.status ?? 401;
    this.headers = options.headers ?? {};
  }
}

/** The option names of GuardOptions, for the servers' unknown-option checks. */
export const GUARD_OPTIONS = ['allowedOrigins', 'authenticate', 'authenticateTimeoutMs'] as const;

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

export class Guard {
  readonly #origin: NameMatcher;
  readonly #authenticate: Authenticate | undefined;
  readonly #timeoutMs: number;

  constructor(prefix: string, options: GuardOptions) {
    const origins = options.allowedOrigins;
    if (origins === '*') this.#origin = () => true;
    else if (origins === undefined) this.#origin = globMatcher(LOOPBACK_ORIGINS, `${prefix}.allowedOrigins`);
    else if (Array.isArray(origins)) this.#origin = globMatcher(origins.map((o: string) => (typeof o === 'string' ? o.toLowerCase().replace(/\/$/, '') : o)), `${prefix}.allowedOrigins`);
    else throw new InvalidOptionError(`${prefix}.allowedOrigins`, 'an array of origin patterns or "*"', origins);
    this.#authenticate = functionOption<Authenticate>(`${prefix}.authenticate`, options.authenticate);
    this.#timeoutMs = durationOption(`${prefix}.authenticateTimeoutMs`, options.authenticateTimeoutMs, 10_000, 1);
  }

  async admit(request: IncomingMessage): Promise<Admission> {
    const origin = request.headers.origin;
    if (origin !== undefined && !this.#origin(origin.toLowerCase())) {
      return refuse(403, ErrorCode.Unauthorized, `Forbidden: origin ${JSON.stringify(origin.slice(0, 200))} is not in the server's allowedOrigins`);
    }
    const authenticate = this.#authenticate;
    if (authenticate === undefined) return { ok: true, authInfo: undefined };
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

/** The body of a refusal: the JSON-RPC error shape the SDKs' HTTP transports use (id null). */
export function errorBody(code: number, message: string): string {
  return JSON.stringify({ jsonrpc: '2.0', id: null, error: { code, message } });
}
