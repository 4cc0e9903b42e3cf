/**
 * Test layers: observers that change nothing (to prove transparency with a real stack
 * in place) and a layer that retries (to prove attempts get fresh wire ids).
 */
import type { Context } from '#core/context.ts';
import type { Layer, LayerLike } from '#core/layer.ts';

/** What the observing layers saw on one wrapped transport. */
export interface Observations {
  /** `direction kind method` for every exchange the outermost observer saw, in order. */
  exchanges: string[];
  /** Exchanges that finished with `ctx.response` set / that rejected. */
  responded: number;
  failed: number;
  /** Attempts announced on the event bus (outbound requests only). */
  attempts: number;
  /** Progress notifications relayed to `ctx.onProgress` listeners. */
  progress: number;
  /** `ctx.idempotent` of each outbound `tools/call`, by tool (learned from `tools/list` annotations). */
  toolIdempotency: Record<string, boolean>;
  /** Messages that passed through the wire decoration. */
  writes: number;
  /** attach() / detach() calls. */
  attached: number;
  detached: number;
}

export function newObservations(): Observations {
  return { exchanges: [], responded: 0, failed: 0, attempts: 0, progress: 0, toolIdempotency: {}, writes: 0, attached: 0, detached: 0 };
}

/**
 * A stack of pass-through layers covering every way a layer can hook in: a plain
 * function, an object with attach() that subscribes to events, one that listens to
 * progress and touches per-exchange state, and a wire decoration. None of them alters a
 * message; together they must leave the exchange exactly as it was.
 */
export function observingLayers(seen: Observations): LayerLike[] {
  const outermost = async function observe(ctx: Context, next: () => Promise<void>) {
    seen.exchanges.push(`${ctx.direction} ${ctx.kind} ${ctx.method}`);
    try {
      await next();
      if (ctx.kind === 'request' && ctx.response !== undefined) seen.responded++;
    } catch (error) {
      seen.failed++;
      throw error;
    }
  };

  const events: Layer = {
    name: 'observe-events',
    attach(host) {
      seen.attached++;
      const off = host.events.on('attempt', () => void seen.attempts++);
      return () => {
        seen.detached++;
        off();
      };
    },
    handle: (_ctx, next) => next(),
  };

  const progressAndState: Layer = {
    name: 'observe-progress',
    async handle(ctx, next) {
      if (ctx.direction !== 'outbound' || ctx.kind !== 'request') return next();
      // Reads everything a policy layer would read, to show reading has no effect.
      ctx.state.set('observed', { method: ctx.method, target: ctx.target, idempotent: ctx.idempotent });
      if (ctx.tool !== undefined) seen.toolIdempotency[ctx.tool] = ctx.idempotent;
      const off = ctx.onProgress(() => void seen.progress++);
      try {
        await next();
      } finally {
        off();
      }
    },
  };

  const wire: Layer = {
    name: 'observe-wire',
    attach(host) {
      host.decorateWrite((write) => (message, options) => {
        seen.writes += Array.isArray(message) ? message.length : 1;
        return write(message, options);
      });
    },
    handle: (_ctx, next) => next(),
  };

  return [outermost, events, progressAndState, wire];
}

export interface RetryingLayerOptions {
  /** Total attempts, including the first (default 2). */
  maxAttempts?: number;
  /** Which outbound requests to retry (default: all). */
  match?: (ctx: Context) => boolean;
  /** Called with each failure that leads to another attempt. */
  onRetry?: (error: unknown, attempt: number) => void;
}

/**
 * Calls `next()` again when an attempt rejects — the simplest possible retry, with no
 * regard for idempotency (tests decide what it may retry). Each call of `next()` is a
 * new attempt with a fresh wire id; the application must still see one response.
 */
export function retryingLayer(options: RetryingLayerOptions = {}): Layer {
  const maxAttempts = options.maxAttempts ?? 2;
  return {
    name: 'test-retry',
    async handle(ctx, next) {
      if (ctx.direction !== 'outbound' || ctx.kind !== 'request' || (options.match !== undefined && !options.match(ctx))) return next();
      for (let attempt = 1; ; attempt++) {
        try {
          await next();
          return;
        } catch (error) {
          if (attempt >= maxAttempts || ctx.signal.aborted) throw error;
          options.onRetry?.(error, attempt);
        }
      }
    },
  };
}
