/**
 * retry: sends an outbound request again after a transient failure — only when that
 * is safe (docs/architecture.md#invariant-3), only as often as the retry budget allows, and after
 * a backoff that ends at once when the exchange is cancelled or the transport closes.
 *
 *   wrap(transport, [timeout({ totalMs: 30_000 }), retry({ maxAttempts: 3 }), timeout({ attemptMs: 10_000 })])
 *
 * Built on cockatiel's ExponentialBackoff with decorrelated jitter (or any cockatiel
 * backoff). The loop is ours, not cockatiel's RetryPolicy: its sleep ignores the
 * abort signal, and each decision here needs the exchange (idempotency, budget,
 * server-directed delay, deadline).
 *
 * Per failed attempt, in this order:
 *  1. cancelled or the transport closed → stop;
 *  2. `retryOn(outcome, ctx)`, else the shared definition of transient (src/core/failure.ts)
 *     → not transient: the failure goes to the application untouched;
 *  3. not safe to send twice (not idempotent, and some attempt may have reached the
 *     peer) → stop (`give-up`, reason `not-idempotent`);
 *  4. `maxAttempts` reached → stop (`max-attempts`);
 *  5. the peer asked for a delay longer than `maxRetryAfterMs` → stop;
 *  6. the delay would end after the exchange's deadline → stop (`deadline`);
 *  7. the budget is spent → stop (`retry-budget-exhausted`, `budget-exhausted`);
 *  8. wait (the peer's delay if it gave one, else the backoff), then try again.
 */
import {
  decorrelatedJitterGenerator,
  ExponentialBackoff,
  type IBackoff,
  type IBackoffFactory,
  type IRetryBackoffContext,
} from 'cockatiel';
import type { Context } from '../../src/core/context.ts';
import { deadlineOf } from '../../src/layer-kit/deadline.ts';
import { brand } from '../../src/core/brand.ts';
import { ConnectionClosedError, ErrorCode, McpLayersError, type McpLayersErrorOptions, TransportError } from '../../src/core/errors.ts';
import { errorOf, isTransient, type Outcome, reasonOf } from '../../src/core/failure.ts';
import type { Layer, Next } from '../../src/core/layer.ts';
import { durationOption, functionOption, idempotentOption, integerOption, invalidOption, numberOption, optionsObject } from '../../src/core/options.ts';
import { retryAfterOf } from '../../src/core/retry-after.ts';
import { type RetryBudget, type RetryBudgetOptions, retryBudgetOption } from './budget.ts';
import { sleep } from '../../src/layer-kit/sleep.ts';

declare module '../../src/core/events.ts' {
  interface LayerEvents {
    /** retry will make attempt number `attempt` after waiting `delayMs` (the peer's delay when `serverDirected`). */
    retry: { ctx: Context; attempt: number; delayMs: number; reason: string; serverDirected: boolean; error: Error | undefined };
    /** retry wanted to try again after `attempt` attempts, but the retry budget was spent. */
    'retry-budget-exhausted': { ctx: Context; attempt: number; reason: string };
    /** retry stopped on a transient failure: `reason` is why (max-attempts, not-idempotent, budget-exhausted, deadline...). */
    'give-up': { ctx: Context; attempts: number; reason: string; error: Error | undefined };
  }
}

/** Retries ran out; `cause` is the last failure. */
export class RetriesExhaustedError extends McpLayersError<number> {
  static {
    brand(this, 'error.RetriesExhaustedError');
  }

  constructor(message: string, options: McpLayersErrorOptions = {}) {
    super(ErrorCode.RetriesExhausted, message, { layer: 'retry', reason: 'retries-exhausted', ...options });
  }
}

export interface BackoffOptions {
  /** Scale of the first delay, ms (default 200: the first delay falls in [0, 275) ms). */
  initialDelayMs?: number;
  /** Longest delay, ms (default 10 000). */
  maxDelayMs?: number;
  /** Growth per attempt (default 2). */
  exponent?: number;
}

