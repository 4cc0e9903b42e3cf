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
 * Delivery: a request is acknowledged after its response is published. A request the
 * broker delivers a second time (its worker stopped before acknowledging it) runs again
 * only when it is idempotent by invariant 3 (the client's `Mcp-Idempotent`, this worker's
 * `idempotentTools` and what it learned from tools/list; `nonIdempotentTools` vetoes);
 * any other is answered with one error and acknowledged, never run twice. The stream
 * refuses a second publish of the same client and wire id within `dedupWindowMs`, and
 * the worker drops a request it answered or holds.
 */
import {
  AckPolicy,
  type Consumer,
  type ConsumerMessages,
  type JetStreamClient,
  type JetStreamManager,
  jetstream,
  jetstreamManager,
  type JsMsg,
  RetentionPolicy,
  StorageType,
} from '@nats-io/jetstream';
import { Empty, type MsgHdrs, nanos, type NatsConnection, nuid, type Subscription } from '@nats-io/transport-node';
import { asError, ErrorCode, InvalidMessageError, toErrorObject, TransportError } from '../../core/errors.ts';
import type { EventBus } from '../../core/events.ts';
import { globMatcher } from '../../core/glob.ts';
import { Idempotency, type IdempotencyOptions } from '../../core/idempotency.ts';
import { CANCELLED, isRequest, type JSONRPCMessage, type JSONRPCRequest, type RequestId } from '../../core/jsonrpc.ts';
import { choiceOption, durationOption, functionOption, integerOption, invalidOption, optionsObject } from '../../core/options.ts';
import type { MessageExtraInfo } from '../../core/transport.ts';
import { EventFanout } from '../../core/wire.ts';
import { sleep, unref } from '../../layer-kit/sleep.ts';
import { decode, describeMessage, encode, headerRecord, headersFor, overMaxPayload, toolOf, wireSize } from './codec.ts';
import type { NatsEvents } from './events.ts';
import { isNoResponders, openConnection, type ResolvedCommon, resolveCommon } from './connection.ts';
import { COMMON_OPTIONS, type NatsCommonOptions } from './options.ts';
import { deliver, end, type Held, held, NatsServerTransport, type WorkerLink } from './session.ts';
import { clientMessages, clientProbe, Header, isName, requestKey, sessionConsumer, WORKERS_CONSUMER, WORKERS_QUEUE } from './subjects.ts';

export interface NatsWorkerOptions extends NatsCommonOptions, IdempotencyOptions {
  /** Called with each new session's (or sessionless request's) transport, not started yet: connect your McpServer to it. */
  onsession: (transport: NatsServerTransport) => void | Promise<void>;
  /** Requests this worker holds at once; beyond, it takes no new sessions or sessionless requests. Default 64. */
  maxInFlight?: number;
  /** Sessions this worker holds at once; beyond, it takes no new ones. Default 1 000. */
  maxSessions?: number;
  /** Requests of one session delivered and not answered at once (the session consumer's max_ack_pending). Default 32. */
  maxInFlightPerSession?: number;
  /**
   * How long the broker waits for a delivered request to be acknowledged before it
   * redelivers it to another worker. Requests in hand are kept alive (`working`), so this
   * is how soon a dead worker's requests move, not a limit on how long one may run. Default 10 000 ms.
   */
  ackWaitMs?: number;
  /** The window in which a second publish of the same client and wire id is dropped by the stream, and a worker remembers answered requests. Default 120 000 ms. */
  dedupWindowMs?: number;
  /** Where the stream keeps messages. `file` survives a broker restart. Default `file`. */
  storage?: 'file' | 'memory';
  /** Messages older than this are dropped from the stream (a session nobody resumed). Default 3 600 000 ms. */
  maxAgeMs?: number;
  /** A session's consumer is deleted by the broker after this long without a worker pulling from it. Default 3 600 000 ms. */
  sessionIdleMs?: number;
  /** How often each session's client is asked whether it is still there; a client that is gone releases its session. `false`: never. Default 30 000 ms. */
  clientCheckMs?: number | false;
  /** How long close() waits for the requests in hand to be answered before it hands them back to the broker. Default 10 000 ms. */
  drainTimeoutMs?: number;
  /** This worker's id on the broker. Default a random one. */
  id?: string;
}

interface SessionRecord {
  readonly id: string;
  readonly transport: NatsServerTransport;
  readonly initializeId: RequestId;
  readonly replay: 'initialize' | 'initialized' | undefined;
  messages: ConsumerMessages | undefined;
  bound: boolean;
}

