/** FileTokenStore: owner-only permissions, atomic replacement, and errors that never quote the file. */
import { chmod, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FileTokenStore } from '#middleware/oauth/oauth.ts';

const posix = process.platform !== 'win32';
let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mcp-layers-tokens-'));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('FileTokenStore', () => {
  it('loads nothing before the first save, then what was saved', async () => {
    const store = new FileTokenStore(join(dir, 'tokens.json'));
    expect(await store.load()).toBeUndefined();
    await store.save({ accessToken: 'at-1-secret-value', expiresAt: 1_900_000_000_000, refreshToken: 'rt-1-secret-value', tokenType: 'bearer' });
    expect(await store.load()).toEqual({ accessToken: 'at-1-secret-value', expiresAt: 1_900_000_000_000, refreshToken: 'rt-1-secret-value', tokenType: 'bearer', scope: undefined });
  });

  it.runIf(posix)('writes the file with mode 0600, replacing a looser one, and leaves no temporary file', async () => {
    const path = join(dir, 'tokens.json');
    await writeFile(path, '{}', { mode: 0o644 });
    const store = new FileTokenStore(path);
    await store.save({ refreshToken: 'rt-1-secret-value' });
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect(await readdir(dir)).toEqual(['tokens.json']);
  });

  it('the last of overlapping saves wins, and every save is a whole file', async () => {
    const path = join(dir, 'tokens.json');
    const store = new FileTokenStore(path);
    await Promise.all(Array.from({ length: 20 }, (_, i) => store.save({ refreshToken: `rt-${i}-${'x'.repeat(2000)}` })));
    expect((await store.load())?.refreshToken).toBe(`rt-19-${'x'.repeat(2000)}`);
    expect(await readdir(dir)).toEqual(['tokens.json']);
    expect(JSON.parse(await readFile(path, 'utf8'))).toMatchObject({ version: 1 });
  });

  it('a failed save keeps the previous tokens and does not block later saves', async () => {
    const path = join(dir, 'tokens.json');
    const store = new FileTokenStore(path);
    await store.save({ refreshToken: 'rt-1-secret-value' });
    const broken = new FileTokenStore(join(dir, 'missing-dir', 'tokens.json'));
    await expect(broken.save({ refreshToken: 'rt-2-secret-value' })).rejects.toThrow(/ENOENT/);
    expect((await store.load())?.refreshToken).toBe('rt-1-secret-value');
    await store.save({ refreshToken: 'rt-3-secret-value' });
    expect((await store.load())?.refreshToken).toBe('rt-3-secret-value');
  });

  it.runIf(posix)('refuses to read a file other users can read, like ssh does', async () => {
    const path = join(dir, 'tokens.json');
    const store = new FileTokenStore(path);
    await store.save({ refreshToken: 'rt-1-secret-value' });
    await chmod(path, 0o644);
    await expect(store.load()).rejects.toThrow(`FileTokenStore: ${path} can be read by other users (mode 0644); it holds credentials: run chmod 600 on it`);
  });

  it('says what is wrong with a damaged file without quoting it', async () => {
    const path = join(dir, 'tokens.json');
    await writeFile(path, '{"version":1,"tokens":{"refreshToken":"rt-1-secret-value"', { mode: 0o600 });
    const store = new FileTokenStore(path);
    const error = await store.load().then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(error?.message).toBe(`FileTokenStore: ${path} is not valid JSON`);
    await writeFile(path, JSON.stringify({ version: 1, tokens: { refreshToken: 42 } }), { mode: 0o600 });
    await expect(store.load()).rejects.toThrow(`FileTokenStore: ${path}: "refreshToken" must be a string`);
    await writeFile(path, JSON.stringify({ refreshToken: 'rt-1-secret-value' }), { mode: 0o600 });
    await expect(store.load()).rejects.toThrow(`FileTokenStore: ${path} is not a token file of format version 1`);
  });

  it('prints its path, never its content', async () => {
    const store = new FileTokenStore(join(dir, 'tokens.json'));
    await store.save({ refreshToken: 'rt-1-secret-value' });
    expect(inspect(store)).toBe(`FileTokenStore { ${join(dir, 'tokens.json')} }`);
    expect(JSON.stringify({ store })).not.toContain('rt-1');
  });
});
