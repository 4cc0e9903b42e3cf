/**
 * circuitBreaker: stops sending to a peer that keeps failing, so it can recover, and
 * fails fast meanwhile.
 *
 *   circuitBreaker({ breaker: 'consecutive', consecutiveFailures: 5, halfOpenAfterMs: 5_000 })
 *
 * closed ──(breaker trips)──► open ──(halfOpenAfterMs)──► half-open ──(probe answers)──► closed
 *                               ▲                           │
 *                               └────(probe fails)──────────┘
 *
 * While open, a request fails at once with CircuitOpenError (-32050, `data.retryAfterMs`
 * = time until the next probe) and no byte is sent. After `halfOpenAfterMs` the next
 * request goes through as a probe; requests arriving while it runs wait for its verdict
 * (cockatiel queues them) — or until their own exchange is cancelled, which ends their
 * wait at once. Put an attempt timeout below the breaker so a hanging probe ends.
 *
 * Built on cockatiel's CircuitBreakerPolicy and its ConsecutiveBreaker, SamplingBreaker
 * and CountBreaker. What counts as a failure is src/core/failure.ts (transport failures,
 * attempt timeouts, explicitly transient error responses); an ordinary JSON-RPC error
 * response proves the peer alive. A half-open probe that ends any other way (cancelled,
 * shed) proves nothing and re-opens the breaker rather than closing it.
 *
 * One layer object is one set of breakers, shared by every transport it is attached to
 * (give the same layer to every connection to one upstream). `scope` splits it further:
 * one breaker per method, or per tool (other methods per method), at most `maxKeys`.
 * `exportState()` captures every breaker (JSON-safe) and `restoreState()` or the
 * `state` option brings them back, e.g. across restarts of a serverless function.
 */
import {
  BrokenCircuitError,
  type CircuitBreakerPolicy,
  CircuitState,
  circuitBreaker as cockatielCircuitBreaker,
  ConsecutiveBreaker,
  CountBreaker,
  handleWhen,
  type IBackoffFactory,
  type IBreaker,
  type IHalfOpenAfterBackoffContext,
  IsolatedCircuitError,
  SamplingBreaker,
  TaskCancelledError,
} from 'cockatiel';
import type { Context } from '../src/core/context.ts';
import { brand } from '../src/core/brand.ts';
import { ErrorCode, McpLayersError, type McpLayersErrorOptions } from '../src/core/errors.ts';
import type { EventBus } from '../src/core/events.ts';
import { isTransient, type Outcome, reasonOf } from '../src/core/failure.ts';
import type { Layer, Next } from '../src/core/layer.ts';
import { choiceOption, durationOption, functionOption, integerOption, invalidOption, openRatioOption, optionsObject } from '../src/core/options.ts';
import { untilAborted } from '../src/layer-kit/sleep.ts';

export type BreakerState = 'closed' | 'open' | 'half-open' | 'isolated';

declare module '../src/core/events.ts' {
  interface LayerEvents {
    /** A circuit breaker changed state; `reason` says what opened it. */
    'breaker-state': { key: string; from: BreakerState; to: BreakerState; reason: string | undefined };
    /** An open breaker failed a request fast; nothing was sent. */
    'breaker-rejected': { ctx: Context; key: string; state: BreakerState; retryAfterMs: number | undefined };
  }
}

/** The circuit is open: the request was not sent. */
export class CircuitOpenError extends McpLayersError<number> {
  static {
    brand(this, 'error.CircuitOpenError');
  }

  constructor(message: string, options: McpLayersErrorOptions = {}) {
    super(ErrorCode.CircuitOpen, message, { layer: 'circuitBreaker', reason: 'breaker-open', neverSent: true, ...options });
  }
}

export type BreakerKind = 'consecutive' | 'sampling' | 'count';
export type BreakerScope = 'transport' | 'method' | 'tool';

