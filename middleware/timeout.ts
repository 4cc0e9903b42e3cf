/**
 * timeout: deadlines for outbound requests.
 *
 *   timeout({ totalMs: 30_000 })   // outermost: the whole exchange, retries and backoffs included
 *   timeout({ attemptMs: 10_000 }) // below retry: each attempt
 *
 * `attemptMs` bounds each call of `next()` through this layer — one attempt when the layer
 * sits below retry, as `standard()` places it. `totalMs` bounds the exchange from the
 * moment it first reaches this layer, across every attempt below; it is also published
 * to the layers inside (src/layer-kit/deadline.ts) so retry never starts a backoff that would
 * outlast it. When a deadline passes the attempt is abandoned through its fork's
 * signal — the core sends `notifications/cancelled` for the live wire id (invariant 4)
 * — and the exchange fails with a TimeoutError, which the application receives as
 * -32001 (RequestTimeout, as the SDKs use it). An attempt timeout is retryable; a
 * total timeout is not.
 *
 * A deadline is one unref'd timer per attempt, not cockatiel's TimeoutPolicy: that
 * policy derives an AbortController and listens on two AbortSignals per call, and an
 * AbortSignal listener costs about a microsecond in Node 24 — more than the rest of
 * this layer, on every request — while the core already abandons an attempt, and
 * cancels it on the wire, when its fork is aborted (`fork.abort(reason)`, no signal). TimeoutPolicy also cannot move
 * a deadline: with `resetOnProgress`, progress notifications for the request push the
 * deadline `attemptMs` further (the timer is refreshed), never beyond `maxAttemptMs` (the MCP
 * spec asks for such a ceiling).
 *
 * Built-in per-method defaults, overridable with `perMethod`:
 * - `initialize`: at least 60 s (attempt and total), whatever `attemptMs` says — a server may
 *   be starting cold, and MCP forbids cancelling initialize, so a short deadline only
 *   turns a slow start into a failed session.
 * - `subscriptions/listen` (2026-07-28): no deadline. It lives as long as the
 *   subscription; the application ends it.
 */
import type { Context } from '../src/core/context.ts';
import { setDeadline } from '../src/layer-kit/deadline.ts';
import { TimeoutError } from '../src/core/errors.ts';
import { globMatcher } from '../src/core/glob.ts';
import type { Layer, Next } from '../src/core/layer.ts';
import { booleanOption, durationOption, invalidOption, optionsObject } from '../src/core/options.ts';
import { unref } from '../src/layer-kit/sleep.ts';

declare module '../src/core/events.ts' {
  interface LayerEvents {
    /** A deadline passed: the attempt was abandoned (its wire id cancelled) and the exchange ends with -32001. */
    timeout: { ctx: Context; scope: 'attempt' | 'total'; ms: number; attempt: number };
  }
}

export interface TimeoutOptions {
  /** Deadline of each call through this layer (each attempt, below retry), ms. Default 30 000 unless only `totalMs` is given. */
  attemptMs?: number;
  /** Deadline of the whole exchange from when it first reaches this layer, ms. Default: none. */
  totalMs?: number;
  /** Per-method `attemptMs` (method names or globs, first match wins); `false` exempts the method from this layer. */
  perMethod?: Readonly<Record<string, number | false>>;
  /** Progress notifications for the request push the attempt deadline `attemptMs` further (default false). */
  resetOnProgress?: boolean;
  /** With `resetOnProgress`: the attempt's ceiling however much progress arrives, ms (default 10 × attemptMs). */
  maxAttemptMs?: number;
}

/** What the layer enforces for one method; null = nothing. */
interface Plan {
  /** The attempt deadline (an idle deadline with resetOnProgress). */
  readonly ms: number | undefined;
  /** With resetOnProgress: the attempt's ceiling however much progress arrives. */
  readonly ceiling: number | undefined;
  readonly total: number | undefined;
}

type Scope = 'attempt' | 'total';

/** Built-in method defaults; `perMethod` entries override them. */
const INITIALIZE_FLOOR_MS = 60_000;
const NO_DEADLINE = new Set(['subscriptions/listen']);

const KNOWN = ['attemptMs', 'totalMs', 'perMethod', 'resetOnProgress', 'maxAttemptMs'] as const;
const MAX_CACHED = 256;

