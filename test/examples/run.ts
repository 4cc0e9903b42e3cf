/** Runs an example (or the CLI) as its own process and reads what it prints. */
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

export interface Started {
  readonly process: ChildProcess;
  readonly stdout: string[];
  readonly stderr: string[];
  /** Resolves with the first stdout line matching `pattern` (past or future); rejects if the process exits first. */
  line(pattern: RegExp): Promise<RegExpMatchArray>;
  readonly exited: Promise<number | null>;
}

export function start(args: string[], env: NodeJS.ProcessEnv = {}): Started {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  const stdout: string[] = [];
  const stderr: string[] = [];
  const waiters = new Set<{ pattern: RegExp; resolve: (m: RegExpMatchArray) => void }>();
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
    stdout.push(line);
    for (const waiter of waiters) {
      const match = waiter.pattern.exec(line);
      if (match !== null) {
        waiters.delete(waiter);
        waiter.resolve(match);
      }
    }
  });
  createInterface({ input: child.stderr as NodeJS.ReadableStream }).on('line', (line) => void stderr.push(line));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    process: child,
    stdout,
    stderr,
    exited,
    line(pattern) {
      for (const line of stdout) {
        const match = pattern.exec(line);
        if (match !== null) return Promise.resolve(match);
      }
      return new Promise((resolve, reject) => {
        waiters.add({ pattern, resolve });
        void exited.then((code) => reject(new Error(`exited (${code}) before printing ${pattern}\nstdout:\n${stdout.join('\n')}\nstderr:\n${stderr.join('\n')}`)));
      });
    },
  };
}
