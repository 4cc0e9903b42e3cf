import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { retry } from '#middleware/retry/retry.ts';
import { timeout } from '#middleware/timeout.ts';
import { ErrorCode, InvalidOptionError, TransportError } from '#core/errors.ts';
import type { JSONRPCErrorResponse } from '#core/jsonrpc.ts';
import { RetryBudget } from '#middleware/retry/budget.ts';
import type { Transport } from '#core/transport.ts';
import { advance, settle, stack } from '../support/layer-stack.ts';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.restoreAllMocks();
  vi.useRealTimers();
});

const error = (response: unknown) => (response as JSONRPCErrorResponse).error;
const loseConnection = (peer: Transport) => peer.onconnectionlost?.(new Error('read ECONNRESET'));

/** cockatiel's decorrelated jitter, from its source: the delay before retry n (1-based) given its random draws. */
function jitterDelays(draws: number[], initialDelay: number, maxDelay: number): number[] {
  let prev = 0;
  return draws.map((u, i) => {
    const t = i + u;
    const next = 2 ** t * Math.tanh(Math.sqrt(4 * t));
    const delay = Math.min((Math.max(0, next - prev) / 1.4) * initialDelay, maxDelay);
    prev = next;
    return delay;
  });
}

describe('retry: backoff', () => {
  it('waits the decorrelated-jitter delay before each retry, and not a millisecond less', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.5);
    const s = await stack([retry({ maxAttempts: 4, backoff: { initialDelayMs: 100, maxDelayMs: 10_000 }, budget: false })]);
    const retriedAt: number[] = [];
    const attemptedAt: number[] = [];
    s.transport.events.on('retry', () => retriedAt.push(performance.now()));
    s.transport.events.on('attempt', () => attemptedAt.push(performance.now()));
    const expected = jitterDelays([0.5, 0.5, 0.5], 100, 10_000);
    s.peer.failSends = 3;
    const id = s.request('ping');
    await advance(5_000);
    expect(s.events.retry?.map((e) => [e.attempt, e.reason, e.serverDirected])).toEqual([
      [2, 'not-sent', false],
      [3, 'not-sent', false],
      [4, 'not-sent', false],
    ]);
    expected.forEach((delay, i) => {
      expect(s.events.retry?.[i]?.delayMs).toBeCloseTo(delay, 6);
      // Fake timers count whole milliseconds.
      const waited = (attemptedAt[i + 1] as number) - (retriedAt[i] as number);
      expect(waited).toBeGreaterThanOrEqual(Math.floor(delay));
      expect(waited).toBeLessThanOrEqual(Math.ceil(delay));
    });
    expect(s.requests('ping')).toHaveLength(1);
    s.answer(s.last());
    await settle();
    expect(s.responses(id)).toEqual([{ jsonrpc: '2.0', id, result: { ok: true } }]);
  });

  it('keeps every delay within the jitter bounds and under maxDelayMs, whatever the random draws', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.double({ min: 0, max: 0.999_999, noNaN: true }), { minLength: 5, maxLength: 5 }), async (draws) => {
        const random = vi.spyOn(Math, 'random');
        for (const u of draws) random.mockReturnValueOnce(u);
        const s = await stack([retry({ maxAttempts: 6, backoff: { initialDelayMs: 200, maxDelayMs: 3_000 }, budget: false })]);
        s.peer.failSends = 5;
        s.request('ping');
        for (let i = 0; i < 5; i++) await advance(3_000);
        const delays = (s.events.retry ?? []).map((e) => e.delayMs);
        expect(delays).toHaveLength(5);
        delays.forEach((delay, n) => {
          // Retry n+1 draws t in [n, n+1): its delay is at most 2^(n+1)·tanh(√(4(n+1)))/1.4 · initial.
          const bound = ((2 ** (n + 1) * Math.tanh(Math.sqrt(4 * (n + 1)))) / 1.4) * 200;
          expect(delay).toBeGreaterThanOrEqual(0);
          expect(delay).toBeLessThanOrEqual(Math.min(bound, 3_000));
        });
        jitterDelays(draws, 200, 3_000).forEach((delay, n) => expect(delays[n]).toBeCloseTo(delay, 6));
        random.mockRestore();
      }),
      { numRuns: 25 },
    );
  });

  it('accepts any cockatiel backoff', async () => {
    const { ConstantBackoff } = await import('cockatiel');
    const s = await stack([retry({ backoff: new ConstantBackoff(40), budget: false })]);
    s.peer.failSends = 2;
    s.request('ping');
    await settle();
    expect(s.events.retry?.map((e) => e.delayMs)).toEqual([40]);
    await advance(40);
    expect(s.events.retry?.map((e) => e.delayMs)).toEqual([40, 40]);
  });
});

