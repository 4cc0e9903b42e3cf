/**
 * Typed errors, and the one table of their stable codes.
 *
 * When the stack ends an exchange itself (timeout, open breaker, closed connection...)
 * the application receives an ordinary JSON-RPC error response built by
 * `toErrorObject()`: `code` from `ErrorCode`, a message a person understands, and
 * `data: { layer, reason, attempts, retryAfterMs? }`. Errors raised before any message
 * flows (an invalid option, a config, the command line) take a `SetupErrorCode` instead.
 * docs/errors.md documents every code and every error class.
 *
 * The classes here are the ones the core raises or every transport shares; a layer
 * declares its own errors in its own module, with a code from these tables. Every class
 * is branded (brand.ts), so `instanceof` holds for an error made by another copy of the
 * package.
 */
import { brand, isBranded } from './brand.ts';
import type { JSONRPCErrorObject } from './jsonrpc.ts';

/** Stable JSON-RPC error codes. Never renumber: applications match on them. */
export const ErrorCode = {
  /** The SDK's own ConnectionClosed code: the connection ended before the response. */
  ConnectionClosed: -32000,
  /** MCP RequestTimeout, as the SDKs use it. */
  RequestTimeout: -32001,
  InvalidRequest: -32600,
  InternalError: -32603,
  /** The circuit breaker is open: nothing was sent. */
  CircuitOpen: -32050,
  /** A concurrency limit shed the request: nothing was sent (or, inbound, the handler never ran). */
  LoadShed: -32051,
  /** Retries ran out after transport failures. */
  RetriesExhausted: -32052,
  /** Credentials were missing, rejected or could not be refreshed. */
  Unauthorized: -32053,
  /** The transport failed to carry the request (refused, reset, HTTP 5xx, stream ended). */
  TransportFailure: -32054,
  /** A fault injected on purpose by the chaos layer. */
  ChaosFault: -32055,
  /** A layer broke the exchange contract (e.g. finished without a response). */
  LayerFault: -32056,
  /** The peer (or an HTTP 429) asked us to slow down. */
  RateLimited: -32057,
  /** A policy does not allow the request (the gateway's client allow-lists): nothing was sent. */
  Forbidden: -32058,
} as const;
export type ErrorCodeValue = (typeof ErrorCode)[keyof typeof ErrorCode];

/**
 * Stable codes of the errors raised before any message flows. They never become a
 * JSON-RPC response, so they are strings (as Node's own error codes are) that cannot be
 * mistaken for one. Never rename: applications match on them.
 */
export const SetupErrorCode = {
  /** A layer factory, `wrap()`, `standard()` or a transport got an invalid option. */
  InvalidOption: 'MCP_LAYERS_INVALID_OPTION',
  /** A gateway config cannot be used (what is wrong with it is in the message). */
  InvalidConfig: 'MCP_LAYERS_INVALID_CONFIG',
  /** The gateway config asks for trace export, and the OpenTelemetry SDK is not installed. */
  TraceExportUnavailable: 'MCP_LAYERS_TRACE_EXPORT_UNAVAILABLE',
  /** A mistake on the `mcp-layers` command line. */
  Usage: 'MCP_LAYERS_USAGE',
} as const;
export type SetupErrorCodeValue = (typeof SetupErrorCode)[keyof typeof SetupErrorCode];

/** What goes into `error.data` of a synthesized response. */
export interface ErrorData {
  layer: string;
  reason: string;
  attempts: number;
  retryAfterMs?: number;
  [key: string]: unknown;
}

export interface McpLayersErrorOptions {
  layer?: string;
  reason?: string;
  /** True when the request provably never reached the peer (safe to send again). */
  neverSent?: boolean;
  /** True when trying again may succeed. */
  retryable?: boolean;
  retryAfterMs?: number;
  cause?: unknown;
  data?: Record<string, unknown>;
}

/**
 * Base class of every error this library raises. `instanceof` works across copies of the
 * package: a subclass brands itself in a static block, `static { brand(this, 'error.<Name>'); }`.
 */
export class McpLayersError<Code extends number | SetupErrorCodeValue = number | SetupErrorCodeValue> extends Error {
  static {
    brand(this, 'error');
  }

  static override [Symbol.hasInstance](value: unknown): boolean {
    return isBranded(this, value);
  }

  /** The JSON-RPC code used when this error ends an exchange (`ErrorCode`), or a `SetupErrorCode`. */
  readonly code: Code;
  /** The layer that raised it (`core` for the exchange machinery). */
  readonly layer: string;
  /** A short machine-readable reason, e.g. `attempt-timeout`, `breaker-open`. */
  readonly reason: string;
  readonly neverSent: boolean;
  readonly retryable: boolean;
  readonly retryAfterMs: number | undefined;
  readonly data: Record<string, unknown> | undefined;

  constructor(code: Code, message: string, options: McpLayersErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.layer = options.layer ?? 'core';
    this.reason = options.reason ?? 'error';
    this.neverSent = options.neverSent ?? false;
    this.retryable = options.retryable ?? false;
    this.retryAfterMs = options.retryAfterMs;
    this.data = options.data;
  }
}

/** The connection closed (or was never open) while the exchange was pending. */
export class ConnectionClosedError extends McpLayersError<number> {
  static {
    brand(this, 'error.ConnectionClosedError');
  }

