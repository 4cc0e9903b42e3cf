import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { circuitBreaker } from '#middleware/circuit-breaker.ts';
import { retry } from '#middleware/retry/retry.ts';
import { timeout } from '#middleware/timeout.ts';
import { ErrorCode, InvalidOptionError } from '#core/errors.ts';
import type { JSONRPCErrorResponse, RequestId } from '#core/jsonrpc.ts';
import type { Middleware } from '#core/layer.ts';
import { advance, settle, type Stack, stack } from '../support/layer-stack.ts';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

const error = (response: unknown) => (response as JSONRPCErrorResponse).error;
const transitions = (s: Stack) => s.events['breaker-state']?.map((e) => `${e.from}->${e.to}`);

/** Sends `n` pings that each time out after 100 ms. */
async function failing(s: Stack, n: number): Promise<RequestId[]> {
  const ids: RequestId[] = [];
  for (let i = 0; i < n; i++) {
    ids.push(s.request('ping'));
    await advance(100);
  }
  return ids;
}

describe('circuitBreaker: closed → open → half-open → closed', () => {
  it('opens after `threshold` failures in a row, then fails fast without sending a byte', async () => {
    const s = await stack([circuitBreaker({ consecutiveFailures: 3, halfOpenAfterMs: 5_000 }), timeout({ attemptMs: 100 })]);
    await failing(s, 3);
    expect(transitions(s)).toEqual(['closed->open']);
    expect(s.events['breaker-state']?.[0]).toMatchObject({ key: 'transport', reason: 'attempt-timeout' });
    const bytesBefore = s.peer.wire.length;
    await advance(1_000);
    const id = s.request('tools/call', { name: 'anything' });
    await settle();
    expect(s.peer.wire).toHaveLength(bytesBefore);
    expect(error(s.responses(id)[0])).toEqual({
      code: ErrorCode.CircuitOpen,
      message: 'The circuit breaker for transport is open after repeated failures; tools/call anything was not sent',
      data: { layer: 'circuitBreaker', reason: 'breaker-open', attempts: 0, key: 'transport', state: 'open', retryAfterMs: 4_000 },
    });
    expect(s.events['breaker-rejected']).toMatchObject([{ key: 'transport', state: 'open', retryAfterMs: 4_000 }]);
  });

  it('lets one probe through after halfOpenAfterMs and closes when it is answered', async () => {
    const s = await stack([circuitBreaker({ consecutiveFailures: 2, halfOpenAfterMs: 5_000 }), timeout({ attemptMs: 100 })]);
    await failing(s, 2);
    await advance(4_999);
    const early = s.request('ping');
    await settle();
    expect(error(s.responses(early)[0])).toMatchObject({ code: ErrorCode.CircuitOpen, data: { retryAfterMs: 1 } });
    await advance(1);
    const probe = s.request('ping');
    await settle();
    expect(transitions(s)).toEqual(['closed->open', 'open->half-open']);
    s.answer(s.last());
    await settle();
    expect(s.responses(probe)).toEqual([{ jsonrpc: '2.0', id: probe, result: { ok: true } }]);
    expect(transitions(s)).toEqual(['closed->open', 'open->half-open', 'half-open->closed']);
    // Closed again: a single failure does not re-open it.
    await failing(s, 1);
    expect(transitions(s)).toHaveLength(3);
  });

  it('re-opens when the probe fails, for another halfOpenAfterMs', async () => {
    const s = await stack([circuitBreaker({ consecutiveFailures: 1, halfOpenAfterMs: 1_000 }), timeout({ attemptMs: 100 })]);
    await failing(s, 1);
    await advance(1_000);
    await failing(s, 1);
    expect(transitions(s)).toEqual(['closed->open', 'open->half-open', 'half-open->open']);
    const id = s.request('ping');
    await settle();
    expect(error(s.responses(id)[0])).toMatchObject({ code: ErrorCode.CircuitOpen });
  });

  it('holds callers that arrive during the probe until its verdict, and lets a cancelled one go at once', async () => {
    const finished = new Set<unknown>();
    const watch: Middleware = async (ctx, next) => {
      try {
        await next();
      } finally {
        finished.add(ctx.id);
      }
    };
    const s = await stack([watch, circuitBreaker({ consecutiveFailures: 1, halfOpenAfterMs: 1_000 })]);
    s.peer.failSends = 1;
    s.request('ping');
    await settle();
    await advance(1_000);
    const probe = s.request('ping');
    await settle();
    const waiting = s.request('ping');
    const impatient = s.request('ping');
    await settle();
    expect(s.requests()).toHaveLength(1); // only the probe is on the wire
    s.cancel(impatient);
    await settle();
    // The cancelled caller stopped waiting at once; the other still waits for the probe.
    expect([finished.has(impatient), finished.has(waiting)]).toEqual([true, false]);
    expect(s.transport.stats().outbound).toBe(2);
    s.answer(s.last());
    await settle();
    expect(s.responses(probe)).toHaveLength(1);
    expect(s.requests()).toHaveLength(2); // the waiting caller went once the breaker closed
    s.answer(s.last());
    await settle();
    expect(s.responses(waiting)).toHaveLength(1);
    expect(s.responses(impatient)).toEqual([]);
    expect(s.transport.stats()).toMatchObject({ outbound: 0, attempts: 0 });
  });

  it('re-opens when the probe is cancelled: a probe without an answer proves nothing', async () => {
    const s = await stack([circuitBreaker({ consecutiveFailures: 1, halfOpenAfterMs: 1_000 })]);
    s.peer.failSends = 1;
    s.request('ping');
    await settle();
    await advance(1_000);
    const probe = s.request('ping');
    await settle();
    s.cancel(probe);
    await settle();
    expect(transitions(s)).toEqual(['closed->open', 'open->half-open', 'half-open->open']);
  });
});