describe('retry: only what is safe to send twice (invariant 3)', () => {
  it('never re-sends a non-idempotent tools/call after an attempt may have reached the peer', async () => {
    const s = await stack([retry({ maxAttempts: 5, budget: false })]);
    const id = s.request('tools/call', { name: 'charge_card' });
    await settle();
    loseConnection(s.peer);
    await advance(60_000);
    expect(s.requests('tools/call')).toHaveLength(1);
    expect(s.events['give-up']).toMatchObject([{ attempts: 1, reason: 'not-idempotent' }]);
    expect(error(s.responses(id)[0])).toMatchObject({ code: ErrorCode.ConnectionClosed, data: { reason: 'connection-lost', attempts: 1 } });
  });

  it('re-sends a non-idempotent request whose failure proves it never left', async () => {
    const s = await stack([retry({ budget: false })]);
    s.peer.failSends = 2;
    const id = s.request('tools/call', { name: 'charge_card' });
    await advance(60_000);
    expect(s.peer.failedWrites).toHaveLength(2);
    expect(s.requests('tools/call')).toHaveLength(1);
    s.answer(s.last());
    await settle();
    expect(s.responses(id)[0]).toMatchObject({ result: { ok: true } });
  });

  it('stops once an attempt went out, even if a later failure was never sent', async () => {
    const s = await stack([retry({ maxAttempts: 5, budget: false }), timeout({ attemptMs: 1_000 })]);
    s.peer.failSends = 1;
    const id = s.request('tools/call', { name: 'charge_card' });
    await advance(10_000); // refused, retried, then times out on the wire
    expect(s.requests('tools/call')).toHaveLength(1);
    expect(s.cancelled()).toEqual([s.last().id]);
    expect(error(s.responses(id)[0])).toMatchObject({ code: ErrorCode.RequestTimeout });
  });

  it('retries tools that tools/list annotated idempotent or read-only, and not the others', async () => {
    const s = await stack([retry({ budget: false })]);
    const list = s.request('tools/list');
    await settle();
    s.answer(s.last(), {
      tools: [
        { name: 'lookup', inputSchema: { type: 'object' }, annotations: { readOnlyHint: true } },
        { name: 'upsert', inputSchema: { type: 'object' }, annotations: { idempotentHint: true } },
        { name: 'append', inputSchema: { type: 'object' }, annotations: {} },
      ],
    });
    await settle();
    expect(s.responses(list)).toHaveLength(1);
    for (const name of ['lookup', 'upsert', 'append']) {
      s.request('tools/call', { name });
      await settle();
      loseConnection(s.peer);
      await advance(10_000);
      s.answer(s.last());
      await settle();
    }
    const sent = (name: string) => s.requests('tools/call').filter((r) => r.params?.['name'] === name).length;
    expect([sent('lookup'), sent('upsert'), sent('append')]).toEqual([2, 2, 1]);
  });

  it('lets configuration add and veto: wrap options, then the layer’s own idempotent option', async () => {
    const s = await stack([retry({ budget: false, idempotent: (ctx) => (ctx.tool === 'layer_says_yes' ? true : undefined) })], {
      idempotentTools: ['search_*'],
      nonIdempotentTools: ['resources/read_never'],
    });
    for (const name of ['search_docs', 'layer_says_yes', 'other']) {
      s.request('tools/call', { name });
      await settle();
      loseConnection(s.peer);
      await advance(10_000);
      s.answer(s.last());
      await settle();
    }
    const sent = (name: string) => s.requests('tools/call').filter((r) => r.params?.['name'] === name).length;
    expect([sent('search_docs'), sent('layer_says_yes'), sent('other')]).toEqual([2, 2, 1]);

    const none = await stack([retry({ budget: false, idempotent: false })]);
    none.request('ping');
    await settle();
    loseConnection(none.peer);
    await advance(10_000);
    expect(none.requests('ping')).toHaveLength(1);
  });

  it('cannot be talked into re-sending by retryOn', async () => {
    const s = await stack([retry({ budget: false, retryOn: () => true })]);
    s.request('tools/call', { name: 'charge_card' });
    await settle();
    loseConnection(s.peer);
    await advance(10_000);
    expect(s.requests('tools/call')).toHaveLength(1);
  });
});

