import { untilAborted } from '../../src/layer-kit/sleep.ts';

/**
 * One operation at a time, shared by everyone who asks while it runs: N requests that
 * find the token expired cause one token request, and all N get its outcome.
 *
 * A caller that stops waiting (its request was cancelled) leaves without cancelling
 * the operation: the others still need it.
 */
export class SingleFlight<T> {
  #current: Promise<T> | undefined;

  /** True while an operation runs. */
  get running(): boolean {
    return this.#current !== undefined;
  }

  /** Joins the running operation, or starts `operation` when none runs. */
  run(operation: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    let current = this.#current;
    if (current === undefined) {
      // Started on a microtask so that `#current` is set before the operation can finish.
      const started: Promise<T> = Promise.resolve()
        .then(operation)
        .finally(() => {
          if (this.#current === started) this.#current = undefined;
        });
      this.#current = current = started;
    }
    return signal === undefined ? current : untilAborted(current, signal);
  }
}
