/**
 * Processes the scale-out bench starts (brokers, workers, servers) and what they cost:
 *
 *   - `startChild` spawns a process and resolves once it prints a line matching `ready`
 *     (its own word that it is serving, not a delay; at most `readyMs`), or rejects with
 *     the end of its output if it exits first or is late. `stop()` sends SIGTERM, then
 *     SIGKILL after 3 s, and resolves once it is gone. Every child still running when the
 *     bench exits (a failure, SIGINT or SIGTERM included) is killed.
 *   - `cpuMs(pid)`: a process's user + system CPU time so far, from /proc (Linux), and
 *     `machineCpuMs()`: the busy CPU time of the whole machine, every process counted —
 *     what tells our share of the two cores from other people's.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { accessSync, constants, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { createInterface } from 'node:readline';

export interface Child {
  readonly name: string;
  readonly pid: number;
  /** The line that said it was ready. */
  readonly readyLine: string;
  stop(): Promise<void>;
}

const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});
// Interrupted (Ctrl-C, a time limit's SIGTERM): exit, so that the line above runs; Node would otherwise die without it.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(128 + (signal === 'SIGINT' ? 2 : 15)));

/** The full path of `command` on PATH or in the sbin folders Debian puts daemons in (as test/support/local.ts finds it). */
export function findBinary(command: string): string {
  const dirs = [...(process.env['PATH'] ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin'].filter((dir) => dir !== '');
  for (const dir of dirs) {
    try {
      accessSync(join(dir, command), constants.X_OK);
      return join(dir, command);
    } catch {
      // Not in this directory.
    }
  }
  throw new Error(`the scale-out bench needs \`${command}\` (Debian: apt-get install ${command}); it is not on PATH nor in /usr/sbin`);
}

export async function startChild(name: string, command: string, args: string[], ready: RegExp, { readyMs = 20_000 } = {}): Promise<Child> {
  // Without OTEL_* variables: a worker that finds them would start exporting.
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('OTEL_')));
  // stdin is a pipe nobody writes to: a Node child ends when it closes, that is when the bench is gone.
  const child = spawn(command, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
  running.add(child);
  const exited = new Promise<void>((resolve) => child.once('exit', () => (running.delete(child), resolve())));
  const tail: string[] = [];
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 3_000);
    await exited;
    clearTimeout(timer);
  };
  try {
    const readyLine = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${name} was not ready within ${readyMs} ms:\n${tail.join('\n')}`)), readyMs);
      for (const stream of [child.stdout, child.stderr]) {
        createInterface({ input: stream }).on('line', (line) => {
          tail.push(line);
          if (tail.length > 20) tail.shift();
          if (ready.test(line)) {
            clearTimeout(timer);
            resolve(line);
          }
        });
      }
      child.once('error', (error) => (clearTimeout(timer), reject(error)));
      void exited.then(() => (clearTimeout(timer), reject(new Error(`${name} exited before it was ready:\n${tail.join('\n')}`))));
    });
    return { name, pid: child.pid as number, readyLine, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** Stops them all, reporting (not throwing) what fails, so that one failure leaves no process behind. */
export async function stopAll(children: Iterable<{ stop(): Promise<void> } | undefined>): Promise<void> {
  await Promise.all([...children].map((c) => c?.stop().catch((error: unknown) => console.error(`bench: stopping a process: ${(error as Error).message}`))));
}

let ticksPerSecond: number | undefined;
const msPerTick = () => {
  try {
    ticksPerSecond ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    ticksPerSecond = 100;
  }
  return 1000 / ticksPerSecond;
};

/** User + system CPU milliseconds `pid` has used so far (NaN where /proc cannot tell). */
export function cpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The fields after the command name (which may hold spaces): state is the first, utime the 12th, stime the 13th.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * msPerTick();
  } catch {
    return Number.NaN;
  }
}

/** CPU milliseconds every core of the machine spent busy (not idle, not waiting for I/O) so far, summed; NaN without /proc. */
export function machineCpuMs(): number {
  try {
    const [, ...values] = (readFileSync('/proc/stat', 'utf8').split('\n')[0] as string).trim().split(/\s+/);
    const [user, nice, system, , , irq, softirq, steal] = values.map(Number) as number[];
    return ((user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0) + (steal ?? 0)) * msPerTick();
  } catch {
    return Number.NaN;
  }
}
