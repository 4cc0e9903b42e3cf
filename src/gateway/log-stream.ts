/**
 * The gateway's log lines reach stderr once per turn of the event loop instead of once
 * per line. Node writes to a pipe or a file synchronously on Linux: a line per exchange
 * was a system call per exchange, and a wake-up of whatever reads the logs, which under
 * load cost more than the exchange itself (a gateway at `info` served half the calls per
 * second it served at `error`; docs/benchmarks.md). Lines keep their order, and whatever
 * else the process writes to the same stream in that turn goes in the same write.
 *
 * What a turn buffers is written when the process exits, an uncaught exception included;
 * only a process killed outright (SIGKILL, out of memory) can lose its last turn's lines.
 */
import { Writable } from 'node:stream';

// Captured at load: fake timers in tests must not hold the logs back.
const endOfTurn: (fn: () => void) => unknown = globalThis.setImmediate.bind(globalThis);

/** Writers holding lines for the end of this turn; flushed on exit. */
const holding = new Set<LinesPerTurn>();
let exitHooked = false;

export class LinesPerTurn extends Writable {
  readonly #target: Writable;
  #corked = false;

  constructor(target: Writable) {
    super({ decodeStrings: false });
    this.#target = target;
  }

  override _write(chunk: unknown, encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    const target = this.#target;
    if (!this.#corked) {
      this.#corked = true;
      target.cork();
      holding.add(this);
      if (!exitHooked) {
        exitHooked = true;
        process.on('exit', flushAll);
      }
      endOfTurn(this.#flush);
    }
    // A full target holds this writer back until it drains, so nothing piles up here.
    if (target.write(chunk, encoding)) callback();
    else target.once('drain', () => callback());
  }

  // Ending the writer (the logger closing) writes what this turn holds.
  override _final(callback: (error?: Error | null) => void): void {
    this.#flush();
    callback();
  }

  readonly #flush = (): void => {
    if (!this.#corked) return;
    this.#corked = false;
    holding.delete(this);
    this.#target.uncork();
  };

  /** Writes what this turn holds now (exit). */
  flush(): void {
    this.#flush();
  }
}

function flushAll(): void {
  for (const writer of holding) writer.flush();
}