describe('circuitBreaker: what counts', () => {
  it('does not count ordinary error responses (the peer is alive) but counts transient ones', async () => {
    const layer = circuitBreaker({ consecutiveFailures: 2 });
    const s = await stack([layer]);
    for (let i = 0; i < 5; i++) {
      s.request('tools/call', { name: 'x' });
      await settle();
      s.fail(s.last(), { code: -32602, message: 'bad params' });
      await settle();
    }
    expect(layer.stateOf()).toBe('closed');
    for (let i = 0; i < 2; i++) {
      s.request('ping');
      await settle();
      s.fail(s.last(), { code: ErrorCode.RateLimited, message: 'slow down' });
      await settle();
    }
    expect(transitions(s)).toEqual(['closed->open']);
    expect(s.events['breaker-state']?.[0]?.reason).toBe('error-response:-32057');
  });

  it('opens a sampling breaker on the failure ratio once enough calls were seen', async () => {
    const s = await stack([circuitBreaker({ breaker: 'sampling', failureRatio: 0.5, windowMs: 10_000, minSamples: 10 }), timeout({ attemptMs: 10 })]);
    for (let i = 0; i < 6; i++) {
      s.request('ping');
      await settle();
      s.answer(s.last());
      await settle();
    }
    for (let i = 0; i < 4; i++) {
      s.request('ping');
      await advance(10);
    }
    expect(transitions(s)).toEqual([]); // 4 of 10 failed: under the ratio
    for (let i = 0; i < 3; i++) {
      s.request('ping');
      await advance(10);
    }
    expect(transitions(s)).toEqual(['closed->open']); // 7 of 13
  });

  it('opens a count breaker on the failure ratio of the last `size` calls', async () => {
    const s = await stack([circuitBreaker({ breaker: 'count', failureRatio: 0.5, windowCalls: 4 }), timeout({ attemptMs: 10 })]);
    for (let i = 0; i < 2; i++) {
      s.request('ping');
      await settle();
      s.answer(s.last());
      await settle();
    }
    for (let i = 0; i < 2; i++) {
      s.request('ping');
      await advance(10);
    }
    expect(transitions(s)).toEqual([]);
    s.request('ping');
    await advance(10);
    expect(transitions(s)).toEqual(['closed->open']);
  });
});

describe('circuitBreaker: scope', () => {
  it('keeps one breaker per tool (other methods per method), at most maxKeys', async () => {
    const layer = circuitBreaker({ consecutiveFailures: 1, scope: 'tool', maxKeys: 3 });
    const s = await stack([layer, timeout({ attemptMs: 10 })]);
    s.request('tools/call', { name: 'broken' });
    await advance(10);
    const ok = s.request('tools/call', { name: 'fine' });
    await settle();
    s.answer(s.last());
    await settle();
    expect(s.responses(ok)).toHaveLength(1);
    const blocked = s.request('tools/call', { name: 'broken' });
    await settle();
    expect(error(s.responses(blocked)[0])).toMatchObject({ code: ErrorCode.CircuitOpen, data: { key: 'broken' } });
    expect([layer.stateOf('broken'), layer.stateOf('fine'), layer.stateOf('ping')]).toEqual(['open', 'closed', 'closed']);
    for (const name of ['a', 'b', 'c', 'd']) {
      s.request('tools/call', { name });
      await settle();
      s.answer(s.last());
      await settle();
    }
    // Bounded: closed breakers were evicted first, the open one survived.
    expect(Object.keys(layer.exportState().breakers).toSorted()).toEqual(['broken', 'c', 'd']);
  });

  it('shares one breaker between every transport the layer is attached to', async () => {
    const layer = circuitBreaker({ consecutiveFailures: 1 });
    const a = await stack([layer, timeout({ attemptMs: 10 })]);
    const b = await stack([layer]);
    a.request('ping');
    await advance(10);
    const id = b.request('ping');
    await settle();
    expect(error(b.responses(id)[0])).toMatchObject({ code: ErrorCode.CircuitOpen });
    expect(b.requests()).toEqual([]);
    // Both transports heard of the transition.
    expect(transitions(b)).toEqual(['closed->open']);
  });
});

