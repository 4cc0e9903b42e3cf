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
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import type { GatewayConfig } from '#gateway/config/gateway.ts';
import { ConfigError } from '#gateway/config/load.ts';
import { WebSocketClientTransport } from '#transports/ws/index.ts';
import { createV1Client, createV2Client, type TestClient } from '../support/clients.ts';
import { nextEvent, within } from '../support/events.ts';
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

describe('several upstreams, other prefix modes', () => {
  it('on-clash: only names two upstreams share are prefixed, both of them (SDK v2 over WebSocket)', async () => {
    const client = await v2(await gateway({ fixture: UPSTREAMS.fixture, hinted: node(HINTED) }, { prefix: 'on-clash' }));
    const tools = names(await client.listTools());
    expect(tools).toEqual(expect.arrayContaining(['fixture__echo', 'hinted__echo', 'add', 'slow', 'listed', 'change']));
    expect(tools).not.toContain('echo');
    expect(textOf(await client.callTool('hinted__echo', { text: 'a' }))).toBe('hinted: a');
    expect(textOf(await client.callTool('fixture__echo', { text: 'b' }))).toBe('b');
    expect(textOf(await client.callTool('add', { a: 2, b: 3 }))).toBe('5');
    // Nothing else clashes: the fixture's resources keep their own URIs.
    expect((await client.readResource(STATIC_RESOURCE.uri)).contents[0]?.text).toBe(STATIC_RESOURCE.text);
    expect((await client.getPrompt('greet', { name: 'Ada' })).messages.length).toBeGreaterThan(0);
  });

  it('never: a clash is a ConfigError at start naming both upstreams and the name', async () => {
    const started = startTestGateway({ upstreams: { first: UPSTREAMS.fixture, second: node(HINTED) }, federation: { prefix: 'never' } });
    const error = (await started.then(
      (g) => {
        gw = g;
        return undefined;
      },
      (e: unknown) => e,
    )) as ConfigError;
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.problems).toEqual([expect.stringMatching(/^federation\.prefix: "never", but upstreams "first" and "second" both serve the tool "echo"/)]);
  });

  it('never without a clash: names as the upstreams give them', async () => {
    const client = await v1(await gateway({ files: UPSTREAMS.files, memory: UPSTREAMS.memory }, { prefix: 'never' }));
    expect(names(await client.listTools())).toEqual(expect.arrayContaining(['list_allowed_directories', 'read_graph']));
    expect(textOf(await client.callTool('read_graph', {}))).toContain('entities');
  });
});

describe('allow and deny', () => {
  it('serves only what an upstream allows and does not deny; a hidden tool is unknown', async () => {
    const client = await v1(
      await gateway({
        everything: { ...UPSTREAMS.everything, tools: { allow: ['echo', 'get-*'], deny: ['get-env'] }, prompts: { deny: ['*'] } },
        fixture: { ...UPSTREAMS.fixture, resources: { deny: ['fixture://items/*'] } },
      }),
    );
    const tools = names(await client.listTools());
    expect(tools.filter((t) => t.startsWith('everything__')).every((t) => t === 'everything__echo' || t.startsWith('everything__get-'))).toBe(true);
    expect(tools).toContain('everything__get-sum');
    expect(tools).not.toContain('everything__get-env');
    expect(await errorOf(client.callTool('everything__get-env', {}))).toMatchObject({ code: -32602, message: expect.stringContaining('everything__get-env not found') });
    const prompts = (await client.listPrompts()) as { prompts: Array<{ name: string }> };
    expect(prompts.prompts.map((p) => p.name).filter((n) => n.startsWith('everything__'))).toEqual([]);
    const templates = (await client.listResourceTemplates()) as { resourceTemplates: Array<{ uriTemplate: string }> };
    expect(templates.resourceTemplates.map((t) => t.uriTemplate)).not.toContain('fixture+fixture://items/{id}');
    expect(await errorOf(client.readResource('fixture+fixture://items/1'))).toMatchObject({ code: -32602, data: { uri: 'fixture+fixture://items/1' } });
    expect((await client.readResource(`fixture+${STATIC_RESOURCE.uri}`)).contents[0]?.text).toBe(STATIC_RESOURCE.text);
  });
});

/** An SDK v1 client whose raw SDK Client is at hand (list_changed handlers, cursors). */
async function rawV1(at: TestGateway): Promise<{ client: Client; toolsChanged: () => Promise<void> }> {
  const client = new Client(CLIENT_INFO, { capabilities: {} });
  clients.push(client);
  let changed: Array<() => void> = [];
  client.setNotificationHandler(ToolListChangedNotificationSchema, () => {
    const waiting = changed;
    changed = [];
    for (const resolve of waiting) resolve();
  });
  await client.connect(new StreamableHTTPClientTransport(new URL(at.http)));
  return { client, toolsChanged: () => new Promise<void>((resolve) => changed.push(resolve)) };
}

