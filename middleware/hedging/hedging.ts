/**
 * hedging: when an idempotent read is slower than usual, send it again and take
 * whichever answer comes first — the tail latency of one slow server process, GC pause
 * or queue stops being the application's.
 *
 *   hedging({ percentile: 95 })        // hedge what is slower than the recent p95
 *   hedging({ delayMs: 250, maxHedges: 2 })
 *
 * Only requests that are safe to send twice (`ctx.idempotent`, or the `idempotent`
 * option) and never `initialize` or the long-lived `subscriptions/listen`; everything
 * else passes straight through. Each attempt runs on its own fork: when one answers,
 * the others are abandoned by aborting their fork and the core cancels their
 * wire ids (`notifications/cancelled`, invariant 4); their late answers are dropped.
 *
 * A hedge goes out when the attempts so far have been running for the hedging delay,
 * or at once when one of them failed transiently (Polly's hedging does the same). Hedges
 * draw on a retry budget (default 20 % of requests + 10/s over 10 s, as retry's), so
 * hedging cannot double the load on a server that is slow because it is overloaded.
 * The first response wins, unless it is an explicitly transient error response and
 * other attempts may still do better.
 */
import type { Context } from '../../src/core/context.ts';
import { deadlineOf } from '../../src/layer-kit/deadline.ts';
import { CancelledError } from '../../src/core/errors.ts';
import { isTransientError, isTransientResponse } from '../../src/core/failure.ts';
import type { Layer, Next } from '../../src/core/layer.ts';
import { LatencyWindow } from './latency-window.ts';
import { durationOption, idempotentOption, integerOption, invalidOption, numberOption, optionsObject } from '../../src/core/options.ts';
import { type RetryBudget, type RetryBudgetOptions, retryBudgetOption } from '../retry/budget.ts';
import { unref } from '../../src/layer-kit/sleep.ts';

declare module '../../src/core/events.ts' {
  interface LayerEvents {
    /** hedging launched attempt number `attempt` because the earlier ones were slower than `delayMs`. */
    hedge: { ctx: Context; attempt: number; delayMs: number };
    /** A hedged exchange ended: attempt `winner` answered, `cancelled` others were cancelled on the wire. */
    'hedge-outcome': { ctx: Context; winner: number; cancelled: number };
  }
}

export interface HedgingOptions {
  /** Hedge when the attempts so far have run this long, ms (with `percentile`: until `minSamples` latencies were seen; default 1 000). */
  delayMs?: number;
  /** Hedge when the attempts so far are slower than this percentile of recent latencies of the same method or tool (default 95 unless `delayMs` alone is given). */
  percentile?: number;
  /** Extra attempts per request at most (default 1: two in all). */
  maxHedges?: number;
  /** Latencies needed before `percentile` is trusted (default 20). */
  minSamples?: number;
  /** The budget hedges draw on: a shared RetryBudget, its options, or false for none. */
  budget?: RetryBudget | RetryBudgetOptions | false;
  /** Which requests may be hedged; see retry's `idempotent`. */
  idempotent?: boolean | ((ctx: Context) => boolean | undefined);
}

export interface HedgingLayer extends Layer {
  readonly budget: RetryBudget | undefined;
  /** The delay after which a request like `ctx` would be hedged now, ms. */
  delayFor(ctx: Context): number;
}

interface Racer {
  readonly n: number;
  readonly fork: Context;
  readonly startedAt: number;
  done: boolean;
}

const NEVER_HEDGED = new Set(['initialize', 'subscriptions/listen']);
const KNOWN = ['delayMs', 'percentile', 'maxHedges', 'minSamples', 'budget', 'idempotent'] as const;
const MAX_KEYS = 256;

