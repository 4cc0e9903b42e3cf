/**
 * standard(): the recommended resilience stack, in the recommended order — the
 * analog of Polly's standard resilience handler (docs/layers.md compares them stage by
 * stage):
 *
 *   concurrency → total timeout → retry → circuit breaker → attempt timeout → (wire)
 *
 * - concurrency outermost: excess load is shed before it costs anything, and a shed
 *   request is not retried;
 * - the total timeout bounds everything the application waits for, backoffs included;
 * - retry sits outside the breaker, so an open breaker fails the request fast instead of
 *   being retried into; and outside the attempt timeout, so a hung attempt is
 *   abandoned (and cancelled on the wire) and the next one gets a fresh deadline;
 * - the breaker sees every attempt, timeouts included, as evidence.
 *
 *   wrap(transport, [standard()])
 *   wrap(transport, [logging({ logger }), standard({ retry: { maxAttempts: 5 }, circuitBreaker: false })])
 *
 * Every stage takes that layer's options or `false` to leave it out. The whole is
 * validated at construction: the attempt timeout must not exceed the total timeout, and
 * a sampling breaker's window must be at least twice the attempt timeout (Polly's rule:
 * a shorter window cannot see the failures a slow attempt produces).
 */
import { compose, type ComposedLayer } from '../src/core/compose.ts';
import type { Layer } from '../src/core/layer.ts';
import { invalidOption, optionsAt, optionsObject } from '../src/core/options.ts';
import { type CircuitBreakerLayer, type CircuitBreakerOptions, circuitBreaker } from './circuit-breaker.ts';
import { type ConcurrencyLayer, type ConcurrencyOptions, concurrency } from './concurrency.ts';
import { type RetryLayer, type RetryOptions, retry } from './retry/retry.ts';
import { type TimeoutOptions, timeout } from './timeout.ts';

export interface StandardOptions {
  /** Bulkhead (default `{ maxInFlight: 1000, maxQueued: 0 }`, Polly's rate limiter defaults). */
  concurrency?: ConcurrencyOptions | false;
  /** The exchange's deadline across all attempts and backoffs, ms (default 30 000). */
  totalTimeout?: number | false;
  /** Retry (default `{ maxAttempts: 3 }`: exponential backoff with decorrelated jitter from 200 ms, retry budget). */
  retry?: RetryOptions | false;
  /** Circuit breaker (default: sampling, opens above 25 % failures over 30 s once 10 calls were seen; probes after 5 s). */
  circuitBreaker?: CircuitBreakerOptions | false;
  /** Each attempt's deadline, ms, or timeout options without `totalMs` (default 10 000). */
  attemptTimeout?: number | false | Omit<TimeoutOptions, 'totalMs'>;
}

/** The stack, plus each stage's layer (e.g. `stages.circuitBreaker.exportState()`). */
export interface StandardLayer extends ComposedLayer {
  readonly stages: {
    readonly concurrency: ConcurrencyLayer | undefined;
    readonly totalTimeout: Layer | undefined;
    readonly retry: RetryLayer | undefined;
    readonly circuitBreaker: CircuitBreakerLayer | undefined;
    readonly attemptTimeout: Layer | undefined;
  };
}

export const STANDARD_DEFAULTS = {
  concurrency: { maxInFlight: 1000, maxQueued: 0 },
  totalTimeout: 30_000,
  retry: { maxAttempts: 3 },
  circuitBreaker: { breaker: 'sampling', failureRatio: 0.25, windowMs: 30_000, minSamples: 10, halfOpenAfterMs: 5_000 },
  attemptTimeout: 10_000,
} as const satisfies Required<StandardOptions>;

const KNOWN = ['concurrency', 'totalTimeout', 'retry', 'circuitBreaker', 'attemptTimeout'] as const;

