/**
 * Several upstreams behind one gateway endpoint (docs/gateway.md, "Several upstreams"):
 * the real gateway in front of real servers as stdio children — the fixture server,
 * the MCP project's server-everything, server-filesystem and server-memory, and a
 * scripted server whose lists carry cache hints (test/support/hinted-lists-server.ts) —
 * with SDK v1 clients over Streamable HTTP and SDK v2 clients over WebSocket.
 */
import { mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { GatewayConfig } from '#gateway/config/gateway.ts';
import { ConfigError } from '#gateway/config/load.ts';
import { WebSocketClientTransport } from '#transports/ws/index.ts';
import { createV1Client, createV2Client, type TestClient } from '../support/clients.ts';
import { within } from '../support/events.ts';
import { closeAll, FIXTURE_SERVER, startTestGateway, type TestGateway } from '../support/gateway.ts';
import { makeClientTransport } from '../support/http.ts';
import { CLIENT_INFO, itemText, STATIC_RESOURCE } from '../support/fixture.ts';

const require = createRequire(import.meta.url);
const EVERYTHING = require.resolve('@modelcontextprotocol/server-everything/dist/index.js');
const FILESYSTEM = require.resolve('@modelcontextprotocol/server-filesystem/dist/index.js');
const MEMORY = require.resolve('@modelcontextprotocol/server-memory/dist/index.js');
const HINTED = fileURLToPath(new URL('../support/hinted-lists-server.ts', import.meta.url));

const dir = realpathSync(mkdtempSync(join(tmpdir(), 'mcp-layers-federation-')));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

type Upstreams = NonNullable<GatewayConfig['upstreams']>;
const node = (script: string, ...args: string[]) => ({ command: process.execPath, args: [script, ...args], stderr: 'ignore' as const });
const UPSTREAMS = {
  fixture: node(FIXTURE_SERVER, 'v1'),
  everything: node(EVERYTHING, 'stdio'),
  files: node(FILESYSTEM, dir),
  memory: { ...node(MEMORY), env: { MEMORY_FILE_PATH: join(dir, 'memory.jsonl') } },
} satisfies Upstreams;

let gw: TestGateway | undefined;
const clients: Array<{ close(): Promise<unknown> }> = [];
afterEach(() => closeAll(clients, gw).then(() => (gw = undefined)));

async function gateway(upstreams: Upstreams, federation?: GatewayConfig['federation']): Promise<TestGateway> {
  gw = await startTestGateway({ upstreams, ...(federation === undefined ? {} : { federation }) });
  return gw;
}

async function v1(at: TestGateway): Promise<TestClient> {
  const client = createV1Client();
  clients.push(client);
  await client.connect(makeClientTransport('v1', at.http));
  return client;
}

async function v2(at: TestGateway): Promise<TestClient> {
  const client = createV2Client();
  clients.push(client);
  await client.connect(new WebSocketClientTransport(at.ws));
  return client;
}

const names = (list: { tools: Array<{ name: string }> }) => list.tools.map((t) => t.name);
const textOf = (result: unknown) => ((result as { content: Array<{ text?: string }> }).content[0]?.text ?? '');
const errorOf = (promise: Promise<unknown>) => promise.then(() => undefined, (error: { code?: number; message: string; data?: unknown }) => error);

describe('several upstreams, prefix always (the default)', () => {
  it('merges every list with prefixes and routes calls, reads, prompts and completions to their owner (SDK v1 over HTTP)', async () => {
    const client = await v1(await gateway(UPSTREAMS));
    expect(client.getServerVersion()?.name).toBe('mcp-layers-gateway');
    const tools = names(await client.listTools());
    expect(tools).toEqual(expect.arrayContaining(['fixture__echo', 'everything__echo', 'everything__get-sum', 'files__list_allowed_directories', 'memory__read_graph']));
    expect(tools.every((t) => /^(fixture|everything|files|memory)__/.test(t))).toBe(true);
    expect(textOf(await client.callTool('fixture__echo', { text: 'hi' }))).toBe('hi');
    expect(textOf(await client.callTool('everything__echo', { message: 'hello' }))).toBe('Echo: hello');
    expect(textOf(await client.callTool('files__list_allowed_directories', {}))).toContain(dir);
    expect(textOf(await client.callTool('memory__read_graph', {}))).toContain('entities');
    const resources = (await client.listResources()) as { resources: Array<{ uri: string }> };
    expect(resources.resources.map((r) => r.uri)).toContain(`fixture+${STATIC_RESOURCE.uri}`);
    const read = await client.readResource(`fixture+${STATIC_RESOURCE.uri}`);
    expect(read.contents).toEqual([expect.objectContaining({ uri: `fixture+${STATIC_RESOURCE.uri}`, text: STATIC_RESOURCE.text })]);
    const templates = (await client.listResourceTemplates()) as { resourceTemplates: Array<{ uriTemplate: string }> };
    expect(templates.resourceTemplates.map((t) => t.uriTemplate)).toContain('fixture+fixture://items/{id}');
    expect((await client.readResource('fixture+fixture://items/7')).contents[0]?.text).toBe(itemText('7'));
    const prompts = (await client.listPrompts()) as { prompts: Array<{ name: string }> };
    expect(prompts.prompts.map((p) => p.name)).toEqual(expect.arrayContaining(['fixture__greet', 'everything__args-prompt']));
    expect(JSON.stringify(await client.getPrompt('everything__args-prompt', { city: 'Paris', state: 'Texas' }))).toContain('Paris');
    const completion = (await client.completePrompt('everything__completable-prompt', { name: 'department', value: 'E' })) as { completion: { values: string[] } };
    expect(completion.completion.values).toContain('Engineering');
    expect(await errorOf(client.callTool('nobody__echo', {}))).toMatchObject({ code: -32602, message: expect.stringContaining('Tool nobody__echo not found') });
    expect(await errorOf(client.readResource('nobody://nothing'))).toMatchObject({ code: -32602 });
  });
});