describe('pagination with the gateway\'s own cursors', () => {
  it('walks the merged list page by page: every entry exactly once, in order; a stale cursor is refused', async () => {
    const at = await gateway({ fixture: UPSTREAMS.fixture, hinted: { ...node(HINTED, '--pages', '3', '--list-changed') }, memory: UPSTREAMS.memory }, { pageSize: 3 });
    const { client, toolsChanged } = await rawV1(at);
    const walked: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await client.listTools(cursor === undefined ? {} : { cursor });
      expect(page.tools.length).toBeLessThanOrEqual(3);
      walked.push(...page.tools.map((t) => t.name));
      cursor = page.nextCursor;
      pages++;
    } while (cursor !== undefined);
    expect(new Set(walked).size).toBe(walked.length);
    expect(walked.filter((n) => n.startsWith('hinted__'))).toEqual(['hinted__listed', 'hinted__change', 'hinted__echo', 'hinted__exit']);
    expect(pages).toBe(Math.ceil(walked.length / 3));
    const first = await client.listTools();
    const stale = first.nextCursor as string;
    const changed = toolsChanged();
    await client.callTool({ name: 'hinted__change', arguments: {} });
    await within(changed, 'notifications/tools/list_changed from the hinted upstream');
    await expect(client.listTools({ cursor: stale })).rejects.toMatchObject({ code: -32602, message: expect.stringContaining('list changed') });
    await expect(client.listTools({ cursor: 'not-a-cursor' })).rejects.toMatchObject({ code: -32602 });
  });
});

describe('one upstream down', () => {
  it('its entries leave the lists with list_changed, its tools fail fast naming it, the others keep serving', async () => {
    // Its child is not restarted (restart: false), so its exit takes it down; a restarted child keeps it up (supervised-child.test.ts).
    const at = await gateway({ fixture: UPSTREAMS.fixture, hinted: { ...node(HINTED), restart: false } });
    const { client, toolsChanged } = await rawV1(at);
    expect((await client.listTools()).tools.map((t) => t.name)).toContain('hinted__echo');
    const changed = toolsChanged();
    // The child exits while its own call is in flight: that call ends with an error, not silence.
    await expect(client.callTool({ name: 'hinted__exit', arguments: {} })).rejects.toMatchObject({ code: -32000 });
    await within(changed, 'notifications/tools/list_changed when the hinted upstream went down');
    const tools = (await client.listTools()).tools.map((t) => t.name);
    expect(tools.some((t) => t.startsWith('hinted__'))).toBe(false);
    expect(tools).toContain('fixture__echo');
    const failed = await errorOf(client.callTool({ name: 'hinted__echo', arguments: { text: 'x' } }));
    expect(failed).toMatchObject({ code: -32054, message: expect.stringMatching(/upstream "hinted" is unavailable \(it exited with code 3/), data: { upstream: 'hinted', reason: 'upstream-unavailable' } });
    expect(textOf(await client.callTool({ name: 'fixture__echo', arguments: { text: 'still here' } }))).toBe('still here');
    expect(at.gateway.sessions.size).toBe(1);
    expect(at.logs.some((r) => r['event'] === 'upstream-down' && r['upstream'] === 'hinted')).toBe(true);
    // Past its backoff (a fake clock: only Date moves), the next list tries it again; back, its entries return with list_changed.
    const back = toolsChanged();
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + 60_000 });
    try {
      await client.listTools();
      await within(back, 'notifications/tools/list_changed when the hinted upstream came back');
    } finally {
      vi.useRealTimers();
    }
    expect((await client.listTools()).tools.map((t) => t.name)).toContain('hinted__echo');
    expect(textOf(await client.callTool({ name: 'hinted__echo', arguments: { text: 'again' } }))).toBe('hinted: again');
  });

  it('the session ends when every upstream is down', async () => {
    const at = await gateway({ hinted: { ...node(HINTED), restart: false } });
    const { client } = await rawV1(at);
    const closed = new Promise<string>((resolve) => at.gateway.once('session-close', (e) => resolve(e.reason)));
    await expect(client.callTool({ name: 'hinted__exit', arguments: {} })).rejects.toMatchObject({ code: -32000 });
    expect(await within(closed, 'the session closed')).toBe('upstream-closed');
  });

  it('an upstream that cannot start is down from the start; the others serve', async () => {
    const at = await gateway({ fixture: UPSTREAMS.fixture, broken: { command: process.execPath, args: ['-e', 'process.exit(1)'] } });
    const client = await v1(at);
    const tools = names(await client.listTools());
    expect(tools).toContain('fixture__echo');
    expect(tools.some((t) => t.startsWith('broken__'))).toBe(false);
    expect(await errorOf(client.callTool('broken__anything', {}))).toMatchObject({ data: { upstream: 'broken', reason: 'upstream-unavailable' } });
    expect(at.logs.some((r) => r['event'] === 'upstream-down' && r['upstream'] === 'broken')).toBe(true);
  });
});

