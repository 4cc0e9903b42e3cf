/**
 * serveNats(): a worker that serves MCP sessions of one service from the broker.
 *
 *   const worker = await serveNats({ servers: 'nats://127.0.0.1:4222', service: 'tools',
 *     onsession: async (transport) => {
 *       const server = new McpServer({ name: 'tools', version: '1.0.0' });
 *       await server.connect(wrap(transport, layers, { events: transport.events }));
 *     } });
 *
 * `onsession` gets one NatsServerTransport per 2025-era session (its `initialize`) and one
 * per sessionless 2026-07-28 request, so an SDK McpServer connects unchanged, one
 * instance each. Every worker of the service pulls from one JetStream consumer, and only
 * while it has room (`maxInFlight`, `maxSessions`): new work goes to a worker that is free.
 * A session's later messages come from its own subject and consumer, which the worker
 * that opened it consumes — and the next one, after a replayed handshake.
 *
 * What every broker's worker decides (redelivery only if idempotent, deduplication,
 * sessions, capacity, drain) is in ../broker/worker.ts; this file is how NATS carries it:
 * the stream refuses a second publish of the same client and wire id within
 * `dedupWindowMs`, a request is acknowledged after its response is published, and
 * requests in hand are kept alive with `working`.
 */
import {
  AckPolicy,
  type Consumer,
  DiscardPolicy,
  type ConsumerMessages,
  type JetStreamClient,
  type JetStreamManager,
  jetstream,
  jetstreamManager,
  type JsMsg,
  RetentionPolicy,
  StorageType,
} from '@nats-io/jetstream';
import { Empty, nanos, type NatsConnection, nuid, type Subscription } from '@nats-io/transport-node';
import { TransportError } from '../../core/errors.ts';
import { choiceOption, optionsObject } from '../../core/options.ts';
import { sleep } from '../../layer-kit/sleep.ts';
import { encodeHandshake, type Handshake } from '../broker/codec.ts';
import { type BrokerWorkerOptions, resolveWorkerPolicies, WORKER_OPTIONS } from '../broker/options.ts';
import { type ServerTransportInit, type WorkerLink } from '../broker/session.ts';
import { type Arrival, BrokerWorker, type SessionRecord } from '../broker/worker.ts';
import { headerRecord, headersFor, NATS_LIMIT, wireSize } from './codec.ts';
import { isNoResponders, openConnection, type ResolvedCommon, resolveCommon } from './connection.ts';
import { COMMON_OPTIONS, type NatsCommonOptions } from './options.ts';
import { NatsServerTransport } from './session.ts';
import { clientMessages, clientProbe, Header, sessionConsumer, WORKERS_CONSUMER, WORKERS_QUEUE } from './subjects.ts';

export interface NatsWorkerOptions extends NatsCommonOptions, BrokerWorkerOptions<NatsServerTransport> {
  /** Where the stream keeps messages. `file` survives a broker restart. Default `file`. */
  storage?: 'file' | 'memory';
}

const LABEL = 'mcp-layers/nats worker';
/** Most messages asked for in one pull: small, so that new work spreads over the workers that have room. */
const PULL_BATCH = 8;
const PULL_EXPIRES_MS = 5_000;

/** A JetStream message as the shared worker sees it (an interface, so the package's declarations do not name the client library's types). */
interface NatsArrival extends Arrival {
  /** Resets the broker's acknowledgement timer. */
  working(): void;
}

function arrival(msg: JsMsg): NatsArrival {
  return {
    data: msg.data,
    subject: msg.subject,
    redelivered: msg.redelivered,
    deliveryCount: msg.info.deliveryCount,
    header: (name) => msg.headers?.get(name) || undefined,
    headers: () => headerRecord(msg.headers),
    ack: () => msg.ack(),
    handBack: () => msg.nak(),
    terminate: () => msg.term(),
    working: () => msg.working(),
  };
}

/** What the worker keeps of a session's consumer: a way to stop it. */
interface Consuming {
  close(): Promise<void | Error>;
}

