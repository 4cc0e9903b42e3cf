/**
 * concurrency: a bulkhead — at most `maxInFlight` requests at once, up to `maxQueued` more
 * waiting for a slot, and the rest shed at once.
 *
 *   concurrency({ maxInFlight: 16, maxQueued: 64 })
 *
 * Both directions, each with its own limit so that one cannot starve the other:
 * - outbound (the application's requests): a shed request fails with LoadShedError
 *   (-32051) and nothing is sent;
 * - inbound (a server's incoming requests): a shed request is answered to the peer
 *   with the same error — `data.retryAfterMs` when `retryAfterMs` is set, which an
 *   mcp-layers `retry` on the other side honours — and the application never sees it.
 *
 * A queued request leaves the queue the moment its exchange is cancelled (by the
 * application, the peer, an outer total timeout, or the transport closing).
 * Built on cockatiel's BulkheadPolicy. One layer object is one set of limits, shared by
 * every transport it is attached to (a per-process cap for a server with many
 * sessions); create one per transport for per-session limits.
 *
 * Known limit of cockatiel's bulkhead: a cancelled queued request keeps its queue place
 * until the next running request finishes (the bulkhead then discards it). While
 * nothing finishes, such places count against `maxQueued`.
 */
import { BulkheadPolicy, BulkheadRejectedError, TaskCancelledError } from 'cockatiel';
import type { Context } from '../src/core/context.ts';
import { brand } from '../src/core/brand.ts';
import { ErrorCode, McpLayersError, type McpLayersErrorOptions } from '../src/core/errors.ts';
import type { Layer, Next } from '../src/core/layer.ts';
import { choiceOption, durationOption, integerOption, optionsObject } from '../src/core/options.ts';
import { untilAborted } from '../src/layer-kit/sleep.ts';

declare module '../src/core/events.ts' {
  interface LayerEvents {
    /** A concurrency limit refused a request (outbound: nothing sent; inbound: the peer got an error). */
    shed: { ctx: Context; reason: string; inFlight: number; queued: number };
    /** A request waits for a concurrency slot. */
    queued: { ctx: Context; queued: number; inFlight: number };
  }
}

/** A concurrency limit refused the request. */
export class LoadShedError extends McpLayersError<number> {
  static {
    brand(this, 'error.LoadShedError');
  }

  constructor(message: string, options: McpLayersErrorOptions = {}) {
    super(ErrorCode.LoadShed, message, { layer: 'concurrency', reason: 'shed', neverSent: true, ...options });
  }
}

export interface ConcurrencyOptions {
  /** Requests running at once, per direction (default 100). */
  maxInFlight?: number;
  /** Requests waiting for a slot, per direction (default 0: shed at once, as Polly's default limiter does). */
  maxQueued?: number;
  /** Which requests are limited (default `both`, each direction with its own limit). */
  direction?: 'outbound' | 'inbound' | 'both';
  /** A hint for the peer in the error answering a shed inbound request (`data.retryAfterMs`), ms. */
  retryAfterMs?: number;
}

export interface ConcurrencyLayer extends Layer {
  /** Requests running and waiting now, per direction. */
  usage(): { outbound: { inFlight: number; queued: number }; inbound: { inFlight: number; queued: number } };
}

const KNOWN = ['maxInFlight', 'maxQueued', 'direction', 'retryAfterMs'] as const;

export function concurrency(options?: ConcurrencyOptions): ConcurrencyLayer {
  const o = optionsObject(options, 'concurrency', KNOWN);
  const maxInFlight = integerOption('concurrency.maxInFlight', o.maxInFlight, 100, 1);
  const queue = integerOption('concurrency.maxQueued', o.maxQueued, 0, 0);
  const direction = choiceOption('concurrency.direction', o.direction, 'both', ['outbound', 'inbound', 'both']);
  const retryAfterMs = o.retryAfterMs === undefined ? undefined : durationOption('concurrency.retryAfterMs', o.retryAfterMs, 0);

  const outbound = direction === 'inbound' ? undefined : new BulkheadPolicy(maxInFlight, queue);
  const inbound = direction === 'outbound' ? undefined : new BulkheadPolicy(maxInFlight, queue);
  const usageOf = (bulkhead: BulkheadPolicy | undefined) =>
    bulkhead === undefined ? { inFlight: 0, queued: 0 } : { inFlight: maxInFlight - bulkhead.executionSlots, queued: queue - bulkhead.queueSlots };

  const shed = (ctx: Context, bulkhead: BulkheadPolicy): LoadShedError => {
    const { inFlight, queued } = usageOf(bulkhead);
    if (ctx.events.has('shed')) ctx.events.emit('shed', { ctx, reason: 'concurrency-limit', inFlight, queued });
    const who = ctx.direction === 'outbound' ? 'was not sent' : 'was refused';
    return new LoadShedError(
      `Too many concurrent requests: ${ctx.method} ${who} (${inFlight} in flight, ${queued} queued; limits ${maxInFlight} and ${queue})`,
      {
        reason: queue > 0 ? 'queue-full' : 'shed',
        retryAfterMs: ctx.direction === 'inbound' ? retryAfterMs : undefined,
        data: { direction: ctx.direction, inFlight, queued },
      },
    );
  };

  /** The error a failed run ends with: a refusal becomes LoadShedError, a cancelled wait the abort reason. */
  const failure = (ctx: Context, bulkhead: BulkheadPolicy, error: unknown): unknown => {
    if (error instanceof BulkheadRejectedError) return shed(ctx, bulkhead);
    if (error instanceof TaskCancelledError && ctx.aborted) return ctx.abortReason;
    return error;
  };

  const run = (ctx: Context, next: Next, bulkhead: BulkheadPolicy): Promise<void> => {
    // cockatiel calls the function with its own context: next() must get none.
    const attempt = () => next();
    // Runs at once: no wait to abandon, so no signal (ctx.signal is created on demand).
    // then() rather than an async function: no suspended frame on every request.
    if (bulkhead.executionSlots > 0) {
      return bulkhead.execute(attempt).then(undefined, (error: unknown) => {
        throw failure(ctx, bulkhead, error);
      });
    }
    return waitForSlot(ctx, bulkhead, attempt);
  };

  /** A full bulkhead: queued until a slot frees (or shed), and the wait ends with the exchange. */
  const waitForSlot = async (ctx: Context, bulkhead: BulkheadPolicy, attempt: () => Promise<void>): Promise<void> => {
    try {
      if (bulkhead.queueSlots > 0 && ctx.events.has('queued')) {
        const { inFlight, queued } = usageOf(bulkhead);
        ctx.events.emit('queued', { ctx, queued: queued + 1, inFlight });
      }
      await untilAborted(bulkhead.execute(attempt, ctx.signal), ctx.signal);
    } catch (error) {
      throw failure(ctx, bulkhead, error);
    }
  };

  return {
    name: 'concurrency',
    handle: (ctx, next) => {
      if (ctx.kind !== 'request') return next();
      const bulkhead = ctx.direction === 'outbound' ? outbound : inbound;
      return bulkhead === undefined ? next() : run(ctx, next, bulkhead);
    },
    usage: () => ({ outbound: usageOf(outbound), inbound: usageOf(inbound) }),
  };
}