const LABEL = 'mcp-layers/nats worker';
/** Most messages asked for in one pull: small, so that new work spreads over the workers that have room. */
const PULL_BATCH = 8;
const PULL_EXPIRES_MS = 5_000;
/** Bound on the worker's memory of answered and cancelled requests, whatever the window. */
const MAX_REMEMBERED = 100_000;
/** How long the instance of a cancelled sessionless request lives on, to wind its handler down. */
const CANCEL_GRACE_MS = 1_000;

export async function serveNats(options: NatsWorkerOptions): Promise<NatsWorker> {
  const worker = new NatsWorker(options);
  await worker.start();
  return worker;
}

export class NatsWorker {
  /** Problems that are nobody else's: garbage on the subjects, a failing onsession, a broker error. */
  onerror?: (error: Error) => void;
  readonly id: string;
  /** Every session's transport publishes here too (`connection`, and what layers publish through the wire control). */
  readonly events: EventBus;
  /** `published`, `redelivered`, `deduplicated`, `worker`, `session`, `garbage`. */
  readonly natsEvents: EventBus<NatsEvents>;

  readonly #common: ResolvedCommon;
  readonly #onsession: NatsWorkerOptions['onsession'];
  readonly #maxInFlight: number;
  readonly #maxSessions: number;
  readonly #perSession: number;
  readonly #ackWaitMs: number;
  readonly #dedupWindowMs: number;
  readonly #storage: 'file' | 'memory';
  readonly #maxAgeMs: number;
  readonly #sessionIdleMs: number;
  readonly #clientCheckMs: number | false;
  readonly #drainTimeoutMs: number;
  readonly #idempotency: Idempotency;
  readonly #veto: (tool: string) => boolean;
  readonly #link: WorkerLink;
  readonly #stop = new AbortController();

  #nc: NatsConnection | undefined;
  #owned = false;
  #js: JetStreamClient | undefined;
  #jsm: JetStreamManager | undefined;
  readonly #subs: Subscription[] = [];
  readonly #sessions = new Map<string, SessionRecord>();
  /** Sessionless requests in hand, by deduplication key. */
  readonly #requests = new Map<string, NatsServerTransport>();
  /** Deduplication keys of requests answered (or cancelled) lately → when they may be forgotten. */
  readonly #answered = new Map<string, number>();
  readonly #cancelled = new Map<string, number>();
  #inFlight = 0;
  #connected = true;
  #room: PromiseWithResolvers<void> | undefined;
  #pulling: Promise<void> | undefined;
  #batch: ConsumerMessages | undefined;
  #keepAlive: NodeJS.Timeout | undefined;
  #clientCheck: NodeJS.Timeout | undefined;
  #state: 'idle' | 'serving' | 'closing' | 'closed' = 'idle';
  #closing: Promise<void> | undefined;