export type RetryBackoff = IBackoffFactory<IRetryBackoffContext<unknown>>;

export interface RetryOptions {
  /** Attempts in all, the first included (default 3: one try and up to two retries). */
  maxAttempts?: number;
  /** Exponential backoff with decorrelated jitter (default), or any cockatiel backoff factory. */
  backoff?: BackoffOptions | RetryBackoff;
  /**
   * Decides whether a failed attempt is worth retrying: true or false, or undefined for
   * the default (src/core/failure.ts). It can never make a non-idempotent request go twice.
   */
  retryOn?: (outcome: Outcome, ctx: Context) => boolean | undefined;
  /** The retry budget: a shared RetryBudget, its options, or false for none (default 20 % + 10/s over 10 s). */
  budget?: RetryBudget | RetryBudgetOptions | false;
  /**
   * Which requests are safe to send twice. Default: `ctx.idempotent` (read-only methods,
   * tools annotated or configured idempotent). `true` declares every request through this
   * layer idempotent (only for servers whose tools all are); a function returns true or
   * false, or undefined for the default.
   */
  idempotent?: boolean | ((ctx: Context) => boolean | undefined);
  /** Longest server-directed delay to wait for, ms (default 60 000); a longer one ends the retries. */
  maxRetryAfterMs?: number;
}

export interface RetryLayer extends Layer {
  /** The budget this layer draws from (undefined when `budget: false`). */
  readonly budget: RetryBudget | undefined;
}

const KNOWN = ['maxAttempts', 'backoff', 'retryOn', 'budget', 'idempotent', 'maxRetryAfterMs'] as const;

export function retry(options?: RetryOptions): RetryLayer {
  const o = optionsObject(options, 'retry', KNOWN);
  const maxAttempts = integerOption('retry.maxAttempts', o.maxAttempts, 3, 1);
  const backoff = backoffOption(o.backoff, 'retry.backoff');
  const retryOn = functionOption<NonNullable<RetryOptions['retryOn']>>('retry.retryOn', o.retryOn);
  const budget = retryBudgetOption(o.budget, 'retry.budget');
  const maxRetryAfterMs = durationOption('retry.maxRetryAfterMs', o.maxRetryAfterMs, 60_000);
  const declared = idempotentOption(o.idempotent, 'retry.idempotent');

  /** May this request go on the wire once more? (Invariant 3.) */
  const safeToResend = (ctx: Context, outcome: Outcome): boolean => {
    if (declared(ctx) ?? ctx.idempotent) return true;
    // Not idempotent: only when no attempt of this exchange can have reached the peer.
    return 'error' in outcome && outcome.error instanceof McpLayersError && outcome.error.neverSent && !ctx.sent;
  };

  const run = (ctx: Context, next: Next): Promise<void> => {
    budget?.deposit();
    let running: Promise<void>;
    try {
      running = next();
    } catch (error) {
      return retryAfter(ctx, next, { error });
    }
    // The first attempt through then() rather than an async function: no suspended frame
    // for the requests that need no retry.
    return running.then(
      () => {
        const response = ctx.response;
        if (response !== undefined && 'error' in response) return retryAfter(ctx, next, { response });
      },
      (error: unknown) => retryAfter(ctx, next, { error }),
    );
  };

  /** After a failed first attempt (`first`): waits and tries again while attempts fail and may be retried. */
  const retryAfter = async (ctx: Context, next: Next, first: Outcome): Promise<void> => {
    let delays: IBackoff<IRetryBackoffContext<unknown>> | undefined;
    let outcome = first;
    for (let attempt = 1; ; attempt++) {
      if (ctx.aborted) return settle(outcome);
      if (!(retryOn?.(outcome, ctx) ?? isTransient(outcome, ctx.session))) return settle(outcome);

      const stop = (reason: string): void => {
        if (ctx.events.has('give-up')) ctx.events.emit('give-up', { ctx, attempts: attempt, reason, error: errorOf(outcome) });
        giveUp(ctx, outcome, attempt, reason);
      };
      if (!safeToResend(ctx, outcome)) return stop('not-idempotent');
      if (attempt >= maxAttempts) return stop('max-attempts');
      const asked = retryAfterOf(outcome);
      if (asked !== undefined && asked > maxRetryAfterMs) return stop('retry-after-too-long');
      let delayMs = asked;
      if (delayMs === undefined) {
        const context: IRetryBackoffContext<unknown> = { attempt, signal: ctx.signal, result: 'error' in outcome ? { error: outcome.error } : { value: outcome.response } };
        delays = delays === undefined ? backoff.next(context) : delays.next(context);
        delayMs = delays.duration;
      }
      const deadline = deadlineOf(ctx);
      if (deadline !== undefined && performance.now() + delayMs >= deadline) return stop('deadline');
      if (budget !== undefined && !budget.tryWithdraw()) {
        if (ctx.events.has('retry-budget-exhausted')) ctx.events.emit('retry-budget-exhausted', { ctx, attempt, reason: reasonOf(outcome) });
        return stop('budget-exhausted');
      }
      if (ctx.events.has('retry')) {
        ctx.events.emit('retry', { ctx, attempt: attempt + 1, delayMs, reason: reasonOf(outcome), serverDirected: asked !== undefined, error: errorOf(outcome) });
      }
      // The failed attempt's response is not the exchange's any more.
      ctx.response = undefined;
      ctx.responseExtra = undefined;
      await sleep(delayMs, ctx.signal);
      try {
        await next();
        const response = ctx.response;
        if (response === undefined || !('error' in response)) return;
        outcome = { response };
      } catch (error) {
        outcome = { error };
      }
    }
  };

  return {
    name: 'retry',
    budget,
    handle: (ctx, next) => (ctx.direction === 'outbound' && ctx.kind === 'request' ? run(ctx, next) : next()),
  };
}

