/**
 * A token store in a JSON file, readable by its owner only (mode 0600), replaced
 * atomically: the new content goes to a temporary file in the same directory, is
 * flushed to disk, and is renamed over the old file — a crash mid-write leaves the
 * previous tokens intact, never half a file. An example of a durable store; a secrets
 * manager or the OS keychain is a better home in production.
 *
 * Like ssh with a private key, it refuses to read a file other users can read.
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { inspect } from 'node:util';
import { type StoredTokens, type TokenStore, validateStored } from './token-store.ts';

const FORMAT_VERSION = 1;

export class FileTokenStore implements TokenStore {
  readonly path: string;
  /** Saves run one after another: the last one to be asked for is the one that stays. */
  #saving: Promise<void> = Promise.resolve();

  constructor(path: string) {
    if (typeof path !== 'string' || path === '') throw new TypeError('FileTokenStore(path): expected a file path');
    this.path = path;
  }

  async load(): Promise<StoredTokens | undefined> {
    await this.#saving;
    let text: string;
    try {
      if (process.platform !== 'win32') {
        const { mode } = await stat(this.path);
        if ((mode & 0o077) !== 0) {
          throw new Error(
            `FileTokenStore: ${this.path} can be read by other users (mode ${(mode & 0o777).toString(8).padStart(4, '0')}); ` +
              `it holds credentials: run chmod 600 on it`,
          );
        }
      }
      text = await readFile(this.path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      // Never quote the content: it holds secrets.
      throw new Error(`FileTokenStore: ${this.path} is not valid JSON`);
    }
    const file = parsed as { version?: unknown; tokens?: unknown } | null;
    if (typeof file !== 'object' || file === null || file.version !== FORMAT_VERSION) {
      throw new Error(`FileTokenStore: ${this.path} is not a token file of format version ${FORMAT_VERSION}`);
    }
    return validateStored(file.tokens, `FileTokenStore: ${this.path}`);
  }

  save(tokens: StoredTokens): Promise<void> {
    const next = this.#saving.then(() => this.#write(tokens));
    // A failed save must not block the ones after it; the caller still sees its own failure.
    this.#saving = next.catch(() => {});
    return next;
  }

  async #write(tokens: StoredTokens): Promise<void> {
    const dir = dirname(this.path);
    const temp = join(dir, `.${basename(this.path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
    const content = `${JSON.stringify({ version: FORMAT_VERSION, tokens }, null, 2)}\n`;
    const handle = await open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
    try {
      try {
        // The umask can only remove bits, but be explicit: the file must be 0600 before it has content.
        await handle.chmod(0o600);
        await handle.writeFile(content, 'utf8');
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temp, this.path);
    } catch (error) {
      await unlink(temp).catch(() => {});
      throw error;
    }
    await syncDirectory(dir);
  }

  toString(): string {
    return `FileTokenStore { ${this.path} }`;
  }

  toJSON(): string {
    return this.toString();
  }

  [inspect.custom](): string {
    return this.toString();
  }
}

/** Makes the rename itself durable. Best effort: not every platform can open a directory. */
async function syncDirectory(dir: string): Promise<void> {
  if (process.platform === 'win32') return;
  let handle;
  try {
    handle = await open(dir, constants.O_RDONLY);
    await handle.sync();
  } catch {
    // The rename is still atomic; only its durability across a power loss is weaker.
  } finally {
    await handle?.close();
  }
}
