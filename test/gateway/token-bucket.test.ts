/**
 * The clients' rate limit (src/gateway/clients/token-bucket.ts): burst, refill rate and
 * the exactness of retryAfterMs, as properties over any rate, burst and request times.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { TokenBucket } from '#gateway/clients/token-bucket.ts';

const rates = fc.double({ min: 0.05, max: 2_000, noNaN: true, noDefaultInfinity: true });
const bursts = fc.integer({ min: 1, max: 50 });
/** Gaps between requests, ms: often none (a burst), sometimes long (a refill). */
const gaps = fc.array(fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 50 }), fc.integer({ min: 0, max: 30_000 })), { minLength: 1, maxLength: 200 });

describe('TokenBucket', () => {
  it('a full bucket admits exactly burst requests at one instant, then refuses', () => {
    fc.assert(
      fc.property(rates, bursts, fc.integer({ min: 0, max: 1e9 }), (rate, burst, start) => {
        const bucket = new TokenBucket(rate, burst, start);
        for (let i = 0; i < burst; i++) expect(bucket.take(start).ok).toBe(true);
        expect(bucket.take(start).ok).toBe(false);
      }),
    );
  });

  it('never holds more than burst tokens, whatever the idle time', () => {
    fc.assert(
      fc.property(rates, bursts, gaps, (rate, burst, steps) => {
        const bucket = new TokenBucket(rate, burst, 0);
        let now = 0;
        for (const gap of steps) {
          now += gap;
          bucket.take(now);
          expect(bucket.tokens(now)).toBeLessThanOrEqual(burst);
          expect(bucket.tokens(now)).toBeGreaterThanOrEqual(0);
        }
        const idle = now + 1e9;
        let admitted = 0;
        while (bucket.take(idle).ok) admitted++;
        expect(admitted).toBe(burst);
      }),
    );
  });

  it('over any window, admits at most burst + rate × window (the refill rate)', () => {
    fc.assert(
      fc.property(rates, bursts, gaps, (rate, burst, steps) => {
        const bucket = new TokenBucket(rate, burst, 0);
        const admittedAt: number[] = [];
        let now = 0;
        for (const gap of steps) {
          now += gap;
          // A client that sends as fast as it is let through at each instant.
          while (bucket.take(now).ok) admittedAt.push(now);
        }
        for (let i = 0; i < admittedAt.length; i++) {
          for (let j = i; j < admittedAt.length; j++) {
            const window = (admittedAt[j] as number) - (admittedAt[i] as number);
            expect(j - i + 1).toBeLessThanOrEqual(burst + Math.floor((window * rate) / 1000 + 1e-9));
          }
        }
      }),
      { numRuns: 50 },
    );
  });

  it('a refusal’s retryAfterMs is exact: admitted after that many ms, refused one ms sooner', () => {
    fc.assert(
      fc.property(rates, bursts, gaps, (rate, burst, steps) => {
        const bucket = new TokenBucket(rate, burst, 0);
        let now = 0;
        for (const gap of steps) {
          now += gap;
          const taken = bucket.peek(now);
          if (taken.ok) {
            bucket.take(now);
            continue;
          }
          expect(taken.retryAfterMs).toBeGreaterThanOrEqual(1);
          expect(taken.retryAfterMs).toBeLessThanOrEqual(Math.ceil(1000 / rate));
          expect(bucket.peek(now + taken.retryAfterMs - 1).ok).toBe(false);
          expect(bucket.peek(now + taken.retryAfterMs).ok).toBe(true);
        }
      }),
    );
  });

  it('peek takes nothing; take takes one token', () => {
    const bucket = new TokenBucket(1, 2, 0);
    expect(bucket.peek(0)).toEqual({ ok: true });
    expect(bucket.tokens(0)).toBe(2);
    expect(bucket.take(0)).toEqual({ ok: true });
    expect(bucket.take(0)).toEqual({ ok: true });
    expect(bucket.take(0)).toEqual({ ok: false, retryAfterMs: 1000 });
    expect(bucket.take(250)).toEqual({ ok: false, retryAfterMs: 750 });
    expect(bucket.take(1000)).toEqual({ ok: true });
  });

  it('reconfigure keeps the tokens there now, up to the new burst', () => {
    fc.assert(
      fc.property(rates, bursts, rates, bursts, fc.integer({ min: 0, max: 60 }), (rate, burst, newRate, newBurst, taken) => {
        const bucket = new TokenBucket(rate, burst, 0);
        for (let i = 0; i < taken; i++) bucket.take(0);
        const before = bucket.tokens(0);
        bucket.reconfigure(newRate, newBurst, 0);
        expect(bucket.tokens(0)).toBeCloseTo(Math.min(before, newBurst), 6);
        expect(bucket.tokens(1e12)).toBe(newBurst);
      }),
    );
  });
});