export interface CircuitBreakerOptions {
  /**
   * When to open: `consecutive` (default) after `consecutiveFailures` failures in a row;
   * `sampling` when more than `failureRatio` of the calls over `windowMs` failed; `count`
   * when more than `failureRatio` of the last `windowCalls` calls failed; or a function
   * returning a cockatiel IBreaker for each key.
   */
  breaker?: BreakerKind | (() => IBreaker);
  /** consecutive: failures in a row that open the breaker (default 5). */
  consecutiveFailures?: number;
  /** sampling, count: the ratio of failed calls in the window, in (0, 1), above which the breaker opens (default 0.5). */
  failureRatio?: number;
  /** sampling: the window, ms (default 30 000). */
  windowMs?: number;
  /** sampling, count: calls observed in the window before the ratio is trusted and the breaker may open (default 20; count: at most `windowCalls`). */
  minSamples?: number;
  /** count: calls in the window (default 100). */
  windowCalls?: number;
  /** How long the breaker stays open before a probe, ms, or a cockatiel backoff (default 5 000). */
  halfOpenAfterMs?: number | IBackoffFactory<IHalfOpenAfterBackoffContext>;
  /** One breaker for everything through this layer (default), per method, or per tool. */
  scope?: BreakerScope;
  /** Most breakers kept with scope method/tool (default 256); the least recently used closed one goes first. */
  maxKeys?: number;
  /** Decides whether an outcome counts as a failure: true, false, or undefined for the default. */
  isFailure?: (outcome: Outcome, ctx: Context) => boolean | undefined;
  /** State from `exportState()` to start from. */
  state?: BreakerSnapshot;
}

/** JSON-safe state of every breaker of a layer, from `exportState()`. */
export interface BreakerSnapshot {
  version: 1;
  breaker: BreakerKind | 'custom';
  breakers: Record<string, unknown>;
}

export interface CircuitBreakerLayer extends Layer {
  /** The state of the breaker for `key` (`transport` for scope transport; a method or a tool name otherwise). */
  stateOf(key?: string): BreakerState;
  /** Every breaker's state, JSON-safe. Isolated breakers are not exported (isolation is local and manual). */
  exportState(): BreakerSnapshot;
  /** Replaces the breakers named in `snapshot` with their exported state. */
  restoreState(snapshot: BreakerSnapshot): void;
  /** Holds the breaker for `key` open until the returned handle is disposed. */
  isolate(key?: string): { dispose(): void };
}

/** What the probe-and-count function tells cockatiel about an outcome. */
class CountedFailure {
  readonly error: unknown;
  constructor(error: unknown) {
    this.error = error;
  }
}
class FailedResponse {
  readonly reason: string;
  constructor(reason: string) {
    this.reason = reason;
  }
}
const OK = Symbol('ok');

interface Breaker {
  readonly key: string;
  readonly policy: CircuitBreakerPolicy;
  state: BreakerState;
  openedAt: number;
}

const STATE_NAMES: Record<CircuitState, BreakerState> = {
  [CircuitState.Closed]: 'closed',
  [CircuitState.Open]: 'open',
  [CircuitState.HalfOpen]: 'half-open',
  [CircuitState.Isolated]: 'isolated',
};

/** A cockatiel breaker's state as the events name it (this layer's breakers and the oauth token endpoint's). */
export function breakerStateOf(state: CircuitState): BreakerState {
  return STATE_NAMES[state];
}
/** Long-lived requests neither probe nor count: a probe that never ends would hold the breaker half-open. */
const BYPASS = new Set(['subscriptions/listen']);
const TRANSPORT_KEY = 'transport';
const KNOWN = ['breaker', 'consecutiveFailures', 'failureRatio', 'windowMs', 'minSamples', 'windowCalls', 'halfOpenAfterMs', 'scope', 'maxKeys', 'isFailure', 'state'] as const;