describe('what the servers ask, and cancellation, cross to the right upstream', () => {
  it('sampling, elicitation and progress reach the client and its answers the asking upstream; a cancellation reaches the owner', async () => {
    const at = await gateway({ everything: UPSTREAMS.everything, fixture: UPSTREAMS.fixture });
    const client = await v1(at);
    expect(textOf(await client.callTool('fixture__sample', { prompt: 'from the fixture' }))).toContain('from the fixture');
    expect(JSON.stringify(await client.callTool('everything__trigger-sampling-request', { prompt: 'from everything', maxTokens: 10 }))).toContain('from everything');
    expect(textOf(await client.callTool('fixture__elicit', { question: 'why?' }))).toContain('why?');
    expect(client.asked.sampling).toHaveLength(2);
    expect(client.asked.elicitation).toHaveLength(1);
    const progress: number[] = [];
    await client.callTool('fixture__progress', { steps: 3 }, { onprogress: (p) => void progress.push(p.progress) });
    expect(progress.length).toBeGreaterThan(0);
    // The cancellation goes on the fixture's own wire (its member transport), under its own id.
    const cancelled = nextEvent(at.gateway.upstreamEvents, 'cancelled', (e) => e.ctx.session.name === 'upstream:fixture' && e.ctx.method === 'tools/call');
    const controller = new AbortController();
    const slow = client.callTool('fixture__slow', {}, { signal: controller.signal, onprogress: () => controller.abort('enough') });
    await expect(slow).rejects.toThrow(/enough|abort/i);
    await within(cancelled, 'the cancellation reached the fixture upstream');
    const ledger = JSON.parse(textOf(await client.callTool('fixture__ledger', {}))) as { runs: Record<string, number>; aborted: unknown[] };
    expect(ledger.runs['slow']).toBe(1);
    // On the same pipe the cancellation came first: the fixture's handler saw its signal abort.
    expect(ledger.aborted).toHaveLength(1);
  });
});

describe('list caching', () => {
  const listed = async (client: Client) => Number(textOf(await client.callTool({ name: 'hinted__listed', arguments: {} })));

  it('a second list does not reach the upstream; its list_changed does', async () => {
    const at = await gateway({ hinted: node(HINTED, '--list-changed') });
    const { client, toolsChanged } = await rawV1(at);
    await client.listTools();
    await client.listTools();
    expect(await listed(client)).toBe(1);
    const changed = toolsChanged();
    await client.callTool({ name: 'hinted__change', arguments: {} });
    await within(changed, 'list_changed');
    expect((await client.listTools()).tools.map((t) => t.name)).toContain('hinted__added-4');
    expect(await listed(client)).toBe(2);
    const metrics = await (await fetch(`${at.base}/metrics`)).text();
    expect(metrics).toMatch(/mcp_layers_gateway_list_cache_total\{upstream="hinted",list="tools",outcome="hit"\} [1-9]/);
    expect(metrics).toMatch(/mcp_layers_gateway_list_cache_total\{upstream="hinted",list="tools",outcome="miss"\} 2/);
  });

  it('ttlMs: 0 is never cached', async () => {
    const { client } = await rawV1(await gateway({ hinted: node(HINTED, '--list-changed', '--ttl', '0') }));
    await client.listTools();
    await client.listTools();
    expect(await listed(client)).toBe(2);
  });

  it.each([
    ['public', 0],
    ['private', 1],
  ] as const)('cacheScope %s: a second session lists its own upstream %i times', async (scope, times) => {
    const at = await gateway({ hinted: node(HINTED, '--list-changed', '--scope', scope) });
    const first = await rawV1(at);
    await first.client.listTools();
    const second = await rawV1(at);
    await second.client.listTools();
    // Each session has its own child: the second one's counts its own lists.
    expect(await listed(second.client)).toBe(times);
    expect(await listed(first.client)).toBe(1);
  });
});
