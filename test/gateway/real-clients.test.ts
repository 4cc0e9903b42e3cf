/**
 * A real client nobody here wrote: mcp-remote (the stdio bridge desktop apps use to reach
 * a remote MCP server), in front of the gateway, with an SDK client on its stdio. It
 * opens more than one session per run and leaves without DELETE when its stdin closes;
 * with the gateway's defaults for such clients (docs/gateway.md "Sessions") nothing it
 * opened outlives `detachedTimeoutMs`, and no child process is left behind.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { afterAll, afterEach, expect, it } from 'vitest';
import type { GatewayEvents } from '#gateway/gateway.ts';
import { closeAll, DEMO_SERVER, isAlive, startTestGateway, type TestGateway } from '../support/gateway.ts';

const MCP_REMOTE = join(dirname(createRequire(import.meta.url).resolve('mcp-remote/package.json')), 'dist/proxy.js');
// mcp-remote keeps its state under ~/.mcp-auth: a home of its own keeps the user's untouched.
const home = mkdtempSync(join(tmpdir(), 'mcp-layers-mcp-remote-'));
afterAll(() => rmSync(home, { recursive: true, force: true }));

let gw: TestGateway | undefined;
const clients: Client[] = [];
afterEach(() => closeAll(clients, gw).then(() => (gw = undefined)));

type Closed = GatewayEvents['session-close'][0];

it('mcp-remote: calls go through, and every session it leaves behind is reclaimed after detachedTimeoutMs, children and all', async () => {
  gw = await startTestGateway({ upstream: { command: process.execPath, args: [DEMO_SERVER] }, downstream: { detachedTimeoutMs: 1_000 } });
  const gateway = gw;
  const closes: Closed[] = [];
  const children = new Set<number>();
  gateway.gateway.on('session-close', (event) => closes.push(event));

  const client = new Client({ name: 'behind-mcp-remote', version: '1.0.0' });
  clients.push(client);
  await client.connect(new StdioClientTransport({ command: process.execPath, args: [MCP_REMOTE, gateway.http, '--transport', 'http-only'], env: { HOME: home, PATH: process.env['PATH'] ?? '' }, stderr: 'ignore' }));
  expect(await client.callTool({ name: 'echo', arguments: { text: 'through mcp-remote' } })).toEqual({ content: [{ type: 'text', text: 'through mcp-remote' }] });
  for (const session of gateway.gateway.sessions) {
    const pid = (session.upstream?.inner as { pid?: number | null } | undefined)?.pid;
    if (typeof pid === 'number') children.add(pid);
  }
  expect(children.size).toBeGreaterThan(0);

  // What a desktop app does when it quits: close mcp-remote's stdin. It sends no DELETE.
  const allClosed = new Promise<void>((resolve) => {
    const check = () => {
      if (gateway.gateway.sessions.size > 0) return;
      gateway.gateway.off('session-close', check);
      resolve();
    };
    gateway.gateway.on('session-close', check);
    check();
  });
  await client.close();
  await allClosed;
  expect(closes.map((c) => c.reason)).toContain('detached');
  expect(closes.map((c) => c.reason).filter((reason) => reason !== 'detached' && reason !== 'downstream-closed')).toEqual([]);
  expect([...children].filter(isAlive)).toEqual([]);
}, 60_000);
