/**
 * The gateway's logger (winston): the `logging` layers of both stacks write to it, and
 * so does the gateway itself (sessions, children, shutdown). Records go to stderr —
 * stdout is left to what a person reads (the banner) — as JSON lines, or as one
 * readable line each:
 *
 *   {"level":"info","message":"session opened","event":"session-open","session":"4f0c…","timestamp":"…"}
 *   12:04:31.207 info  session opened  event=session-open session=4f0c…
 */
import type { Writable } from 'node:stream';
import { inspect } from 'node:util';
import winston from 'winston';
import { LinesPerTurn } from './log-stream.ts';

export type LogFormat = 'json' | 'pretty';
export type LogLevel = 'error' | 'warn' | 'info' | 'http' | 'verbose' | 'debug' | 'silly';

export type GatewayLogger = winston.Logger;

export interface GatewayLoggerOptions {
  level?: LogLevel;
  format?: LogFormat;
  stream?: Writable;
}

const HIDDEN = new Set(['level', 'message', 'timestamp']);

export function createGatewayLogger(options?: GatewayLoggerOptions): GatewayLogger {
  const o = options ?? {};
  const stream = o.stream ?? process.stderr;
  const colors = o.format === 'pretty' && (stream as { isTTY?: boolean }).isTTY === true;
  const format =
    o.format === 'pretty'
      ? winston.format.combine(
          winston.format.timestamp({ format: 'HH:mm:ss.SSS' }),
          winston.format.printf((info) => {
            const fields = Object.entries(info)
              .filter(([key]) => !HIDDEN.has(key))
              .map(([key, value]) => `${key}=${typeof value === 'string' ? (/\s/.test(value) ? JSON.stringify(value) : value) : inspect(value, { breakLength: Infinity, depth: 4, colors })}`)
              .join(' ');
            const level = colors ? colorize(info.level) : info.level.padEnd(5);
            return `${String(info['timestamp'])} ${level} ${String(info.message)}${fields === '' ? '' : `  ${fields}`}`;
          }),
        )
      : winston.format.combine(winston.format.timestamp(), winston.format.json());
  // The process's own stderr gets a write per turn; a stream the caller passes (a test's, a file's) gets each line as written.
  const sink = stream === process.stderr ? new LinesPerTurn(stream) : stream;
  return winston.createLogger({ level: o.level ?? 'info', format, transports: [new winston.transports.Stream({ stream: sink })] });
}

function colorize(level: string): string {
  const code = level === 'error' ? 31 : level === 'warn' ? 33 : level === 'info' ? 36 : 90;
  return `\u001b[${code}m${level.padEnd(5)}\u001b[39m`;
}