export function timeout(options?: TimeoutOptions): Layer {
  const o = optionsObject(options, 'timeout', KNOWN);
  const total = o.totalMs === undefined ? undefined : durationOption('timeout.totalMs', o.totalMs, 0, 1);
  const ms = o.attemptMs === undefined && total !== undefined ? undefined : durationOption('timeout.attemptMs', o.attemptMs, 30_000, 1);
  const resetOnProgress = booleanOption('timeout.resetOnProgress', o.resetOnProgress, false);
  if (o.maxAttemptMs !== undefined && !resetOnProgress) {
    throw invalidOption('timeout.maxAttemptMs', 'to be used with timeout.resetOnProgress: true', o.maxAttemptMs);
  }
  if (resetOnProgress && ms === undefined) {
    throw invalidOption('timeout.resetOnProgress', 'timeout.attemptMs to be set (progress extends the attempt deadline)', true);
  }
  const maxAttemptMs = o.maxAttemptMs === undefined ? undefined : durationOption('timeout.maxAttemptMs', o.maxAttemptMs, 0, 1);
  if (maxAttemptMs !== undefined && ms !== undefined && maxAttemptMs < ms) {
    throw invalidOption('timeout.maxAttemptMs', `at least timeout.attemptMs (${ms})`, maxAttemptMs);
  }
  const overrides = perMethodOption(o.perMethod);

  const plans = new Map<string, Plan | null>();
  const planOf = (method: string): Plan | null => {
    let plan = plans.get(method);
    if (plan !== undefined) return plan;
    plan = resolvePlan(method, ms, total, overrides);
    if (plan !== null && resetOnProgress && plan.ms !== undefined) {
      plan = { ...plan, ceiling: Math.max(maxAttemptMs ?? 10 * plan.ms, plan.ms) };
    }
    if (plans.size < MAX_CACHED) plans.set(method, plan);
    return plan;
  };

  const deadlineKey = Symbol('timeout.deadline');

  const run = (ctx: Context, next: Next, plan: Plan): Promise<void> => {
    // The fixed deadline of this call: the attempt's (or its ceiling), or what is left of the total.
    let fixed: number | undefined = plan.ceiling ?? plan.ms;
    let scope: Scope = 'attempt';
    if (plan.total !== undefined) {
      let at = ctx.state.get(deadlineKey) as number | undefined;
      let remaining = plan.total;
      if (at === undefined) {
        at = performance.now() + plan.total;
        ctx.state.set(deadlineKey, at);
        setDeadline(ctx, at);
      } else {
        remaining = Math.max(0, Math.ceil(at - performance.now()));
      }
      if (fixed === undefined || remaining <= fixed) {
        fixed = remaining;
        scope = 'total';
      }
    }
    if (fixed === undefined || fixed <= 0) return Promise.reject(expired(ctx, 'total', plan.total as number));

    const attempt = ctx.fork();
    const deadline = new Deadline(ctx, attempt, scope, scope === 'total' ? (plan.total as number) : fixed);
    deadline.start(fixed);
    if (plan.ceiling !== undefined && (plan.ms as number) < fixed) deadline.idleUntilProgress(plan.ms as number);
    let running: Promise<void>;
    try {
      running = next(attempt);
    } catch (error) {
      deadline.stop();
      return Promise.reject(deadline.failure(error));
    }
    // then() rather than an async function: no suspended frame on every request.
    return running.then(
      () => {
        deadline.stop();
        ctx.response = attempt.response;
        ctx.responseExtra = attempt.responseExtra;
        ctx.attempt = attempt.attempt;
      },
      (error: unknown) => {
        deadline.stop();
        throw deadline.failure(error);
      },
    );
  };

  return {
    name: 'timeout',
    handle: (ctx, next) => {
      if (ctx.direction !== 'outbound' || ctx.kind !== 'request') return next();
      const plan = planOf(ctx.method);
      return plan === null ? next() : run(ctx, next, plan);
    },
  };
}

/**
 * One call's deadline: aborts the attempt's fork with a typed TimeoutError (so the
 * core's notifications/cancelled says why) when its timer fires, or when the
 * progress-reset idle timer does.
 */
