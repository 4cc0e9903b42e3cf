/**
 * A minimal retry layer for transport tests (the real `retry` lives in middleware/ and
 * is built on cockatiel): re-invokes `next()` after a retryable failure when invariant 3
 * allows it — the request is idempotent, or it provably never left.
 */
import type { Middleware } from '../../src/layer.ts';
import { McpLayersError } from '../../src/errors.ts';

export function testRetry(maxAttempts = 3, onRetry?: (method: string, error: McpLayersError) => void): Middleware {
  return async function testRetryLayer(ctx, next) {
    if (ctx.direction !== 'outbound' || ctx.kind !== 'request') return next();
    for (let attempt = 1; ; attempt++) {
      try {
        await next();
        return;
      } catch (error) {
        const retryable =
          error instanceof McpLayersError && error.retryable && (error.neverSent || ctx.idempotent) && attempt < maxAttempts && !ctx.signal.aborted;
        if (!retryable) throw error;
        onRetry?.(ctx.method, error);
      }
    }
  };
}
