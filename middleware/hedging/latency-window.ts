/**
 * Recent latencies of one kind of request, for "hedge after the p95": a ring buffer
 * of the last `size` samples and a percentile that is recomputed (a sort of at most
 * `size` numbers) only after enough new samples arrived — recording stays O(1) on the
 * message path.
 */
export class LatencyWindow {
  readonly #samples: Float64Array;
  #count = 0;
  #next = 0;
  #sinceSort = 0;
  #sorted: Float64Array | undefined;

  constructor(size = 1000) {
    this.#samples = new Float64Array(size);
  }

  get count(): number {
    return this.#count;
  }

  record(ms: number): void {
    this.#samples[this.#next] = ms;
    this.#next = (this.#next + 1) % this.#samples.length;
    if (this.#count < this.#samples.length) this.#count++;
    this.#sinceSort++;
  }

  /** The `p`-th percentile (0 < p < 100, nearest rank) of the recent samples; undefined with none. */
  percentile(p: number): number | undefined {
    if (this.#count === 0) return undefined;
    if (this.#sorted === undefined || this.#sinceSort >= Math.max(16, this.#count >>> 4)) {
      this.#sorted = this.#samples.subarray(0, this.#count).toSorted();
      this.#sinceSort = 0;
    }
    const sorted = this.#sorted;
    const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
    return sorted[rank];
  }
}
