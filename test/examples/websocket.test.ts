import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);

describe('examples/websocket.ts', () => {
  it('runs with plain node: the same client is answered by both server generations', async () => {
    const { stdout } = await run(process.execPath, ['examples/websocket.ts'], { timeout: 20_000 });
    expect(stdout).toContain('hello ada, this is server generation 1');
    expect(stdout).toMatch(/connection closed \(1001: server shutting down\)/);
    expect(stdout).toMatch(/reconnect attempt \d+: connected/);
    expect(stdout).toContain('hello ada, this is server generation 2');
  });
});