export async function serveNats(options: NatsWorkerOptions): Promise<NatsWorker> {
  const worker = new NatsWorker(options);
  await worker.start();
  return worker;
}

export class NatsWorker extends BrokerWorker<NatsServerTransport, NatsArrival, Consuming, 'stream' | 'core'> {
  readonly #common: ResolvedCommon;
  readonly #storage: 'file' | 'memory';

  #nc: NatsConnection | undefined;
  #owned = false;
  #js: JetStreamClient | undefined;
  #jsm: JetStreamManager | undefined;
  readonly #subs: Subscription[] = [];
  #pulling: Promise<void> | undefined;
  #batch: ConsumerMessages | undefined;

  constructor(options: NatsWorkerOptions) {
    optionsObject(options, 'serveNats', [...COMMON_OPTIONS, ...WORKER_OPTIONS, 'storage']);
    const common = resolveCommon('serveNats', options);
    const policies = resolveWorkerPolicies('serveNats', options);
    const storage = choiceOption('serveNats.storage', options.storage, 'file', ['file', 'memory']);
    super(
      { layer: 'nats', label: LABEL, unit: 'NATS message', limit: NATS_LIMIT, connection: 'the connection to the NATS server' },
      policies,
      policies.id ?? nuid.next(),
      common.events,
      options,
      'serveNats.nonIdempotentTools',
    );
    this.#common = common;
    this.#storage = storage;
  }

  /** The service's stream on the broker. */
  get stream(): string {
    return this.#common.subjects.stream;
  }

  protected override newTransport(link: WorkerLink, init: ServerTransportInit): NatsServerTransport {
    return new NatsServerTransport(link, init);
  }

  // ── the broker's side ────────────────────────────────────────────────────────

