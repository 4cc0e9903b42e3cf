/**
 * A retry budget, as Finagle and Envoy keep one: retries may add at most `percent` of
 * the requests seen over the last `ttlMs`, plus a floor of `minPerSecond` so that a
 * quiet client can still retry. During an outage every request fails, and without a
 * budget each one becomes `maxAttempts` requests — retries would multiply the load
 * on a server that is trying to come back. With the default budget a total outage
 * costs at most 20 % extra requests (plus 10 per second).
 *
 * Counting is a sliding window of ten buckets: in any window of `ttlMs`,
 *
 *   retries <= percent * requests + minPerSecond * ttlMs / 1000
 *
 * (Finagle's RetryBudget: deposits and withdrawals both expire after the window, the
 * floor is a reserve that never expires). One budget may be shared by several layers
 * and transports (pass the same instance) to cap the retries to one upstream.
 * The clock is `Date.now()`, like cockatiel's, so fake timers drive it in tests.
 */
import { invalidOption, numberOption, optionsObject } from '../../src/core/options.ts';

export interface RetryBudgetOptions {
  /** Retries allowed as a fraction of the requests in the window (default 0.2 = 20 %). */
  percent?: number;
  /** The window over which requests and retries are counted, in ms (default 10 000). */
  ttlMs?: number;
  /** Retries per second always allowed, whatever the traffic (default 10). */
  minPerSecond?: number;
}

const BUCKETS = 10;

export class RetryBudget {
  readonly percent: number;
  readonly ttlMs: number;
  readonly minPerSecond: number;
  readonly #reserve: number;
  readonly #bucketMs: number;
  readonly #deposits = new Float64Array(BUCKETS);
  readonly #withdrawals = new Float64Array(BUCKETS);
  /** The absolute number (time / bucket size) of the newest bucket. */
  #head = -Infinity;
  #depositSum = 0;
  #withdrawalSum = 0;

  constructor(options: RetryBudgetOptions = {}, prefix = 'budget') {
    const o = optionsObject(options, prefix, ['percent', 'ttlMs', 'minPerSecond']);
    this.percent = numberOption(`${prefix}.percent`, o.percent, 0.2, 0, 100);
    this.ttlMs = numberOption(`${prefix}.ttlMs`, o.ttlMs, 10_000, 10);
    this.minPerSecond = numberOption(`${prefix}.minPerSecond`, o.minPerSecond, 10, 0);
    this.#reserve = (this.minPerSecond * this.ttlMs) / 1000;
    this.#bucketMs = this.ttlMs / BUCKETS;
  }

  /** Records one request (each exchange deposits once, whatever its attempts). */
  deposit(): void {
    const i = this.#advance();
    this.#deposits[i]! += 1;
    this.#depositSum += 1;
  }

  /** Takes one retry from the budget; false when the budget is spent. */
  tryWithdraw(): boolean {
    const i = this.#advance();
    if (this.#balance() < 1) return false;
    this.#withdrawals[i]! += 1;
    this.#withdrawalSum += 1;
    return true;
  }

  /** Whole retries the budget allows right now. */
  get available(): number {
    this.#advance();
    return Math.max(0, Math.floor(this.#balance() + 1e-9));
  }

  #balance(): number {
    return this.percent * this.#depositSum + this.#reserve - this.#withdrawalSum;
  }

  /** Expires buckets older than the window; returns the index of the current bucket. */
  #advance(): number {
    const now = Math.floor(Date.now() / this.#bucketMs);
    if (now > this.#head) {
      if (now - this.#head >= BUCKETS) {
        this.#deposits.fill(0);
        this.#withdrawals.fill(0);
        this.#depositSum = 0;
        this.#withdrawalSum = 0;
      } else {
        for (let b = this.#head + 1; b <= now; b++) {
          const i = b % BUCKETS;
          this.#depositSum -= this.#deposits[i]!;
          this.#withdrawalSum -= this.#withdrawals[i]!;
          this.#deposits[i] = 0;
          this.#withdrawals[i] = 0;
        }
      }
      this.#head = now;
    }
    // A clock that went backwards lands in the current bucket rather than an expired one.
    return ((this.#head % BUCKETS) + BUCKETS) % BUCKETS;
  }
}

/** `budget` option of retry and hedging: a shared RetryBudget, options for a new one, or false (no budget). */
export function retryBudgetOption(value: unknown, option: string): RetryBudget | undefined {
  if (value === false) return undefined;
  if (value instanceof RetryBudget) return value;
  if (value === undefined || (typeof value === 'object' && value !== null && !Array.isArray(value))) {
    return new RetryBudget(value as RetryBudgetOptions | undefined, option);
  }
  throw invalidOption(option, 'a RetryBudget, budget options { percent, ttlMs, minPerSecond }, or false', value);
}