export function circuitBreaker(options?: CircuitBreakerOptions): CircuitBreakerLayer {
  const o = optionsObject(options, 'circuitBreaker', KNOWN);
  const kind: BreakerKind | 'custom' = typeof o.breaker === 'function' ? 'custom' : choiceOption('circuitBreaker.breaker', o.breaker, 'consecutive', ['consecutive', 'sampling', 'count']);
  const makeBreaker = breakerFactory(kind, o);
  const halfOpenAfter = halfOpenAfterOption(o.halfOpenAfterMs);
  const scope = choiceOption('circuitBreaker.scope', o.scope, 'transport', ['transport', 'method', 'tool']);
  const maxKeys = integerOption('circuitBreaker.maxKeys', o.maxKeys, 256, 1);
  const isFailure = functionOption<NonNullable<CircuitBreakerOptions['isFailure']>>('circuitBreaker.isFailure', o.isFailure);

  const breakers = new Map<string, Breaker>();
  const buses = new Map<EventBus, number>();
  const counts = handleWhen((error) => error instanceof CountedFailure).orWhenResult((result) => result instanceof FailedResponse);

  const publish = (breaker: Breaker, to: BreakerState): void => {
    const from = breaker.state;
    breaker.state = to;
    if (to === 'open') breaker.openedAt = Date.now();
    if (from === to || buses.size === 0) return;
    const last = breaker.policy.lastFailure;
    const reason =
      to !== 'open' || last === undefined
        ? undefined
        : 'error' in last
          ? last.error instanceof CountedFailure
            ? reasonOf({ error: last.error.error })
            : 'isolated'
          : last.value instanceof FailedResponse
            ? last.value.reason
            : undefined;
    for (const bus of buses.keys()) bus.emit('breaker-state', { key: breaker.key, from, to, reason });
  };

  const create = (key: string, initialState?: unknown): Breaker => {
    const policy = cockatielCircuitBreaker(counts, { breaker: makeBreaker(), halfOpenAfter, initialState });
    const breaker: Breaker = { key, policy, state: breakerStateOf(policy.state), openedAt: initialState === undefined ? 0 : openedAtOf(initialState) };
    policy.onStateChange((state) => publish(breaker, breakerStateOf(state)));
    return breaker;
  };

  const evictOne = (): void => {
    let victim: string | undefined;
    for (const [key, breaker] of breakers) {
      if (breaker.state === 'closed') {
        victim = key;
        break;
      }
      victim ??= key;
    }
    if (victim !== undefined) breakers.delete(victim);
  };

  const breakerFor = (key: string): Breaker => {
    let breaker = breakers.get(key);
    if (breaker !== undefined) {
      if (scope !== 'transport') {
        // Least recently used first: Map keeps insertion order.
        breakers.delete(key);
        breakers.set(key, breaker);
      }
      return breaker;
    }
    if (breakers.size >= maxKeys) evictOne();
    breaker = create(key);
    breakers.set(key, breaker);
    return breaker;
  };

  const keyOf = (ctx: Context): string => {
    if (scope === 'transport') return TRANSPORT_KEY;
    if (scope === 'tool' && ctx.method === 'tools/call') return ctx.tool ?? ctx.method;
    return ctx.method;
  };

  const retryAfterOf = (breaker: Breaker): number | undefined =>
    typeof halfOpenAfter === 'number' && breaker.state === 'open' ? Math.max(0, breaker.openedAt + halfOpenAfter - Date.now()) : undefined;

  // then() rather than async functions, here and in the probe: no suspended frames per request.
  const run = (ctx: Context, next: Next): Promise<void> => {
    const breaker = breakerFor(keyOf(ctx));
    const probe = (): Promise<unknown> => {
      let running: Promise<void>;
      try {
        running = next();
      } catch (error) {
        return Promise.reject(failure(ctx, breaker, error));
      }
      return running.then(
        () => {
          const response = ctx.response;
          if (response !== undefined && 'error' in response && counted({ response }, ctx)) return new FailedResponse(reasonOf({ response }));
          return OK;
        },
        (error: unknown) => {
          throw failure(ctx, breaker, error);
        },
      );
    };
    // Callers arriving while a probe runs wait for its verdict; their own cancellation ends the wait.
    const waiting = breaker.state === 'half-open';
    // The signal matters to cockatiel only for a caller it queues (ctx.signal is created on demand).
    const execution = waiting ? untilAborted(breaker.policy.execute(probe, ctx.signal), ctx.signal) : breaker.policy.execute(probe);
    return execution.then(undefined, (error: unknown) => {
      throw rejection(ctx, breaker, error);
    });
  };

  /** What a failed attempt tells cockatiel: a CountedFailure when it counts against the peer. */
  const failure = (ctx: Context, breaker: Breaker, error: unknown): unknown =>
    // A half-open probe that did not get an answer proves nothing: it must not close the breaker.
    breaker.state === 'half-open' || counted({ error }, ctx) ? new CountedFailure(error) : error;

  /** The error a request the breaker did not let through, or whose probe failed, ends with. */
  const rejection = (ctx: Context, breaker: Breaker, error: unknown): unknown => {
    if (error instanceof CountedFailure) return error.error;
    if (error instanceof BrokenCircuitError || error instanceof IsolatedCircuitError) {
      const retryAfterMs = retryAfterOf(breaker);
      if (ctx.events.has('breaker-rejected')) ctx.events.emit('breaker-rejected', { ctx, key: breaker.key, state: breaker.state, retryAfterMs });
      const target = ctx.target === undefined ? ctx.method : `${ctx.method} ${ctx.target}`;
      return new CircuitOpenError(
        `The circuit breaker for ${breaker.key} is ${breaker.state === 'isolated' ? 'held open' : 'open'} after repeated failures; ${target} was not sent`,
        { retryAfterMs, data: { key: breaker.key, state: breaker.state } },
      );
    }
    if (error instanceof TaskCancelledError && ctx.aborted) return ctx.abortReason;
    return error;
  };

  const counted = (outcome: Outcome, ctx: Context): boolean => isFailure?.(outcome, ctx) ?? isTransient(outcome, ctx.session);

  const layer: CircuitBreakerLayer = {
    name: 'circuitBreaker',
    handle: (ctx, next) => (ctx.direction === 'outbound' && ctx.kind === 'request' && !BYPASS.has(ctx.method) ? run(ctx, next) : next()),
    attach(host) {
      const bus = host.events;
      buses.set(bus, (buses.get(bus) ?? 0) + 1);
      return () => {
        const n = (buses.get(bus) ?? 1) - 1;
        if (n === 0) buses.delete(bus);
        else buses.set(bus, n);
      };
    },
    stateOf: (key = TRANSPORT_KEY) => breakers.get(key)?.state ?? 'closed',
    exportState() {
      const exported: Record<string, unknown> = {};
      for (const [key, breaker] of breakers) {
        if (breaker.state !== 'isolated') exported[key] = JSON.parse(JSON.stringify(breaker.policy));
      }
      return { version: 1, breaker: kind, breakers: exported };
    },
    restoreState(snapshot) {
      for (const [key, state] of Object.entries(snapshotOption(snapshot, kind, 'circuitBreaker.restoreState(snapshot)'))) {
        breakers.delete(key);
        if (breakers.size >= maxKeys) evictOne();
        breakers.set(key, create(key, state));
      }
    },
    isolate(key = TRANSPORT_KEY) {
      return breakerFor(key).policy.isolate();
    },
  };
  if (o.state !== undefined) {
    for (const [key, state] of Object.entries(snapshotOption(o.state, kind, 'circuitBreaker.state'))) {
      if (breakers.size < maxKeys) breakers.set(key, create(key, state));
    }
  }
  return layer;
}

