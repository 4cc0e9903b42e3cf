/**
 * What a test server really did, independent of what any client was told: how many
 * times each tool handler ran, and which handlers saw their abort signal fire.
 *
 * A retry that re-sends a request shows up here as a second run; a cancellation that
 * reached the server shows up as an abort. Both test-server factories (SDK v1 and v2)
 * write to a Ledger, and the stdio server entry exposes it through its `ledger` tool so
 * tests can read it across a process boundary.
 */

export interface LedgerSnapshot {
  /** Tool name → how many times its handler started. */
  runs: Record<string, number>;
  /** `tool: reason` for every handler that observed its abort signal, in order. */
  aborted: string[];
}

export class Ledger {
  readonly #runs = new Map<string, number>();
  readonly #aborted: string[] = [];
  /** Waiters by event key; each returns true once it is satisfied (and is then dropped). */
  readonly #waiters = new Map<string, Array<() => boolean>>();

  /** A handler started: counts it and wakes whoever waits for it. */
  ran(tool: string): number {
    const count = (this.#runs.get(tool) ?? 0) + 1;
    this.#runs.set(tool, count);
    this.#wake(`run:${tool}`);
    return count;
  }

  /** A handler saw its abort signal. */
  abort(tool: string, reason: unknown): void {
    this.#aborted.push(`${tool}: ${describeReason(reason)}`);
    this.#wake(`abort:${tool}`);
  }

  runs(tool: string): number {
    return this.#runs.get(tool) ?? 0;
  }

  get aborted(): readonly string[] {
    return this.#aborted;
  }

  /** Resolves once `tool` has run `times` times in total (real events, no polling). */
  whenRan(tool: string, times = 1): Promise<void> {
    return this.#when(`run:${tool}`, () => this.runs(tool) >= times);
  }

  /** Resolves once a handler of `tool` has seen its abort signal. */
  whenAborted(tool: string): Promise<void> {
    return this.#when(`abort:${tool}`, () => this.#aborted.some((entry) => entry.startsWith(`${tool}: `)));
  }

  snapshot(): LedgerSnapshot {
    return { runs: Object.fromEntries([...this.#runs].toSorted(([a], [b]) => a.localeCompare(b))), aborted: [...this.#aborted] };
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
