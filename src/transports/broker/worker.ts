/**
 * What every broker's worker does, whatever carries the messages: sessions opened by
 * `initialize` and pinned after it, sessionless requests one transport each, capacity
 * (`maxInFlight`, `maxSessions`), the redelivery rule (a request the broker delivered
 * before runs again only when idempotent, invariant 3; any other is answered with one
 * `worker-lost` error), the deduplication window, garbage, cancellations, releasing a
 * session, and the drain on close(). A broker's worker (NatsWorker, RedisWorker) says
 * how messages arrive, how answers leave and how deliveries are acknowledged.
 */
import { asError, ErrorCode, InvalidMessageError, toErrorObject, TransportError } from '../../core/errors.ts';
import type { EventBus } from '../../core/events.ts';
import { globMatcher } from '../../core/glob.ts';
import { Idempotency } from '../../core/idempotency.ts';
import { CANCELLED, isRequest, type JSONRPCMessage, type JSONRPCRequest, type RequestId } from '../../core/jsonrpc.ts';
import type { MessageExtraInfo } from '../../core/transport.ts';
import { EventFanout } from '../../core/wire.ts';
import { sleep, unref } from '../../layer-kit/sleep.ts';
import { decode, describeMessage, encode, type Handshake, type HeaderValues, type PayloadLimit, responseOverMaxPayload, overMaxPayload, toolOf, withTrace } from './codec.ts';
import { type BrokerEventSink, brokerEventsOn } from './events.ts';
import { Header, isInbox, isListenValue, isName, requestKey } from './names.ts';
import type { WorkerPolicies } from './options.ts';
import { type BrokerServerTransport, deliver, type Delivery, end, type Held, held, type ServerTransportInit, type WorkerLink } from './session.ts';
import { reportTo } from '../../core/callbacks.ts';

/** A message the broker handed to this worker: its bytes, its headers, and the delivery to acknowledge. */
export interface Arrival extends Delivery {
  readonly data: Uint8Array;
  /** The subject or key it came from (garbage reports name it). */
  readonly subject: string;
  header(name: string): string | undefined;
  /** Every header, lowercased, for MessageExtraInfo (`requestInfo.headers`). */
  headers(): Record<string, string>;
  /** Garbage: dropped for good, never delivered again. */
  terminate(): void;
}

export interface SessionRecord<T extends BrokerServerTransport, B> {
  readonly id: string;
  readonly transport: T;
  readonly initializeId: RequestId;
  readonly replay: 'initialize' | 'initialized' | undefined;
  /** The initialize's params, and the version it negotiated once answered: the handshake kept on the broker. */
  readonly params: JSONRPCRequest['params'];
  protocolVersion: string | undefined;
  /**
   * The session's clients, inbox → client id, the one heard from last at the end: the
   * client that opened it, and any other that sent something on the session's subject or
   * stream (gateway replicas). The session is over when all of them are gone.
   */
  readonly clients: Map<string, string>;
  /** The listener (`transport.inbox`) holds the client's stream (`Mcp-Listen: stream`): it stays the listener whoever speaks. */
  sticky: boolean;
  /** The broker's handle on the session's own subject or stream, once bound. */
  binding: B | undefined;
  bound: boolean;
}

/** How one broker names things in errors and reports. */
export interface BrokerKind {
  readonly layer: string;
  /** `mcp-layers/nats worker` */
  readonly label: string;
  /** What carries one message (`NATS message`), for the error about arrays. */
  readonly unit: string;
  readonly limit: PayloadLimit;
  /** `the connection to the NATS server`: what is closed when nothing can be published. */
  readonly connection: string;
}

/** Bound on the worker's memory of answered and cancelled requests, whatever the window. */
const MAX_REMEMBERED = 100_000;
/** Bound on the clients remembered per session (gateway replicas): the oldest heard from is forgotten first. */
const MAX_CLIENTS = 64;
/** How long the instance of a cancelled sessionless request lives on, to wind its handler down. */
const CANCEL_GRACE_MS = 1_000;

export abstract class BrokerWorker<T extends BrokerServerTransport, D extends Arrival, B, V extends string> {
  /** Problems that are nobody else's: garbage, a failing onsession, a broker error. */
  onerror?: (error: Error) => void;
  readonly id: string;
  /** Every session's transport publishes here too (`connection`, and what layers publish through the wire control). */
  readonly events: EventBus;