  constructor(message = 'Connection closed', options: McpLayersErrorOptions = {}) {
    super(ErrorCode.ConnectionClosed, message, { reason: 'connection-closed', retryable: true, ...options });
  }
}

/** A deadline passed. `reason` says which: `attempt-timeout` or `total-timeout`. */
export class TimeoutError extends McpLayersError<number> {
  static {
    brand(this, 'error.TimeoutError');
  }

  constructor(message: string, options: McpLayersErrorOptions = {}) {
    super(ErrorCode.RequestTimeout, message, { reason: 'timeout', retryable: true, ...options });
  }
}

/** The transport could not carry the message: refused, reset, HTTP 5xx, stream ended. */
export class TransportError extends McpLayersError<number> {
  static {
    brand(this, 'error.TransportError');
  }

  /** HTTP status when the transport is HTTP. */
  readonly status: number | undefined;
  constructor(message: string, options: McpLayersErrorOptions & { status?: number } = {}) {
    super(options.status === 429 ? ErrorCode.RateLimited : ErrorCode.TransportFailure, message, {
      reason: 'transport',
      retryable: true,
      ...options,
    });
    this.status = options.status;
  }
}

/**
 * The exchange was cancelled by the application or the peer. The application gets no
 * response for a request it cancelled itself (the SDK expects none).
 */
export class CancelledError extends McpLayersError<number> {
  static {
    brand(this, 'error.CancelledError');
  }

  constructor(message = 'Request cancelled', options: McpLayersErrorOptions = {}) {
    super(ErrorCode.InternalError, message, { reason: 'cancelled', ...options });
  }
}

/** A message that is not valid JSON-RPC 2.0 (or not valid for MCP) arrived or was sent. */
export class InvalidMessageError extends McpLayersError<number> {
  static {
    brand(this, 'error.InvalidMessageError');
  }

  /** Where the message came from: the peer (`inbound`) or the application (`outbound`). */
  readonly direction: 'inbound' | 'outbound';
  constructor(message: string, direction: 'inbound' | 'outbound', options: McpLayersErrorOptions = {}) {
    super(ErrorCode.InvalidRequest, message, { reason: 'invalid-message', ...options });
    this.direction = direction;
  }
}

/** A response arrived whose wire id is not pending: late, duplicate, or never ours. */
export class StrayResponseError extends McpLayersError<number> {
  static {
    brand(this, 'error.StrayResponseError');
  }

  readonly wireId: unknown;
  constructor(message: string, wireId: unknown, reason: 'late' | 'unknown') {
    super(ErrorCode.InvalidRequest, message, { reason: `stray-response-${reason}` });
    this.wireId = wireId;
  }
}

/** A layer broke the exchange contract. */
export class LayerFaultError extends McpLayersError<number> {
  static {
    brand(this, 'error.LayerFaultError');
  }

  constructor(message: string, options: McpLayersErrorOptions = {}) {
    super(ErrorCode.LayerFault, message, { reason: 'layer-fault', ...options });
  }
}

/**
 * An invalid option passed to a layer factory, `wrap()`, `standard()` or a transport.
 * Thrown at construction, never at run time; the message names the option and the
 * expectation, `layer` the factory that refused it (`retry.maxAttempts` → `retry`).
 */
export class InvalidOptionError extends McpLayersError<SetupErrorCodeValue> {
  static {
    brand(this, 'error.InvalidOptionError');
  }

  readonly option: string;
  constructor(option: string, expected: string, got: unknown) {
    super(SetupErrorCode.InvalidOption, `${option}: expected ${expected}, got ${describe(got)}`, { layer: option.split(/[.( ]/, 1)[0], reason: 'invalid-option' });
    this.option = option;
  }
}

/** A short, safe description of a value for error messages (never a whole payload). */
export function describe(value: unknown): string {
  if (value === undefined) return 'undefined';
  if (value === null) return 'null';
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  if (typeof value === 'function') return 'a function';
  if (Array.isArray(value)) return `an array of ${value.length}`;
  return 'an object';
}

/**
 * True when `error` ends an exchange as itself: one of ours with a JSON-RPC code. A setup
 * error has none; one that reaches an exchange is a bug, reported like any other throw.
 */
export function endsExchange(error: unknown): error is McpLayersError<number> {
  return error instanceof McpLayersError && typeof error.code === 'number';
}

/** The JSON-RPC `error` object that ends an exchange which failed with `error`. */
export function toErrorObject(error: unknown, attempts: number): JSONRPCErrorObject {
  if (endsExchange(error)) {
    const data: ErrorData = { ...error.data, layer: error.layer, reason: error.reason, attempts };
    if (error.retryAfterMs !== undefined) data.retryAfterMs = error.retryAfterMs;
    return { code: error.code, message: error.message, data };
  }
  const message = error instanceof Error ? error.message : String(error);
  return {
    code: ErrorCode.InternalError,
    message: `Internal error in the layer stack: ${message}`,
    data: { layer: 'unknown', reason: 'internal', attempts } satisfies ErrorData,
  };
}

/** Normalizes anything thrown into an Error (for `onerror`). */
export function asError(value: unknown): Error {
  return value instanceof Error ? value : new Error(String(value));
}
