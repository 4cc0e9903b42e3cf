/**
 * The reference fixture served over Redis: a worker (serveRedis) whose every session — or
 * sessionless request — gets its own SDK server instance, all counting into one Ledger,
 * and the scenario script run through a RedisClientTransport against it. Both sides are
 * wrapped with `wrap(t, [])`, so what the application sees must equal an unwrapped
 * in-memory run (invariant 6).
 */
import { wrap } from '#core/wrap.ts';
import type { Transport } from '#core/transport.ts';
import { RedisClientTransport, type RedisClientTransportOptions, type RedisServerTransport, type RedisWorker, type RedisWorkerOptions, serveRedis } from '#mcp-layers/redis';
import { Ledger } from './ledger.ts';
import type { RunRecord, ServerKind, Pairing } from './run.ts';
import { runScenarios } from './scenarios.ts';
import { createV1Server } from './server-v1.ts';
import { createV2Server, serveV2 } from './server-v2.ts';
import { tap } from './tap.ts';

let services = 0;
/** A service name no other test of this process uses (tests share one broker). */
export function uniqueService(name = 'svc'): string {
  return `${name}-${process.pid}-${++services}`;
}

export interface FixtureWorker {
  worker: RedisWorker;
  ledger: Ledger;
  /** How many server instances onsession made (a session, or a sessionless request, each). */
  readonly instances: number;
  serverErrors: string[];
  close(): Promise<void>;
}

/** A worker serving the reference fixture on `kind`'s SDK glue, every instance into one Ledger. */
export async function fixtureWorker(
  url: string,
  service: string,
  kind: ServerKind,
  options: Partial<RedisWorkerOptions> & { ledger?: Ledger; wrapServer?: (transport: RedisServerTransport) => Transport } = {},
): Promise<FixtureWorker> {
  const { ledger = new Ledger(), wrapServer = (t: RedisServerTransport) => wrap(t, [], { events: t.events }), ...workerOptions } = options;
  const serverErrors: string[] = [];
  const onerror = (error: Error) => void serverErrors.push(error.message);
  let instances = 0;
  const worker = await serveRedis({
    servers: url,
    service,
    onsession: async (transport) => {
      instances++;
      const wrapped = wrapServer(transport);
      switch (kind) {
        case 'v1': {
          const { server } = createV1Server({ ledger });
          server.server.onerror = onerror;
          await server.connect(wrapped);
          return;
        }
        case 'v2': {
          const { server } = createV2Server({ ledger });
          server.server.onerror = onerror;
          await server.connect(wrapped);
          return;
        }
        case 'v2-entry':
          serveV2(wrapped as never, { ledger, onerror, extend: (server) => void (server.server.onerror = onerror) });
          return;
      }
    },
    ...workerOptions,
  });
  return {
    worker,
    ledger,
    get instances() {
      return instances;
    },
    serverErrors,
    close: () => worker.close(),
  };
}

/** The scenario script over Redis for one pairing; the record compares with an in-memory run's. */
export async function runPairingOverRedis(pairing: Pairing, url: string, clientOptions: Partial<RedisClientTransportOptions> = {}): Promise<RunRecord & { instances: number }> {
  const service = uniqueService('transcript');
  const served = await fixtureWorker(url, service, pairing.server);
  const transport = new RedisClientTransport({ servers: url, service, ...clientOptions });
  const wrapped = wrap(transport, [], { name: 'client', events: transport.events });
  const clientLog = tap(wrapped);
  const sdkErrors: RunRecord['sdkErrors'] = { client: [], server: served.serverErrors };
  const client = pairing.client();
  client.onerror = (error) => void sdkErrors.client.push(error.message);
  try {
    await client.connect(wrapped);
    const era = client.era();
    const steps = await runScenarios(client, { era, serverSdk: pairing.server === 'v1' ? 'v1' : 'v2' });
    return {
      steps,
      client: clientLog,
      server: { sent: [], received: [], errors: [] },
      sdkErrors,
      ledger: served.ledger.snapshot(),
      era,
      instances: served.instances,
    };
  } finally {
    await client.close();
    await served.close();
  }
}
