import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { LinesPerTurn } from '../../src/gateway/log-stream.ts';

/** A target that records each write it gets, as the chunks of that write. */
function recorder() {
  const writes: string[][] = [];
  let notify: (() => void) | undefined;
  const target = new Writable({
    highWaterMark: 64,
    writev(chunks, callback) {
      writes.push(chunks.map((c) => String(c.chunk)));
      notify?.();
      callback();
    },
    write(chunk, _encoding, callback) {
      writes.push([String(chunk)]);
      notify?.();
      callback();
    },
  });
  const nextWrite = () => new Promise<void>((resolve) => (notify = resolve));
  return { target, writes, nextWrite };
}

describe('LinesPerTurn (the gateway logger on stderr)', () => {
  it('writes what one turn logged in one write, in order, at the end of the turn', async () => {
    const { target, writes, nextWrite } = recorder();
    const lines = new LinesPerTurn(target);
    const written = nextWrite();
    lines.write('a\n');
    lines.write('b\n');
    lines.write('c\n');
    expect(writes).toEqual([]);
    await written;
    expect(writes).toEqual([['a\n', 'b\n', 'c\n']]);

    // The next turn's lines are a write of their own.
    const again = nextWrite();
    lines.write('d\n');
    await again;
    expect(writes).toEqual([['a\n', 'b\n', 'c\n'], ['d\n']]);
  });

  it('writes at once when flushed (as on exit)', () => {
    const { target, writes } = recorder();
    const lines = new LinesPerTurn(target);
    lines.write('x\n');
    lines.write('y\n');
    lines.flush();
    expect(writes).toEqual([['x\n', 'y\n']]);
  });

  it('holds its writer back while the target is full, losing nothing', async () => {
    const { target, writes } = recorder();
    const lines = new LinesPerTurn(target);
    const line = `${'z'.repeat(40)}\n`;
    let drains = 0;
    target.on('drain', () => drains++);
    // Past the target's highWaterMark (64 bytes) within one turn: the writer waits for its drain.
    for (let i = 0; i < 5; i++) lines.write(line);
    const finished = new Promise<void>((resolve) => lines.once('finish', resolve));
    lines.end();
    await finished;
    expect(drains).toBeGreaterThan(0);
    expect(writes.flat()).toEqual(Array.from({ length: 5 }, () => line));
  });
});