  protected readonly kind: BrokerKind;
  protected readonly policies: WorkerPolicies<T>;
  /** The fanout, for the broker events (`broker-published`...). */
  protected readonly brokerEvents: BrokerEventSink<V>;
  protected readonly fanout: EventFanout;
  protected readonly link: WorkerLink;
  protected readonly stop = new AbortController();
  protected state: 'idle' | 'serving' | 'closing' | 'closed' = 'idle';
  /** False while the broker is unreachable (the subclass keeps it). */
  protected connected = true;

  readonly #idempotency: Idempotency;
  readonly #veto: (tool: string) => boolean;
  readonly #sessions = new Map<string, SessionRecord<T, B>>();
  /** Sessionless requests in hand, by deduplication key. */
  readonly #requests = new Map<string, T>();
  /** Deduplication keys of requests answered (or cancelled) lately → when they may be forgotten. */
  readonly #answered = new Map<string, number>();
  readonly #cancelled = new Map<string, number>();
  #inFlight = 0;
  #room: PromiseWithResolvers<void> | undefined;
  #drainedWaiter: PromiseWithResolvers<void> | undefined;
  #keepAlive: NodeJS.Timeout | undefined;
  #clientCheck: NodeJS.Timeout | undefined;
  #handshakes: NodeJS.Timeout | undefined;
  #closing: Promise<void> | undefined;

  constructor(kind: BrokerKind, policies: WorkerPolicies<T>, id: string, events: EventBus, idempotency: { idempotentTools?: readonly string[] | undefined; nonIdempotentTools?: readonly string[] | undefined }, vetoOption: string) {
    this.kind = kind;
    this.policies = policies;
    this.id = id;
    this.events = events;
    this.fanout = new EventFanout(events);
    this.brokerEvents = brokerEventsOn<V>(this.fanout);
    this.#idempotency = new Idempotency(idempotency);
    this.#veto = globMatcher(idempotency.nonIdempotentTools ?? [], vetoOption);
    this.link = {
      publish: (transport, message, inbox) => this.#publishRaw(inbox, message, transport.sessionId, undefined),
      answer: (transport, entry, response) => this.#answer(transport as T, entry as Held<D>, response),
      closed: (transport) => this.#transportClosed(transport as T),
    };
  }

  /** Sessions held now. */
  get sessions(): number {
    return this.#sessions.size;
  }

  /** Requests delivered to the application and not answered yet. */
  get inFlight(): number {
    return this.#inFlight;
  }

  // ── what a broker's worker provides ──────────────────────────────────────────

  /** Opens the connection and sets up the broker's side; resolves with the server's URL for the `connection` event. */
  protected abstract connect(): Promise<string>;
  /** Starts taking work (after the timers and the announcement). */
  protected abstract startReading(): void;
  /** Stops taking work: the shared subject or stream, and every session's. */
  protected abstract stopReading(): Promise<void>;
  /** After close() settled everything: flushes and closes what is ours. */
  protected abstract disconnect(): Promise<void>;
  /** Publishes to a client's inbox; with `ack`, acknowledges that delivery once the message is published. */
  protected abstract publish(inbox: string, data: Uint8Array, headers: Array<[string, string]>, ack: D | undefined, method: string | undefined): void | Promise<void>;
  /** The bytes a message takes against the limit, and the limit (undefined: none known). */
  protected abstract sizeOf(data: Uint8Array, headers: Array<[string, string]>): number;
  protected abstract maxPayload(): number | undefined;
  /** After a session's initialize is answered: read its own subject or stream from now on. */
  protected abstract bind(record: SessionRecord<T, B>): Promise<void>;
  /** Stops reading a session's own subject or stream; `forGood`: the session is over, remove it from the broker. */
  protected abstract unbind(record: SessionRecord<T, B>, forGood: boolean): void;
  /** Keeps these deliveries from being given to another worker. */
  protected abstract keepAlive(deliveries: D[]): void;
  /** Which of these client inboxes are gone (nobody listens on them). */
  protected abstract clientsGone(inboxes: string[]): Promise<Set<string>>;
  protected abstract announce(state: 'joined' | 'left'): void;
  /** Keeps (or refreshes) a session's handshake on the broker, for `sessionIdleMs`; every client of the session may read it. */
  protected abstract saveHandshake(sessionId: string, handshake: Handshake): Promise<void>;
  /** The session is over: its handshake goes. */
  protected abstract dropHandshake(sessionId: string): void;
  protected abstract newTransport(link: WorkerLink, init: ServerTransportInit): T;

  // ── life ─────────────────────────────────────────────────────────────────────

