/**
 * HTTP failures as typed errors the stack understands: the status (so `retry` knows a
 * 503 from a 400, by the table in docs/errors.md) and `Retry-After` in milliseconds (so
 * it waits as long as asked).
 */
import { STATUS_CODES } from 'node:http';
import { TransportError } from '../../core/errors.ts';
import { classifyStatus } from '../../core/failure.ts';
import { parseRetryAfter } from '../../core/retry-after.ts';
import { redactUrl } from '../redact-url.ts';

export { parseRetryAfter };

/** Statuses that say "try again (later)": the retryable rows of the one table (src/core/failure.ts). */
export function isRetryableStatus(status: number): boolean {
  return classifyStatus(status).retryable;
}

/** The error a failed HTTP exchange raises: status, Retry-After and a bounded snippet of the body. */
export function httpStatusError(method: string, url: string, status: number, statusText: string, retryAfter: string | null, body: string): TransportError {
  const failure = classifyStatus(status);
  const retryAfterMs = failure.retryAfter ? parseRetryAfter(retryAfter) : undefined;
  const snippet = body.trim().slice(0, 300);
  const wait = retryAfterMs === undefined ? '' : ` (Retry-After: ${Math.ceil(retryAfterMs / 1000)} s)`;
  return new TransportError(`HTTP ${status} ${statusText || STATUS_CODES[status] || ''} from ${method} ${redactUrl(url)}${wait}${snippet === '' ? '' : `: ${snippet}`}`.replace(/ {2,}/g, ' '), {
    layer: 'http',
    reason: `http-${status}`,
    status,
    retryable: failure.retryable,
    data: { status },
    ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
  });
}
