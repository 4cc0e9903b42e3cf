import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);

describe('examples/quickstart.ts', () => {
  it('runs with plain node and prints what flowed through both wrapped sides', async () => {
    const { stdout } = await run(process.execPath, ['examples/quickstart.ts'], { timeout: 20_000 });
    expect(stdout).toMatch(/client → request\s+tools\/call add\s+ok/);
    expect(stdout).toMatch(/server ← request\s+tools\/call add\s+ok/);
    expect(stdout).toContain('add(2, 3) = 5');
    expect(stdout).toContain('greeting: Hello from the server');
    expect(stdout).toContain('open exchanges after the run: {"outbound":0,"attempts":0,"progressTokens":0,"inbound":0,"queued":0}');
  });
});