describe('retry: what is transient', () => {
  it('delivers an ordinary JSON-RPC error response as it is, without retrying', async () => {
    const s = await stack([retry({ budget: false })]);
    const id = s.request('ping');
    await settle();
    s.fail(s.last(), { code: -32602, message: 'Invalid params' });
    await advance(10_000);
    expect(s.requests()).toHaveLength(1);
    expect(s.responses(id)).toEqual([{ jsonrpc: '2.0', id, error: { code: -32602, message: 'Invalid params' } }]);
  });

  it('waits exactly the delay a JSON-RPC error response asks for in data.retryAfterMs', async () => {
    const s = await stack([retry({ budget: false })]);
    const id = s.request('resources/read', { uri: 'file:///a' });
    await settle();
    s.fail(s.last(), { code: -32603, message: 'busy', data: { retryAfterMs: 1_500 } });
    await settle();
    expect(s.events.retry).toMatchObject([{ attempt: 2, delayMs: 1_500, serverDirected: true, reason: 'error-response:-32603' }]);
    await advance(1_499);
    expect(s.requests()).toHaveLength(1);
    await advance(1);
    expect(s.requests()).toHaveLength(2);
    s.answer(s.last(), { contents: [] });
    await settle();
    expect(s.responses(id)).toEqual([{ jsonrpc: '2.0', id, result: { contents: [] } }]);
  });

  it('retries RateLimited responses and honours an HTTP Retry-After carried by the transport error', async () => {
    const s = await stack([retry({ budget: false })]);
    s.request('ping');
    await settle();
    s.fail(s.last(), { code: ErrorCode.RateLimited, message: 'slow down' });
    await settle();
    expect(s.events.retry).toHaveLength(1);

    const t = await stack([retry({ budget: false })]);
    const send = t.peer.send.bind(t.peer);
    let failures = 1;
    t.peer.send = (message, options) =>
      failures-- > 0 ? Promise.reject(new TransportError('HTTP 429', { status: 429, retryAfterMs: 2_000, neverSent: true })) : send(message, options);
    t.request('ping');
    await settle();
    expect(t.events.retry).toMatchObject([{ delayMs: 2_000, serverDirected: true, reason: 'transport' }]);
    await advance(1_999);
    expect(t.requests()).toHaveLength(0);
    await advance(1);
    expect(t.requests()).toHaveLength(1);
  });

  it('gives up rather than wait longer than maxRetryAfterMs', async () => {
    const s = await stack([retry({ budget: false, maxRetryAfterMs: 5_000 })]);
    const id = s.request('ping');
    await settle();
    s.fail(s.last(), { code: -32603, message: 'come back tomorrow', data: { retryAfterMs: 86_400_000 } });
    await settle();
    expect(s.events['give-up']).toMatchObject([{ reason: 'retry-after-too-long' }]);
    expect(error(s.responses(id)[0])).toMatchObject({ message: 'come back tomorrow' });
  });

  it('turns transport failures that outlast maxAttempts into RetriesExhausted, and keeps timeouts -32001', async () => {
    const s = await stack([retry({ budget: false })]);
    s.peer.failSends = 10;
    const id = s.request('ping');
    await advance(60_000);
    expect(s.peer.failedWrites).toHaveLength(3);
    expect(s.events['give-up']).toMatchObject([{ attempts: 3, reason: 'max-attempts' }]);
    expect(error(s.responses(id)[0])).toMatchObject({
      code: ErrorCode.RetriesExhausted,
      message: expect.stringContaining('ping failed after 3 attempts'),
      data: { layer: 'retry', reason: 'retries-exhausted', lastCode: ErrorCode.TransportFailure, lastReason: 'not-sent', attempts: 3 },
    });

    const t = await stack([retry({ budget: false }), timeout({ attemptMs: 100 })]);
    const slow = t.request('ping');
    await advance(60_000);
    expect(t.requests()).toHaveLength(3);
    expect(t.cancelled()).toEqual(t.requests().map((r) => r.id));
    expect(error(t.responses(slow)[0])).toMatchObject({ code: ErrorCode.RequestTimeout, data: { reason: 'attempt-timeout', attempts: 3 } });
  });
});