class Deadline {
  /** The TimeoutError the attempt was abandoned with, once the deadline passed. */
  fired: TimeoutError | undefined = undefined;
  readonly #ctx: Context;
  readonly #attempt: Context;
  readonly #scope: Scope;
  readonly #limit: number;
  #timer: ReturnType<typeof setTimeout> | undefined = undefined;
  #stopProgress: (() => void) | undefined = undefined;

  constructor(ctx: Context, attempt: Context, scope: Scope, limit: number) {
    this.#ctx = ctx;
    this.#attempt = attempt;
    this.#scope = scope;
    this.#limit = limit;
  }

  /** Arms the fixed deadline, `ms` from now. */
  start(ms: number): void {
    this.#timer = setTimeout(expire, ms, this);
    unref(this.#timer);
  }

  /** The fixed deadline passed. */
  expire(): void {
    this.#fire(this.#scope, this.#limit);
  }

  /** Starts an idle deadline of `ms` that each progress notification restarts, until `stop()`. */
  idleUntilProgress(ms: number): void {
    const idle = setTimeout(() => this.#fire('attempt', ms), ms);
    unref(idle);
    const stop = this.#ctx.onProgress(() => idle.refresh());
    this.#stopProgress = () => {
      clearTimeout(idle);
      stop();
    };
  }

  /** The attempt settled: no deadline can pass any more. */
  stop(): void {
    clearTimeout(this.#timer);
    if (this.#stopProgress !== undefined) this.#stopProgress();
  }

  /** What a failed attempt ends with: our TimeoutError when our deadline passed, whatever the layers inside made of the abort. */
  failure(error: unknown): unknown {
    return this.fired !== undefined && !this.#ctx.aborted ? this.fired : error;
  }

  #fire(scope: Scope, limit: number): void {
    if (this.fired !== undefined || this.#attempt.aborted) return;
    this.fired = expired(this.#ctx, scope, limit);
    this.#attempt.abort(this.fired);
  }
}

/** Timer callback (the deadline rides as the timer's argument: no closure per call). */
function expire(deadline: Deadline): void {
  deadline.expire();
}

/** The error that ends an exchange whose deadline passed (and the `timeout` event). */
function expired(ctx: Context, scope: Scope, limit: number): TimeoutError {
  const target = ctx.target === undefined ? ctx.method : `${ctx.method} ${ctx.target}`;
  if (ctx.events.has('timeout')) ctx.events.emit('timeout', { ctx, scope, ms: limit, attempt: ctx.attempts });
  return scope === 'total'
    ? new TimeoutError(`${target} did not complete within its total timeout of ${limit} ms`, {
        layer: 'timeout',
        reason: 'total-timeout',
        retryable: false,
        data: { timeoutMs: limit, scope },
      })
    : new TimeoutError(`${target} timed out after ${limit} ms`, {
        layer: 'timeout',
        reason: 'attempt-timeout',
        data: { timeoutMs: limit, scope },
      });
}

function resolvePlan(
  method: string,
  ms: number | undefined,
  total: number | undefined,
  overrides: Array<{ match: (name: string) => boolean; value: number | false }>,
): Plan | null {
  const override = overrides.find((entry) => entry.match(method));
  if (override !== undefined) return override.value === false ? null : { ms: override.value, ceiling: undefined, total };
  if (NO_DEADLINE.has(method)) return null;
  if (method === 'initialize') {
    return {
      ms: ms === undefined ? undefined : Math.max(ms, INITIALIZE_FLOOR_MS),
      ceiling: undefined,
      total: total === undefined ? undefined : Math.max(total, INITIALIZE_FLOOR_MS),
    };
  }
  return { ms, ceiling: undefined, total };
}

function perMethodOption(value: unknown): Array<{ match: (name: string) => boolean; value: number | false }> {
  if (value === undefined) return [];
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw invalidOption('timeout.perMethod', 'an object of method name (or glob) to milliseconds or false', value);
  }
  return Object.entries(value).map(([pattern, ms]) => {
    const option = `timeout.perMethod[${JSON.stringify(pattern)}]`;
    if (ms !== false) durationOption(option, ms, 0, 1);
    return { match: globMatcher(pattern, option), value: ms as number | false };
  });
}
