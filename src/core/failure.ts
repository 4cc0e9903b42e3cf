/**
 * What counts as a transient failure of one attempt — the one definition retry,
 * circuitBreaker and hedging share, so they never disagree about the same outcome.
 *
 * Transient (worth another try later, and evidence that the peer is unwell):
 * - a typed error marked `retryable` while the transport is still open: transport
 *   failures (refused, reset, HTTP 5xx/408/429), attempt timeouts, a connection lost
 *   under a reconnecting transport;
 * - a JSON-RPC error response that says so explicitly: code RateLimited (-32057), or
 *   `error.data.retryAfterMs` (the peer asked to be asked again later).
 *
 * Not transient: every other JSON-RPC error response (the peer answered; it will
 * answer the same again), a total timeout, a cancellation, a shed or an open breaker
 * (local decisions, not the peer's health), and anything untyped (a bug).
 */
import type { Session } from './context.ts';
import { ErrorCode, McpLayersError } from './errors.ts';
import type { JSONRPCResponse } from './jsonrpc.ts';
import { retryAfterOf } from './retry-after.ts';

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
  if (!('error' in outcome)) return undefined;
  return outcome.error instanceof Error ? outcome.error : new Error(String(outcome.error));
}
