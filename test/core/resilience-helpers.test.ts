/** The shared machinery of the resilience layers: Retry-After parsing, abortable waits, the latency window. */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { LatencyWindow } from '#middleware/hedging/latency-window.ts';
import { parseRetryAfter, retryAfterOf } from '#core/retry-after.ts';
import { TransportError } from '#core/errors.ts';
import { sleep, untilAborted } from '#layer-kit/sleep.ts';

describe('parseRetryAfter', () => {
  it('reads delta-seconds and HTTP-dates, and nothing else', () => {
    const now = Date.parse('Wed, 21 Oct 2015 07:28:00 GMT');
    expect(parseRetryAfter('120', now)).toBe(120_000);
    expect(parseRetryAfter(' 0 ', now)).toBe(0);
    expect(parseRetryAfter('Wed, 21 Oct 2015 07:28:30 GMT', now)).toBe(30_000);
    expect(parseRetryAfter('Wed, 21 Oct 2015 07:00:00 GMT', now)).toBe(0);
    expect(parseRetryAfter('-5', now)).toBeUndefined();
    expect(parseRetryAfter('1.5', now)).toBeUndefined();
    expect(parseRetryAfter('2015-10-21', now)).toBeUndefined();
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter(null, now)).toBeUndefined();
  });

  it('finds the delay on a typed error or in error.data.retryAfterMs of a response', () => {
    expect(retryAfterOf({ error: new TransportError('429', { status: 429, retryAfterMs: 1_000 }) })).toBe(1_000);
    expect(retryAfterOf({ error: new Error('plain') })).toBeUndefined();
    expect(retryAfterOf({ response: { jsonrpc: '2.0', id: 1, error: { code: 1, message: 'x', data: { retryAfterMs: 50 } } } })).toBe(50);
    expect(retryAfterOf({ response: { jsonrpc: '2.0', id: 1, error: { code: 1, message: 'x', data: { retryAfterMs: -1 } } } })).toBeUndefined();
    expect(retryAfterOf({ response: { jsonrpc: '2.0', id: 1, result: {} } })).toBeUndefined();
  });
});

describe('sleep and untilAborted', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('sleeps, and stops at once with the abort reason', async () => {
    const done = vi.fn();
    void sleep(100).then(done);
    await vi.advanceTimersByTimeAsync(99);
    expect(done).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(1);
    expect(done).toHaveBeenCalled();

    const controller = new AbortController();
    const pending = sleep(10_000, controller.signal);
    controller.abort(new Error('cancelled'));
    await expect(pending).rejects.toThrow('cancelled');
    expect(vi.getTimerCount()).toBe(0);
    await expect(sleep(10, controller.signal)).rejects.toThrow('cancelled');
  });

  it('abandons a wait on abort and swallows its later failure', async () => {
    const controller = new AbortController();
    let fail!: (error: Error) => void;
    const wait = new Promise<void>((_, reject) => (fail = reject));
    const raced = untilAborted(wait, controller.signal);
    controller.abort(new Error('gone'));
    await expect(raced).rejects.toThrow('gone');
    fail(new Error('nobody listens'));
    await vi.advanceTimersByTimeAsync(0);
    expect(await untilAborted(Promise.resolve(7), new AbortController().signal)).toBe(7);
  });
});

describe('LatencyWindow', () => {
  it('reports nearest-rank percentiles of the recent samples only', () => {
    const window = new LatencyWindow(100);
    expect(window.percentile(95)).toBeUndefined();
    for (let ms = 1; ms <= 100; ms++) window.record(ms);
    expect(window.percentile(50)).toBe(50);
    expect(window.percentile(95)).toBe(95);
    for (let i = 0; i < 100; i++) window.record(1_000);
    expect(window.count).toBe(100);
    expect(window.percentile(50)).toBe(1_000);
  });
});