  constructor(options: NatsWorkerOptions) {
    optionsObject(options, 'serveNats', [
      ...COMMON_OPTIONS,
      'onsession',
      'maxInFlight',
      'maxSessions',
      'maxInFlightPerSession',
      'ackWaitMs',
      'dedupWindowMs',
      'storage',
      'maxAgeMs',
      'sessionIdleMs',
      'clientCheckMs',
      'drainTimeoutMs',
      'id',
      'idempotentTools',
      'nonIdempotentTools',
    ]);
    this.#common = resolveCommon('serveNats', options);
    this.events = this.#common.events;
    this.natsEvents = this.#common.natsEvents;
    const onsession = functionOption<NatsWorkerOptions['onsession']>('serveNats.onsession', options.onsession);
    if (onsession === undefined) throw invalidOption('serveNats.onsession', 'a function (transport) => void', undefined);
    this.#onsession = onsession;
    this.#maxInFlight = integerOption('serveNats.maxInFlight', options.maxInFlight, 64, 1);
    this.#maxSessions = integerOption('serveNats.maxSessions', options.maxSessions, 1_000, 1);
    this.#perSession = integerOption('serveNats.maxInFlightPerSession', options.maxInFlightPerSession, 32, 1);
    this.#ackWaitMs = durationOption('serveNats.ackWaitMs', options.ackWaitMs, 10_000, 100);
    this.#dedupWindowMs = durationOption('serveNats.dedupWindowMs', options.dedupWindowMs, 120_000, 100);
    this.#storage = choiceOption('serveNats.storage', options.storage, 'file', ['file', 'memory']);
    this.#maxAgeMs = durationOption('serveNats.maxAgeMs', options.maxAgeMs, 3_600_000, 1_000);
    this.#sessionIdleMs = durationOption('serveNats.sessionIdleMs', options.sessionIdleMs, 3_600_000, 1_000);
    this.#clientCheckMs = options.clientCheckMs === false ? false : durationOption('serveNats.clientCheckMs', options.clientCheckMs, 30_000, 10);
    this.#drainTimeoutMs = durationOption('serveNats.drainTimeoutMs', options.drainTimeoutMs, 10_000);
    if (options.id !== undefined && !isName(options.id)) throw invalidOption('serveNats.id', 'a name of 1 to 64 letters, digits, "_" or "-"', options.id);
    this.id = options.id ?? nuid.next();
    this.#idempotency = new Idempotency({ idempotentTools: options.idempotentTools, nonIdempotentTools: options.nonIdempotentTools });
    this.#veto = globMatcher(options.nonIdempotentTools ?? [], 'serveNats.nonIdempotentTools');
    const fanout = new EventFanout(this.events);
    this.#link = {
      publish: (transport, message) => this.#publishTo(transport, message),
      answered: (transport, entry, response) => this.#answer(transport, entry, response),
      closed: (transport) => this.#transportClosed(transport),
    };
    this.#fanout = fanout;
  }

  readonly #fanout: EventFanout;

  /** Sessions held now. */
  get sessions(): number {
    return this.#sessions.size;
  }

  /** Requests delivered to the application and not answered yet. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** The service's stream on the broker. */
  get stream(): string {
    return this.#common.subjects.stream;
  }

  async start(): Promise<void> {
    if (this.#state !== 'idle') throw new Error(`${LABEL}: already started`);
    this.#state = 'serving';
    const { subjects } = this.#common;
    const { nc, owned } = await openConnection(this.#common, LABEL, `mcp-layers worker ${subjects.service} ${this.id}`);
    this.#nc = nc;
    this.#owned = owned;
    try {
      this.#jsm = await jetstreamManager(nc);
      this.#js = jetstream(nc);
      await this.#ensureStream(this.#jsm);
      await this.#ensureConsumer(this.#jsm, {
        durable_name: WORKERS_CONSUMER,
        filter_subject: subjects.requests,
        ack_policy: AckPolicy.Explicit,
        ack_wait: nanos(this.#ackWaitMs),
        max_ack_pending: -1,
      });
    } catch (error) {
      this.#state = 'closed';
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
          msg.respond(JSON.stringify({ worker: this.id, holds: sessionId === '' ? undefined : this.#sessions.has(sessionId) }));
        },
      }),
      nc.subscribe(subjects.presence, { queue: WORKERS_QUEUE, callback: (_error, msg) => void msg.respond(JSON.stringify({ worker: this.id })) }),
      nc.subscribe(subjects.control, { callback: (error, msg) => (error === null ? this.#onControl(msg.data, msg.headers, msg.subject) : this.#report(error)) }),
    );
    this.#keepAlive = setInterval(() => this.#tick(), Math.max(50, this.#ackWaitMs / 3));
    unref(this.#keepAlive);
    if (this.#clientCheckMs !== false) {
      this.#clientCheck = setInterval(() => void this.#checkClients(), this.#clientCheckMs);
      unref(this.#clientCheck);
    }
    void this.#watch(nc);
    this.#announce('joined');
    this.#fanout.emit('connection', { state: 'open', transport: 'nats', url: nc.getServer() });
    this.#pulling = this.#pull();
  }

  /**
   * Stops taking new work, waits up to `drainTimeoutMs` for the requests in hand to be
   * answered, hands the rest back to the broker (redelivered to the next worker: run
   * again only if idempotent), and ends every session. The sessions stay on the broker:
   * their clients re-establish them on another worker.
   */
  close(): Promise<void> {
    if (this.#closing !== undefined) return this.#closing;
    this.#closing = (async () => {
      if (this.#state === 'idle') {
        this.#state = 'closed';
        return;
      }
      this.#state = 'closing';
      this.#stop.abort();
      await this.#batch?.close().catch(() => {});
      await this.#pulling?.catch(() => {});
      await Promise.all([...this.#sessions.values()].map((s) => s.messages?.close().catch(() => {})));
      // Answers cannot leave while the broker is unreachable: waiting for them would only delay the close.
      if (this.#inFlight > 0 && this.#drainTimeoutMs > 0 && this.#connected && this.#nc?.isClosed() === false) await this.#drained(this.#drainTimeoutMs);
      for (const record of this.#sessions.values()) this.#release(record, 'the worker is closing', { deleteConsumer: false, handBack: true });
      for (const transport of this.#requests.values()) this.#releaseRequest(transport, { handBack: true });
      clearInterval(this.#keepAlive);
      clearInterval(this.#clientCheck);
      this.#announce('left');
      for (const sub of this.#subs.splice(0)) sub.unsubscribe();
      const nc = this.#nc;
      if (nc !== undefined && !nc.isClosed()) {
        // The acknowledgements and answers above must reach the broker before the connection goes.
        if (this.#connected) await nc.flush().catch(() => {});
        if (this.#owned) await nc.close().catch(() => {});
      }
      this.#state = 'closed';
      this.#fanout.emit('connection', { state: 'closed', transport: 'nats', reason: 'the worker closed' });
    })();
    return this.#closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // ── the broker's side ────────────────────────────────────────────────────────

  async #ensureStream(jsm: JetStreamManager): Promise<void> {
    const { subjects } = this.#common;
    const config = {
      name: subjects.stream,
      subjects: [subjects.requests, subjects.sessionsWildcard],
      retention: RetentionPolicy.Workqueue,
      storage: this.#storage === 'file' ? StorageType.File : StorageType.Memory,
      duplicate_window: nanos(this.#dedupWindowMs),
      max_age: nanos(this.#maxAgeMs),
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
          this.#connected = false;
          this.#fanout.emit('connection', { state: 'closed', transport: 'nats', url: status.server, reason: 'the connection to the NATS server was lost' });
        } else if (status.type === 'reconnect') {
          this.#connected = true;
          this.#fanout.emit('connection', { state: 'open', transport: 'nats', url: status.server });
        }
      }
    } catch (error) {
      this.#report(error);
    }
  }

  #announce(state: 'joined' | 'left'): void {
    const nc = this.#nc;
    if (nc !== undefined && !nc.isClosed()) {
      try {
        nc.publish(this.#common.subjects.announcements, JSON.stringify({ worker: this.id, state }));
      } catch (error) {
        this.#report(error);
      }
    }
    if (this.natsEvents.has('worker')) this.natsEvents.emit('worker', { state, worker: this.id });
  }

  /** Pulls new sessions and sessionless requests while there is room. */
  async #pull(): Promise<void> {
    const js = this.#js as JetStreamClient;
    const { subjects } = this.#common;
    let consumer: Consumer | undefined;
    while (!this.#stop.signal.aborted) {
      try {
        await this.#roomForWork();
        if (this.#stop.signal.aborted) return;
        consumer ??= await js.consumers.get(subjects.stream, WORKERS_CONSUMER);
        const batch = await consumer.fetch({ max_messages: Math.min(PULL_BATCH, this.#maxInFlight - this.#inFlight), expires: PULL_EXPIRES_MS });
        this.#batch = batch;
        for await (const msg of batch) this.#onShared(msg);
      } catch (error) {
        if (this.#stop.signal.aborted) return;
        consumer = undefined;
        this.#report(new TransportError(`${LABEL}: pulling from ${subjects.stream}/${WORKERS_CONSUMER} failed; trying again: ${(error as Error).message}`, { layer: 'nats', reason: 'pull-failed', cause: error }));
        await sleep(500, this.#stop.signal).catch(() => {});
      } finally {
        this.#batch = undefined;
      }
    }
  }

  #roomForWork(): Promise<void> {
    if (this.#inFlight < this.#maxInFlight && this.#sessions.size < this.#maxSessions) return Promise.resolve();
    this.#room ??= Promise.withResolvers<void>();
    return this.#room.promise;
  }

  #freed(): void {
    if (this.#room !== undefined && this.#inFlight < this.#maxInFlight && this.#sessions.size < this.#maxSessions) {
      const room = this.#room;
      this.#room = undefined;
      room.resolve();
    }
    if (this.#inFlight === 0) {
      const drained = this.#drainedWaiter;
      this.#drainedWaiter = undefined;
      drained?.resolve();
    }
  }

  #drainedWaiter: PromiseWithResolvers<void> | undefined;

  async #drained(timeoutMs: number): Promise<void> {
    this.#drainedWaiter ??= Promise.withResolvers<void>();
    await Promise.race([this.#drainedWaiter.promise, sleep(timeoutMs)]);
  }

  /** Keeps the requests in hand from being redelivered, and forgets old deduplication keys. */
  #tick(): void {
    for (const record of this.#sessions.values()) for (const entry of record.transport[held].values()) entry.msg.working();
    for (const transport of this.#requests.values()) for (const entry of transport[held].values()) entry.msg.working();
    const now = performance.now();
    for (const window of [this.#answered, this.#cancelled]) {
      for (const [key, until] of window) {
        if (until > now) break; // insertion order is expiry order
        window.delete(key);
      }
    }
  }

  #remember(window: Map<string, number>, key: string): void {
    window.delete(key);
    window.set(key, performance.now() + this.#dedupWindowMs);
    if (window.size > MAX_REMEMBERED) window.delete(window.keys().next().value as string);
  }

  async #checkClients(): Promise<void> {
    const nc = this.#nc;
    if (nc === undefined || nc.isClosed() || this.#state !== 'serving') return;
    await Promise.all(
      [...this.#sessions.values()].map(async (record) => {
        try {
          await nc.request(clientProbe(record.transport.inbox), Empty, { timeout: Math.min(5_000, this.#clientCheckMs as number) });
        } catch (error) {
          if (isNoResponders(error) && this.#sessions.get(record.id) === record) this.#release(record, 'its client is gone (no responders on its inbox)', { deleteConsumer: true, handBack: false });
        }
      }),
    );
  }

  // ── what arrives ─────────────────────────────────────────────────────────────

  /** From the shared subject: a new session, a replayed one, or a sessionless request. */
  #onShared(msg: JsMsg): void {
    try {
      const request = this.#read(msg);
      if (request === undefined) return;
      const h = msg.headers as MsgHdrs;
      const client = h.get(Header.Client);
      const inbox = h.get(Header.Reply);
      if (request.method === 'initialize') {
        void this.#openSession(msg, request, client, inbox).catch((error: unknown) => this.#report(error));
        return;
      }
      const key = requestKey(client, request.id);
      if (this.#skip(msg, key, request)) return;
      if (msg.redelivered && !this.#refuseUnlessIdempotent(msg, request, inbox, undefined)) return;
      void this.#openRequest(msg, request, client, inbox, key).catch((error: unknown) => this.#report(error));
    } catch (error) {
      this.#report(error);
    }
  }

  /**
   * A message from the stream as a request of ours, or undefined when it was dealt with:
   * garbage is reported and dropped (answered first when it is a request with an id and
   * an inbox), a notification on the shared subject is dropped.
   */
  #read(msg: JsMsg): JSONRPCRequest | undefined {
    const decoded = decode(msg.data);
    const h = msg.headers;
    const client = h?.get(Header.Client) ?? '';
    const inbox = h?.get(Header.Reply) ?? '';
    if (!decoded.ok) {
      this.#garbage(msg, decoded.problem, decoded.id, inbox);
      return undefined;
    }
    const message = decoded.message;
    if (client === '' || inbox === '') {
      this.#garbage(msg, `${describeMessage(message)} without the ${Header.Client} and ${Header.Reply} headers our clients send`, isRequest(message) ? message.id : undefined, inbox);
      return undefined;
    }
    if (!isRequest(message)) {
      this.#garbage(msg, `${describeMessage(message)} on the requests subject, which carries requests only`, undefined, '');
      return undefined;
    }
    return message;
  }

  #garbage(msg: JsMsg, problem: string, id: RequestId | undefined, inbox: string): void {
    msg.term();
    const answerable = id !== undefined && /^[A-Za-z0-9_.-]+$/.test(inbox) && !inbox.includes('*');
    if (answerable) {
      this.#publishRaw(inbox, { jsonrpc: '2.0', id, error: { code: ErrorCode.InvalidRequest, message: `Invalid request: ${problem}`, data: { layer: 'nats', reason: 'invalid-message', attempts: 1 } } }, undefined);
    }
    this.#report(new InvalidMessageError(`${LABEL}: dropped ${problem} on ${msg.subject}${answerable ? ' (answered with -32600)' : ''}`, 'inbound', { layer: 'nats', reason: 'garbage' }));
    if (this.natsEvents.has('garbage')) this.natsEvents.emit('garbage', { subject: msg.subject, problem, answered: answerable });
  }

  /** True (and acknowledged) for a request this worker answered, holds, or saw cancelled lately. */
  #skip(msg: JsMsg, key: string, request: JSONRPCRequest, transport?: NatsServerTransport): boolean {
    const inHand = transport?.[held].get(request.id) ?? this.#requests.get(key)?.[held].get(request.id);
    if (inHand !== undefined) {
      // Redelivered while in hand (its keep-alive came late): the newest delivery is the one to acknowledge.
      inHand.msg = msg;
      if (this.natsEvents.has('deduplicated')) this.natsEvents.emit('deduplicated', { where: 'worker', id: request.id });
      return true;
    }
    if (this.#answered.has(key) || this.#cancelled.has(key)) {
      msg.ack();
      if (this.natsEvents.has('deduplicated')) this.natsEvents.emit('deduplicated', { where: 'worker', id: request.id });
      return true;
    }
    return false;
  }

  /**
   * A redelivered request: true when it may run again (invariant 3); otherwise it is
   * answered with one error, acknowledged, and false.
   */
  #refuseUnlessIdempotent(msg: JsMsg, request: JSONRPCRequest, inbox: string, transport: NatsServerTransport | undefined): boolean {
    const tool = toolOf(request);
    const vetoed = tool !== undefined && this.#veto(tool);
    const again = !vetoed && (msg.headers?.get(Header.Idempotent) === '1' || this.#idempotency.isIdempotent({ method: request.method, tool }));
    const deliveryCount = msg.info.deliveryCount;
    if (this.natsEvents.has('redelivered')) this.natsEvents.emit('redelivered', { id: request.id, method: request.method, deliveryCount, outcome: again ? 'delivered' : 'refused' });
    if (again) return true;
    const error = new TransportError(
      `${LABEL}: ${request.method}${tool === undefined ? '' : ` of ${tool}`} was taken by a worker that stopped before answering it; it is not known to be idempotent (docs/architecture.md#invariant-3), so it was not run again: it may or may not have run`,
      { layer: 'nats', reason: 'worker-lost', data: { deliveryCount } },
    );
    const response: JSONRPCMessage = { jsonrpc: '2.0', id: request.id, error: toErrorObject(error, 1) };
    if (transport !== undefined) this.#publishTo(transport, response);
    else this.#publishRaw(inbox, response, undefined);
    msg.ack();
    this.#remember(this.#answered, requestKey(msg.headers?.get(Header.Client) ?? '', request.id));
    return false;
  }

  async #openSession(msg: JsMsg, initialize: JSONRPCRequest, client: string, inbox: string): Promise<void> {
    const h = msg.headers as MsgHdrs;
    const sessionId = h.get(Header.Session);
    if (!isName(sessionId)) {
      msg.term();
      this.#publishRaw(inbox, { jsonrpc: '2.0', id: initialize.id, error: { code: ErrorCode.InvalidRequest, message: `Invalid request: initialize without a valid ${Header.Session} header`, data: { layer: 'nats', reason: 'invalid-message', attempts: 1 } } }, undefined);
      return;
    }
    const replayHeader = h.get(Header.Replay);
    const replay = replayHeader === 'initialize' || replayHeader === 'initialized' ? replayHeader : undefined;
    const existing = this.#sessions.get(sessionId);
    // The client re-established a session this worker still holds (it missed our probes): the new handshake wins.
    if (existing !== undefined) this.#release(existing, 'the client re-established the session', { deleteConsumer: false, handBack: false });
    const transport = new NatsServerTransport(this.#link, { sessionId, clientId: client, inbox, fanout: this.#fanout });
    const record: SessionRecord = { id: sessionId, transport, initializeId: initialize.id, replay, messages: undefined, bound: false };
    this.#sessions.set(sessionId, record);
    this.#inFlight++;
    if (!(await this.#handOver(transport, msg, initialize))) {
      this.#sessions.delete(sessionId);
      this.#freed();
    }
  }

  async #openRequest(msg: JsMsg, request: JSONRPCRequest, client: string, inbox: string, key: string): Promise<void> {
    const transport = new NatsServerTransport(this.#link, { sessionId: undefined, clientId: client, inbox, fanout: this.#fanout });
    this.#requests.set(key, transport);
    this.#inFlight++;
    if (!(await this.#handOver(transport, msg, request))) {
      this.#requests.delete(key);
      this.#freed();
    }
  }

  /** Gives a new transport to the application, then its first request. False (answered, acknowledged) when onsession failed. */
  async #handOver(transport: NatsServerTransport, msg: JsMsg, request: JSONRPCRequest): Promise<boolean> {
    try {
      await this.#onsession(transport);
    } catch (error) {
      this.#report(new Error(`${LABEL}: onsession failed; the request was answered with an error: ${asError(error).message}`, { cause: error }));
      this.#inFlight--;
      this.#publishTo(transport, { jsonrpc: '2.0', id: request.id, error: { code: ErrorCode.InternalError, message: 'The worker could not set up a server for this request', data: { layer: 'nats', reason: 'onsession-failed', attempts: 1 } } });
      msg.ack();
      transport[end]();
      return false;
    }
    transport[deliver](request, this.#extra(msg.headers), { msg, method: request.method, key: requestKey(transport.clientId, request.id) });
    return true;
  }

  #extra(h: MsgHdrs | undefined): MessageExtraInfo {
    return { requestInfo: { headers: headerRecord(h) } };
  }

  /** After a session's initialize is answered: its own subject, from this worker on. */
  async #bind(record: SessionRecord): Promise<void> {
    const js = this.#js as JetStreamClient;
    const jsm = this.#jsm as JetStreamManager;
    const { subjects } = this.#common;
    const name = sessionConsumer(record.id);
    await this.#ensureConsumer(jsm, {
      durable_name: name,
      filter_subject: subjects.session(record.id),
      ack_policy: AckPolicy.Explicit,
      ack_wait: nanos(this.#ackWaitMs),
      max_ack_pending: this.#perSession,
      inactive_threshold: nanos(this.#sessionIdleMs),
    });
    const consumer = await js.consumers.get(subjects.stream, name);
    if (this.#sessions.get(record.id) !== record) return;
    record.messages = await consumer.consume({
      max_messages: this.#perSession,
      callback: (msg) => this.#onSession(record, msg),
    });
    record.bound = true;
    if (this.#sessions.get(record.id) !== record) void record.messages.close().catch(() => {});
  }

  /** From a session's own subject: whatever its client sends. */
  #onSession(record: SessionRecord, msg: JsMsg): void {
    try {
      const { transport } = record;
      if (transport.closed) return; // left unacknowledged: the session's next worker gets it
      const h = msg.headers;
      if (h?.get(Header.Close) === '1') {
        msg.ack();
        this.#release(record, 'the client closed the session', { deleteConsumer: true, handBack: false });
        return;
      }
      const decoded = decode(msg.data);
      if (!decoded.ok) {
        this.#garbage(msg, decoded.problem, decoded.id, transport.inbox);
        return;
      }
      const message = decoded.message;
      if (isRequest(message)) {
        const key = requestKey(transport.clientId, message.id);
        if (this.#skip(msg, key, message, transport)) return;
        if (msg.redelivered && !this.#refuseUnlessIdempotent(msg, message, transport.inbox, transport)) return;
        this.#inFlight++;
        transport[deliver](message, this.#extra(h), { msg, method: message.method, key });
        return;
      }
      msg.ack();
      if ('method' in message && message.method === CANCELLED) this.#cancelHeld(transport, message.params?.['requestId']);
      transport[deliver](message, this.#extra(h));
    } catch (error) {
      this.#report(error);
    }
  }

  /** Core broadcast to every worker: a client cancelled a sessionless request. */
  #onControl(data: Uint8Array, h: MsgHdrs | undefined, subject: string): void {
    const decoded = decode(data);
    const client = h?.get(Header.Client) ?? '';
    if (!decoded.ok || client === '') {
      const problem = decoded.ok ? `${describeMessage(decoded.message)} without the ${Header.Client} header` : decoded.problem;
      this.#report(new InvalidMessageError(`${LABEL}: dropped ${problem} on ${subject}`, 'inbound', { layer: 'nats', reason: 'garbage' }));
      if (this.natsEvents.has('garbage')) this.natsEvents.emit('garbage', { subject, problem, answered: false });
      return;
    }
    const message = decoded.message;
    if (!('method' in message) || message.method !== CANCELLED) return;
    const requestId = message.params?.['requestId'];
    if (typeof requestId !== 'string' && typeof requestId !== 'number') return;
    const key = requestKey(client, requestId);
    const transport = this.#requests.get(key);
    if (transport === undefined) {
      // Not here: if it has not been taken yet, whoever takes it drops it (every worker hears this).
      this.#remember(this.#cancelled, key);
      return;
    }
    this.#cancelHeld(transport, requestId);
    transport[deliver](message, this.#extra(h));
    // The server gets to see the cancellation (its handler's abort reason) before its instance is closed.
    const timer = setTimeout(() => this.#releaseRequest(transport, { handBack: false }), CANCEL_GRACE_MS);
    unref(timer);
  }

  /** A cancelled request gets no answer (MCP): acknowledge it now, so it is neither held nor redelivered. */
  #cancelHeld(transport: NatsServerTransport, requestId: unknown): void {
    if (typeof requestId !== 'string' && typeof requestId !== 'number') return;
    const entry = transport[held].get(requestId);
    if (entry === undefined) return;
    transport[held].delete(requestId);
    entry.msg.ack();
    this.#inFlight--;
    this.#remember(this.#cancelled, entry.key);
    this.#freed();
  }

  // ── what goes out ────────────────────────────────────────────────────────────

  #publishTo(transport: NatsServerTransport, message: JSONRPCMessage): void {
    this.#publishRaw(transport.inbox, message, transport.sessionId);
  }

  #publishRaw(inbox: string, message: JSONRPCMessage, sessionId: string | undefined): void {
    const nc = this.#nc;
    if (nc === undefined || nc.isClosed()) throw new TransportError(`${LABEL}: cannot send ${describeMessage(message)}: the connection to the NATS server is closed`, { layer: 'nats', reason: 'connection-closed', neverSent: true });
    const subject = clientMessages(inbox);
    let data = encode(message);
    const headers = headersFor({ [Header.Worker]: this.id, [Header.Session]: sessionId }, message);
    const maxPayload = nc.info?.max_payload;
    let size = wireSize(data, headers);
    if (maxPayload !== undefined && size > maxPayload) {
      const error = overMaxPayload(LABEL, describeMessage(message), size, maxPayload);
      // A request must still end with exactly one response: the one that fits says why the real one could not be sent.
      if ('method' in message || message.id === undefined) throw error;
      this.#report(error);
      data = encode({ jsonrpc: '2.0', id: message.id, error: toErrorObject(new TransportError(error.message.replace(/; it was not sent.*$/, '; the response was not sent'), { layer: 'nats', reason: 'max-payload', data: { size, maxPayload } }), 1) });
      size = wireSize(data, headers);
    }
    nc.publish(subject, data, { headers });
    if (this.natsEvents.has('published')) this.natsEvents.emit('published', { subject, via: 'core', bytes: size, method: 'method' in message ? message.method : undefined });
  }

  /** The application answered a held request, and the answer is published: now it may be acknowledged. */
  #answer(transport: NatsServerTransport, entry: Held, response: JSONRPCMessage): void {
    entry.msg.ack();
    this.#inFlight--;
    this.#remember(this.#answered, entry.key);
    if (entry.method === 'tools/list' && 'result' in response) this.#idempotency.learn(response.result);
    const sessionId = transport.sessionId;
    const record = sessionId === undefined ? undefined : this.#sessions.get(sessionId);
    if (record !== undefined && record.transport === transport && 'id' in response && response.id === record.initializeId && !record.bound) {
      if ('error' in response) {
        this.#release(record, 'its initialize was refused', { deleteConsumer: false, handBack: false });
      } else {
        if (record.replay === 'initialized') transport[deliver]({ jsonrpc: '2.0', method: 'notifications/initialized' }, undefined);
        if (this.natsEvents.has('session')) this.natsEvents.emit('session', { state: record.replay === undefined ? 'opened' : 'replayed', sessionId: record.id });
        this.#bind(record).catch((error: unknown) => {
          this.#report(new TransportError(`${LABEL}: could not consume session ${record.id}; its client will re-establish it: ${asError(error).message}`, { layer: 'nats', reason: 'bind-failed', cause: error }));
          this.#release(record, 'its subject could not be consumed', { deleteConsumer: false, handBack: false });
        });
      }
    }
    if (transport.sessionless) queueMicrotask(() => this.#releaseRequest(transport, { handBack: false }));
    this.#freed();
  }

  #transportClosed(transport: NatsServerTransport): void {
    if (transport.sessionless) {
      this.#releaseRequest(transport, { handBack: true });
      return;
    }
    const record = transport.sessionId === undefined ? undefined : this.#sessions.get(transport.sessionId);
    if (record !== undefined && record.transport === transport) this.#release(record, 'the server closed the session', { deleteConsumer: true, handBack: false });
    else transport[end]();
  }

  /**
   * Ends a session here. `handBack`: requests in hand go back to the broker for the next
   * worker (which runs them again only if idempotent); otherwise they are acknowledged
   * (their client is gone or chose to go). `deleteConsumer`: the session is over for good.
   */
  #release(record: SessionRecord, reason: string, how: { deleteConsumer: boolean; handBack: boolean }): void {
    if (this.#sessions.get(record.id) === record) this.#sessions.delete(record.id);
    void record.messages?.close().catch(() => {});
    this.#settleHeld(record.transport, how.handBack);
    record.transport[end]();
    if (how.deleteConsumer) void this.#jsm?.consumers.delete(this.#common.subjects.stream, sessionConsumer(record.id)).catch(() => {});
    if (this.natsEvents.has('session')) this.natsEvents.emit('session', { state: 'closed', sessionId: record.id, reason });
    this.#freed();
  }

  #releaseRequest(transport: NatsServerTransport, how: { handBack: boolean }): void {
    for (const [key, t] of this.#requests) {
      if (t === transport) {
        this.#requests.delete(key);
        break;
      }
    }
    this.#settleHeld(transport, how.handBack);
    transport[end]();
    this.#freed();
  }

  #settleHeld(transport: NatsServerTransport, handBack: boolean): void {
    const entries = transport[held];
    for (const entry of entries.values()) {
      if (handBack) entry.msg.nak();
      else entry.msg.ack();
      this.#inFlight--;
    }
    entries.clear();
  }

  #report(error: unknown): void {
    try {
      this.onerror?.(asError(error));
    } catch {
      // nowhere left to report
    }
  }
}
