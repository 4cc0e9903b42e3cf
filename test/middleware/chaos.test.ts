import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { chaos } from '#middleware/chaos.ts';
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

/** The faults a chaos layer injects into `n` pings, in order. */
async function faults(options: Parameters<typeof chaos>[0], n: number): Promise<string[]> {
  const s = await stack([chaos(options)]);
  for (let i = 0; i < n; i++) s.request('ping');
  await settle();
  return (s.events.chaos ?? []).map((e) => `${e.ctx.id}:${e.fault}`);
}

describe('chaos: determinism', () => {
  it('injects the same faults for the same seed and traffic, and others for another seed', async () => {
    const options = { errorRate: 0.2, dropRate: 0.1, disconnectRate: 0.1 };
    const first = await faults({ ...options, seed: 7 }, 200);
    const again = await faults({ ...options, seed: 7 }, 200);
    const other = await faults({ ...options, seed: 8 }, 200);
    expect(first.length).toBeGreaterThan(40);
    expect(again).toEqual(first);
    expect(other).not.toEqual(first);
  });

  it('injects each fault at about its rate', async () => {
    const s = await stack([chaos({ seed: 3, errorRate: 0.05, dropRate: 0.03, disconnectRate: 0.02 })]);
    for (let i = 0; i < 10_000; i++) s.request('ping');
    await settle();
    const count = (fault: string) => (s.events.chaos ?? []).filter((e) => e.fault === fault).length;
    expect(count('error')).toBeGreaterThan(400);
    expect(count('error')).toBeLessThan(600);
    expect(count('drop')).toBeGreaterThan(220);
    expect(count('drop')).toBeLessThan(380);
    expect(count('disconnect')).toBeGreaterThan(130);
    expect(count('disconnect')).toBeLessThan(270);
    await s.transport.close();
  });
});

describe('chaos: faults', () => {
  it('fails an injected error without sending anything (retryable, never sent)', async () => {
    const s = await stack([chaos({ errorRate: 1 })]);
    const id = s.request('tools/call', { name: 'x' });
    await settle();
    expect(s.requests()).toEqual([]);
    expect(error(s.responses(id)[0])).toEqual({
      code: ErrorCode.ChaosFault,
      message: 'Injected fault: tools/call failed before it was sent',
      data: { layer: 'chaos', reason: 'chaos-error', attempts: 0 },
    });
  });

  it('loses the response of a dropped request until a timeout ends the exchange', async () => {
    const s = await stack([timeout({ attemptMs: 1_000 }), chaos({ dropRate: 1 })]);
    const id = s.request('ping');
    await settle();
    expect(s.requests()).toHaveLength(1);
    s.answer(s.last());
    await advance(999);
    expect(s.responses(id)).toEqual([]);
    await advance(1);
    expect(error(s.responses(id)[0])).toMatchObject({ code: ErrorCode.RequestTimeout });
  });

  it('fails a disconnected request as a lost connection after it was sent', async () => {
    const s = await stack([chaos({ disconnectRate: 1 })]);
    const id = s.request('ping');
    await settle();
    s.answer(s.last());
    await settle();
    expect(s.requests()).toHaveLength(1);
    expect(error(s.responses(id)[0])).toMatchObject({ code: ErrorCode.ConnectionClosed, data: { reason: 'connection-lost', layer: 'chaos' } });
  });

  it('delays by the configured latency, and the delay ends with the exchange', async () => {
    const s = await stack([chaos({ latency: { delayMs: [100, 200] } })]);
    s.request('ping');
    await settle();
    const delay = s.events.chaos?.[0]?.delayMs as number;
    expect(delay).toBeGreaterThanOrEqual(100);
    expect(delay).toBeLessThanOrEqual(200);
    await advance(Math.floor(delay) - 1);
    expect(s.requests()).toHaveLength(0);
    await advance(2);
    expect(s.requests()).toHaveLength(1);
    const cancelled = s.request('ping');
    await settle();
    s.cancel(cancelled);
    await settle();
    expect(vi.getTimerCount()).toBe(0);
  });

  it('injects only latency and errors into inbound requests, and can be switched off', async () => {
    const layer = chaos({ errorRate: 1, direction: 'inbound' });
    const s = await stack([layer]);
    s.request('ping');
    s.peer.deliver({ jsonrpc: '2.0', id: 'p1', method: 'ping' });
    await settle();
    expect(s.requests()).toHaveLength(1);
    expect(s.peer.responses()).toMatchObject([{ id: 'p1', error: { code: ErrorCode.ChaosFault } }]);
    layer.enabled = false;
    s.peer.deliver({ jsonrpc: '2.0', id: 'p2', method: 'ping' });
    await settle();
    expect(s.app.inboundRequests().map((r) => r.id)).toEqual(['p2']);
  });
});

describe('chaos: options', () => {
  it.each([
    [{ errorRate: 1.5 }, 'chaos.errorRate: expected a probability from 0 to 1, got 1.5'],
    [{ errorRate: 0.6, dropRate: 0.6 }, 'chaos.errorRate + chaos.dropRate + chaos.disconnectRate: expected at most 1, got 1.2'],
    [{ latency: { delayMs: [200, 100] } }, 'chaos.latency.delayMs[1]: expected at least chaos.latency.delayMs[0] (200), got 100'],
    [{ dropRate: 0.1, direction: 'inbound' }, 'chaos.dropRate: expected 0 with direction "inbound"'],
    [{ seed: 1.5 }, 'chaos.seed: expected an integer from -2147483648 to 2147483647, got 1.5'],
  ])('rejects %j at construction', (options, message) => {
    expect(() => chaos(options as never)).toThrow(InvalidOptionError);
    expect(() => chaos(options as never)).toThrow(message);
  });
});
