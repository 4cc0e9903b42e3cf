/**
 * The options renamed in 0.2 (CHANGELOG.md): an old name is refused at construction as an
 * unknown option, with the option named where it was written and the names that are known,
 * so code still using it fails loudly instead of silently running with the default.
 */
import { describe, expect, it } from 'vitest';
import { batching } from '#middleware/batching.ts';
import { chaos } from '#middleware/chaos.ts';
import { circuitBreaker } from '#middleware/circuit-breaker.ts';
import { compression } from '#middleware/compression.ts';
import { concurrency } from '#middleware/concurrency.ts';
import { oauth } from '#middleware/oauth/oauth.ts';
import { standard } from '#middleware/standard.ts';
import { timeout } from '#middleware/timeout.ts';
import { InvalidOptionError } from '#core/errors.ts';

const TIMEOUT_KNOWN = '(attemptMs, totalMs, perMethod, resetOnProgress, maxAttemptMs)';
const BREAKER_KNOWN = '(breaker, consecutiveFailures, failureRatio, windowMs, minSamples, windowCalls, halfOpenAfterMs, scope, maxKeys, isFailure, state)';

describe('options renamed in 0.2 are refused under their old names', () => {
  it.each([
    ['timeout.ms', () => timeout({ ms: 1_000 } as never), `timeout.ms: expected one of the known options ${TIMEOUT_KNOWN}, got "an unknown option"`],
    ['timeout.total', () => timeout({ total: 1_000 } as never), `timeout.total: expected one of the known options ${TIMEOUT_KNOWN}, got "an unknown option"`],
    ['timeout.maxTotalMs', () => timeout({ attemptMs: 100, resetOnProgress: true, maxTotalMs: 1_000 } as never), `timeout.maxTotalMs: expected one of the known options ${TIMEOUT_KNOWN}, got "an unknown option"`],
    ['circuitBreaker.threshold', () => circuitBreaker({ threshold: 5 } as never), `circuitBreaker.threshold: expected one of the known options ${BREAKER_KNOWN}, got "an unknown option"`],
    ['circuitBreaker.halfOpenAfter', () => circuitBreaker({ halfOpenAfter: 5_000 } as never), `circuitBreaker.halfOpenAfter: expected one of the known options ${BREAKER_KNOWN}, got "an unknown option"`],
    ['circuitBreaker.minimumCalls', () => circuitBreaker({ breaker: 'sampling', minimumCalls: 10 } as never), `circuitBreaker.minimumCalls: expected one of the known options ${BREAKER_KNOWN}, got "an unknown option"`],
    ['concurrency.queue', () => concurrency({ queue: 4 } as never), 'concurrency.queue: expected one of the known options (maxInFlight, maxQueued, direction, retryAfterMs), got "an unknown option"'],
    ['compression.threshold', () => compression({ threshold: 256 } as never), 'compression.threshold: expected one of the known options (encodings, minBytes), got "an unknown option"'],
    ['batching.maxBatch', () => batching({ maxBatch: 8 } as never), 'batching.maxBatch: expected one of the known options (maxMessages, maxDelayMs), got "an unknown option"'],
    ['chaos.latency.ms', () => chaos({ latency: { ms: 50 } } as never), 'chaos.latency.ms: expected one of the known options (delayMs, rate), got "an unknown option"'],
    ['standard.attemptTimeout.ms', () => standard({ attemptTimeout: { ms: 1_000 } } as never), `standard.attemptTimeout.ms: expected one of the known options ${TIMEOUT_KNOWN}, got "an unknown option"`],
    ['oauth.retry.maxAttempts', () => oauth({ tokenEndpoint: 'https://id.example.com/token', clientId: 'a', grant: 'client_credentials', retry: { maxAttempts: 3 } } as never), 'oauth.retry.maxAttempts: expected one of the known options (maxRetries, initialDelayMs, maxDelayMs), got "an unknown option"'],
  ])('%s', (_old, build, message) => {
    expect(build).toThrow(InvalidOptionError);
    expect(build).toThrow(message);
  });

  it('refuses a bare number as chaos latency: it names no unit', () => {
    expect(() => chaos({ latency: 50 } as never)).toThrow('chaos.latency: expected an object { delayMs, rate? }, got 50');
  });

  it('refuses each breaker option on a breaker kind it does not apply to, naming the kind', () => {
    expect(() => circuitBreaker({ breaker: 'sampling', consecutiveFailures: 3 })).toThrow('circuitBreaker.consecutiveFailures: expected no value: it does not apply to breaker "sampling", got 3');
    expect(() => circuitBreaker({ breaker: 'count', consecutiveFailures: 3 })).toThrow('circuitBreaker.consecutiveFailures: expected no value: it does not apply to breaker "count", got 3');
    expect(() => circuitBreaker({ failureRatio: 0.3 })).toThrow('circuitBreaker.failureRatio: expected no value: it does not apply to breaker "consecutive", got 0.3');
    expect(() => circuitBreaker({ breaker: 'count', windowMs: 10_000 })).toThrow('circuitBreaker.windowMs: expected no value: it does not apply to breaker "count", got 10000');
    expect(() => circuitBreaker({ breaker: 'sampling', windowCalls: 10 })).toThrow('circuitBreaker.windowCalls: expected no value: it does not apply to breaker "sampling", got 10');
  });
});