export function standard(options?: StandardOptions): StandardLayer {
  const o = optionsObject(options, 'standard', KNOWN);
  const stage = <T>(key: (typeof KNOWN)[number], value: T | false | undefined, fallback: T): T | undefined => {
    if (value === false) return undefined;
    if (value === undefined) return fallback;
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value;
    throw invalidOption(`standard.${key}`, "that stage's options, or false to leave it out", value);
  };
  const concurrencyOptions = stage('concurrency', o.concurrency, STANDARD_DEFAULTS.concurrency as ConcurrencyOptions);
  const retryOptions = stage('retry', o.retry, STANDARD_DEFAULTS.retry as RetryOptions);
  const breakerOptions = stage('circuitBreaker', o.circuitBreaker, STANDARD_DEFAULTS.circuitBreaker as CircuitBreakerOptions);
  const total = durationStage('standard.totalTimeout', o.totalTimeout, STANDARD_DEFAULTS.totalTimeout);
  const attemptOptions = attemptStage(o.attemptTimeout);
  const attemptMs = attemptOptions?.attemptMs;

  // Each layer validates its own options, named where the user wrote them (`standard.retry.maxAttempts`).
  const layers = {
    concurrency: concurrencyOptions === undefined ? undefined : optionsAt('standard.concurrency', 'concurrency', () => concurrency(concurrencyOptions)),
    totalTimeout: total === undefined ? undefined : timeout({ totalMs: total }),
    retry: retryOptions === undefined ? undefined : optionsAt('standard.retry', 'retry', () => retry(retryOptions)),
    circuitBreaker: breakerOptions === undefined ? undefined : optionsAt('standard.circuitBreaker', 'circuitBreaker', () => circuitBreaker(breakerOptions)),
    attemptTimeout: attemptOptions === undefined ? undefined : optionsAt('standard.attemptTimeout', 'timeout', () => timeout(attemptOptions)),
  };

  if (total !== undefined && attemptMs !== undefined && attemptMs > total) {
    throw invalidOption('standard.attemptTimeout', `at most standard.totalTimeout (${total} ms)`, attemptMs);
  }
  if (breakerOptions?.breaker === 'sampling' && attemptMs !== undefined) {
    const window = breakerOptions.windowMs ?? 30_000;
    if (window < 2 * attemptMs) {
      throw invalidOption('standard.circuitBreaker.windowMs', `at least twice standard.attemptTimeout (${2 * attemptMs} ms)`, window);
    }
  }
  const maxDelay = retryOptions?.backoff !== undefined && 'maxDelayMs' in retryOptions.backoff ? retryOptions.backoff.maxDelayMs : undefined;
  if (total !== undefined && typeof maxDelay === 'number' && maxDelay >= total) {
    throw invalidOption('standard.retry.backoff.maxDelayMs', `less than standard.totalTimeout (${total} ms): a longer backoff can never be waited out`, maxDelay);
  }

  const list = [layers.concurrency, layers.totalTimeout, layers.retry, layers.circuitBreaker, layers.attemptTimeout].filter(
    (layer): layer is NonNullable<typeof layer> => layer !== undefined,
  );
  return Object.assign(compose(list, 'standard'), { stages: layers });
}

function durationStage(option: string, value: unknown, fallback: number): number | undefined {
  if (value === false) return undefined;
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 1) throw invalidOption(option, 'a duration in milliseconds >= 1, or false', value);
  return value;
}

function attemptStage(value: StandardOptions['attemptTimeout']): TimeoutOptions | undefined {
  if (value === false) return undefined;
  if (value === undefined) return { attemptMs: STANDARD_DEFAULTS.attemptTimeout };
  if (typeof value === 'number') return { attemptMs: durationStage('standard.attemptTimeout', value, STANDARD_DEFAULTS.attemptTimeout) };
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    if ('totalMs' in value) throw invalidOption('standard.attemptTimeout.totalMs', 'no value: use standard.totalTimeout', (value as TimeoutOptions).totalMs);
    return { attemptMs: STANDARD_DEFAULTS.attemptTimeout, ...value };
  }
  throw invalidOption('standard.attemptTimeout', 'a duration in milliseconds, timeout options, or false', value);
}
