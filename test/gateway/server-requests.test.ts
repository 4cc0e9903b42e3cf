/**
 * A request the upstream server sends while the client has no stream open — over
 * Streamable HTTP the client's GET stream opens only after `notifications/initialized`,
 * and server-filesystem asks `roots/list` the moment that notification arrives. The
 * SDK's HTTP server transport drops a message it has no stream for, silently; the gateway
 * holds it until the GET stream (or a request's stream) opens, and answers the server
 * with an error if none opens in time (docs/gateway.md "Sessions").
 */
import { mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ListRootsRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { closeAll, startTestGateway, type TestGateway } from '../support/gateway.ts';

const FILESYSTEM_SERVER = createRequire(import.meta.url).resolve('@modelcontextprotocol/server-filesystem/dist/index.js');
const serverDir = realpathSync(mkdtempSync(join(tmpdir(), 'mcp-layers-fs-server-')));
const clientRoot = realpathSync(mkdtempSync(join(tmpdir(), 'mcp-layers-fs-root-')));
afterAll(() => {
  rmSync(serverDir, { recursive: true, force: true });
  rmSync(clientRoot, { recursive: true, force: true });
});

let gw: TestGateway | undefined;
const clients: Client[] = [];
afterEach(() => closeAll(clients, gw).then(() => (gw = undefined)));

function filesystemGateway(downstream: Record<string, unknown> = {}): Promise<TestGateway> {
  // stderr as log records: the server says there what it did with the roots it was (or was not) given.
  return startTestGateway({ upstream: { command: process.execPath, args: [FILESYSTEM_SERVER, serverDir], stderr: 'log' }, downstream }, 'debug');
}

/** A roots-capable SDK client whose roots handler reports each call. */
function rootsClient(onRoots: () => void): Client {
  const client = new Client({ name: 'roots-client', version: '1.0.0' }, { capabilities: { roots: { listChanged: true } } });
  client.setRequestHandler(ListRootsRequestSchema, () => {
    onRoots();
    return { roots: [{ uri: pathToFileURL(clientRoot).href, name: 'client root' }] };
  });
  clients.push(client);
  return client;
}

/** A fetch for the SDK client that holds its GET (the standalone stream) until `release` resolves. */
function fetchHoldingGet(release: Promise<unknown>): typeof fetch {
  return async (input, init) => {
    if ((init?.method ?? 'GET') === 'GET') await release;
    return fetch(input, init);
  };
}

const allowedDirectories = async (client: Client) => {
  const result = (await client.callTool({ name: 'list_allowed_directories', arguments: {} })) as { content: Array<{ text: string }> };
  return result.content[0]?.text ?? '';
};

describe('a server request sent before the client opens its GET stream (server-filesystem roots/list)', () => {
  it('is held until the GET stream opens, then reaches the client, and the server uses the client\'s roots', async () => {
    gw = await filesystemGateway();
    const gateway = gw;
    const held = gateway.waitForLog((r) => r['event'] === 'held-for-stream');
    let rootsCalls = 0;
    const client = rootsClient(() => rootsCalls++);
    await client.connect(new StreamableHTTPClientTransport(new URL(gateway.http), { fetch: fetchHoldingGet(held) }));
    await gateway.waitForLog((r) => r['event'] === 'upstream-stderr' && /Updated allowed directories from MCP roots: 1 valid/.test(String(r['message'])));
    expect(rootsCalls).toBe(1);
    expect(await allowedDirectories(client)).toContain(clientRoot);
    expect(await allowedDirectories(client)).not.toContain(serverDir);
  });

  it('reaches the client in every one of 8 sessions opened as a plain SDK client opens them', async () => {
    gw = await filesystemGateway();
    const gateway = gw;
    const sessions = await Promise.all(
      Array.from({ length: 8 }, async () => {
        let asked!: () => void;
        const askedForRoots = new Promise<void>((resolve) => (asked = resolve));
        const client = rootsClient(() => asked());
        await client.connect(new StreamableHTTPClientTransport(new URL(gateway.http)));
        await askedForRoots;
        return client;
      }),
    );
    expect(sessions).toHaveLength(8);
  });

  it('is answered with an error the server can act on when no stream opens within heldMessageTimeoutMs', async () => {
    gw = await filesystemGateway({ heldMessageTimeoutMs: 200 });
    const gateway = gw;
    let rootsCalls = 0;
    const client = rootsClient(() => rootsCalls++);
    // This client never opens a GET stream (the server would be told 405 by a proxy that does not support it).
    const noGet: typeof fetch = async (input, init) => ((init?.method ?? 'GET') === 'GET' ? new Response(null, { status: 405 }) : fetch(input, init));
    await client.connect(new StreamableHTTPClientTransport(new URL(gateway.http), { fetch: noGet }));
    const refused = await gateway.waitForLog((r) => r['event'] === 'deliver-failed' && r['method'] === 'roots/list');
    expect(String(refused['message'])).toMatch(/could not deliver roots\/list to the client: the client held no stream open and sent no request for 200 ms \(downstream\.heldMessageTimeoutMs\)/);
    const told = await gateway.waitForLog((r) => r['event'] === 'upstream-stderr' && /Failed to request initial roots from client/.test(String(r['message'])));
    expect(String(told['message'])).toMatch(/could not deliver roots\/list/);
    expect(rootsCalls).toBe(0);
    // The server kept its command-line directory, and the session is not stuck busy.
    expect(await allowedDirectories(client)).toContain(serverDir);
    const [session] = gateway.gateway.sessions;
    expect(session?.inFlight).toBe(0);
  });
});
