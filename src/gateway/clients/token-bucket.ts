/**
 * A token bucket: `burst` tokens at most, refilled at `rate` tokens per second; one
 * token per request. Kept as GCRA (the generic cell rate algorithm: one "theoretical
 * arrival time" instead of a token count and a refill timestamp), so a refusal's
 * `retryAfterMs` is exact — the request is admitted once that many milliseconds have
 * passed, and not one millisecond sooner — and no timer ever runs.
 *
 * Pure: every call takes the time (`performance.now()`-style milliseconds).
 */

/** What floating-point sums of emission intervals may be off by (far less than this, even after days of uptime): never enough to refuse what is due. */
const EPSILON_MS = 1e-3;

export type Taken = { readonly ok: true } | { readonly ok: false; readonly retryAfterMs: number };

export class TokenBucket {
  /** Milliseconds between two tokens. */
  #intervalMs: number;
  /** How far ahead of now the arrival time may run: burst − 1 intervals. */
  #toleranceMs: number;
  #burst: number;
  /** When the bucket would be full again if nothing more were taken. */
  #tat: number;

  constructor(rate: number, burst: number, now: number) {
    this.#intervalMs = 1000 / rate;
    this.#burst = burst;
    this.#toleranceMs = (burst - 1) * this.#intervalMs;
    this.#tat = now;
  }

  /** Takes one token, or says how long until one is there. */
  take(now: number): Taken {
    const refused = this.peek(now);
    if (!refused.ok) return refused;
    this.#tat = Math.max(this.#tat, now) + this.#intervalMs;
    return refused;
  }

  /** Whether a token is there now, taking none. */
  peek(now: number): Taken {
    // Admitted while the arrival time runs at most burst − 1 intervals ahead of now (a token is left).
    const over = Math.max(this.#tat, now) - now - this.#toleranceMs;
    return over > EPSILON_MS ? { ok: false, retryAfterMs: Math.ceil(over - EPSILON_MS) } : { ok: true };
  }

  /** Tokens there now (fractional: a token being refilled counts in part), from 0 to burst. */
  tokens(now: number): number {
    const used = (Math.max(this.#tat, now) - now) / this.#intervalMs;
    return Math.max(0, Math.min(this.#burst, this.#burst - used));
  }

  /** A new rate and burst (a config reload): the tokens there now stay, up to the new burst. */
  reconfigure(rate: number, burst: number, now: number): void {
    const kept = Math.min(this.tokens(now), burst);
    this.#intervalMs = 1000 / rate;
    this.#burst = burst;
    this.#toleranceMs = (burst - 1) * this.#intervalMs;
    this.#tat = now + (burst - kept) * this.#intervalMs;
  }
}