describe('retry: budget', () => {
  it('stops retrying when the budget is spent and retries again once it refilled', async () => {
    const budget = new RetryBudget({ percent: 0, minPerSecond: 1, ttlMs: 2_000 }); // a reserve of 2 retries per 2 s
    const s = await stack([retry({ maxAttempts: 10, budget, backoff: { initialDelayMs: 1, maxDelayMs: 1 } })]);
    s.peer.failSends = 100;
    const id = s.request('ping');
    await advance(100);
    expect(s.peer.failedWrites).toHaveLength(3);
    expect(s.events['retry-budget-exhausted']).toMatchObject([{ attempt: 3, reason: 'not-sent' }]);
    expect(s.events['give-up']).toMatchObject([{ reason: 'budget-exhausted' }]);
    expect(error(s.responses(id)[0])).toMatchObject({ code: ErrorCode.RetriesExhausted, data: { reason: 'budget-exhausted' } });
    expect(budget.available).toBe(0);
    await advance(2_000);
    expect(budget.available).toBe(2);
    s.request('ping');
    await advance(100);
    expect(s.peer.failedWrites).toHaveLength(6);
  });

  it('allows retries of 20 % of requests plus the floor, over a sliding window', () => {
    const budget = new RetryBudget({ percent: 0.2, minPerSecond: 0, ttlMs: 10_000 });
    for (let i = 0; i < 50; i++) budget.deposit();
    let retries = 0;
    while (budget.tryWithdraw()) retries++;
    expect(retries).toBe(10);
    vi.advanceTimersByTime(5_000);
    for (let i = 0; i < 10; i++) budget.deposit();
    expect(budget.available).toBe(2);
    vi.advanceTimersByTime(5_000); // the first 50 requests and 10 retries left the window
    expect(budget.available).toBe(2);
    vi.advanceTimersByTime(10_000);
    expect(budget.available).toBe(0);
    const floor = new RetryBudget();
    expect(floor.available).toBe(100); // 10 per second over 10 s
  });
});

describe('retry: waiting ends with the exchange', () => {
  it('stops backing off the moment the application cancels', async () => {
    const s = await stack([retry({ budget: false, backoff: { initialDelayMs: 10_000, maxDelayMs: 20_000 } })]);
    vi.spyOn(Math, 'random').mockReturnValue(0.9);
    s.peer.failSends = 1;
    const id = s.request('ping');
    await settle();
    expect(s.events.retry).toHaveLength(1);
    expect(vi.getTimerCount()).toBe(1);
    s.cancel(id);
    await settle();
    expect(vi.getTimerCount()).toBe(0);
    await advance(60_000);
    expect(s.requests()).toHaveLength(0);
    expect(s.responses(id)).toEqual([]);
    expect(s.transport.stats()).toMatchObject({ outbound: 0, attempts: 0 });
  });

  it('stops backing off the moment the transport closes', async () => {
    const s = await stack([retry({ budget: false, backoff: { initialDelayMs: 10_000, maxDelayMs: 20_000 } })]);
    vi.spyOn(Math, 'random').mockReturnValue(0.9);
    s.peer.failSends = 1;
    const id = s.request('ping');
    await settle();
    await s.transport.close();
    await settle();
    expect(vi.getTimerCount()).toBe(0);
    expect(s.responses(id)).toHaveLength(1);
    expect(error(s.responses(id)[0])).toMatchObject({ code: ErrorCode.ConnectionClosed });
  });

  it('does not start a backoff that would end after the total deadline', async () => {
    const s = await stack([timeout({ totalMs: 1_000 }), retry({ budget: false })]);
    const id = s.request('ping');
    await settle();
    s.fail(s.last(), { code: -32603, message: 'busy', data: { retryAfterMs: 5_000 } });
    await settle();
    expect(s.events['give-up']).toMatchObject([{ reason: 'deadline' }]);
    expect(error(s.responses(id)[0])).toMatchObject({ message: 'busy' });
    expect(vi.getTimerCount()).toBe(0);
  });
});

describe('retry: options', () => {
  it.each([
    [{ maxAttempts: 'three' }, 'retry.maxAttempts: expected an integer >= 1, got "three"'],
    [{ maxAttempts: 0 }, 'retry.maxAttempts: expected an integer >= 1, got 0'],
    [{ backoff: { initialDelayMs: -1 } }, 'retry.backoff.initialDelayMs: expected a duration in milliseconds >= 0, got -1'],
    [{ backoff: { initialDelayMs: 500, maxDelayMs: 100 } }, 'retry.backoff.maxDelayMs: expected at least retry.backoff.initialDelayMs (500), got 100'],
    [{ budget: { percent: -0.1 } }, 'retry.budget.percent: expected a number from 0 to 100, got -0.1'],
    [{ idempotent: 'yes' }, 'retry.idempotent: expected true, false, or a function (ctx) => boolean | undefined, got "yes"'],
    [{ maxAtempts: 3 }, 'retry.maxAtempts: expected one of the known options'],
  ])('rejects %j at construction', (options, message) => {
    expect(() => retry(options as never)).toThrow(InvalidOptionError);
    expect(() => retry(options as never)).toThrow(message);
  });
});
