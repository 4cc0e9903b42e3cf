/** The docs' layer-order example runs and says what docs/layers.md claims it says. */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';

it('examples/layer-order.ts: retry outside timeout recovers, timeout outside retry does not', async () => {
  const { stdout } = await promisify(execFile)(process.execPath, ['examples/layer-order.ts'], { timeout: 20_000 });
  const [outside, inside] = stdout.trim().split('\n');
  expect(outside).toMatch(/^\[retry, timeout\] +answered on call 3 — after \d+ ms; the server ran it 3×$/);
  expect(inside).toMatch(/^\[timeout, retry\] +failed: MCP error -32001: tools\/call lookup timed out after 300 ms — after \d+ ms; the server ran it 1×$/);
});
