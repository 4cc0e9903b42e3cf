/**
 * SDK v1 and v2 clients through the gateway, over Streamable HTTP and over WebSocket,
 * see exactly what they see connected to the same server directly: tools,
 * resources, prompts, progress, sampling and elicitation (server→client requests the
 * gateway forwards downstream and answers upstream), tool errors, cancellation (which
 * must reach the server: the ledger step reads what the server saw).
 */
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocketClientTransport } from '#transports/ws/index.ts';
import type { Transport } from '#core/transport.ts';
import { createV2Client } from '../support/clients.ts';
import { makeClientTransport } from '../support/http.ts';
import { fixtureUpstream, startTestGateway, type TestGateway } from '../support/gateway.ts';
// The script, the direct reference run and what must be equal (the SDKs drop progress that
// shares a read with its response, so the progress the wire carried is compared instead).
import { cancelSent as cancelSentOn, comparable, directRun, type Listener, scriptRun as script, type Sdk } from '../support/gateway-transcripts.ts';

function downstreamTransport(listener: Listener, sdk: Sdk, gw: TestGateway): Transport {
  return listener === 'http' ? makeClientTransport(sdk, gw.http) : new WebSocketClientTransport(gw.ws);
}

describe.each([['v1'], ['v2']] as const)('fixture server on SDK %s behind the gateway', (serverSdk) => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startTestGateway({ upstream: fixtureUpstream(serverSdk) });
  });
  afterAll(async () => {
    await gw.stop();
  });

  const combos: Array<[Sdk, Listener]> = serverSdk === 'v1' ? [['v1', 'http'], ['v2', 'http'], ['v1', 'websocket'], ['v2', 'websocket']] : [['v2', 'http'], ['v1', 'websocket']];
  it.each(combos)('an SDK %s client over %s sees what it sees connected to the server directly', async (sdk, listener) => {
    // Over HTTP the client's notifications/cancelled and its next request are separate POSTs
    // that may reach the gateway in either order (the SDK does not wait for the first): the
    // ledger is read once the cancellation has gone upstream. Over WebSocket order is kept.
    const cancelSent = listener === 'http' ? cancelSentOn(gw.gateway.upstreamEvents) : undefined;
    const through = await script(sdk, downstreamTransport(listener, sdk, gw), serverSdk, cancelSent === undefined ? undefined : () => cancelSent);
    const reference = await directRun(sdk, serverSdk, listener);
    expect(comparable(through)).toEqual(comparable(reference));
    expect(comparable(through).progressBeforeResponse).toEqual([1, 2, 3]);
    // Server→client requests really went through: the client's handlers were asked.
    const asked = through.steps.find((s) => s.step === 'what the server asked the client')?.value as { sampling: unknown[]; elicitation: unknown[] };
    expect(asked.sampling.length).toBeGreaterThan(0);
    expect(asked.elicitation.length).toBeGreaterThan(0);
    expect(gw.logs.filter((r) => r['level'] === 'error')).toEqual([]);
  });
});

describe('downstream.jsonResponses: a lone answer as one application/json body', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startTestGateway({ upstream: fixtureUpstream('v1'), downstream: { jsonResponses: true } });
  });
  afterAll(async () => {
    await gw.stop();
  });
  // The one difference the option names (docs/gateway.md): an SDK client reports an aborted
  // event stream as it closes, and never a JSON body.
  const apartFromStreamErrors = (run: ReturnType<typeof comparable>) => ({ ...run, errors: run.errors.filter((e) => !e.startsWith('SSE stream disconnected')) });

  it.each([['v1'], ['v2']] as const)('an SDK %s client over http sees what it sees connected to the server directly, but for aborted event streams', async (sdk) => {
    const cancelSent = cancelSentOn(gw.gateway.upstreamEvents);
    const through = comparable(await script(sdk, makeClientTransport(sdk, gw.http), 'v1', () => cancelSent));
    const reference = comparable(await directRun(sdk, 'v1', 'http'));
    expect(apartFromStreamErrors(through)).toEqual(apartFromStreamErrors(reference));
    expect(through.errors.length).toBeLessThanOrEqual(reference.errors.length);
    expect(through.progressBeforeResponse).toEqual([1, 2, 3]);
    expect(gw.logs.filter((r) => r['level'] === 'error')).toEqual([]);
  });

  it('answers initialize and a tools/call with JSON bodies, and progress before an answer with an event stream', async () => {
    const post = (body: unknown, headers: Record<string, string> = {}) =>
      fetch(gw.http, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers }, body: JSON.stringify(body) });
    const init = await post({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '0' } } });
    expect(init.headers.get('content-type')).toBe('application/json');
    expect(await init.json()).toMatchObject({ jsonrpc: '2.0', id: 0, result: { protocolVersion: '2025-11-25' } });
    const session = { 'mcp-session-id': init.headers.get('mcp-session-id') ?? '', 'mcp-protocol-version': '2025-11-25' };
    await (await post({ jsonrpc: '2.0', method: 'notifications/initialized' }, session)).arrayBuffer();
    const call = await post({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'add', arguments: { a: 2, b: 3 } } }, session);
    expect(call.headers.get('content-type')).toBe('application/json');
    expect(await call.json()).toMatchObject({ jsonrpc: '2.0', id: 1, result: { content: [{ type: 'text', text: '5' }] } });
    const progress = await post({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'progress', arguments: { steps: 2 }, _meta: { progressToken: 'p' } } }, session);
    expect(progress.headers.get('content-type')).toBe('text/event-stream');
    expect(await progress.text()).toMatch(/notifications\/progress[\s\S]*"id":2/);
    await fetch(gw.http, { method: 'DELETE', headers: session });
  });
});

describe('protocol eras through the gateway', () => {
  // The fixture behind the SDK v2 stdio entry, which serves both eras (2025 and 2026-07-28).
  const bothEras = { command: process.execPath, args: [fileURLToPath(new URL('../support/stdio-server.ts', import.meta.url)), '--sdk', 'v2'] };
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startTestGateway({ upstream: bothEras });
  });
  afterAll(async () => {
    await gw.stop(0);
  });

  it('over WebSocket a negotiating v2 client gets 2026-07-28 end to end (server/discover, multi-round-trip input)', async () => {
    const c = createV2Client({ negotiation: 'auto' });
    await c.connect(new WebSocketClientTransport(gw.ws, { reconnect: false }));
    try {
      expect(c.era()).toBe('modern');
      expect(await c.callTool('add', { a: 2, b: 3 })).toMatchObject({ content: [{ type: 'text', text: '5' }] });
      expect(await c.callTool('ask', { question: 'continue?' })).toMatchObject({ content: [{ type: 'text', text: expect.stringContaining('yes to continue?') }] });
    } finally {
      await c.close();
    }
  });

  it('over Streamable HTTP (the 2025 eras) the same client falls back to initialize and works', async () => {
    const c = createV2Client({ negotiation: 'auto' });
    await c.connect(makeClientTransport('v2', gw.http));
    try {
      expect(c.era()).toBe('legacy');
      expect(await c.callTool('add', { a: 2, b: 3 })).toMatchObject({ content: [{ type: 'text', text: '5' }] });
    } finally {
      await c.close();
    }
  });
});
