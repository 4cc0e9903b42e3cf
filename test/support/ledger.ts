/**
 * What a test server really did, independent of what any client was told: how many
 * times each tool handler ran, which handlers saw their abort signal fire, and how many
 * of a tool's next runs are to hang until cancelled.
 *
 * A retry that re-sends a request shows up here as a second run; a cancellation that
 * reached the server shows up as an abort. Every test server (test-app.ts, served by
 * server-v1.ts and server-v2.ts) writes to a Ledger, and the stdio server entry exposes
 * it through its `ledger` tool so tests can read it across a process boundary.
 */

export interface LedgerSnapshot {
  /** Tool name → how many times its handler started. */
  runs: Record<string, number>;
  /** `tool: reason` for every handler that observed its abort signal, in order. */
  aborted: string[];
}

export class Ledger {
  readonly #runs = new Map<string, number>();
  readonly #abortReasons: string[] = [];
  /** Tool name → how many of its handlers saw their abort signal. */
  readonly aborted = new Map<string, number>();
  /** Tool name → how many of its next runs hang until cancelled (tools that honour it: see takeHang). */
  readonly hang = new Map<string, number>();
  /** Waiters by event key; each returns true once it is satisfied (and is then dropped). */
  readonly #waiters = new Map<string, Array<() => boolean>>();

  /** A handler started: counts it and wakes whoever waits for it. Returns the run's number. */
  ran(tool: string): number {
    const count = (this.#runs.get(tool) ?? 0) + 1;
    this.#runs.set(tool, count);
    this.#wake(`run:${tool}`);
    return count;
  }

  /** A handler saw its abort signal. */
  abort(tool: string, reason: unknown): void {
    this.#abortReasons.push(`${tool}: ${describeReason(reason)}`);
    this.aborted.set(tool, (this.aborted.get(tool) ?? 0) + 1);
    this.#wake(`abort:${tool}`);
  }

  /** How many times `tool`'s handler started. */
  runs(tool: string): number {
    return this.#runs.get(tool) ?? 0;
  }

  /** The same as runs(): the name the resilience suites read it by. */
  count(tool: string): number {
    return this.runs(tool);
  }

  /** Whether this run of `tool` is to hang until cancelled (uses up one of `hang`'s count). */
  takeHang(tool: string): boolean {
    const hangs = this.hang.get(tool) ?? 0;
    if (hangs === 0) return false;
    this.hang.set(tool, hangs - 1);
    return true;
  }

  /** Resolves once `tool` has run `times` times in total (real events, no polling). */
  whenRan(tool: string, times = 1): Promise<void> {
    return this.#when(`run:${tool}`, () => this.runs(tool) >= times);
  }

  /** Resolves once handlers of `tool` have seen their abort signal `times` times in total. */
  whenAborted(tool: string, times = 1): Promise<void> {
    return this.#when(`abort:${tool}`, () => (this.aborted.get(tool) ?? 0) >= times);
  }

  snapshot(): LedgerSnapshot {
    return { runs: Object.fromEntries([...this.#runs].toSorted(([a], [b]) => a.localeCompare(b))), aborted: [...this.#abortReasons] };
  }

  #when(key: string, done: () => boolean): Promise<void> {
    if (done()) return Promise.resolve();
    return new Promise((resolve) => {
      const check = () => {
        if (!done()) return false;
        resolve();
        return true;
      };
      const list = this.#waiters.get(key) ?? [];
      list.push(check);
      this.#waiters.set(key, list);
    });
  }

  #wake(key: string): void {
    const list = this.#waiters.get(key);
    if (list === undefined) return;
    const waiting = list.filter((check) => !check());
    if (waiting.length === 0) this.#waiters.delete(key);
    else this.#waiters.set(key, waiting);
  }
}

function describeReason(reason: unknown): string {
  if (reason instanceof Error) return reason.message;
  return typeof reason === 'string' ? reason : JSON.stringify(reason) ?? String(reason);
}