  async start(): Promise<void> {
    if (this.state !== 'idle') throw new Error(`${this.kind.label}: already started`);
    this.state = 'serving';
    let url: string;
    try {
      url = await this.connect();
    } catch (error) {
      this.state = 'closed';
      throw error;
    }
    this.#keepAlive = setInterval(() => this.#tick(), Math.max(50, this.policies.ackWaitMs / 3));
    unref(this.#keepAlive);
    if (this.policies.clientCheckMs !== false) {
      this.#clientCheck = setInterval(() => void this.#checkClients(), this.policies.clientCheckMs);
      unref(this.#clientCheck);
    }
    // A handshake lives sessionIdleMs on the broker: the sessions held here keep theirs.
    this.#handshakes = setInterval(() => this.#refreshHandshakes(), Math.max(1_000, this.policies.sessionIdleMs / 3));
    unref(this.#handshakes);
    this.#announce('joined');
    this.fanout.emit('connection', { state: 'open', transport: this.kind.layer, url });
    this.startReading();
  }

  /**
   * Stops taking new work, waits up to `drainTimeoutMs` for the requests in hand to be
   * answered, hands the rest back to the broker (the next worker runs them again only if
   * idempotent), and ends every session. The sessions stay on the broker: their clients
   * re-establish them on another worker.
   */
  close(): Promise<void> {
    if (this.#closing !== undefined) return this.#closing;
    this.#closing = (async () => {
      if (this.state === 'idle') {
        this.state = 'closed';
        return;
      }
      this.state = 'closing';
      this.stop.abort();
      await this.stopReading();
      // Answers cannot leave while the broker is unreachable: waiting for them would only delay the close.
      if (this.#inFlight > 0 && this.policies.drainTimeoutMs > 0 && this.connected) await this.#drained(this.policies.drainTimeoutMs);
      for (const record of this.#sessions.values()) this.#release(record, 'the worker is closing', { forGood: false, handBack: true });
      for (const transport of this.#requests.values()) this.#releaseRequest(transport, { handBack: true });
      clearInterval(this.#keepAlive);
      clearInterval(this.#clientCheck);
      clearInterval(this.#handshakes);
      this.#announce('left');
      await this.disconnect();
      this.state = 'closed';
      this.fanout.emit('connection', { state: 'closed', transport: this.kind.layer, reason: 'the worker closed' });
    })();
    return this.#closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // ── capacity ─────────────────────────────────────────────────────────────────

  /** How many more requests this worker may take (0 when full, or holding maxSessions). */
  protected get room(): number {
    return this.#sessions.size < this.policies.maxSessions ? Math.max(0, this.policies.maxInFlight - this.#inFlight) : 0;
  }

  /** Resolves when the worker may take new work. */
  protected roomForWork(): Promise<void> {
    if (this.room > 0) return Promise.resolve();
    this.#room ??= Promise.withResolvers<void>();
    return this.#room.promise;
  }

  /** Called when work ended; the subclass may wake a reader that waits. */
  protected freed(): void {
    if (this.#room !== undefined && this.room > 0) {
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

  async #drained(timeoutMs: number): Promise<void> {
    this.#drainedWaiter ??= Promise.withResolvers<void>();
    await Promise.race([this.#drainedWaiter.promise, sleep(timeoutMs)]);
  }

  /** The sessions this worker holds. */
  protected sessionRecords(): IterableIterator<SessionRecord<T, B>> {
    return this.#sessions.values();
  }

  protected sessionRecord(id: string): SessionRecord<T, B> | undefined {
    return this.#sessions.get(id);
  }

  /** Keeps the requests in hand from being redelivered, and forgets old deduplication keys. */
  #tick(): void {
    const deliveries: D[] = [];
    for (const record of this.#sessions.values()) for (const entry of record.transport[held].values()) deliveries.push(entry.delivery as D);
    for (const transport of this.#requests.values()) for (const entry of transport[held].values()) deliveries.push(entry.delivery as D);
    if (deliveries.length > 0) this.keepAlive(deliveries);
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
    window.set(key, performance.now() + this.policies.dedupWindowMs);
    if (window.size > MAX_REMEMBERED) window.delete(window.keys().next().value as string);
  }

  /** Forgets the clients that are gone; a session none of whose clients is left is over. */
  async #checkClients(): Promise<void> {
    if (this.state !== 'serving' || !this.connected || this.#sessions.size === 0) return;
    const records = [...this.#sessions.values()];
    const inboxes = new Set<string>();
    for (const record of records) for (const inbox of record.clients.keys()) inboxes.add(inbox);
    let gone: Set<string>;
    try {
      gone = await this.clientsGone([...inboxes]);
    } catch {
      return; // no answer is no proof of absence
    }
    for (const record of records) {
      if (this.#sessions.get(record.id) !== record) continue;
      for (const inbox of record.clients.keys()) if (gone.has(inbox)) this.#forgetClient(record, inbox);
      if (record.clients.size === 0) this.#release(record, 'its client is gone (no responders on its inbox)', { forGood: true, handBack: false });
    }
  }

  /**
   * A client of the session is gone or left: if it was the listener, the client heard
   * from last takes over (unless none is left: the session then ends at the next check).
   */
  #forgetClient(record: SessionRecord<T, B>, inbox: string): void {
    record.clients.delete(inbox);
    if (record.transport.inbox !== inbox) return;
    const last = [...record.clients.keys()].at(-1);
    if (last !== undefined) record.transport.inbox = last;
    record.sticky = false;
  }

  /**
   * Who sent a message on the session's subject or stream: remembered as one of its
   * clients (the last heard from at the end). A message without our headers (a foreign
   * publisher) names nobody.
   */
  #heard(record: SessionRecord<T, B>, arrival: D): { client: string; reply: string } | undefined {
    const client = arrival.header(Header.Client);
    const reply = arrival.header(Header.Reply);
    if (client === undefined || client === '' || reply === undefined || !isInbox(reply) || !this.isClientInbox(reply)) return undefined;
    record.clients.delete(reply);
    record.clients.set(reply, client);
    if (record.clients.size > MAX_CLIENTS) {
      for (const inbox of record.clients.keys()) {
        if (inbox === record.transport.inbox) continue;
        record.clients.delete(inbox);
        break;
      }
    }
    return { client, reply };
  }

  /**
   * `Mcp-Listen`: a client tells where what answers no request should go. The client
   * holding the downstream client's stream (`stream`) is the listener until it says
   * `none` or leaves; without one, the client heard from last is.
   */
  #listen(record: SessionRecord<T, B>, value: string, reply: string): void {
    if (!isListenValue(value)) return;
    if (value === 'stream') {
      record.transport.inbox = reply;
      record.sticky = true;
    } else if (value === 'none') {
      if (record.transport.inbox === reply) record.sticky = false;
    } else if (value === 'leave') {
      this.#forgetClient(record, reply);
    }
    // `join` only makes the client known (#heard): it is told when the session ends.
  }

  /** Sends a message, or a bare notice (`data` empty), to every client of the session but `except`. */
  #tellClients(record: SessionRecord<T, B>, except: string | undefined, message: JSONRPCMessage | undefined, values: HeaderValues): void {
    for (const inbox of record.clients.keys()) {
      if (inbox === except) continue;
      const headers = { [Header.Worker]: this.id, [Header.Session]: record.id, ...values };
      try {
        const published = message === undefined ? this.publish(inbox, new Uint8Array(0), withTrace(headers), undefined, undefined) : this.#publishRaw(inbox, message, record.id, undefined, values);
        void this.#settle(published);
      } catch (error) {
        this.report(error);
      }
    }
  }

  #refreshHandshakes(): void {
    if (this.state !== 'serving' || !this.connected) return;
    for (const record of this.#sessions.values()) if (record.bound) void this.#saveHandshake(record);
  }

  /** Never rejects: a handshake not kept is reported (only the client that opened the session can then re-establish it). */
  async #saveHandshake(record: SessionRecord<T, B>): Promise<void> {
    if (record.protocolVersion === undefined) return;
    await this.saveHandshake(record.id, { params: record.params, protocolVersion: record.protocolVersion, worker: this.id }).catch((error: unknown) => {
      this.report(new TransportError(`${this.kind.label}: could not keep session ${record.id}'s handshake on the broker (only the client that opened it can re-establish it elsewhere): ${asError(error).message}`, { layer: this.kind.layer, reason: 'handshake-not-kept', cause: error }));
    });
  }

  #announce(state: 'joined' | 'left'): void {
    try {
      this.announce(state);
    } catch (error) {
      this.report(error);
    }
    if (this.brokerEvents.has('broker-worker')) this.brokerEvents.emit('broker-worker', { state, worker: this.id });
  }

  // ── what arrives ─────────────────────────────────────────────────────────────

  /** From the shared subject or stream: a new session, a replayed one, or a sessionless request. */
  protected onShared(arrival: D): void {
    try {
      const request = this.#read(arrival);
      if (request === undefined) return;
      const client = arrival.header(Header.Client) as string;
      const inbox = arrival.header(Header.Reply) as string;
      if (request.method === 'initialize') {
        void this.#openSession(arrival, request, client, inbox).catch((error: unknown) => this.report(error));
        return;
      }
      const key = requestKey(client, request.id);
      if (this.#skip(arrival, key, request)) return;
      if (arrival.redelivered && !this.#refuseUnlessIdempotent(arrival, request, inbox, undefined)) return;
      void this.#openRequest(arrival, request, client, inbox, key).catch((error: unknown) => this.report(error));
    } catch (error) {
      this.report(error);
    }
  }

  /** From a session's own subject or stream: whatever its client sends. */
  /**
   * From a session's own subject or stream: whatever its clients send. A session may have
   * several clients (gateway replicas): the ids of any but the one that opened it are made
   * the application's own (`<client>.<id>`, requestKey), so that two clients' requests
   * never share an id in the server's session, and given back on the way out.
   */
  protected onSession(record: SessionRecord<T, B>, arrival: D): void {
    try {
      const { transport } = record;
      if (transport.closed) return; // left unacknowledged: the session's next worker gets it
      const heard = this.#heard(record, arrival);
      const reply = heard?.reply ?? transport.inbox;
      if (arrival.header(Header.Close) === '1') {
        arrival.ack();
        this.#release(record, 'the client closed the session', { forGood: true, handBack: false });
        // Its other clients (gateway replicas) end their part of it now, rather than at their next probe.
        this.#tellClients(record, reply, undefined, { [Header.Close]: '1' });
        return;
      }
      const listen = arrival.header(Header.Listen);
      if (listen !== undefined) {
        arrival.ack();
        if (heard !== undefined) this.#listen(record, listen, heard.reply);
        return;
      }
      const decoded = decode(arrival.data, this.kind.unit);
      if (!decoded.ok) {
        this.#garbage(arrival, decoded.problem, decoded.id, reply);
        return;
      }
      const message = decoded.message;
      if (heard !== undefined && !record.sticky) transport.inbox = heard.reply;
      if (arrival.header(Header.Relay) === '1') {
        // For the session's other clients (a cancellation that reached a replica which does not hold its request).
        arrival.ack();
        this.#tellClients(record, reply, message, { [Header.Relay]: '1' });
        return;
      }
      const client = heard?.client ?? transport.clientId;
      const foreign = client !== transport.clientId;
      if (isRequest(message)) {
        const key = requestKey(client, message.id);
        const local = foreign ? { ...message, id: key } : message;
        if (this.#skip(arrival, key, local, transport)) return;
        if (arrival.redelivered && !this.#refuseUnlessIdempotent(arrival, message, reply, transport)) return;
        this.#inFlight++;
        transport[deliver](local, this.#extra(arrival), { delivery: arrival, method: message.method, key, reply, ...(foreign ? { wireId: message.id } : {}) });
        return;
      }
      arrival.ack();
      if ('method' in message && message.method === CANCELLED) {
        const requestId = message.params?.['requestId'];
        const local = foreign && (typeof requestId === 'string' || typeof requestId === 'number') ? requestKey(client, requestId) : requestId;
        this.#cancelHeld(transport, local);
        transport[deliver](local === requestId ? message : { ...message, params: { ...message.params, requestId: local } }, this.#extra(arrival));
        return;
      }
      transport[deliver](message, this.#extra(arrival));
    } catch (error) {
      this.report(error);
    }
  }

  /** To every worker: a client cancelled a sessionless request. */
  protected onControl(data: Uint8Array, client: string | undefined, subject: string, headers: Record<string, string>): void {
    const decoded = decode(data, this.kind.unit);
    if (!decoded.ok || client === undefined || client === '') {
      const problem = decoded.ok ? `${describeMessage(decoded.message)} without the ${Header.Client} header` : decoded.problem;
      this.report(new InvalidMessageError(`${this.kind.label}: dropped ${problem} on ${subject}`, 'inbound', { layer: this.kind.layer, reason: 'garbage' }));
      if (this.brokerEvents.has('broker-garbage')) this.brokerEvents.emit('broker-garbage', { subject, problem, answered: false });
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
    transport[deliver](message, { requestInfo: { headers } });
    // The server gets to see the cancellation (its handler's abort reason) before its instance is closed.
    const timer = setTimeout(() => this.#releaseRequest(transport, { handBack: false }), CANCEL_GRACE_MS);
    unref(timer);
  }

  /** A session's own subject or stream is gone from the broker: the session ends here (its client re-establishes it). */
  protected lost(record: SessionRecord<T, B>, reason: string): void {
    if (this.#sessions.get(record.id) === record) this.#release(record, reason, { forGood: false, handBack: true });
  }

  /**
   * A message as a request of ours, or undefined when it was dealt with: garbage is
   * reported and dropped (answered first when it is a request with an id and an inbox),
   * a notification on the shared subject is dropped.
   */
  #read(arrival: D): JSONRPCRequest | undefined {
    const decoded = decode(arrival.data, this.kind.unit);
    const client = arrival.header(Header.Client) ?? '';
    const inbox = arrival.header(Header.Reply) ?? '';
    if (!decoded.ok) {
      this.#garbage(arrival, decoded.problem, decoded.id, inbox);
      return undefined;
    }
    const message = decoded.message;
    if (client === '' || inbox === '') {
      this.#garbage(arrival, `${describeMessage(message)} without the ${Header.Client} and ${Header.Reply} headers our clients send`, isRequest(message) ? message.id : undefined, inbox);
      return undefined;
    }
    if (!isRequest(message)) {
      this.#garbage(arrival, `${describeMessage(message)} on the requests subject, which carries requests only`, undefined, '');
      return undefined;
    }
    return message;
  }

  #garbage(arrival: D, problem: string, id: RequestId | undefined, inbox: string): void {
    arrival.terminate();
    const answerable = id !== undefined && isInbox(inbox) && this.isClientInbox(inbox);
    if (answerable) {
      this.#publishRaw(inbox, { jsonrpc: '2.0', id, error: { code: ErrorCode.InvalidRequest, message: `Invalid request: ${problem}`, data: { layer: this.kind.layer, reason: 'invalid-message', attempts: 1 } } }, undefined, undefined);
    }
    this.report(new InvalidMessageError(`${this.kind.label}: dropped ${problem} on ${arrival.subject}${answerable ? ' (answered with -32600)' : ''}`, 'inbound', { layer: this.kind.layer, reason: 'garbage' }));
    if (this.brokerEvents.has('broker-garbage')) this.brokerEvents.emit('broker-garbage', { subject: arrival.subject, problem, answered: answerable });
  }

  /** True for an inbox this broker's clients could have: a worker answers nowhere else. */
  protected isClientInbox(_inbox: string): boolean {
    return true;
  }

  /** True (and acknowledged) for a request this worker answered, holds, or saw cancelled lately. */
  #skip(arrival: D, key: string, request: JSONRPCRequest, transport?: T): boolean {
    const inHand = transport?.[held].get(request.id) ?? this.#requests.get(key)?.[held].get(request.id);
    if (inHand !== undefined) {
      // Delivered again while in hand (its keep-alive came late): the newest delivery is the one to acknowledge.
      inHand.delivery = arrival;
      if (this.brokerEvents.has('broker-deduplicated')) this.brokerEvents.emit('broker-deduplicated', { where: 'worker', id: request.id });
      return true;
    }
    if (this.#answered.has(key) || this.#cancelled.has(key)) {
      arrival.ack();
      if (this.brokerEvents.has('broker-deduplicated')) this.brokerEvents.emit('broker-deduplicated', { where: 'worker', id: request.id });
      return true;
    }
    return false;
  }

  /**
   * A redelivered request: true when it may run again (invariant 3: the client's
   * `Mcp-Idempotent`, or this worker's own rules; `nonIdempotentTools` vetoes); otherwise
   * it is answered with one error, acknowledged, and false.
   */
  #refuseUnlessIdempotent(arrival: D, request: JSONRPCRequest, inbox: string, transport: T | undefined): boolean {
    const tool = toolOf(request);
    const vetoed = tool !== undefined && this.#veto(tool);
    const again = !vetoed && (arrival.header(Header.Idempotent) === '1' || this.#idempotency.isIdempotent({ method: request.method, tool }));
    const deliveryCount = arrival.deliveryCount;
    if (this.brokerEvents.has('broker-redelivered')) this.brokerEvents.emit('broker-redelivered', { id: request.id, method: request.method, deliveryCount, outcome: again ? 'delivered' : 'refused' });
    if (again) return true;
    const error = new TransportError(
      `${this.kind.label}: ${request.method}${tool === undefined ? '' : ` of ${tool}`} was taken by a worker that stopped before answering it; it is not known to be idempotent (docs/architecture.md#invariant-3), so it was not run again: it may or may not have run`,
      { layer: this.kind.layer, reason: 'worker-lost', data: { deliveryCount } },
    );
    const response: JSONRPCMessage = { jsonrpc: '2.0', id: request.id, error: toErrorObject(error, 1) };
    this.#remember(this.#answered, requestKey(arrival.header(Header.Client) ?? '', request.id));
    void this.#settle(this.#publishRaw(inbox, response, transport?.sessionId, arrival));
    return false;
  }

  async #openSession(arrival: D, initialize: JSONRPCRequest, client: string, inbox: string): Promise<void> {
    const sessionId = arrival.header(Header.Session);
    if (!isName(sessionId)) {
      arrival.terminate();
      this.#publishRaw(inbox, { jsonrpc: '2.0', id: initialize.id, error: { code: ErrorCode.InvalidRequest, message: `Invalid request: initialize without a valid ${Header.Session} header`, data: { layer: this.kind.layer, reason: 'invalid-message', attempts: 1 } } }, undefined, undefined);
      return;
    }
    const replayHeader = arrival.header(Header.Replay);
    const replay = replayHeader === 'initialize' || replayHeader === 'initialized' ? replayHeader : undefined;
    const existing = this.#sessions.get(sessionId);
    // The client re-established a session this worker still holds (it missed our probes): the new handshake wins.
    if (existing !== undefined) this.#release(existing, 'the client re-established the session', { forGood: false, handBack: false });
    const transport = this.#transport(sessionId, client, inbox);
    const record: SessionRecord<T, B> = {
      id: sessionId,
      transport,
      initializeId: initialize.id,
      replay,
      params: initialize.params,
      protocolVersion: undefined,
      clients: new Map([[inbox, client]]),
      sticky: false,
      binding: undefined,
      bound: false,
    };
    this.#sessions.set(sessionId, record);
    this.#inFlight++;
    if (!(await this.#handOver(transport, arrival, initialize))) {
      this.#sessions.delete(sessionId);
      this.freed();
    }
  }

  async #openRequest(arrival: D, request: JSONRPCRequest, client: string, inbox: string, key: string): Promise<void> {
    const transport = this.#transport(undefined, client, inbox);
    this.#requests.set(key, transport);
    this.#inFlight++;
    if (!(await this.#handOver(transport, arrival, request))) {
      this.#requests.delete(key);
      this.freed();
    }
  }

  #transport(sessionId: string | undefined, clientId: string, inbox: string): T {
    return this.newTransport(this.link, { sessionId, clientId, inbox, fanout: this.fanout, layer: this.kind.layer, label: this.kind.label });
  }

  /** Gives a new transport to the application, then its first request. False (answered, acknowledged) when onsession failed. */
  async #handOver(transport: T, arrival: D, request: JSONRPCRequest): Promise<boolean> {
    try {
      await this.policies.onsession(transport);
    } catch (error) {
      this.report(new Error(`${this.kind.label}: onsession failed; the request was answered with an error: ${asError(error).message}`, { cause: error }));
      this.#inFlight--;
      const response: JSONRPCMessage = { jsonrpc: '2.0', id: request.id, error: { code: ErrorCode.InternalError, message: 'The worker could not set up a server for this request', data: { layer: this.kind.layer, reason: 'onsession-failed', attempts: 1 } } };
      void this.#settle(this.#publishRaw(transport.inbox, response, transport.sessionId, arrival));
      transport[end]();
      return false;
    }
    transport[deliver](request, this.#extra(arrival), { delivery: arrival, method: request.method, key: requestKey(transport.clientId, request.id), reply: transport.inbox });
    return true;
  }

  #extra(arrival: D): MessageExtraInfo {
    return { requestInfo: { headers: arrival.headers() } };
  }

  /** A held request was cancelled: MCP expects no answer, so it is acknowledged now, neither held nor redelivered. */
  #cancelHeld(transport: T, requestId: unknown): void {
    if (typeof requestId !== 'string' && typeof requestId !== 'number') return;
    const entry = transport[held].get(requestId);
    if (entry === undefined) return;
    transport[held].delete(requestId);
    entry.delivery.ack();
    this.#inFlight--;
    this.#remember(this.#cancelled, entry.key);
    this.freed();
  }

  // ── what goes out ────────────────────────────────────────────────────────────

  /** Publishes to an inbox (then acknowledges `ack`); a response over the limit is replaced by one that says so. */
  #publishRaw(inbox: string, message: JSONRPCMessage, sessionId: string | undefined, ack: D | undefined, extra?: HeaderValues): void | Promise<void> {
    const values: HeaderValues = { [Header.Worker]: this.id, [Header.Session]: sessionId, ...extra };
    let data = encode(message);
    let headers = withTrace(values, message);
    const maxPayload = this.maxPayload();
    const size = this.sizeOf(data, headers);
    if (maxPayload !== undefined && size > maxPayload) {
      const error = overMaxPayload(this.kind.label, this.kind.limit, describeMessage(message), size, maxPayload);
      // A request must still end with exactly one response: the one that fits says why the real one could not be sent.
      if ('method' in message || message.id === undefined) throw error;
      this.report(error);
      data = encode({ jsonrpc: '2.0', id: message.id, error: toErrorObject(responseOverMaxPayload(this.kind.label, this.kind.limit, size, maxPayload), 1) });
      headers = withTrace(values);
    }
    return this.publish(inbox, data, headers, ack, 'method' in message ? message.method : undefined);
  }

  /** An answer nobody awaits: its failure is reported. */
  async #settle(published: void | Promise<void>): Promise<void> {
    try {
      await published;
    } catch (error) {
      this.report(error);
    }
  }

  /** The application answered a held request: the answer is published, then the request acknowledged. */
  async #answer(transport: T, entry: Held<D>, response: JSONRPCMessage): Promise<void> {
    const opening = transport.sessionId === undefined ? undefined : this.#sessions.get(transport.sessionId);
    if (opening !== undefined && opening.transport === transport && !opening.bound && 'result' in response && response.id === opening.initializeId) {
      const version = response.result['protocolVersion'];
      if (typeof version === 'string') opening.protocolVersion = version;
      // Kept before the client learns the session exists: its next request may reach another gateway replica, which looks it up.
      await this.#saveHandshake(opening);
    }
    try {
      await this.#publishRaw(entry.reply, response, transport.sessionId, entry.delivery);
    } finally {
      // Published or not, it is out of our hands: unacknowledged, the broker gives it to the next worker.
      this.#inFlight--;
      this.#remember(this.#answered, entry.key);
      this.freed();
    }
    if (entry.method === 'tools/list' && 'result' in response) this.#idempotency.learn(response.result);
    const sessionId = transport.sessionId;
    const record = sessionId === undefined ? undefined : this.#sessions.get(sessionId);
    if (record !== undefined && record.transport === transport && 'id' in response && response.id === record.initializeId && !record.bound) {
      if ('error' in response) {
        this.#release(record, 'its initialize was refused', { forGood: false, handBack: false });
      } else {
        if (record.replay === 'initialized') transport[deliver]({ jsonrpc: '2.0', method: 'notifications/initialized' }, undefined);
        if (this.brokerEvents.has('broker-session')) this.brokerEvents.emit('broker-session', { state: record.replay === undefined ? 'opened' : 'replayed', sessionId: record.id });
        this.bind(record).then(
          () => {
            record.bound = true;
            if (this.#sessions.get(record.id) !== record) this.unbind(record, false);
          },
          (error: unknown) => {
            this.report(new TransportError(`${this.kind.label}: could not read session ${record.id}; its client will re-establish it: ${asError(error).message}`, { layer: this.kind.layer, reason: 'bind-failed', cause: error }));
            this.#release(record, 'its subject could not be consumed', { forGood: false, handBack: false });
          },
        );
      }
    }
    if (transport.sessionless) queueMicrotask(() => this.#releaseRequest(transport, { handBack: false }));
  }

  #transportClosed(transport: T): void {
    if (transport.sessionless) {
      this.#releaseRequest(transport, { handBack: true });
      return;
    }
    const record = transport.sessionId === undefined ? undefined : this.#sessions.get(transport.sessionId);
    if (record !== undefined && record.transport === transport) this.#release(record, 'the server closed the session', { forGood: true, handBack: false });
    else transport[end]();
  }

  /**
   * Ends a session here. `handBack`: requests in hand go back to the broker for the next
   * worker (which runs them again only if idempotent); otherwise they are acknowledged
   * (their client is gone or chose to go). `forGood`: the session is over, on the broker too.
   */
  #release(record: SessionRecord<T, B>, reason: string, how: { forGood: boolean; handBack: boolean }): void {
    if (this.#sessions.get(record.id) === record) this.#sessions.delete(record.id);
    this.unbind(record, how.forGood);
    if (how.forGood && record.protocolVersion !== undefined) this.dropHandshake(record.id);
    this.#settleHeld(record.transport, how.handBack);
    // Published before the transport ends: the layers of its wrap detach when it does.
    if (this.brokerEvents.has('broker-session')) this.brokerEvents.emit('broker-session', { state: 'closed', sessionId: record.id, reason });
    record.transport[end]();
    this.freed();
  }

  #releaseRequest(transport: T, how: { handBack: boolean }): void {
    for (const [key, t] of this.#requests) {
      if (t === transport) {
        this.#requests.delete(key);
        break;
      }
    }
    this.#settleHeld(transport, how.handBack);
    transport[end]();
    this.freed();
  }

  #settleHeld(transport: T, handBack: boolean): void {
    const entries = transport[held];
    for (const entry of entries.values()) {
      if (handBack) entry.delivery.handBack();
      else entry.delivery.ack();
      this.#inFlight--;
    }
    entries.clear();
  }

  protected report(error: unknown): void {
    reportTo(this, error);
  }
}
