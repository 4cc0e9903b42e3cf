import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { retry } from '#middleware/retry/retry.ts';
import { timeout } from '#middleware/timeout.ts';
import { ErrorCode, InvalidOptionError } from '#core/errors.ts';
import type { JSONRPCErrorResponse } from '#core/jsonrpc.ts';
import { advance, settle, stack } from '../support/layer-stack.ts';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

const error = (response: unknown) => (response as JSONRPCErrorResponse).error;

describe('timeout: attempt deadline', () => {
  it('abandons the attempt at `ms`: cancels its wire id and answers -32001', async () => {
    const s = await stack([timeout({ attemptMs: 1_000 })]);
    const id = s.request('tools/call', { name: 'slow' });
    await advance(999);
    expect(s.responses(id)).toEqual([]);
    expect(s.cancelled()).toEqual([]);
    await advance(1);
    const wireId = s.last().id;
    expect(s.cancelled()).toEqual([wireId]);
    expect(s.peer.wire.at(-1)).toMatchObject({
      method: 'notifications/cancelled',
      params: { requestId: wireId, reason: 'tools/call slow timed out after 1000 ms' },
    });
    expect(s.responses(id)).toHaveLength(1);
    expect(error(s.responses(id)[0])).toEqual({
      code: ErrorCode.RequestTimeout,
      message: 'tools/call slow timed out after 1000 ms',
      data: { layer: 'timeout', reason: 'attempt-timeout', attempts: 1, timeoutMs: 1_000, scope: 'attempt' },
    });
    expect(s.events.timeout).toMatchObject([{ scope: 'attempt', ms: 1_000, attempt: 1 }]);
    // A late answer is dropped, never delivered.
    s.answer(s.last());
    await settle();
    expect(s.responses(id)).toHaveLength(1);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('leaves no timer behind when the answer comes in time', async () => {
    const s = await stack([timeout({ attemptMs: 1_000 })]);
    const id = s.request('ping');
    await settle();
    expect(vi.getTimerCount()).toBe(1);
    s.answer(s.last());
    await settle();
    expect(s.responses(id)).toEqual([{ jsonrpc: '2.0', id, result: { ok: true } }]);
    expect(vi.getTimerCount()).toBe(0);
    expect(s.events.timeout).toEqual([]);
  });

  it('gives each attempt below retry a fresh deadline', async () => {
    const s = await stack([retry({ budget: false, backoff: { initialDelayMs: 0, maxDelayMs: 0 } }), timeout({ attemptMs: 500 })]);
    const id = s.request('ping');
    await advance(500);
    await advance(500);
    expect(s.requests()).toHaveLength(3);
    expect(s.cancelled()).toEqual(s.requests().slice(0, 2).map((r) => r.id));
    await advance(499);
    s.answer(s.last());
    await settle();
    expect(s.responses(id)).toEqual([{ jsonrpc: '2.0', id, result: { ok: true } }]);
  });
});

describe('timeout: progress', () => {
  it('pushes the deadline on each progress notification, up to maxTotalMs', async () => {
    const s = await stack([timeout({ attemptMs: 1_000, resetOnProgress: true, maxAttemptMs: 3_500 })]);
    const id = s.request('tools/call', { name: 'long', _meta: { progressToken: 'p1' } });
    const progress = () => s.peer.deliver({ jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 'p1', progress: 1 } });
    await advance(900);
    progress();
    await advance(900);
    progress();
    await advance(900);
    expect(s.responses(id)).toEqual([]); // 2 700 ms in: alive thanks to progress
    progress();
    await advance(799); // the ceiling (3 500 ms) comes before the idle deadline (3 700 ms)
    expect(s.responses(id)).toEqual([]);
    await advance(1);
    expect(error(s.responses(id)[0])).toMatchObject({ code: ErrorCode.RequestTimeout, message: 'tools/call long timed out after 3500 ms' });
    expect(s.cancelled()).toEqual([s.last().id]);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('times out `ms` after the last progress', async () => {
    const s = await stack([timeout({ attemptMs: 1_000, resetOnProgress: true })]);
    const id = s.request('tools/call', { name: 'long', _meta: { progressToken: 7 } });
    await advance(600);
    s.peer.deliver({ jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 7, progress: 1 } });
    await advance(999);
    expect(s.responses(id)).toEqual([]);
    await advance(1);
    expect(error(s.responses(id)[0])).toMatchObject({ message: 'tools/call long timed out after 1000 ms' });
  });

  it('ignores progress without resetOnProgress', async () => {
    const s = await stack([timeout({ attemptMs: 1_000 })]);
    const id = s.request('tools/call', { name: 'long', _meta: { progressToken: 7 } });
    await advance(600);
    s.peer.deliver({ jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 7, progress: 1 } });
    await advance(400);
    expect(error(s.responses(id)[0])).toMatchObject({ code: ErrorCode.RequestTimeout });
  });
});

describe('timeout: total deadline', () => {
  it('bounds the exchange across retries and backoffs, and is not retried itself', async () => {
    const s = await stack([timeout({ totalMs: 2_000 }), retry({ budget: false, maxAttempts: 10, backoff: { initialDelayMs: 0, maxDelayMs: 0 } }), timeout({ attemptMs: 800 })]);
    const id = s.request('ping');
    await advance(1_999);
    expect(s.responses(id)).toEqual([]);
    await advance(1);
    expect(error(s.responses(id)[0])).toMatchObject({
      code: ErrorCode.RequestTimeout,
      message: 'ping did not complete within its total timeout of 2000 ms',
      data: { reason: 'total-timeout', scope: 'total' },
    });
    expect(s.events.timeout?.map((e) => e.scope)).toEqual(['attempt', 'attempt', 'total']);
    // The third attempt was abandoned on the wire too.
    expect(s.cancelled()).toEqual(s.requests().map((r) => r.id));
    const attempts = s.requests().length;
    await advance(10_000);
    expect(s.requests()).toHaveLength(attempts);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('counts the total from the first time the exchange reached the layer, even below retry', async () => {
    const s = await stack([retry({ budget: false, backoff: { initialDelayMs: 0, maxDelayMs: 0 } }), timeout({ attemptMs: 400, totalMs: 1_000 })]);
    const id = s.request('ping');
    await advance(400);
    await advance(400);
    expect(s.events.timeout?.map((e) => e.scope)).toEqual(['attempt', 'attempt']);
    await advance(200); // the third attempt only had 200 ms left
    expect(s.events.timeout?.map((e) => e.scope)).toEqual(['attempt', 'attempt', 'total']);
    expect(error(s.responses(id)[0])).toMatchObject({ data: { reason: 'total-timeout', attempts: 3 } });
  });
});

describe('timeout: methods', () => {
  it('gives initialize at least 60 s and subscriptions/listen no deadline by default', async () => {
    const s = await stack([timeout({ attemptMs: 1_000, totalMs: 5_000 })]);
    const init = s.request('initialize', { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 't', version: '1' } });
    const listen = s.request('subscriptions/listen', {});
    await advance(59_999);
    expect(s.responses(init)).toEqual([]);
    await advance(1);
    expect(error(s.responses(init)[0])).toMatchObject({ code: ErrorCode.RequestTimeout });
    // MCP forbids cancelling initialize: nothing is sent for it.
    expect(s.cancelled()).toEqual([]);
    await advance(3_600_000);
    expect(s.responses(listen)).toEqual([]);
  });

  it('takes per-method overrides (globs), and false exempts a method', async () => {
    const s = await stack([timeout({ attemptMs: 1_000, perMethod: { 'tools/*': 5_000, ping: false } })]);
    const call = s.request('tools/call', { name: 'x' });
    const ping = s.request('ping');
    const read = s.request('resources/read', { uri: 'a' });
    await advance(1_000);
    expect(s.responses(read)).toHaveLength(1);
    expect(s.responses(call)).toEqual([]);
    await advance(4_000);
    expect(s.responses(call)).toHaveLength(1);
    await advance(100_000);
    expect(s.responses(ping)).toEqual([]);
  });

  it('passes notifications and inbound requests through untouched', async () => {
    const s = await stack([timeout({ attemptMs: 10 })]);
    s.peer.deliver({ jsonrpc: '2.0', id: 'in-1', method: 'sampling/createMessage', params: {} });
    await advance(1_000);
    expect(s.app.inboundRequests()).toHaveLength(1);
    await s.transport.send({ jsonrpc: '2.0', id: 'in-1', result: { model: 'm' } });
    expect(s.peer.responses()).toEqual([{ jsonrpc: '2.0', id: 'in-1', result: { model: 'm' } }]);
  });
});

describe('timeout: options', () => {
  it.each([
    [{ attemptMs: 0 }, 'timeout.attemptMs: expected a duration in milliseconds >= 1, got 0'],
    [{ totalMs: 'soon' }, 'timeout.totalMs: expected a duration in milliseconds >= 1, got "soon"'],
    [{ maxAttemptMs: 10 }, 'timeout.maxAttemptMs: expected to be used with timeout.resetOnProgress: true'],
    [{ attemptMs: 100, resetOnProgress: true, maxAttemptMs: 50 }, 'timeout.maxAttemptMs: expected at least timeout.attemptMs (100), got 50'],
    [{ perMethod: { ping: -1 } }, 'timeout.perMethod["ping"]: expected a duration in milliseconds >= 1, got -1'],
    [{ msec: 5 }, 'timeout.msec: expected one of the known options'],
  ])('rejects %j at construction', (options, message) => {
    expect(() => timeout(options as never)).toThrow(InvalidOptionError);
    expect(() => timeout(options as never)).toThrow(message);
  });
});
