/** A real winston logger whose output lines (after every format ran) are kept in memory. */
import { Writable } from 'node:stream';
import winston from 'winston';

export interface CapturedLogger {
  logger: winston.Logger;
  /** Every line the logger wrote, as written. */
  lines: string[];
  /** The lines, parsed. */
  records(): Array<Record<string, unknown>>;
}

export function captureLogger(level = 'silly', format: winston.Logform.Format = winston.format.json()): CapturedLogger {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString('utf8').split('\n')) if (line !== '') lines.push(line);
      callback();
    },
  });
  const logger = winston.createLogger({ level, format, transports: [new winston.transports.Stream({ stream })] });
  return { logger, lines, records: () => lines.map((line) => JSON.parse(line) as Record<string, unknown>) };
}
