/**
 * HTTP failures as typed errors the stack understands: the status (so `retry` knows a
 * 503 from a 400) and `Retry-After` in milliseconds (so it waits as long as asked).
 */
import { STATUS_CODES } from 'node:http';
import { TransportError } from '../../core/errors.ts';
import { parseRetryAfter } from '../../core/retry-after.ts';

export { parseRetryAfter };

/** Statuses that say "try again (later)": 408, 429 and every 5xx except 501/505 (which never change). */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || (status >= 500 && status <= 599 && status !== 501 && status !== 505);
}

/** The error a failed HTTP exchange raises: status, Retry-After and a bounded snippet of the body. */
export function httpStatusError(method: string, url: string, status: number, statusText: string, retryAfter: string | null, body: string): TransportError {
  const retryAfterMs = parseRetryAfter(retryAfter);
  const snippet = body.trim().slice(0, 300);
  const wait = retryAfterMs === undefined ? '' : ` (Retry-After: ${Math.ceil(retryAfterMs / 1000)} s)`;
  return new TransportError(`HTTP ${status} ${statusText || STATUS_CODES[status] || ''} from ${method} ${redact(url)}${wait}${snippet === '' ? '' : `: ${snippet}`}`.replace(/ {2,}/g, ' '), {
    layer: 'http',
    reason: `http-${status}`,
    status,
    retryable: isRetryableStatus(status),
    data: { status },
    ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
  });
}

/** URLs may carry credentials or tokens in the query: keep them out of messages. */
export function redact(url: string): string {
  try {
    const parsed = new URL(url);
    parsed.username = '';
    parsed.password = '';
    parsed.search = '';
    return parsed.href;
  } catch {
    return '(unparseable URL)';
  }
}
