/**
 * SDK v1 and v2 clients through the gateway, over Streamable HTTP and over WebSocket,
 * see exactly what they see connected to the same server directly: tools,
 * resources, prompts, progress, sampling and elicitation (server→client requests the
 * gateway forwards downstream and answers upstream), tool errors, cancellation (which
 * must reach the server: the ledger step reads what the server saw).
 */
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listenHttp } from '#transports/http/index.ts';
import { listenWebSocket, WebSocketClientTransport } from '#transports/ws/index.ts';
import type { Transport } from '#core/transport.ts';
import { createV1Client, createV2Client, type TestClient } from '../support/clients.ts';
import { runScenarios, type Step } from '../support/scenarios.ts';
import { normalizePeerIds, tap, type TapLog } from '../support/tap.ts';
import { makeClientTransport, makeServerTransport } from '../support/http.ts';
import type { Ledger } from '../support/ledger.ts';
import { startServer } from '../support/run.ts';
import { fixtureUpstream, startTestGateway, type TestGateway } from '../support/gateway.ts';

type Sdk = 'v1' | 'v2';
type Listener = 'http' | 'websocket';

const client = (sdk: Sdk): TestClient => (sdk === 'v1' ? createV1Client() : createV2Client());

interface Run {
  steps: Step[];
  errors: string[];
  log: TapLog;
}

async function script(sdk: Sdk, transport: Transport, serverSdk: Sdk, beforeLedger?: () => Promise<void>): Promise<Run> {
  const c = client(sdk);
  if (beforeLedger !== undefined) {
    const call = c.callTool.bind(c);
    c.callTool = async (name, args, options) => {
      if (name === 'ledger') await beforeLedger();
      return call(name, args, options);
    };
  }
  const errors: string[] = [];
  c.onerror = (error) => void errors.push(error.message);
  const log = tap(transport);
  await c.connect(transport);
  try {
    return { steps: await runScenarios(c, { era: 'legacy', serverSdk }), errors, log };
  } finally {
    await c.close();
  }
}

const PROGRESS_STEP = 'tools/call progress';

/**
 * What must be equal. The SDKs drop progress notifications that arrive in the same
 * read as their response (a known race, test/interop/stdio.test.ts): the progress the
 * SDK reported is left out, and what arrived on the wire is compared instead.
 */
function comparable(run: Run) {
  const log = normalizePeerIds(run.log);
  return {
    steps: run.steps.map((step) => (step.step === PROGRESS_STEP ? { ...step, value: { ok: { result: (step.value as { ok: { result: unknown } }).ok.result } } } : step)),
    errors: run.errors.filter((message) => !message.startsWith('Received a progress notification for an unknown token')),
    sent: log.sent,
    received: log.received,
    progressBeforeResponse: progressOnTheWire(run.log),
  };
}

function progressOnTheWire(log: TapLog): number[] {
  const call = log.sent.find((m) => 'method' in m && m.method === 'tools/call' && m.params?.['name'] === 'progress') as { id: unknown } | undefined;
  const responseAt = log.received.findIndex((m) => !('method' in m) && m.id === call?.id);
  return log.received
    .slice(0, responseAt)
    .filter((m) => 'method' in m && m.method === 'notifications/progress' && (m.params as { progressToken?: unknown })?.progressToken !== undefined)
    .map((m) => (m as unknown as { params: { progress: number } }).params.progress)
    .filter((progress) => progress > 0);
}

/**
 * The reference: the same fixture server (in process) served directly over the same
 * transport — Streamable HTTP by McpHttpServer, WebSocket by McpWebSocketServer — so
 * what the transport itself does (HTTP's SSE streams, their aborts on close) is the
 * same on both sides of the comparison and only the gateway differs.
 */
async function directRun(sdk: Sdk, serverSdk: Sdk, listener: Listener): Promise<Run> {
  let ledger: Ledger | undefined;
  const serve = async (transport: Transport) => {
    const started = await startServer(serverSdk, transport);
    ledger = started.ledger;
    return started;
  };
  const server =
    listener === 'http'
      ? await listenHttp({ sessions: async () => { const transport = makeServerTransport(serverSdk); await serve(transport); return transport; } })
      : await listenWebSocket({ onconnection: async (transport) => void (await serve(transport)) });
  try {
    const transport = listener === 'http' ? makeClientTransport(sdk, server.url) : new WebSocketClientTransport(server.url);
    // See the gateway run for why HTTP waits for the cancellation to have reached the server.
    const cancelled = listener === 'http' ? () => (ledger as Ledger).whenAborted('slow') : undefined;
    return await script(sdk, transport, serverSdk, cancelled);
  } finally {
    await server.close();
  }
}

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
    const cancelSent = listener === 'http' ? new Promise<void>((resolve) => {
      const off = gw.gateway.upstreamEvents.on('cancel-sent', () => (off(), resolve()));
    }) : undefined;
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
