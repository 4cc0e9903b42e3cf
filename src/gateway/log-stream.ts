/**
 * The gateway's log lines reach stderr once per turn of the event loop (turn-cork.ts)
 * instead of once per line: Node writes to a pipe or a file synchronously on Linux, so a
 * line per exchange was a system call per exchange and a wake-up of whatever reads the
 * logs (over WebSocket at 16 in flight with logs at `info`: 1.08× the calls per second;
 * docs/benchmarks.md). Lines keep their order, and whatever else the process writes to the
 * same stream in that turn goes in the same write.
 *
 * What a turn holds is written when the process exits, an uncaught exception included;
 * only a process killed outright (SIGKILL, out of memory) can lose its last turn's lines.
 */
import { Writable } from 'node:stream';
import { TurnCork } from './turn-cork.ts';

/** Writers holding this turn's lines; flushed on exit. */
const holding = new Set<LinesPerTurn>();
let exitHooked = false;

export class LinesPerTurn extends Writable {
  readonly #target: Writable;
  readonly #cork: TurnCork;

  constructor(target: Writable) {
    super({ decodeStrings: false });
    this.#target = target;
    this.#cork = new TurnCork(target, () => holding.delete(this));
  }

  override _write(chunk: unknown, encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (!this.#cork.held) {
      this.#cork.hold();
      holding.add(this);
      if (!exitHooked) {
        exitHooked = true;
        process.on('exit', flushAll);
      }
    }
    // A full target holds this writer back until it drains, so nothing piles up here.
    if (this.#target.write(chunk, encoding)) callback();
    else this.#target.once('drain', () => callback());
  }

  // Ending the writer (the logger closing) writes what this turn holds.
  override _final(callback: (error?: Error | null) => void): void {
    this.flush();
    callback();
  }

  /** Writes what this turn holds now (exit). */
  flush(): void {
    this.#cork.release();
  }
}

function flushAll(): void {
  for (const writer of holding) writer.flush();
}
