/**
 * A real client nobody here wrote: mcp-remote (the stdio bridge desktop apps use to reach
 * a remote MCP server), in front of the gateway, with an SDK client on its stdio. It
 * opens more than one session per run and leaves without DELETE when its stdin closes;
 * with the gateway's defaults for such clients (docs/gateway.md "Sessions") nothing it
 * opened outlives `detachedTimeoutMs`, and no child process is left behind. With
 * `downstream.jsonResponses` it reads the gateway's JSON bodies as well as its event streams.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
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

/** An HTTP hop in front of `target` that records the content type of every response. */
async function recordingHop(target: string): Promise<{ url: string; types: string[]; close(): Promise<void> }> {
  const types: string[] = [];
  const to = new URL(target);
  const server = http.createServer((req, res) => {
    const forwarded = http.request({ host: to.hostname, port: to.port, path: req.url, method: req.method, headers: { ...req.headers, host: to.host } }, (answer) => {
      types.push(String(answer.headers['content-type']));
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    forwarded.on('error', () => res.destroy());
    req.pipe(forwarded);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}${to.pathname}`, types, close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        // The client's GET stream stays open until mcp-remote exits.
        server.closeAllConnections();
      }),
  };
}

it('mcp-remote with downstream.jsonResponses: it reads the JSON bodies, lists and calls tools, and progress still streams', async () => {
  gw = await startTestGateway({ upstream: { command: process.execPath, args: [DEMO_SERVER] }, downstream: { jsonResponses: true } });
  const hop = await recordingHop(gw.http);
  try {
    const client = new Client({ name: 'behind-mcp-remote', version: '1.0.0' });
    clients.push(client);
    await client.connect(new StdioClientTransport({ command: process.execPath, args: [MCP_REMOTE, hop.url, '--transport', 'http-only'], env: { HOME: home, PATH: process.env['PATH'] ?? '' }, stderr: 'ignore' }));
    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name)).toContain('echo');
    expect(await client.callTool({ name: 'echo', arguments: { text: 'json through mcp-remote' } })).toEqual({ content: [{ type: 'text', text: 'json through mcp-remote' }] });
    const progress: number[] = [];
    const report = await client.callTool({ name: 'slow_report', arguments: { steps: 3, stepMs: 10 } }, undefined, { onprogress: (p) => void progress.push(p.progress) });
    expect(report).toEqual({ content: [{ type: 'text', text: 'report ready after 3 steps' }] });
    // The last progress may share a read with the response, which the SDK then drops (test/gateway/sdk-clients.test.ts).
    expect(progress.slice(0, 2)).toEqual([1, 2]);
    expect(hop.types).toContain('application/json');
    expect(hop.types).toContain('text/event-stream');
  } finally {
    await hop.close();
  }
}, 60_000);
