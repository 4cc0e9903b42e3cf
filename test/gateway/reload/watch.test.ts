/** `--watch`: a change of the file's bytes is one change, however the file is saved. */
import { mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type ConfigWatch, watchConfigFile } from '#gateway/reload/watch.ts';

const watches: ConfigWatch[] = [];
afterEach(() => {
  for (const watch of watches.splice(0)) watch.close();
});

function watched(initial: string) {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-layers-watch-'));
  const file = join(dir, 'mcp-layers.yaml');
  writeFileSync(file, initial);
  let changes = 0;
  const waiters: Array<() => void> = [];
  watches.push(
    watchConfigFile(
      file,
      () => {
        changes++;
        for (const wake of waiters.splice(0)) wake();
      },
      { settleMs: 20 },
    ),
  );
  const nextChange = () => new Promise<void>((resolve) => waiters.push(resolve));
  return { dir, file, changes: () => changes, nextChange };
}

describe('watchConfigFile', () => {
  it('reports a write in place', async () => {
    const w = watched('a: 1\n');
    const change = w.nextChange();
    writeFileSync(w.file, 'a: 2\n');
    await change;
    expect(w.changes()).toBe(1);
  });

  it('reports a save by rename (how editors and ConfigMaps replace a file), and keeps watching after it', async () => {
    const w = watched('a: 1\n');
    let change = w.nextChange();
    writeFileSync(join(w.dir, '.mcp-layers.yaml.tmp'), 'a: 2\n');
    renameSync(join(w.dir, '.mcp-layers.yaml.tmp'), w.file);
    await change;
    change = w.nextChange();
    writeFileSync(w.file, 'a: 3\n');
    await change;
    expect(w.changes()).toBe(2);
  });

  it('a save that leaves the bytes as they were is no change: the next real change is the first one', async () => {
    const w = watched('a: 1\n');
    const change = w.nextChange();
    writeFileSync(w.file, 'a: 1\n');
    writeFileSync(join(w.dir, 'other.txt'), 'not the config');
    writeFileSync(w.file, 'a: 1\n');
    writeFileSync(w.file, 'a: 2\n');
    await change;
    expect(w.changes()).toBe(1);
  });
});
