/**
 * The two broker transports, described once so that a scenario can be written once and run
 * against both (test/transports/brokers/): each broker's real server (started on a free
 * 127.0.0.1 port, stopped in afterAll/afterEach), how to make its client transport and
 * serve a worker, the worker child process for the failover tests, the words its errors
 * use, and the message logged when its server binary is missing.
 *
 * On top of that, the reference fixture served over either broker: a worker whose every
 * session — or sessionless request — gets its own SDK server instance, all counting into
 * one Ledger, and the scenario script run through a client transport against it. Both
 * sides are wrapped with `wrap(t, [])`, so what the application sees must equal an
 * unwrapped in-memory run (invariant 6).
 */
import { describe } from 'vitest';
import type { Transport } from '#core/transport.ts';
import { wrap } from '#core/wrap.ts';
import { NatsClientTransport, type NatsServerTransport, type NatsWorker, serveNats } from '#mcp-layers/nats';
import { RedisClientTransport, type RedisServerTransport, type RedisWorker, serveRedis } from '#mcp-layers/redis';
import type { BrokerClientOptions, BrokerWorkerOptions } from '#transports/broker/options.ts';
import { Ledger } from './ledger.ts';
import { type BrokerServer, NATS_SERVER, NATS_SKIP_MESSAGE, startNatsServer } from './nats-server.ts';
import { REDIS_SERVER, REDIS_SKIP_MESSAGE, startRedisServer } from './redis-server.ts';
import type { Pairing, RunRecord, ServerKind } from './run.ts';
import { runScenarios } from './scenarios.ts';
import { createV1Server } from './server-v1.ts';
import { createV2Server, serveV2 } from './server-v2.ts';
import { tap } from './tap.ts';

export type { BrokerServer };

export type BrokerClientTransport = NatsClientTransport | RedisClientTransport;
export type BrokerWorker = NatsWorker | RedisWorker;
export type BrokerServerTransport = NatsServerTransport | RedisServerTransport;

/** The client options the shared scenarios set, on either broker. */
export interface ClientOptions extends BrokerClientOptions {
  servers: string;
  service: string;
  /** Reconnect to a broker that went away within some 50 ms (each client library says so its own way). */
  quickReconnect?: boolean;
}

/** The worker options the shared scenarios set, on either broker. */
export type WorkerOptions = Partial<BrokerWorkerOptions<BrokerServerTransport>> & { servers: string; service: string; onsession: (transport: BrokerServerTransport) => void | Promise<void> };

export interface Broker {
  /** `nats` or `redis`: the module (`mcp-layers/<name>`) and the `layer` of its errors. */
  readonly name: 'nats' | 'redis';
  /** How its messages name it: `NATS`, `Redis`. */
  readonly title: string;
  /** The server's binary name, as in "through a real nats-server". */
  readonly server: string;
  /** The server binary, or undefined where it is not installed (the broker's suites are then skipped). */
  readonly binary: string | undefined;
  /** Logged once by a suite that is skipped because the binary is missing. */
  readonly skipMessage: string;
  /** The payload limit, as its messages name it: whose limit, and the option's word. */
  readonly payloadLimit: { readonly owner: string; readonly word: string };
  /** What a foreign publisher can write garbage onto, as a test name says it. */
  readonly places: string;
  start(): Promise<BrokerServer>;
  client(options: ClientOptions): BrokerClientTransport;
  serve(options: WorkerOptions): Promise<BrokerWorker>;
}

/** The worker child process of the failover tests: node <script> <broker name> <url> <service> <id> <hold: 0|1> <count-file>. */
export const BROKER_WORKER_CHILD = new URL('./broker-worker-child.ts', import.meta.url).pathname;

export const NATS: Broker = {
  name: 'nats',
  title: 'NATS',
  server: 'nats-server',
  binary: NATS_SERVER,
  skipMessage: NATS_SKIP_MESSAGE,
  payloadLimit: { owner: "the NATS server's", word: 'max_payload' },
  places: 'subject',
  start: () => startNatsServer(),
  client: ({ quickReconnect = false, ...options }) => new NatsClientTransport({ ...options, ...(quickReconnect ? { connectOptions: { reconnectTimeWait: 50 } } : {}) }),
  serve: (options) => serveNats({ storage: 'memory', ...options }),
};

export const REDIS: Broker = {
  name: 'redis',
  title: 'Redis',
  server: 'redis-server',
  binary: REDIS_SERVER,
  skipMessage: REDIS_SKIP_MESSAGE,
  payloadLimit: { owner: "the service's", word: 'maxPayload' },
  places: 'stream and channel',
  start: () => startRedisServer(),
  client: ({ quickReconnect = false, ...options }) => new RedisClientTransport({ ...options, ...(quickReconnect ? { connectOptions: { socket: { reconnectStrategy: 50 } } } : {}) }),
  serve: (options) => serveRedis(options),
};

export const BROKERS: readonly Broker[] = [NATS, REDIS];

export function brokerNamed(name: string): Broker {
  const found = BROKERS.find((b) => b.name === name);
  if (found === undefined) throw new Error(`no broker "${name}" (expected ${BROKERS.map((b) => b.name).join(' or ')})`);
  return found;
}

/**
 * `describe` once per broker, titled by `title(broker)`: a broker whose server binary is
 * missing has its suite skipped, and its skip message logged once (naming `file`).
 */
export function describeEachBroker(file: string, title: (broker: Broker) => string, body: (broker: Broker) => void): void {
  for (const broker of BROKERS) {
    if (broker.binary === undefined) console.warn(`${file} (${broker.name}): ${broker.skipMessage}`);
    describe.skipIf(broker.binary === undefined)(title(broker), () => body(broker));
  }
}

let services = 0;
/** A service name no other test of this process uses (tests share one broker). */
export function uniqueService(name = 'svc'): string {
  return `${name}-${process.pid}-${++services}`;
}

export interface FixtureWorker {
  worker: BrokerWorker;
  ledger: Ledger;
  /** How many server instances onsession made (a session, or a sessionless request, each). */
  readonly instances: number;
  serverErrors: string[];
  close(): Promise<void>;
}

export type FixtureWorkerOptions = Partial<BrokerWorkerOptions<BrokerServerTransport>> & { ledger?: Ledger; wrapServer?: (transport: BrokerServerTransport) => Transport };

/** A worker serving the reference fixture on `kind`'s SDK glue, every instance into one Ledger. */
export async function fixtureWorker(broker: Broker, url: string, service: string, kind: ServerKind, options: FixtureWorkerOptions = {}): Promise<FixtureWorker> {
  const { ledger = new Ledger(), wrapServer = (t: BrokerServerTransport) => wrap(t, [], { events: t.events }), ...workerOptions } = options;
  const serverErrors: string[] = [];
  const onerror = (error: Error) => void serverErrors.push(error.message);
  let instances = 0;
  const worker = await broker.serve({
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
    close: () => worker.close().then(() => undefined),
  };
}

/** The scenario script over `broker` for one pairing; the record compares with an in-memory run's. */
export async function runPairingOverBroker(broker: Broker, pairing: Pairing, url: string, clientOptions: Partial<ClientOptions> = {}): Promise<RunRecord & { instances: number }> {
  const service = uniqueService('transcript');
  const served = await fixtureWorker(broker, url, service, pairing.server);
  const transport = broker.client({ servers: url, service, ...clientOptions });
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