export function hedging(options?: HedgingOptions): HedgingLayer {
  const o = optionsObject(options, 'hedging', KNOWN);
  const fixedOnly = o.delayMs !== undefined && o.percentile === undefined;
  const delayMs = durationOption('hedging.delayMs', o.delayMs, 1_000);
  const percentile = fixedOnly ? undefined : numberOption('hedging.percentile', o.percentile, 95, 1, 99.99);
  const maxHedges = integerOption('hedging.maxHedges', o.maxHedges, 1, 1, 10);
  const minSamples = integerOption('hedging.minSamples', o.minSamples, 20, 1, 1000);
  if (fixedOnly && o.minSamples !== undefined) throw invalidOption('hedging.minSamples', 'to be used with hedging.percentile', o.minSamples);
  const budget = retryBudgetOption(o.budget, 'hedging.budget');
  const declared = idempotentOption(o.idempotent, 'hedging.idempotent');

  const windows = new Map<string, LatencyWindow>();
  const keyOf = (ctx: Context): string => (ctx.method === 'tools/call' ? `tools/call:${ctx.tool ?? ''}` : ctx.method);
  const windowOf = (key: string): LatencyWindow => {
    let window = windows.get(key);
    if (window === undefined) {
      if (windows.size >= MAX_KEYS) windows.delete(windows.keys().next().value as string);
      windows.set(key, (window = new LatencyWindow()));
    }
    return window;
  };
  const delayFor = (ctx: Context): number => {
    if (percentile === undefined) return delayMs;
    const window = windows.get(keyOf(ctx));
    if (window === undefined || window.count < minSamples) return delayMs;
    return window.percentile(percentile) ?? delayMs;
  };

  const run = (ctx: Context, next: Next): Promise<void> => {
    budget?.deposit();
    const delay = delayFor(ctx);
    const window = percentile === undefined ? undefined : windowOf(keyOf(ctx));
    return new Promise<void>((resolve, reject) => {
      const racers: Racer[] = [];
      let pending = 0;
      let finished = false;
      let timer: ReturnType<typeof setTimeout> | undefined;
      /** The best outcome so far among failed attempts: a transient error response beats an error. */
      let fallback: Racer | undefined;
      let lastError: unknown;

      const finish = (winner: Racer | undefined, error?: unknown): void => {
        finished = true;
        if (timer !== undefined) clearTimeout(timer);
        let cancelled = 0;
        for (const racer of racers) {
          if (racer === winner || racer.done) continue;
          racer.fork.abort(new CancelledError('Another attempt of this request answered first', { layer: 'hedging', reason: 'hedge-lost' }));
          cancelled++;
        }
        if (racers.length > 1 && ctx.events.has('hedge-outcome')) ctx.events.emit('hedge-outcome', { ctx, winner: winner?.n ?? 0, cancelled });
        if (winner === undefined) return reject(error);
        ctx.response = winner.fork.response;
        ctx.responseExtra = winner.fork.responseExtra;
        ctx.attempt = winner.fork.attempt;
        resolve();
      };

      const mayHedge = (): boolean => {
        if (racers.length > maxHedges) return false;
        const deadline = deadlineOf(ctx);
        if (deadline !== undefined && performance.now() >= deadline) return false;
        return budget === undefined || budget.tryWithdraw();
      };
      const launch = (): void => {
        const racer: Racer = { n: racers.length + 1, fork: ctx.fork(), startedAt: performance.now(), done: false };
        racers.push(racer);
        pending++;
        next(racer.fork).then(
          () => settle(racer, undefined),
          (error: unknown) => settle(racer, error),
        );
        if (racers.length <= maxHedges) {
          timer = setTimeout(onTimer, delay);
          unref(timer);
        }
      };
      const hedge = (after: number): void => {
        if (timer !== undefined) clearTimeout(timer);
        timer = undefined;
        if (!mayHedge()) return;
        if (ctx.events.has('hedge')) ctx.events.emit('hedge', { ctx, attempt: racers.length + 1, delayMs: after });
        launch();
      };
      const onTimer = (): void => {
        timer = undefined;
        if (!finished) hedge(delay);
      };

      const settle = (racer: Racer, error: unknown): void => {
        racer.done = true;
        pending--;
        if (finished) return;
        let transient: boolean;
        if (error === undefined) {
          window?.record(performance.now() - racer.startedAt);
          const response = racer.fork.response;
          if (response === undefined || !isTransientResponse(response)) return finish(racer);
          fallback = racer;
          transient = true;
        } else {
          // Cancelled or closed: every fork was abandoned with the exchange, and this is the first to say so.
          if (ctx.aborted) return finish(undefined, ctx.abortReason);
          lastError = error;
          transient = isTransientError(error, ctx.session);
        }
        // A transient failure: hedge now rather than after the delay, while hedges remain.
        if (transient && racers.length <= maxHedges) hedge(0);
        if (pending > 0) return;
        if (fallback !== undefined) return finish(fallback);
        finish(undefined, lastError);
      };

      launch();
    });
  };

  return {
    name: 'hedging',
    budget,
    delayFor,
    handle: (ctx, next) => {
      if (ctx.direction !== 'outbound' || ctx.kind !== 'request' || NEVER_HEDGED.has(ctx.method)) return next();
      if (!(declared(ctx) ?? ctx.idempotent)) return next();
      if (ctx.aborted) return Promise.reject(ctx.abortReason);
      return run(ctx, next);
    },
  };
}
