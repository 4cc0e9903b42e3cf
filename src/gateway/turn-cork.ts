/**
 * What one turn of the event loop writes to a stream goes out in one write: the first
 * write of a turn corks the stream, and the end of the turn (setImmediate, before the loop
 * waits for anything) uncorks it. Each write to a pipe is a system call and a wake-up of
 * the reader, which under load cost more than the messages: the stdio child's stdin
 * (child.ts) and the gateway's stderr (log-stream.ts) are written this way.
 */
import type { Writable } from 'node:stream';

// Captured at load: fake timers in tests must not hold writes back.
const endOfTurn: (fn: () => void) => unknown = globalThis.setImmediate.bind(globalThis);

export class TurnCork {
  readonly #stream: Writable;
  readonly #released: (() => void) | undefined;
  #held = false;

  /** `released` is told each time what was held has been let out. */
  constructor(stream: Writable, released?: () => void) {
    this.#stream = stream;
    this.#released = released;
  }

  /** True while this turn's writes are held. */
  get held(): boolean {
    return this.#held;
  }

  /** Holds the stream's writes until the end of this turn (already held: nothing to do). */
  hold(): void {
    if (this.#held) return;
    this.#held = true;
    this.#stream.cork();
    endOfTurn(this.release);
  }

  /** Lets out what is held, now (the end of the turn, a close, the process exiting). */
  readonly release = (): void => {
    if (!this.#held) return;
    this.#held = false;
    this.#stream.uncork();
    this.#released?.();
  };
}
