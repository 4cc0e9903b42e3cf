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
import { STDIO_DEFAULT_MAX_BUFFER_SIZE } from '@modelcontextprotocol/sdk/shared/stdio.js';
import type { ChildProcess } from 'node:child_process';
import type { Writable } from 'node:stream';
import type { JSONRPCMessage } from '../core/jsonrpc.ts';
import { Redactor } from '../../middleware/observability/redact.ts';
import { TurnCork } from './turn-cork.ts';

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
  #stdin: Writable | undefined;
  /** Holds what a turn writes to stdin for one write at its end. */
  #cork: TurnCork | undefined;
  /** While the pipe is full: resolves when it drains (one listener, however many messages wait). */
  #drained: Promise<void> | undefined;

  constructor(params: Omit<StdioServerParameters, 'stderr'>, mode: StderrMode, onLine: (line: string) => void) {
    super({ ...params, stderr: 'pipe' });
    // The SDK's buffer copies what it holds on every chunk and checks each message with zod
    // before the core checks it again (shape, depth, "__proto__"): this one splits lines and
    // parses them, nothing more. If a later SDK renames the field, its own buffer stays.
    const own = this as unknown as { _readBuffer?: unknown };
    if (typeof own._readBuffer === 'object' && own._readBuffer !== null) own._readBuffer = new LineBuffer(STDIO_DEFAULT_MAX_BUFFER_SIZE);
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
    this.#stdin = child?.stdin ?? undefined;
    this.#cork = this.#stdin === undefined ? undefined : new TurnCork(this.#stdin);
  }

  /**
   * Writes the message to the child's stdin, in order. Messages sent within one turn of the
   * event loop — the requests of every client the gateway read in that turn, a client's
   * batch — go to the pipe in one write (turn-cork.ts).
   *
   * One `drain` listener however many messages wait for a full pipe: the SDK's send() adds
   * one per message, and the gateway forwards each item of a client's batch as its own
   * send, so 10 000 of them would pile 10 000 listeners on one stream (and a
   * MaxListenersExceededWarning in plain text among the JSON logs).
   */
  override send(message: JSONRPCMessage): Promise<void> {
    const stdin = this.#stdin;
    if (stdin === undefined || this.#stopping || stdin.destroyed || (this as unknown as { _process?: unknown })._process === undefined) {
      if (stdin === undefined && !this.#stopping) return super.send(message);
      return Promise.reject(new Error('Not connected'));
    }
    this.#cork?.hold();
    if (stdin.write(`${JSON.stringify(message)}\n`)) return this.#drained ?? Promise.resolve();
    this.#drained ??= new Promise<void>((resolve) => {
      const done = () => {
        stdin.off('drain', done);
        stdin.off('close', done);
        this.#drained = undefined;
        resolve();
      };
      stdin.on('drain', done);
      stdin.on('close', done);
    });
    return this.#drained;
  }

  override async close(): Promise<void> {
    this.#stopping = true;
    // What is still held goes before stdin closes (MCP's stdio shutdown).
    this.#cork?.release();
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

/**
 * The SDK's ReadBuffer interface (append, readMessage, clear) over newline-delimited JSON:
 * chunks are kept as they came and joined only when a line spans them. What is not JSON
 * throws from readMessage, which the SDK reports to onerror, as it reports its own
 * buffer's failures; what is JSON goes to the core, which checks every message once.
 */
class LineBuffer {
  readonly #max: number;
  #chunks: Buffer[] = [];
  #size = 0;

  constructor(max: number) {
    this.#max = max;
  }

  append(chunk: Buffer): void {
    if (this.#size + chunk.length > this.#max) {
      this.clear();
      throw new Error(`ReadBuffer exceeded maximum size of ${this.#max} bytes`);
    }
    this.#chunks.push(chunk);
    this.#size += chunk.length;
  }

  readMessage(): JSONRPCMessage | null {
    const chunks = this.#chunks;
    if (chunks.length === 0) return null;
    let first = chunks[0] as Buffer;
    let end = first.indexOf(0x0a);
    if (end === -1) {
      if (chunks.length === 1) return null;
      first = Buffer.concat(chunks);
      chunks.length = 0;
      chunks.push(first);
      end = first.indexOf(0x0a);
      if (end === -1) return null;
    }
    const stop = end > 0 && first[end - 1] === 0x0d ? end - 1 : end;
    const line = first.toString('utf8', 0, stop);
    if (end + 1 === first.length) chunks.shift();
    else chunks[0] = first.subarray(end + 1);
    this.#size -= end + 1;
    return JSON.parse(line) as JSONRPCMessage;
  }

  clear(): void {
    this.#chunks = [];
    this.#size = 0;
  }
}

/** "exited with code 3 <when>; its last stderr line: boom", "was killed by SIGKILL <when>". */
export function describeExit(exit: ChildExit, when = ''): string {
  const how = exit.signal !== null ? `was killed by ${exit.signal}` : `exited with code ${exit.exitCode ?? 'unknown'}`;
  const last = exit.stderr.at(-1);
  return `${how}${when === '' ? '' : ` ${when}`}${last === undefined ? '' : `; its last stderr line: ${last}`}`;
}

/** How the child ended, as error data (`exitCode`, `signal`, `stderr`: docs/errors.md). */
export function exitData(exit: ChildExit): Record<string, unknown> {
  return { exitCode: exit.exitCode, signal: exit.signal, stderr: exit.stderr };
}
