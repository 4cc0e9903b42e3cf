/**
 * What the gateway answers a client's request with when the client's own policy refuses
 * it (docs/errors.md, "Errors the gateway answers with"). Nothing was sent upstream.
 * Over the concurrency limit the answer is the concurrency layer's LoadShedError, so
 * a client handles both sheds alike.
 */
import { brand } from '../../core/brand.ts';
import { ErrorCode, McpLayersError, type McpLayersErrorOptions } from '../../core/errors.ts';

/** The client is over its rate limit: `retryAfterMs` says when a token is there again. */
export class ClientRateLimitedError extends McpLayersError<number> {
  static {
    brand(this, 'error.ClientRateLimitedError');
  }

  constructor(message: string, options: McpLayersErrorOptions & { retryAfterMs: number }) {
    super(ErrorCode.RateLimited, message, { layer: 'gateway', reason: 'client-rate-limit', neverSent: true, retryable: true, ...options });
  }
}

/** The client's allow-lists do not let it use this tool or upstream (or it is no longer configured). */
export class ClientForbiddenError extends McpLayersError<number> {
  static {
    brand(this, 'error.ClientForbiddenError');
  }

  constructor(message: string, options: McpLayersErrorOptions & { reason: 'tool-not-allowed' | 'upstream-not-allowed' | 'client-removed' }) {
    super(ErrorCode.Forbidden, message, { layer: 'gateway', neverSent: true, ...options });
  }
}
