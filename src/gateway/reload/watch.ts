/**
 * `--watch`: a config file's content changed. The directory is watched, not the file:
 * editors save by writing a new file and renaming it over the old one, and a Kubernetes
 * ConfigMap volume swaps a symlink beside it — either way the watched inode of the file
 * itself is gone after the first change. Events come in bursts (write, rename, chmod), so
 * they settle for `settleMs` before the file is read; a burst that leaves the bytes as
 * they were (a `touch`, a save without changes) is not a change.
 */
import { createHash } from 'node:crypto';
import { type FSWatcher, readFileSync, watch } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';

export interface ConfigWatch {
  close(): void;
}

export interface WatchOptions {
  /** How long events must stop before the file is read (default 100 ms). */
  readonly settleMs?: number;
  /** A watcher that fails (the directory went away): reported, and the watch ends. */
  readonly onerror?: (error: Error) => void;
}

export function watchConfigFile(path: string, onchange: () => void, options: WatchOptions = {}): ConfigWatch {
  const file = resolve(path);
  const settleMs = options.settleMs ?? 100;
  let last = digest(file);
  let timer: NodeJS.Timeout | undefined;
  const settle = () => {
    timer = undefined;
    const now = digest(file);
    // A file that cannot be read right now (mid-rename) is read again on the next event.
    if (now === undefined || now === last) return;
    last = now;
    onchange();
  };
  const watcher: FSWatcher = watch(dirname(file), { persistent: false }, (_event, name) => {
    // Some platforms give no name; a ConfigMap's swap names `..data`, not the file.
    if (name !== null && name !== basename(file) && !name.startsWith('..')) return;
    clearTimeout(timer);
    timer = setTimeout(settle, settleMs);
    timer.unref();
  });
  watcher.on('error', (error) => {
    clearTimeout(timer);
    watcher.close();
    options.onerror?.(error);
  });
  return {
    close() {
      clearTimeout(timer);
      watcher.close();
    },
  };
}

function digest(file: string): string | undefined {
  try {
    return createHash('sha256').update(readFileSync(file)).digest('hex');
  } catch {
    return undefined;
  }
}
