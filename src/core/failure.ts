/**
 * What counts as a transient failure — the one definition retry, circuitBreaker,
 * hedging, the transports and the oauth token endpoint share, so they never disagree
 * about the same outcome. Two levels:
 *
 * - an HTTP status or a connection error code (`classifyStatus`, `classifyConnectionError`):
 *   the table in docs/errors.md#http-and-connection-failures, which the outbound core,
 *   mcp-layers/http, the WebSocket client's reconnect and the token endpoint follow when
 *   they turn a failure into a typed error;
 * - one attempt's outcome (`isTransient`), which the layers read from those typed errors.
 *
 * Transient (worth another try later, and evidence that the peer is unwell):
 * - a typed error marked `retryable` while the transport is still open: transport
 *   failures the table marks retryable (refused, reset, HTTP 503…), attempt timeouts, a connection lost
 *   under a reconnecting transport;
 * - a JSON-RPC error response that says so explicitly: code RateLimited (-32057), or
 *   `error.data.retryAfterMs` (the peer asked to be asked again later).
 *
 * Not transient: every other JSON-RPC error response (the peer answered; it will
 * answer the same again), a total timeout, a cancellation, a shed or an open breaker
 * (local decisions, not the peer's health), and anything untyped (a bug).
 */
import type { Session } from './context.ts';
import { asError, ErrorCode, McpLayersError } from './errors.ts';
import type { JSONRPCResponse } from './jsonrpc.ts';
import { retryAfterOf } from './retry-after.ts';

/** How an HTTP or connection failure is to be treated. */
export interface FailureClass {
  /** Trying the same request again later may succeed. */
  readonly retryable: boolean;
  /** A `Retry-After` sent with it says when (honoured only where trying again makes sense). */
  readonly retryAfter: boolean;
  /** The failure proves the request never reached the peer, so even a non-idempotent request may go again. */
  readonly neverSent: boolean;
}

const RETRYABLE_STATUS: FailureClass = { retryable: true, retryAfter: true, neverSent: false };
const FINAL_STATUS: FailureClass = { retryable: false, retryAfter: false, neverSent: false };

/**
 * An HTTP status answered to a request (or to a WebSocket upgrade). Retryable: 408 (the
 * server timed out waiting), 425 (too early), 429 (slow down) and the 5xx, except 501
 * Not Implemented and 505 HTTP Version Not Supported, which describe the server, not its
 * health: they answer the same until it is redeployed. Every other status is final: the
 * request itself is refused (401, 403, 404…), or it is not a failure this table covers.
 * An answer proves the request reached a server, so no status proves it was never sent.
 */
export function classifyStatus(status: number): FailureClass {
  if (status === 408 || status === 425 || status === 429) return RETRYABLE_STATUS;
  if (status >= 500 && status <= 599 && status !== 501 && status !== 505) return RETRYABLE_STATUS;
  return FINAL_STATUS;
}

/** Codes of failures that happen before a byte of the request is written: no connection, no name, a stream already closed. */
const NOT_SENT_CODES: ReadonlySet<string> = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ERR_STREAM_DESTROYED', 'ERR_STREAM_WRITE_AFTER_END']);

/**
 * A failure without an HTTP answer, by its Node error code (`ECONNREFUSED`,
 * `ECONNRESET`, `ETIMEDOUT`…; undefined when there is none). Every one is retryable: the
 * network, not the request, failed. Only a refused connection, a failed name lookup or a
 * write to a closed stream proves nothing was sent; a reset or a timeout may come after
 * the peer read the request.
 */
export function classifyConnectionError(code: unknown): FailureClass {
  return { retryable: true, retryAfter: false, neverSent: typeof code === 'string' && NOT_SENT_CODES.has(code) };
}

/** How one attempt ended: it threw, or the peer answered. */
export type Outcome = { error: unknown } | { response: JSONRPCResponse };

/** True when the peer's error response says that trying again later may succeed. */
export function isTransientResponse(response: JSONRPCResponse): boolean {
  if (!('error' in response)) return false;
  return response.error.code === ErrorCode.RateLimited || retryAfterOf({ response }) !== undefined;
}

/** True when a thrown failure is worth another attempt. */
export function isTransientError(error: unknown, session: Session): boolean {
  return error instanceof McpLayersError && error.retryable && !session.closed;
}

export function isTransient(outcome: Outcome, session: Session): boolean {
  return 'error' in outcome ? isTransientError(outcome.error, session) : isTransientResponse(outcome.response);
}

/** A short machine-readable reason for events and logs (`attempt-timeout`, `http-503`, `error-response:-32057`). */
export function reasonOf(outcome: Outcome): string {
  if ('response' in outcome) {
    const response = outcome.response;
    return 'error' in response ? `error-response:${response.error.code}` : 'response';
  }
  const error = outcome.error;
  if (error instanceof McpLayersError) return error.reason;
  return error instanceof Error ? error.name : 'error';
}

/** The thrown value as an Error for event payloads (undefined for a response). */
export function errorOf(outcome: Outcome): Error | undefined {
  return 'error' in outcome ? asError(outcome.error) : undefined;
}
