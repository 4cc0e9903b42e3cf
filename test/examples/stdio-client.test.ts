/** examples/stdio-client.ts: a wrapped stdio client of the wrapped example server. */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';

it('runs with plain node: every exchange goes through standard() and nothing is left open', async () => {
  const { stdout } = await promisify(execFile)(process.execPath, ['examples/stdio-client.ts'], { timeout: 20_000 });
  expect(stdout).toMatch(/^ {2}tools\/call add +ok +attempts=1 /m);
  // The last progress can share a read with the response and be dropped by the SDK (a known race).
  expect(stdout).toMatch(/progress 1\/3\n[^]* {2}tools\/call slow_report +ok/);
  expect(stdout).toContain('add(20, 22) = 42');
  expect(stdout).toContain('slow_report: report ready after 3 steps');
  expect(stdout).toContain('note 1: Welcome');
  expect(stdout).toContain('open exchanges after the run: {"outbound":0,"attempts":0,"progressTokens":0,"inbound":0,"queued":0}');
});