  protected override async connect(): Promise<string> {
    const { subjects } = this.#common;
    const { nc, owned } = await openConnection(this.#common, LABEL, `mcp-layers worker ${subjects.service} ${this.id}`);
    this.#nc = nc;
    this.#owned = owned;
    try {
      this.#jsm = await jetstreamManager(nc);
      this.#js = jetstream(nc);
      await this.#ensureStream(this.#jsm);
      await this.#ensureHandshakes(this.#jsm);
      await this.#ensureConsumer(this.#jsm, {
        durable_name: WORKERS_CONSUMER,
        filter_subject: subjects.requests,
        ack_policy: AckPolicy.Explicit,
        ack_wait: nanos(this.policies.ackWaitMs),
        max_ack_pending: -1,
      });
    } catch (error) {
      if (owned) await nc.close().catch(() => {});
      throw new TransportError(`${LABEL}: could not set up the stream ${subjects.stream} for "${subjects.service}": ${(error as Error).message}`, {
        layer: 'nats',
        reason: 'setup-failed',
        cause: error,
      });
    }
    this.#subs.push(
      nc.subscribe(subjects.worker(this.id), {
        callback: (_error, msg) => {
          const sessionId = msg.string();
          msg.respond(JSON.stringify({ worker: this.id, holds: sessionId === '' ? undefined : this.sessionRecord(sessionId) !== undefined }));
        },
      }),
      nc.subscribe(subjects.presence, { queue: WORKERS_QUEUE, callback: (_error, msg) => void msg.respond(JSON.stringify({ worker: this.id })) }),
      nc.subscribe(subjects.control, {
        callback: (error, msg) => (error === null ? this.onControl(msg.data, msg.headers?.get(Header.Client) || undefined, msg.subject, headerRecord(msg.headers)) : this.report(error)),
      }),
    );
    void this.#watch(nc);
    return nc.getServer();
  }

  protected override startReading(): void {
    this.#pulling = this.#pull();
  }

  protected override async stopReading(): Promise<void> {
    await this.#batch?.close().catch(() => {});
    await this.#pulling?.catch(() => {});
    await Promise.all([...this.sessionRecords()].map((s) => s.binding?.close().catch(() => {})));
    if (this.#nc?.isClosed() !== false) this.connected = false;
  }

  protected override async disconnect(): Promise<void> {
    for (const sub of this.#subs.splice(0)) sub.unsubscribe();
    const nc = this.#nc;
    if (nc !== undefined && !nc.isClosed()) {
      // The acknowledgements and answers above must reach the broker before the connection goes.
      if (this.connected) await nc.flush().catch(() => {});
      if (this.#owned) await nc.close().catch(() => {});
    }
  }

  async #ensureStream(jsm: JetStreamManager): Promise<void> {
    const { subjects } = this.#common;
    const config = {
      name: subjects.stream,
      subjects: [subjects.requests, subjects.sessionsWildcard],
      retention: RetentionPolicy.Workqueue,
      storage: this.#storage === 'file' ? StorageType.File : StorageType.Memory,
      duplicate_window: nanos(this.policies.dedupWindowMs),
      max_age: nanos(this.policies.maxAgeMs),
    };
    try {
      await jsm.streams.add(config);
    } catch (error) {
      // Another worker made it first (possibly with other settings): use it, if it is a work queue on our subjects.
      const info = await jsm.streams.info(subjects.stream).catch(() => {
        throw error;
      });
      if (info.config.retention !== RetentionPolicy.Workqueue || !config.subjects.every((s) => info.config.subjects?.includes(s))) {
        throw new Error(`the stream ${subjects.stream} exists with another configuration (retention ${info.config.retention}, subjects ${String(info.config.subjects)})`, { cause: error });
      }
    }
  }

  /** The sessions' handshakes: the last one per session, for sessionIdleMs (the worker holding a session refreshes it). */
  async #ensureHandshakes(jsm: JetStreamManager): Promise<void> {
    const { subjects } = this.#common;
    try {
      await jsm.streams.add({
        name: subjects.handshakes,
        subjects: [subjects.handshakesWildcard],
        retention: RetentionPolicy.Limits,
        storage: this.#storage === 'file' ? StorageType.File : StorageType.Memory,
        max_msgs_per_subject: 1,
        max_age: nanos(this.policies.sessionIdleMs),
        discard: DiscardPolicy.Old,
      });
    } catch (error) {
      // Another worker made it first (possibly with another sessionIdleMs): it keeps handshakes all the same.
      await jsm.streams.info(subjects.handshakes).catch(() => {
        throw error;
      });
    }
  }

  protected override async saveHandshake(sessionId: string, handshake: Handshake): Promise<void> {
    await (this.#js as JetStreamClient).publish(this.#common.subjects.handshake(sessionId), encodeHandshake(handshake), { timeout: 5_000 });
  }

  protected override dropHandshake(sessionId: string): void {
    const { subjects } = this.#common;
    void this.#jsm?.streams.purge(subjects.handshakes, { filter: subjects.handshake(sessionId) }).catch(() => {});
  }

  async #ensureConsumer(jsm: JetStreamManager, config: Parameters<JetStreamManager['consumers']['add']>[1]): Promise<void> {
    const stream = this.#common.subjects.stream;
    try {
      await jsm.consumers.add(stream, config);
    } catch (error) {
      // It exists with other settings (another worker's options): it still routes the same subject.
      await jsm.consumers.info(stream, config.durable_name as string).catch(() => {
        throw error;
      });
    }
  }

  async #watch(nc: NatsConnection): Promise<void> {
    try {
      for await (const status of nc.status()) {
        if (status.type === 'disconnect') {
          this.connected = false;
          this.fanout.emit('connection', { state: 'closed', transport: 'nats', url: status.server, reason: 'the connection to the NATS server was lost' });
        } else if (status.type === 'reconnect') {
          this.connected = true;
          this.fanout.emit('connection', { state: 'open', transport: 'nats', url: status.server });
        }
      }
    } catch (error) {
      this.report(error);
    }
  }

  protected override announce(state: 'joined' | 'left'): void {
    const nc = this.#nc;
    if (nc !== undefined && !nc.isClosed()) nc.publish(this.#common.subjects.announcements, JSON.stringify({ worker: this.id, state }));
  }

  /** Pulls new sessions and sessionless requests while there is room. */
  async #pull(): Promise<void> {
    const js = this.#js as JetStreamClient;
    const { subjects } = this.#common;
    let consumer: Consumer | undefined;
    while (!this.stop.signal.aborted) {
      try {
        await this.roomForWork();
        if (this.stop.signal.aborted) return;
        consumer ??= await js.consumers.get(subjects.stream, WORKERS_CONSUMER);
        const batch = await consumer.fetch({ max_messages: Math.min(PULL_BATCH, this.room), expires: PULL_EXPIRES_MS });
        this.#batch = batch;
        for await (const msg of batch) this.onShared(arrival(msg));
      } catch (error) {
        if (this.stop.signal.aborted) return;
        consumer = undefined;
        this.report(new TransportError(`${LABEL}: pulling from ${subjects.stream}/${WORKERS_CONSUMER} failed; trying again: ${(error as Error).message}`, { layer: 'nats', reason: 'pull-failed', cause: error }));
        await sleep(500, this.stop.signal).catch(() => {});
      } finally {
        this.#batch = undefined;
      }
    }
  }

  protected override keepAlive(deliveries: NatsArrival[]): void {
    for (const delivery of deliveries) delivery.working();
  }

  protected override async clientsGone(inboxes: string[]): Promise<Set<string>> {
    const nc = this.#nc;
    const gone = new Set<string>();
    if (nc === undefined || nc.isClosed()) return gone;
    await Promise.all(
      inboxes.map(async (inbox) => {
        try {
          await nc.request(clientProbe(inbox), Empty, { timeout: Math.min(5_000, this.policies.clientCheckMs as number) });
        } catch (error) {
          if (isNoResponders(error)) gone.add(inbox);
        }
      }),
    );
    return gone;
  }

  /** After a session's initialize is answered: its own subject and consumer, from this worker on. */
  protected override async bind(record: SessionRecord<NatsServerTransport, Consuming>): Promise<void> {
    const js = this.#js as JetStreamClient;
    const jsm = this.#jsm as JetStreamManager;
    const { subjects } = this.#common;
    const name = sessionConsumer(record.id);
    await this.#ensureConsumer(jsm, {
      durable_name: name,
      filter_subject: subjects.session(record.id),
      ack_policy: AckPolicy.Explicit,
      ack_wait: nanos(this.policies.ackWaitMs),
      max_ack_pending: this.policies.perSession,
      inactive_threshold: nanos(this.policies.sessionIdleMs),
    });
    const consumer = await js.consumers.get(subjects.stream, name);
    if (this.sessionRecord(record.id) !== record) return;
    record.binding = await consumer.consume({
      max_messages: this.policies.perSession,
      callback: (msg) => this.onSession(record, arrival(msg)),
    });
  }

  protected override unbind(record: SessionRecord<NatsServerTransport, Consuming>, forGood: boolean): void {
    void record.binding?.close().catch(() => {});
    if (forGood) void this.#jsm?.consumers.delete(this.#common.subjects.stream, sessionConsumer(record.id)).catch(() => {});
  }

  // ── what goes out ────────────────────────────────────────────────────────────

  protected override publish(inbox: string, data: Uint8Array, headers: Array<[string, string]>, ack: NatsArrival | undefined, method: string | undefined): void {
    const nc = this.#nc;
    if (nc === undefined || nc.isClosed()) throw new TransportError(`${LABEL}: cannot send: the connection to the NATS server is closed`, { layer: 'nats', reason: 'connection-closed', neverSent: true });
    const subject = clientMessages(inbox);
    nc.publish(subject, data, { headers: headersFor(headers) });
    ack?.ack();
    if (this.brokerEvents.has('broker-published')) this.brokerEvents.emit('broker-published', { subject, via: 'core', bytes: this.sizeOf(data, headers), method });
  }

  protected override sizeOf(data: Uint8Array, headers: Array<[string, string]>): number {
    return wireSize(data, headersFor(headers));
  }

  protected override maxPayload(): number | undefined {
    return this.#nc?.info?.max_payload;
  }
}
