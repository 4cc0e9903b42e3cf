/**
 * Server-directed delays: how long the peer asked us to wait before trying again.
 *
 * Two places carry one. Over HTTP, the `Retry-After` header of a 429 or 503 (RFC 9110
 * §10.2.3: delta-seconds or an HTTP-date); transports put it on the error they raise
 * as `TransportError.retryAfterMs` (`parseRetryAfter` reads the header). In a JSON-RPC
 * error response, `error.data.retryAfterMs` (the convention of this library's own
 * synthesized errors, so a client behind an mcp-layers gateway backs off as asked).
 */
import { McpLayersError } from './errors.ts';
import type { JSONRPCResponse } from './jsonrpc.ts';

/** Milliseconds from a `Retry-After` header value; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | null | undefined, now: number = Date.now()): number | undefined {
  if (value === undefined || value === null) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const date = Date.parse(text);
  // Only real HTTP-dates: Date.parse accepts far more than RFC 9110 allows.
  if (Number.isNaN(date) || !/^[A-Za-z]{3,9},? /.test(text)) return undefined;
  return Math.max(0, date - now);
}

/** The delay a failed attempt asks for: the error's `retryAfterMs`, or the error response's `data.retryAfterMs`. */
export function retryAfterOf(failure: { error: unknown } | { response: JSONRPCResponse }): number | undefined {
  if ('error' in failure) {
    const error = failure.error;
    return error instanceof McpLayersError ? validDelay(error.retryAfterMs) : undefined;
  }
  const response = failure.response;
  if (!('error' in response)) return undefined;
  const data = response.error.data;
  if (typeof data !== 'object' || data === null) return undefined;
  return validDelay((data as { retryAfterMs?: unknown }).retryAfterMs);
}

function validDelay(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : undefined;
}
