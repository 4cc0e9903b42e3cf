import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { circuitBreaker } from '#middleware/circuit-breaker.ts';
import { retry } from '#middleware/retry/retry.ts';
import { STANDARD_DEFAULTS, standard } from '#middleware/standard.ts';
import { timeout } from '#middleware/timeout.ts';
import { ErrorCode, InvalidOptionError } from '#core/errors.ts';
import type { JSONRPCErrorResponse } from '#core/jsonrpc.ts';
import { advance, settle, stack } from '../support/layer-stack.ts';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.restoreAllMocks();
  vi.useRealTimers();
});

const error = (response: unknown) => (response as JSONRPCErrorResponse).error;

describe('standard(): the stack', () => {
  it('is concurrency → total timeout → retry → circuit breaker → attempt timeout, each stage optional', () => {
    const all = standard();
    expect(all.name).toBe('standard');
    expect(Object.entries(all.stages).map(([stage, layer]) => `${stage}:${layer?.name}`)).toEqual([
      'concurrency:concurrency',
      'totalTimeout:timeout',
      'retry:retry',
      'circuitBreaker:circuitBreaker',
      'attemptTimeout:timeout',
    ]);
    const some = standard({ concurrency: false, circuitBreaker: false });
    expect([some.stages.concurrency, some.stages.circuitBreaker]).toEqual([undefined, undefined]);
    expect(STANDARD_DEFAULTS).toMatchObject({ totalTimeout: 30_000, attemptTimeout: 10_000, retry: { maxAttempts: 3 } });
  });

  it('abandons a hung attempt after 10 s, cancels it on the wire, and retries it with a fresh deadline', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.5);
    const s = await stack([standard()]);
    const id = s.request('resources/read', { uri: 'file:///a' });
    await advance(10_000);
    const [hung] = s.requests();
    expect(s.cancelled()).toEqual([hung?.id]);
    expect(s.events.retry).toMatchObject([{ attempt: 2, reason: 'attempt-timeout' }]);
    await advance(1_000);
    expect(s.requests()).toHaveLength(2);
    s.answer(s.last(), { contents: [] });
    await settle();
    expect(s.responses(id)).toEqual([{ jsonrpc: '2.0', id, result: { contents: [] } }]);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('gives up at the total timeout (30 s) with -32001, whatever the retries', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.5);
    const s = await stack([standard({ retry: { maxAttempts: 10, budget: false } })]);
    const id = s.request('ping');
    await advance(29_999);
    expect(s.responses(id)).toEqual([]);
    await advance(1);
    expect(error(s.responses(id)[0])).toMatchObject({ code: ErrorCode.RequestTimeout, data: { reason: 'total-timeout' } });
    expect(s.cancelled()).toEqual(s.requests().map((r) => r.id));
  });

  it('never retries a non-idempotent tool call that timed out', async () => {
    const s = await stack([standard()]);
    const id = s.request('tools/call', { name: 'send_email' });
    await advance(30_000);
    expect(s.requests()).toHaveLength(1);
    expect(error(s.responses(id)[0])).toMatchObject({ code: ErrorCode.RequestTimeout, data: { reason: 'attempt-timeout' } });
  });
});

describe('standard(): validation', () => {
  it.each([
    [{ attemptTimeout: 40_000 }, 'standard.attemptTimeout: expected at most standard.totalTimeout (30000 ms), got 40000'],
    [{ totalTimeout: 5_000 }, 'standard.attemptTimeout: expected at most standard.totalTimeout (5000 ms), got 10000'],
    [
      { circuitBreaker: { breaker: 'sampling', windowMs: 15_000 } },
      'standard.circuitBreaker.windowMs: expected at least twice standard.attemptTimeout (20000 ms), got 15000',
    ],
    [
      { retry: { backoff: { maxDelayMs: 60_000 } } },
      'standard.retry.backoff.maxDelayMs: expected less than standard.totalTimeout (30000 ms): a longer backoff can never be waited out, got 60000',
    ],
    [{ retry: { maxAttempts: 0 } }, 'standard.retry.maxAttempts: expected an integer >= 1, got 0'],
    [{ circuitBreaker: { scope: 'everything' } }, 'standard.circuitBreaker.scope: expected one of "transport", "method", "tool", got "everything"'],
    [{ attemptTimeout: { attemptMs: 0 } }, 'standard.attemptTimeout.attemptMs: expected a duration in milliseconds >= 1, got 0'],
    [{ attemptTimeout: { totalMs: 5 } }, 'standard.attemptTimeout.totalMs: expected no value: use standard.totalTimeout, got 5'],
    [{ totalTimeout: '30s' }, 'standard.totalTimeout: expected a duration in milliseconds >= 1, or false, got "30s"'],
    [{ retries: 3 }, 'standard.retries: expected one of the known options'],
    [{ retry: 3 }, "standard.retry: expected that stage's options, or false to leave it out, got 3"],
  ])('rejects %j naming the option', (options, message) => {
    expect(() => standard(options as never)).toThrow(InvalidOptionError);
    expect(() => standard(options as never)).toThrow(message);
  });

  it('accepts any attempt timeout when there is no total timeout', () => {
    expect(() => standard({ totalTimeout: false, attemptTimeout: 120_000, circuitBreaker: { breaker: 'consecutive' } })).not.toThrow();
  });
});

describe('layer order matters (docs/layers.md)', () => {
  // The server hangs on every attempt; the application waits at most for what the order allows.
  it('retry outside timeout: every attempt gets its own 1 s and is cancelled when it expires', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0);
    const s = await stack([retry({ maxAttempts: 3, budget: false }), timeout({ attemptMs: 1_000 })]);
    const id = s.request('ping');
    await advance(4_000); // three attempts of 1 s, and backoffs of 0 and 275 ms between them
    expect(s.requests()).toHaveLength(3);
    expect(s.cancelled()).toHaveLength(3);
    expect(error(s.responses(id)[0])).toMatchObject({ code: ErrorCode.RequestTimeout, data: { attempts: 3 } });
  });

  it('timeout outside retry: one 1 s deadline for everything, so the hung first attempt is the only one', async () => {
    const s = await stack([timeout({ attemptMs: 1_000 }), retry({ maxAttempts: 3, budget: false })]);
    const id = s.request('ping');
    await advance(3_000);
    expect(s.requests()).toHaveLength(1);
    expect(error(s.responses(id)[0])).toMatchObject({ code: ErrorCode.RequestTimeout, data: { attempts: 1 } });
  });

  it('breaker inside retry counts attempts and stops the retries; outside, it counts whole exchanges', async () => {
    const inside = await stack([retry({ maxAttempts: 5, budget: false }), circuitBreaker({ consecutiveFailures: 3 }), timeout({ attemptMs: 100 })]);
    inside.request('ping');
    await advance(10_000);
    expect(inside.requests()).toHaveLength(3); // opened on the third failed attempt

    const outside = await stack([circuitBreaker({ consecutiveFailures: 3 }), retry({ maxAttempts: 5, budget: false }), timeout({ attemptMs: 100 })]);
    outside.request('ping');
    await advance(10_000);
    expect(outside.requests()).toHaveLength(5); // one failed exchange: the breaker is still closed
    expect(outside.events['breaker-state']).toEqual([]);
  });
});
