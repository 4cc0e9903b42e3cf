/**
 * A stdio upstream's child process, watched so that when it ends on its own the gateway
 * can say why: its exit code or signal, and the last lines it wrote to stderr (bounded,
 * redacted). "Connection closed" tells a user nothing; "exited with code 3: boom" does.
 *
 * The child's stderr is always piped (never inherited) so its tail can be kept; what the
 * config asked for still happens to every line: `inherit` writes it to the gateway's
 * stderr, `log` makes a log record of it, `ignore` only keeps the tail.
 */
import { StdioClientTransport, type StdioServerParameters } from '@modelcontextprotocol/sdk/client/stdio.js';
import type { ChildProcess } from 'node:child_process';
import { Redactor } from '../../middleware/observability/redact.ts';

/** How the child ended, when it ended on its own (the gateway did not stop it). */
export interface ChildExit {
  readonly exitCode: number | null;
  readonly signal: NodeJS.Signals | null;
  /** Its last stderr lines, oldest first, redacted; at most STDERR_TAIL_LINES of STDERR_LINE_CHARS each. */
  readonly stderr: readonly string[];
}

export const STDERR_TAIL_LINES = 10;
export const STDERR_LINE_CHARS = 500;

export type StderrMode = 'inherit' | 'ignore' | 'log';

const redactor = new Redactor();

/**
 * The SDK's StdioClientTransport, plus the child's exit status. The SDK keeps the
 * ChildProcess private and passes on neither code nor signal, so the one place this reads
 * its internals is `_process`, right after start(); if a later SDK renames it, exits are
 * still reported, only without a code.
 */
export class WatchedStdioTransport extends StdioClientTransport {
  // Messages that name a transport ("StdioClientTransport cannot carry batches") name the SDK class a user knows.
  static {
    Object.defineProperty(this, 'name', { value: 'StdioClientTransport' });
  }

  readonly #tail: string[] = [];
  #partial = '';
  #exit: { exitCode: number | null; signal: NodeJS.Signals | null } | undefined;
  #stopping = false;
  #writing: Promise<void> = Promise.resolve();

  constructor(params: Omit<StdioServerParameters, 'stderr'>, mode: StderrMode, onLine: (line: string) => void) {
    super({ ...params, stderr: 'pipe' });
    this.stderr?.on('data', (chunk: Buffer) => {
      if (mode === 'inherit') process.stderr.write(chunk);
      this.#collect(chunk.toString('utf8'), mode === 'log' ? onLine : undefined);
    });
  }

  override async start(): Promise<void> {
    await super.start();
    const child = (this as unknown as { _process?: ChildProcess })._process;
    child?.once('exit', (exitCode, signal) => {
      this.#exit = { exitCode, signal };
    });
  }

  /**
   * One write at a time, in order. The SDK's send() adds a `drain` listener to the pipe for
   * every message written while it is full; the gateway forwards each item of a client's
   * batch as its own send, so 10 000 of them would pile 10 000 listeners on one stream
   * (and a MaxListenersExceededWarning in plain text among the JSON logs).
   */
  override send(...args: Parameters<StdioClientTransport['send']>): Promise<void> {
    const sent = this.#writing.then(() => super.send(...args));
    this.#writing = sent.catch(() => {});
    return sent;
  }

  override async close(): Promise<void> {
    this.#stopping = true;
    await super.close();
  }

  /** How the child ended, if it ended without the gateway stopping it; else undefined. */
  get exit(): ChildExit | undefined {
    if (this.#stopping || this.#exit === undefined) return undefined;
    const stderr = this.#partial === '' ? [...this.#tail] : [...this.#tail, this.#clip(this.#partial)].slice(-STDERR_TAIL_LINES);
    return { ...this.#exit, stderr };
  }

  #collect(text: string, onLine: ((line: string) => void) | undefined): void {
    const lines = (this.#partial + text).split(/\r?\n/);
    this.#partial = lines.pop() ?? '';
    if (this.#partial.length > STDERR_LINE_CHARS) this.#partial = this.#partial.slice(0, STDERR_LINE_CHARS);
    for (const line of lines) {
      if (line === '') continue;
      onLine?.(line);
      this.#tail.push(this.#clip(line));
      if (this.#tail.length > STDERR_TAIL_LINES) this.#tail.shift();
    }
  }

  #clip(line: string): string {
    const clean = redactor.text(line);
    return clean.length > STDERR_LINE_CHARS ? `${clean.slice(0, STDERR_LINE_CHARS)}…` : clean;
  }
}

/** "exited with code 3 <when>; its last stderr line: boom", "was killed by SIGKILL <when>". */
export function describeExit(exit: ChildExit, when = ''): string {
  const how = exit.signal !== null ? `was killed by ${exit.signal}` : `exited with code ${exit.exitCode ?? 'unknown'}`;
  const last = exit.stderr.at(-1);
  return `${how}${when === '' ? '' : ` ${when}`}${last === undefined ? '' : `; its last stderr line: ${last}`}`;
}
