/**
 * ConnectionRenewal under fake timers: when a connection's token nears expiry, a newer
 * token is fetched, new exchanges are held, the ones in flight finish (or the old
 * token's last usable moment passes), the transport reconnects, and the held go on.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { AccessToken } from '#middleware/oauth/access-token.ts';
import { ConnectionRenewal, type Reconnectable } from '#middleware/oauth/connection-renewal.ts';
import type { TokenSource } from '#middleware/oauth/token-source.ts';
import { EventBus } from '#core/events.ts';

const T0 = new Date('2030-01-01T00:00:00Z').getTime();

beforeEach(() => {
  vi.useFakeTimers();
  vi.setSystemTime(T0);
});

afterEach(() => {
  vi.useRealTimers();
});

function token(generation: number, obtainedAt: number, lifetimeMs = 100_000): AccessToken {
  return new AccessToken({ value: `at-${generation}-value`, expiresAt: obtainedAt + lifetimeMs, obtainedAt, refreshSkewMs: 10_000, generation, origin: 'grant' });
}

function fakes() {
  let generation = 1;
  const newerCalls: AccessToken[] = [];
  const source: TokenSource = {
    events: new EventBus(),
    current: undefined,
    token: async () => token(generation, Date.now()),
    rejected: async () => token(++generation, Date.now()),
    newer: async (than) => {
      newerCalls.push(than);
      return token(++generation, Date.now());
    },
  };
  const reconnects: number[] = [];
  let finish: (() => void) | undefined;
  const transport: Reconnectable = {
    reconnect: () => {
      reconnects.push(Date.now());
      return new Promise<void>((resolve) => (finish = resolve));
    },
  };
  return { source, transport, newerCalls, reconnects, reconnected: () => finish?.() };
}

describe('ConnectionRenewal', () => {
  it('renews at the token’s refreshAt: holds new exchanges, waits for those in flight, reconnects, lets them go', async () => {
    const f = fakes();
    const renewal = new ConnectionRenewal(f.source, f.transport);
    const first = token(1, T0);
    renewal.opened(first);
    await renewal.enter(undefined); // an exchange in flight on the connection
    await vi.advanceTimersByTimeAsync(89_999);
    expect(f.newerCalls).toEqual([]);
    await vi.advanceTimersByTimeAsync(1); // refreshAt = expiresAt - 10 s
    expect(f.newerCalls).toEqual([first]);
    let started = false;
    const held = renewal.enter(undefined).then(() => (started = true));
    await vi.advanceTimersByTimeAsync(1000);
    expect(started).toBe(false);
    expect(f.reconnects).toEqual([]); // still draining
    renewal.leave();
    await vi.advanceTimersByTimeAsync(0);
    expect(f.reconnects).toEqual([T0 + 91_000]);
    expect(started).toBe(false); // held until the new connection is ready
    f.reconnected();
    await held;
    expect(started).toBe(true);
    renewal.close();
  });

  it('stops waiting for exchanges in flight when the old token can no longer be used', async () => {
    const f = fakes();
    const renewal = new ConnectionRenewal(f.source, f.transport);
    renewal.opened(token(1, T0));
    renewal.track(); // e.g. a server→client request the application is still answering
    await vi.advanceTimersByTimeAsync(90_000);
    expect(f.reconnects).toEqual([]);
    // usableUntil = expiresAt - min(2 s, lifetime / 10) = T0 + 98 s
    await vi.advanceTimersByTimeAsync(7_999);
    expect(f.reconnects).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(f.reconnects).toEqual([T0 + 98_000]);
    f.reconnected();
    renewal.close();
  });

  it('a connection reopened meanwhile (with a newer token) is not renewed again', async () => {
    const f = fakes();
    const renewal = new ConnectionRenewal(f.source, f.transport);
    renewal.opened(token(1, T0));
    await vi.advanceTimersByTimeAsync(50_000);
    renewal.opened(token(2, T0 + 50_000)); // the server dropped it; the transport reconnected on its own
    await vi.advanceTimersByTimeAsync(50_000);
    expect(f.newerCalls).toEqual([]);
    renewal.close();
  });

  it('a held exchange that is cancelled stops waiting; close() ends the schedule', async () => {
    const f = fakes();
    const renewal = new ConnectionRenewal(f.source, f.transport);
    renewal.opened(token(1, T0));
    await vi.advanceTimersByTimeAsync(90_000);
    const controller = new AbortController();
    const held = renewal.enter(controller.signal);
    controller.abort(new Error('cancelled by the application'));
    await expect(held).rejects.toThrow('cancelled by the application');
    f.reconnected();
    renewal.close();
    renewal.opened(token(3, Date.now()));
    await vi.advanceTimersByTimeAsync(200_000);
    expect(f.newerCalls).toHaveLength(1);
    expect(vi.getTimerCount()).toBe(0);
  });
});