describe('circuitBreaker: state export', () => {
  it('restores an open breaker that still fails fast and probes when its time comes', async () => {
    const first = circuitBreaker({ consecutiveFailures: 1, halfOpenAfterMs: 10_000 });
    const s = await stack([first, timeout({ attemptMs: 10 })]);
    s.request('ping');
    await advance(10);
    const snapshot = JSON.parse(JSON.stringify(first.exportState()));
    await advance(4_000);

    const second = circuitBreaker({ consecutiveFailures: 1, halfOpenAfterMs: 10_000, state: snapshot });
    expect(second.stateOf()).toBe('open');
    const t = await stack([second]);
    const id = t.request('ping');
    await settle();
    expect(error(t.responses(id)[0])).toMatchObject({ code: ErrorCode.CircuitOpen, data: { retryAfterMs: 6_000 } });
    await advance(6_000);
    const probe = t.request('ping');
    await settle();
    t.answer(t.last());
    await settle();
    expect(t.responses(probe)).toHaveLength(1);
    expect(transitions(t)).toEqual(['open->half-open', 'half-open->closed']);

    const third = circuitBreaker({ consecutiveFailures: 1 });
    third.restoreState(snapshot);
    expect(third.stateOf()).toBe('open');
  });

  it('refuses a snapshot from another kind of breaker, or one that is not a snapshot', () => {
    const snapshot = circuitBreaker().exportState();
    expect(() => circuitBreaker({ breaker: 'count', state: snapshot })).toThrow('circuitBreaker.state.breaker: expected "count"');
    expect(() => circuitBreaker({ state: { version: 2 } as never })).toThrow('circuitBreaker.state: expected a snapshot from exportState()');
    expect(() => circuitBreaker({ state: { version: 1, breaker: 'consecutive', breakers: { x: 5 } } })).toThrow('circuitBreaker.state.breakers["x"]');
  });

  it('holds a breaker open on demand with isolate()', async () => {
    const layer = circuitBreaker();
    const s = await stack([layer]);
    const handle = layer.isolate();
    const id = s.request('ping');
    await settle();
    expect(error(s.responses(id)[0])).toMatchObject({ code: ErrorCode.CircuitOpen, message: expect.stringContaining('held open') });
    handle.dispose();
    s.request('ping');
    await settle();
    expect(s.requests()).toHaveLength(1);
    expect(transitions(s)).toEqual(['closed->isolated', 'isolated->closed']);
  });
});

describe('circuitBreaker: in the stack', () => {
  it('is not retried into: an open breaker ends the retries at once', async () => {
    const s = await stack([retry({ budget: false, maxAttempts: 5 }), circuitBreaker({ consecutiveFailures: 2 }), timeout({ attemptMs: 100 })]);
    const id = s.request('ping');
    await advance(10_000);
    expect(s.requests()).toHaveLength(2);
    expect(error(s.responses(id)[0])).toMatchObject({ code: ErrorCode.CircuitOpen });
  });

  it('never lets subscriptions/listen probe or count', async () => {
    const s = await stack([circuitBreaker({ consecutiveFailures: 1 })]);
    s.peer.failSends = 1;
    s.request('ping');
    await settle();
    s.request('subscriptions/listen', {});
    await settle();
    expect(s.requests('subscriptions/listen')).toHaveLength(1);
  });
});

describe('circuitBreaker: options', () => {
  it.each([
    [{ breaker: 'eventual' }, 'circuitBreaker.breaker: expected one of "consecutive", "sampling", "count", got "eventual"'],
    [{ consecutiveFailures: 0.5 }, 'circuitBreaker.consecutiveFailures: expected an integer >= 1, got 0.5'],
    [{ breaker: 'sampling', failureRatio: 2 }, 'circuitBreaker.failureRatio: expected a number between 0 and 1 (exclusive), got 2'],
    [{ breaker: 'consecutive', windowCalls: 10 }, 'circuitBreaker.windowCalls: expected no value: it does not apply to breaker "consecutive", got 10'],
    [{ breaker: 'count', windowCalls: 10, minSamples: 11 }, 'circuitBreaker.minSamples: expected an integer from 1 to 10, got 11'],
    [{ scope: 'session' }, 'circuitBreaker.scope: expected one of "transport", "method", "tool", got "session"'],
    [{ halfOpenAfterMs: '5s' }, 'circuitBreaker.halfOpenAfterMs: expected a duration in milliseconds or a cockatiel backoff, got "5s"'],
  ])('rejects %j at construction', (options, message) => {
    expect(() => circuitBreaker(options as never)).toThrow(InvalidOptionError);
    expect(() => circuitBreaker(options as never)).toThrow(message);
  });
});
