import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { concurrency } from '#middleware/concurrency.ts';
import { retry } from '#middleware/retry/retry.ts';
import { ErrorCode, InvalidOptionError } from '#core/errors.ts';
import type { JSONRPCErrorResponse, JSONRPCRequest } from '#core/jsonrpc.ts';
import { settle, stack } from '../support/layer-stack.ts';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

const error = (response: unknown) => (response as JSONRPCErrorResponse).error;

describe('concurrency: outbound', () => {
  it('runs maxInFlight, queues `queue` more, sheds the rest without sending them', async () => {
    const layer = concurrency({ maxInFlight: 2, maxQueued: 1 });
    const s = await stack([layer]);
    const [a, b, c, d] = [s.request('ping'), s.request('ping'), s.request('ping'), s.request('ping')];
    await settle();
    expect(s.requests()).toHaveLength(2);
    expect(layer.usage().outbound).toEqual({ inFlight: 2, queued: 1 });
    expect(s.events.queued).toMatchObject([{ queued: 1, inFlight: 2 }]);
    expect(error(s.responses(d)[0])).toEqual({
      code: ErrorCode.LoadShed,
      message: 'Too many concurrent requests: ping was not sent (2 in flight, 1 queued; limits 2 and 1)',
      data: { layer: 'concurrency', reason: 'queue-full', attempts: 0, direction: 'outbound', inFlight: 2, queued: 1 },
    });
    expect(s.events.shed).toMatchObject([{ reason: 'concurrency-limit', inFlight: 2, queued: 1 }]);
    s.answer(s.requests()[0] as JSONRPCRequest);
    await settle();
    expect(s.requests()).toHaveLength(3); // the queued one took the free slot
    for (const request of s.requests().slice(1)) s.answer(request);
    await settle();
    expect([a, b, c].map((id) => s.responses(id).length)).toEqual([1, 1, 1]);
    expect(layer.usage().outbound).toEqual({ inFlight: 0, queued: 0 });
  });

  it('lets a queued request go the moment it is cancelled', async () => {
    const layer = concurrency({ maxInFlight: 1, maxQueued: 5 });
    const finished: unknown[] = [];
    const s = await stack([
      async (ctx, next) => {
        try {
          await next();
        } finally {
          finished.push(ctx.id);
        }
      },
      layer,
    ]);
    s.request('ping');
    const queued = s.request('ping');
    await settle();
    s.cancel(queued);
    await settle();
    expect(finished).toEqual([queued]);
    expect(s.responses(queued)).toEqual([]);
    s.answer(s.last());
    await settle();
    // The cancelled request never went out.
    expect(s.requests()).toHaveLength(1);
  });

  it('frees its slot when a request fails, and a shed request is not retried', async () => {
    const layer = concurrency({ maxInFlight: 1 });
    const s = await stack([retry({ budget: false }), layer]);
    s.peer.failSends = 1;
    s.request('ping');
    const shed = s.request('ping');
    await settle();
    expect(error(s.responses(shed)[0])).toMatchObject({ code: ErrorCode.LoadShed });
    expect(s.events.retry).toHaveLength(1); // the refused send was retried, the shed request was not
    expect(layer.usage().outbound.inFlight).toBe(0);
  });
});

describe('concurrency: inbound', () => {
  it('answers shed requests to the peer itself; the application never sees them', async () => {
    const s = await stack([concurrency({ maxInFlight: 1, direction: 'inbound', retryAfterMs: 250 })]);
    s.peer.deliver({ jsonrpc: '2.0', id: 'p1', method: 'sampling/createMessage', params: {} });
    s.peer.deliver({ jsonrpc: '2.0', id: 'p2', method: 'sampling/createMessage', params: {} });
    await settle();
    expect(s.app.inboundRequests().map((r) => r.id)).toEqual(['p1']);
    expect(s.peer.responses()).toEqual([
      {
        jsonrpc: '2.0',
        id: 'p2',
        error: {
          code: ErrorCode.LoadShed,
          message: 'Too many concurrent requests: sampling/createMessage was refused (1 in flight, 0 queued; limits 1 and 0)',
          data: { layer: 'concurrency', reason: 'shed', attempts: 0, direction: 'inbound', inFlight: 1, queued: 0, retryAfterMs: 250 },
        },
      },
    ]);
    await s.transport.send({ jsonrpc: '2.0', id: 'p1', result: { ok: true } });
    s.peer.deliver({ jsonrpc: '2.0', id: 'p3', method: 'sampling/createMessage', params: {} });
    await settle();
    expect(s.app.inboundRequests().map((r) => r.id)).toEqual(['p1', 'p3']);
  });

  it('limits each direction separately', async () => {
    const layer = concurrency({ maxInFlight: 1 });
    const s = await stack([layer]);
    s.request('ping');
    s.peer.deliver({ jsonrpc: '2.0', id: 'p1', method: 'ping' });
    await settle();
    expect(s.requests()).toHaveLength(1);
    expect(s.app.inboundRequests()).toHaveLength(1);
    expect(layer.usage()).toEqual({ outbound: { inFlight: 1, queued: 0 }, inbound: { inFlight: 1, queued: 0 } });
  });
});

describe('concurrency: options', () => {
  it.each([
    [{ maxInFlight: 0 }, 'concurrency.maxInFlight: expected an integer >= 1, got 0'],
    [{ maxQueued: -1 }, 'concurrency.maxQueued: expected an integer >= 0, got -1'],
    [{ direction: 'up' }, 'concurrency.direction: expected one of "outbound", "inbound", "both", got "up"'],
  ])('rejects %j at construction', (options, message) => {
    expect(() => concurrency(options as never)).toThrow(InvalidOptionError);
    expect(() => concurrency(options as never)).toThrow(message);
  });
});
