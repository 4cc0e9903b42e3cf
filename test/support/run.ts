/**
 * Runs the scenario script over one in-process client/server pairing, unwrapped or with
 * `wrap()` on both sides, and returns everything the two applications observed. Two
 * runs of the same pairing must return equal records (invariant 6).
 */
import { wrap, type LayeredTransport } from '#core/wrap.ts';
import type { LayerLike } from '#core/layer.ts';
import type { Transport } from '#core/transport.ts';
import type { Era, TestClient } from './clients.ts';
import type { Ledger, LedgerSnapshot } from './ledger.ts';
import { newObservations, observingLayers, type Observations } from './layers.ts';
import { linkedPair } from './links.ts';
import { runScenarios, type Step } from './scenarios.ts';
import { createV1Server } from './server-v1.ts';
import { createV2Server, serveV2 } from './server-v2.ts';
import { tap, type TapLog } from './tap.ts';

/**
 * How the server side is served:
 * - `v1`: SDK v1 `McpServer.connect()` (2025 era);
 * - `v2`: SDK v2 `McpServer.connect()` (2025 era; answers `server/discover` -32601);
 * - `v2-entry`: SDK v2 `serveStdio` entry over the transport (both eras).
 */
export type ServerKind = 'v1' | 'v2' | 'v2-entry';

export type Mode = 'unwrapped' | 'zero layers' | 'observing layers';
export const MODES: readonly Mode[] = ['unwrapped', 'zero layers', 'observing layers'];

export interface Pairing {
  name: string;
  client: () => TestClient;
  server: ServerKind;
  /** The era the connection must end up in. */
  era: Era;
  /** Whose InMemoryTransport links the two (either works: the types are structural). */
  link: 'v1' | 'v2';
}

export interface RunRecord {
  steps: Step[];
  client: TapLog;
  server: TapLog;
  /** Errors the SDK Client and Server reported to their own onerror. */
  sdkErrors: { client: string[]; server: string[] };
  ledger: LedgerSnapshot;
  era: Era;
  /** Present when wrapped: what the observing layers saw, and the bookkeeping left over. */
  wrapped?: {
    clientSeen: Observations;
    serverSeen: Observations;
    /** `stats()` of both wrapped transports once the script finished (must be all zero). */
    statsAfterRun: { client: Stats; server: Stats };
  };
}

export type Stats = ReturnType<LayeredTransport['stats']>;

export async function runPairing(pairing: Pairing, mode: Mode): Promise<RunRecord> {
  const [clientSide, serverSide] = linkedPair(pairing.link);
  const clientSeen = newObservations();
  const serverSeen = newObservations();
  const layersFor = (seen: ReturnType<typeof newObservations>): LayerLike[] => (mode === 'observing layers' ? observingLayers(seen) : []);
  const clientTransport: Transport = mode === 'unwrapped' ? clientSide : wrap(clientSide, layersFor(clientSeen), { name: 'client' });
  const serverTransport: Transport = mode === 'unwrapped' ? serverSide : wrap(serverSide, layersFor(serverSeen), { name: 'server' });
  const clientLog = tap(clientTransport);
  const serverLog = tap(serverTransport);

  const sdkErrors: RunRecord['sdkErrors'] = { client: [], server: [] };
  const { ledger, close: closeServer } = await startServer(pairing.server, serverTransport, (error) => void sdkErrors.server.push(error.message));
  const client = pairing.client();
  client.onerror = (error) => void sdkErrors.client.push(error.message);
  await client.connect(clientTransport);
  const era = client.era();
  const steps = await runScenarios(client, { era, serverSdk: pairing.server === 'v1' ? 'v1' : 'v2' });

  const record: RunRecord = { steps, client: clientLog, server: serverLog, sdkErrors, ledger: ledger.snapshot(), era };
  if (mode !== 'unwrapped') {
    record.wrapped = {
      clientSeen,
      serverSeen,
      statsAfterRun: { client: (clientTransport as LayeredTransport).stats(), server: (serverTransport as LayeredTransport).stats() },
    };
  }
  await client.close();
  await closeServer();
  return record;
}

export async function startServer(
  kind: ServerKind,
  transport: Transport,
  onerror: (error: Error) => void = () => {},
): Promise<{ ledger: Ledger; close: () => Promise<void> }> {
  switch (kind) {
    case 'v1': {
      const { server, ledger } = createV1Server();
      server.server.onerror = onerror;
      await server.connect(transport);
      return { ledger, close: () => server.close() };
    }
    case 'v2': {
      const { server, ledger } = createV2Server();
      server.server.onerror = onerror;
      await server.connect(transport);
      return { ledger, close: () => server.close() };
    }
    case 'v2-entry': {
      const { handle, ledger } = serveV2(transport, { onerror, extend: (server) => void (server.server.onerror = onerror) });
      return { ledger, close: () => handle.close() };
    }
  }
}

export const ZERO_STATS: Stats = { outbound: 0, attempts: 0, progressTokens: 0, inbound: 0, queued: 0 };
