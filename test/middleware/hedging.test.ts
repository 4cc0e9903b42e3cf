import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { hedging } from '#middleware/hedging/hedging.ts';
import { timeout } from '#middleware/timeout.ts';
import { ErrorCode, InvalidOptionError } from '#core/errors.ts';
import type { JSONRPCErrorResponse, JSONRPCRequest } from '#core/jsonrpc.ts';
import { RetryBudget } from '#middleware/retry/budget.ts';
import { advance, settle, stack } from '../support/layer-stack.ts';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

const error = (response: unknown) => (response as JSONRPCErrorResponse).error;

describe('hedging: delay', () => {
  it('sends a hedge after delayMs, takes the first answer and cancels the loser on the wire', async () => {
    const s = await stack([hedging({ delayMs: 200, budget: false })]);
    const id = s.request('resources/read', { uri: 'file:///big' });
    await advance(199);
    expect(s.requests()).toHaveLength(1);
    await advance(1);
    expect(s.requests()).toHaveLength(2);
    expect(s.events.hedge).toMatchObject([{ attempt: 2, delayMs: 200 }]);
    const [primary, hedge] = s.requests() as [JSONRPCRequest, JSONRPCRequest];
    expect(hedge.params).toEqual(primary.params);
    expect(hedge.id).not.toBe(primary.id);
    s.answer(hedge, { contents: ['from the hedge'] });
    await settle();
    expect(s.responses(id)).toEqual([{ jsonrpc: '2.0', id, result: { contents: ['from the hedge'] } }]);
    expect(s.cancelled()).toEqual([primary.id]);
    expect(s.events['hedge-outcome']).toMatchObject([{ winner: 2, cancelled: 1 }]);
    // The loser's late answer is dropped.
    s.answer(primary, { contents: ['late'] });
    await settle();
    expect(s.responses(id)).toHaveLength(1);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('does not hedge what answers in time', async () => {
    const s = await stack([hedging({ delayMs: 200, budget: false })]);
    const id = s.request('ping');
    await advance(150);
    s.answer(s.last());
    await advance(1_000);
    expect(s.requests()).toHaveLength(1);
    expect(s.responses(id)).toHaveLength(1);
    expect(s.events.hedge).toEqual([]);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('sends up to maxHedges, one delay apart', async () => {
    const s = await stack([hedging({ delayMs: 100, maxHedges: 2, budget: false })]);
    const id = s.request('ping');
    await advance(100);
    await advance(100);
    await advance(1_000);
    expect(s.requests()).toHaveLength(3);
    s.answer(s.requests()[0] as JSONRPCRequest);
    await settle();
    expect(s.responses(id)).toHaveLength(1);
    expect(s.cancelled()).toHaveLength(2);
  });

  it('hedges at once when an attempt fails transiently', async () => {
    const s = await stack([hedging({ delayMs: 10_000, budget: false })]);
    s.peer.failSends = 1;
    const id = s.request('ping');
    await settle();
    expect(s.requests()).toHaveLength(1);
    expect(s.events.hedge).toMatchObject([{ attempt: 2, delayMs: 0 }]);
    s.answer(s.last());
    await settle();
    expect(s.responses(id)).toHaveLength(1);
  });

  it('ends with the last failure when every attempt failed', async () => {
    const s = await stack([hedging({ delayMs: 100, budget: false }), timeout({ attemptMs: 150 })]);
    const id = s.request('ping');
    await advance(1_000);
    expect(s.requests()).toHaveLength(2);
    expect(error(s.responses(id)[0])).toMatchObject({ code: ErrorCode.RequestTimeout });
  });
});

describe('hedging: percentile', () => {
  it('hedges after the recent p95 of the same method once enough samples were seen', async () => {
    const layer = hedging({ percentile: 90, delayMs: 5_000, minSamples: 10, budget: false });
    const s = await stack([layer]);
    for (let i = 1; i <= 10; i++) {
      s.request('resources/read', { uri: 'x' });
      await advance(i * 10);
      s.answer(s.last(), { contents: [] });
      await settle();
    }
    expect(s.events.hedge).toEqual([]);
    // Latencies 10..100 ms: the 90th percentile is 90 ms.
    const probe = { method: 'resources/read' } as never;
    expect(layer.delayFor(probe)).toBe(90);
    s.request('resources/read', { uri: 'x' });
    await advance(89);
    expect(s.events.hedge).toEqual([]);
    await advance(1);
    expect(s.events.hedge).toMatchObject([{ delayMs: 90 }]);
    // Another method has no samples yet: the warm-up delay applies.
    expect(layer.delayFor({ method: 'prompts/get' } as never)).toBe(5_000);
  });
});

describe('hedging: what is hedged', () => {
  it('never hedges what is not idempotent, nor initialize or subscriptions/listen', async () => {
    const s = await stack([hedging({ delayMs: 10, budget: false })]);
    s.request('tools/call', { name: 'charge_card' });
    s.request('initialize', { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'c', version: '1' } });
    s.request('subscriptions/listen', {});
    await advance(1_000);
    expect(s.requests()).toHaveLength(3);
    expect(s.events.hedge).toEqual([]);
  });

  it('hedges tools declared idempotent', async () => {
    const s = await stack([hedging({ delayMs: 10, budget: false })], { idempotentTools: ['search'] });
    s.request('tools/call', { name: 'search' });
    await advance(10);
    expect(s.requests()).toHaveLength(2);
  });

  it('stops hedging when the budget is spent', async () => {
    const budget = new RetryBudget({ percent: 0, minPerSecond: 0.1, ttlMs: 10_000 }); // one hedge per 10 s
    const s = await stack([hedging({ delayMs: 10, budget })]);
    s.request('ping');
    s.request('ping');
    await advance(10);
    expect(s.requests()).toHaveLength(3);
    expect(s.events.hedge).toHaveLength(1);
  });

  it('stops at once when the application cancels, cancelling every attempt on the wire', async () => {
    const s = await stack([hedging({ delayMs: 10, budget: false })]);
    const id = s.request('ping');
    await advance(10);
    s.cancel(id);
    await settle();
    expect(s.cancelled()).toEqual(s.requests().map((r) => r.id));
    expect(s.responses(id)).toEqual([]);
    expect(vi.getTimerCount()).toBe(0);
    expect(s.transport.stats()).toMatchObject({ outbound: 0, attempts: 0 });
  });
});

describe('hedging: options', () => {
  it.each([
    [{ delayMs: -5 }, 'hedging.delayMs: expected a duration in milliseconds >= 0, got -5'],
    [{ percentile: 100 }, 'hedging.percentile: expected a number from 1 to 99.99, got 100'],
    [{ maxHedges: 0 }, 'hedging.maxHedges: expected an integer from 1 to 10, got 0'],
    [{ delayMs: 10, minSamples: 5 }, 'hedging.minSamples: expected to be used with hedging.percentile'],
  ])('rejects %j at construction', (options, message) => {
    expect(() => hedging(options as never)).toThrow(InvalidOptionError);
    expect(() => hedging(options as never)).toThrow(message);
  });
});