function breakerFactory(kind: BreakerKind | 'custom', o: Partial<CircuitBreakerOptions>): () => IBreaker {
  const unused = (option: keyof CircuitBreakerOptions): void => {
    if (o[option] !== undefined) throw invalidOption(`circuitBreaker.${option}`, `no value: it does not apply to breaker ${JSON.stringify(kind)}`, o[option]);
  };
  switch (kind) {
    case 'custom': {
      const make = o.breaker as () => IBreaker;
      for (const option of ['consecutiveFailures', 'failureRatio', 'windowMs', 'minSamples', 'windowCalls'] as const) unused(option);
      return make;
    }
    case 'consecutive': {
      const failures = integerOption('circuitBreaker.consecutiveFailures', o.consecutiveFailures, 5, 1);
      for (const option of ['failureRatio', 'windowMs', 'minSamples', 'windowCalls'] as const) unused(option);
      return () => new ConsecutiveBreaker(failures);
    }
    case 'sampling': {
      const threshold = openRatioOption('circuitBreaker.failureRatio', o.failureRatio, 0.5);
      const duration = durationOption('circuitBreaker.windowMs', o.windowMs, 30_000, 1_000);
      const minSamples = integerOption('circuitBreaker.minSamples', o.minSamples, 20, 1);
      for (const option of ['consecutiveFailures', 'windowCalls'] as const) unused(option);
      // cockatiel counts a minimum rate; Polly and this option count calls in the window.
      const minimumRps = minSamples / (duration / 1000);
      return () => new SamplingBreaker({ threshold, duration, minimumRps });
    }
    case 'count': {
      const threshold = openRatioOption('circuitBreaker.failureRatio', o.failureRatio, 0.5);
      const size = integerOption('circuitBreaker.windowCalls', o.windowCalls, 100, 1);
      const minSamples = integerOption('circuitBreaker.minSamples', o.minSamples, Math.min(20, size), 1, size);
      for (const option of ['consecutiveFailures', 'windowMs'] as const) unused(option);
      return () => new CountBreaker({ threshold, size, minimumNumberOfCalls: minSamples });
    }
  }
}

