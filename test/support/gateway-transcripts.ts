/**
 * The scenario script through a gateway, and the same script against the same fixture
 * served directly over the same downstream transport (McpHttpServer for Streamable HTTP,
 * McpWebSocketServer for WebSocket), so that only the gateway differs between the two
 * runs; `comparable()` says what must be equal (as test/gateway/sdk-clients.test.ts does
 * for a stdio upstream: the SDKs drop progress that shares a read with its response, so
 * the progress the wire carried is compared instead of what the SDK reported).
 */
import { listenHttp } from '#transports/http/index.ts';
import { listenWebSocket, WebSocketClientTransport } from '#transports/ws/index.ts';
import type { Transport } from '#core/transport.ts';
import type { EventBus } from '#core/events.ts';
import { createV1Client, createV2Client, type TestClient } from './clients.ts';
import { makeClientTransport, makeServerTransport } from './http.ts';
import type { Ledger } from './ledger.ts';
import { startServer } from './run.ts';
import { runScenarios, type Step } from './scenarios.ts';
import { normalizePeerIds, tap, type TapLog } from './tap.ts';

export type Sdk = 'v1' | 'v2';
export type Listener = 'http' | 'websocket';

export interface Run {
  steps: Step[];
  errors: string[];
  log: TapLog;
}

const PROGRESS_STEP = 'tools/call progress';

/**
 * The whole script on a new client of `sdk` over `transport`. `beforeLedger` runs before
 * the step that reads the server's ledger (over HTTP: until the cancellation reached the
 * server, since the SDK posts it and the next request without waiting).
 */
export async function scriptRun(sdk: Sdk, transport: Transport, serverSdk: Sdk, beforeLedger?: () => Promise<void>): Promise<Run> {
  const c: TestClient = sdk === 'v1' ? createV1Client() : createV2Client();
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

/** Resolves when the gateway's upstream stack sent a cancellation (HTTP runs wait for it before reading the ledger). */
export function cancelSent(upstreamEvents: EventBus): Promise<void> {
  return new Promise<void>((resolve) => {
    const off = upstreamEvents.on('cancel-sent', () => (off(), resolve()));
  });
}

/** What must be equal between a run through the gateway and a direct one. */
export function comparable(run: Run) {
  const log = normalizePeerIds(run.log);
  return {
    steps: run.steps.map((step) => (step.step === PROGRESS_STEP ? { ...step, value: { ok: { result: (step.value as { ok: { result: unknown } }).ok.result } } } : step)),
    errors: run.errors.filter((message) => !message.startsWith('Received a progress notification for an unknown token')),
    sent: log.sent,
    received: log.received,
    progressBeforeResponse: progressOnTheWire(run.log),
  };
}

/** The progress values that reached the client before the progress call's response. */
export function progressOnTheWire(log: TapLog): number[] {
  const call = log.sent.find((m) => 'method' in m && m.method === 'tools/call' && m.params?.['name'] === 'progress') as { id: unknown } | undefined;
  const responseAt = log.received.findIndex((m) => !('method' in m) && m.id === call?.id);
  return log.received
    .slice(0, responseAt)
    .filter((m) => 'method' in m && m.method === 'notifications/progress' && (m.params as { progressToken?: unknown })?.progressToken !== undefined)
    .map((m) => (m as unknown as { params: { progress: number } }).params.progress)
    .filter((progress) => progress > 0);
}

/** The reference: the fixture on `serverSdk` in this process, served directly over `listener`. */
export async function directRun(sdk: Sdk, serverSdk: Sdk, listener: Listener): Promise<Run> {
  let ledger: Ledger | undefined;
  const serve = async (transport: Transport) => {
    const started = await startServer(serverSdk, transport);
    ledger = started.ledger;
    return started;
  };
  const server =
    listener === 'http'
      ? await listenHttp({
          sessions: async () => {
            const transport = makeServerTransport(serverSdk);
            await serve(transport);
            return transport;
          },
        })
      : await listenWebSocket({ onconnection: async (transport) => void (await serve(transport)) });
  try {
    const transport = listener === 'http' ? makeClientTransport(sdk, server.url) : new WebSocketClientTransport(server.url);
    const cancelled = listener === 'http' ? () => (ledger as Ledger).whenAborted('slow') : undefined;
    return await scriptRun(sdk, transport, serverSdk, cancelled);
  } finally {
    await server.close();
  }
}
