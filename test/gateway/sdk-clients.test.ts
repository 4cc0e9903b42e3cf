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
