/** examples/http-fetch.ts: createFetch() under the SDK's Streamable HTTP client, listenHttp() serving. */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';

it('runs with plain node: a session over pooled, compressed HTTP', async () => {
  const { stdout } = await promisify(execFile)(process.execPath, ['examples/http-fetch.ts'], { timeout: 20_000 });
  expect(stdout).toContain('short: hi hi hi');
  expect(stdout).toContain('long: 25999 characters');
  const [, before, after] = /server → client bytes: (\d+) before compression, (\d+) after/.exec(stdout) ?? [];
  expect(Number(after)).toBeLessThan(Number(before) / 10);
  expect(stdout).toContain('session established, protocol 2025-11-25');
});