function halfOpenAfterOption(value: unknown): number | IBackoffFactory<IHalfOpenAfterBackoffContext> {
  if (typeof value === 'object' && value !== null && typeof (value as IBackoffFactory<unknown>).next === 'function') {
    return value as IBackoffFactory<IHalfOpenAfterBackoffContext>;
  }
  if (value !== undefined && typeof value !== 'number') throw invalidOption('circuitBreaker.halfOpenAfterMs', 'a duration in milliseconds or a cockatiel backoff', value);
  return durationOption('circuitBreaker.halfOpenAfterMs', value, 5_000, 1);
}

function snapshotOption(value: unknown, kind: BreakerKind | 'custom', option: string): Record<string, unknown> {
  const snapshot = value as Partial<BreakerSnapshot> | null;
  if (typeof snapshot !== 'object' || snapshot === null || snapshot.version !== 1 || typeof snapshot.breakers !== 'object' || snapshot.breakers === null) {
    throw invalidOption(option, 'a snapshot from exportState() ({ version: 1, breaker, breakers })', value);
  }
  if (snapshot.breaker !== kind) {
    throw invalidOption(`${option}.breaker`, `${JSON.stringify(kind)} (the snapshot must come from the same kind of breaker)`, snapshot.breaker);
  }
  const breakers = snapshot.breakers as Record<string, unknown>;
  for (const [key, state] of Object.entries(breakers)) {
    const own = (state as { ownState?: { value?: unknown } } | null)?.ownState;
    if (typeof own !== 'object' || own === null || ![0, 1, 2, 3].includes(own.value as number) || !('breakerState' in (state as object))) {
      throw invalidOption(`${option}.breakers[${JSON.stringify(key)}]`, 'a breaker state from exportState()', state);
    }
  }
  return breakers;
}

/** When an exported open breaker opened (cockatiel keeps it as `ownState.openedAt`). */
function openedAtOf(state: unknown): number {
  const openedAt = (state as { ownState?: { openedAt?: unknown } } | null)?.ownState?.openedAt;
  return typeof openedAt === 'number' ? openedAt : 0;
}