/** Ends the exchange with this outcome as it is: a response stays in ctx.response, an error is rethrown. */
function settle(outcome: Outcome): void {
  if ('error' in outcome) throw outcome.error;
}

/**
 * Ends the exchange after deciding not to try again. A response goes to the
 * application as the peer sent it; a timeout stays a timeout (-32001); a transport
 * failure after at least one retry becomes RetriesExhausted (-32052) with the last
 * failure as its cause.
 */
function giveUp(ctx: Context, outcome: Outcome, attempts: number, stoppedBy: string): void {
  if (!('error' in outcome)) return;
  const error = outcome.error;
  if (attempts > 1 && (error instanceof TransportError || error instanceof ConnectionClosedError)) {
    const target = ctx.target === undefined ? ctx.method : `${ctx.method} ${ctx.target}`;
    throw new RetriesExhaustedError(`${target} failed after ${attempts} attempts: ${error.message}`, {
      cause: error,
      reason: stoppedBy === 'budget-exhausted' ? 'budget-exhausted' : 'retries-exhausted',
      neverSent: error.neverSent && !ctx.sent,
      retryAfterMs: error.retryAfterMs,
      data: { lastCode: error.code, lastReason: error.reason },
    });
  }
  throw error;
}

function backoffOption(value: unknown, option: string): RetryBackoff {
  if (typeof value === 'object' && value !== null && typeof (value as RetryBackoff).next === 'function') return value as RetryBackoff;
  const o = optionsObject(value as BackoffOptions | undefined, option, ['initialDelayMs', 'maxDelayMs', 'exponent']);
  const initialDelay = durationOption(`${option}.initialDelayMs`, o.initialDelayMs, 200);
  const maxDelay = durationOption(`${option}.maxDelayMs`, o.maxDelayMs, 10_000);
  const exponent = numberOption(`${option}.exponent`, o.exponent, 2, 1);
  if (maxDelay < initialDelay) throw invalidOption(`${option}.maxDelayMs`, `at least ${option}.initialDelayMs (${initialDelay})`, maxDelay);
  return new ExponentialBackoff({ generator: decorrelatedJitterGenerator, initialDelay, maxDelay, exponent });
}
