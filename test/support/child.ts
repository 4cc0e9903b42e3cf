/** A child process that speaks line-oriented status on stdout (READY, EXEC ...). */
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

export class LineChild {
  readonly process: ChildProcess;
  readonly lines: string[] = [];
  readonly #waiters = new Set<{ test: (line: string) => boolean; resolve: (line: string) => void }>();
  readonly exited: Promise<number | null>;

  constructor(script: string, args: string[], env: NodeJS.ProcessEnv = {}) {
    this.process = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env } });
    this.exited = new Promise((resolve) => this.process.once('exit', (code) => resolve(code)));
    const rl = createInterface({ input: this.process.stdout as NodeJS.ReadableStream });
    rl.on('line', (line) => {
      this.lines.push(line);
      for (const waiter of this.#waiters) {
        if (waiter.test(line)) {
          this.#waiters.delete(waiter);
          waiter.resolve(line);
        }
      }
    });
  }

  /** Resolves with the first line (past or future) that starts with `prefix`; rejects if the process exits first. */
  waitFor(prefix: string): Promise<string> {
    const seen = this.lines.find((l) => l.startsWith(prefix));
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const waiter = { test: (line: string) => line.startsWith(prefix), resolve };
      this.#waiters.add(waiter);
      void this.exited.then((code) => {
        if (this.#waiters.delete(waiter)) reject(new Error(`child exited (${code}) before printing "${prefix}"`));
      });
    });
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (this.process.exitCode === null && this.process.signalCode === null) this.process.kill(signal);
    await this.exited;
  }
}
