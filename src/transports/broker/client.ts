/**
 * What every broker's client transport does, whatever carries the messages:
 *
 *   - `initialize` and sessionless (2026-07-28) requests go to the service's shared
 *     subject or stream, where whichever worker has room takes them; after a 2025-era
 *     `initialize` every message of the session goes to the session's own subject or
 *     stream, which only the worker holding the session reads. Workers answer on this
 *     transport's inbox. The routing is in names, not in any process.
 *   - A request carries its deduplication key (this transport's id and the wire id), and
 *     `Mcp-Idempotent: 1` when the core's rules (invariant 3: annotations learned from
 *     tools/list results that pass through, and configuration) say it may run twice. A
 *     second answer to a request is dropped here.
 *   - The session's worker is probed: "no responders" means it is gone at once,
 *     unanswered probes mean it is gone after `maxMissed`. The session is then
 *     re-established on another worker by replaying its handshake under the same session
 *     id; the application never notices. What the dead server held in memory is gone.
 *   - The broker unreachable: requests in flight fail at once with a retryable
 *     ConnectionClosedError (through `onconnectionlost` when wrapped, or as a synthesized
 *     error response when bare), and sends fail until it is back.
 *   - A session may have several clients (gateway replicas): one opens it, the others
 *     `join` it by id (the handshake the worker keeps on the broker says it exists and how
 *     to re-establish it); each gets the answers to its own requests, the one holding the
 *     downstream client's stream says so (`listen`), `relay` reaches the others, `leave`
 *     ends one client's part without ending the session, and a close by any of them ends
 *     it for all (the worker tells the others).
 *
 * A broker's client (NatsClientTransport, RedisClientTransport) says how to connect,
 * publish, probe and listen.
 */
import { randomUUID } from 'node:crypto';
import { brand } from '../../core/brand.ts';
import { asError, ConnectionClosedError, ErrorCode, InvalidMessageError, McpLayersError, TransportError } from '../../core/errors.ts';
import type { EventBus } from '../../core/events.ts';
import { Idempotency, type IdempotencyOptions } from '../../core/idempotency.ts';
import { isRequest, type JSONRPCMessage, type JSONRPCRequest, type JSONRPCResponse, type RequestId } from '../../core/jsonrpc.ts';
import { type MessageExtraInfo, STATELESS_PROTOCOL_VERSION, type Transport, type TransportSendOptions } from '../../core/transport.ts';
import { EventFanout, WIRE_CONTROL, type WireControl } from '../../core/wire.ts';
import { sleep, unref } from '../../layer-kit/sleep.ts';
import { cancelledRequestId, decode, describeMessage, encode, type Handshake, type HeaderValues, toolOf, withTrace } from './codec.ts';
import { type BrokerEventSink, brokerEventsOn } from './events.ts';
import { Header, type ListenValue, requestKey } from './names.ts';
import type { ClientPolicies } from './options.ts';
import { deliverTo, reportTo } from '../../core/callbacks.ts';

export type ClientState = 'idle' | 'starting' | 'open' | 'recovering' | 'closing' | 'closed';

/** Where a message goes: the service's shared subject or stream, a session's own, or every worker (a sessionless cancellation). */
export type Route = { to: 'shared' } | { to: 'session'; sessionId: string } | { to: 'control' };

/** What one publish did, for the `published` event. */
export interface Published<V extends string> {
  readonly subject: string;
  readonly via: V;
  readonly bytes: number;
  /** The broker refused it as a second publish of the same key. */
  readonly duplicate: boolean;
}

/** What a probe of the session's worker found. */
export type ProbeResult = { outcome: 'alive'; holds: boolean | undefined } | { outcome: 'gone'; reason: string } | { outcome: 'missed' };

export interface ClientKind {
  readonly layer: string;
  /** `mcp-layers/nats client` */
  readonly label: string;
  /** `NATS server` */
  readonly broker: string;
  /** What carries one message (`NATS message`), for the error about arrays. */
  readonly unit: string;
}

interface Inflight {
  readonly method: string;
}

interface Session {
  readonly id: string;
  readonly params: JSONRPCRequest['params'];
  readonly protocolVersion: string;
  worker: string | undefined;
  initializedSent: boolean;
}

interface Replay {
  readonly id: string;
  resolve(answer: { message: JSONRPCResponse; worker: string | undefined }): void;
  reject(error: Error): void;
}

export abstract class BrokerClientTransport<V extends string> implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage, extra?: MessageExtraInfo) => void;
  onconnectionlost?: (error: Error) => void;
  /**
   * Sees each message from the broker before `onmessage` (the wrapped stack) does; a
   * message it returns true for is its own and goes no further. The gateway takes the
   * server's requests this way, past both stacks (docs/gateway.md, "Replicas").
   */
  divert?: (message: JSONRPCMessage) => boolean;
  /** A message another client of the session passed on with relay(). */
  onpeer?: (message: JSONRPCMessage) => void;
  /** The session's id once a 2025-era `initialize` succeeded (or at once, joining); kept across workers. */
  sessionId?: string | undefined = undefined;

  /** Where `connection`, `reconnect` and `heartbeat` are published. */
  readonly events: EventBus;
  /** This transport's id on the broker (in every message's `Mcp-Client` header and deduplication key). */
  readonly clientId: string;
  readonly [WIRE_CONTROL]: WireControl;

  protected readonly kind: ClientKind;
  /** The fanout, for the broker events (`broker-published`...). */
  protected readonly brokerEvents: BrokerEventSink<V>;
  protected readonly fanout: EventFanout;
  protected readonly policies: ClientPolicies;
  protected readonly stop = new AbortController();
  /** False while the broker is unreachable (the subclass keeps it, through brokerLost/brokerBack). */
  protected connected = false;

  readonly #idempotency: Idempotency;
  #state: ClientState = 'idle';
  /** Rejects publishes waiting for the broker when the connection drops (replaced on each drop). */
  #dropped = Promise.withResolvers<never>();
  readonly #inflight = new Map<RequestId, Inflight>();
  #pendingInitialize: { id: RequestId; sessionId: string; params: JSONRPCRequest['params'] } | undefined;
  #session: Session | undefined;
  #replay: Replay | undefined;
  #replays = 0;
  #probeTimer: NodeJS.Timeout | undefined;
  #probing = false;
  #missed = 0;
  #presenceAt = -Infinity;
  #protocolVersion: string | undefined;
  #closed: Promise<void> | undefined;
  /** What close() tells the session's worker: `close` ends the session, `leave` only this client's part, `none`: it ended already. */
  #farewell: 'close' | 'leave' | 'none' = 'close';
  /** The session was opened by another client (join): its handshake is read from the broker. */
  #joined = false;

  constructor(kind: ClientKind, clientId: string, policies: ClientPolicies, events: EventBus, idempotency: IdempotencyOptions) {
    this.kind = kind;
    this.clientId = clientId;
    this.policies = policies;
    this.events = events;
    this.fanout = new EventFanout(events);
    this.brokerEvents = brokerEventsOn<V>(this.fanout);
    this.#idempotency = new Idempotency({ idempotentTools: idempotency.idempotentTools, nonIdempotentTools: idempotency.nonIdempotentTools });
    this.#dropped.promise.catch(() => {});
    this[WIRE_CONTROL] = {
      kind: kind.layer,
      acceptsBatches: false,
      compress: () => {},
      observe: (bus: EventBus) => this.fanout.add(bus),
    };
  }

  /** This transport's inbox on the broker (where workers answer); empty until start(). */
  abstract get inbox(): string;

  /** The worker holding the session (from its answers), while one is known. */
  get worker(): string | undefined {
    return this.#session?.worker;
  }

  /** `open`, or `recovering` while the session is being re-established on another worker. */
  get state(): ClientState {
    return this.#state;
  }

  get protocolVersion(): string | undefined {
    return this.#protocolVersion ?? this.#session?.protocolVersion;
  }

  setProtocolVersion(version: string): void {
    this.#protocolVersion = version;
  }

  // ── what a broker's client provides ──────────────────────────────────────────

  /** Connects and starts listening on the inbox; resolves with the server's URL. */
  protected abstract connectBroker(): Promise<string>;
  /** Is any worker serving? `undefined`: no answer in time, which is no proof of absence. Throws the broker's no-responders error when none. */
  protected abstract ensureServed(what: string): Promise<void>;
  /** Publishes (a request with its deduplication key); throws the broker's typed errors. */
  protected abstract publishTo(route: Route, data: Uint8Array, headers: Array<[string, string]>, key: string | undefined, what: string): Promise<Published<V>>;
  /** Throws when the broker would refuse this message for its size (it names the limit). */
  protected abstract checkSize(data: Uint8Array, headers: Array<[string, string]>, what: string): number;
  /** Asks the session's worker whether it is there and holds the session. */
  protected abstract probeWorker(worker: string, sessionId: string, timeoutMs: number): Promise<ProbeResult>;
  /** The handshake the broker keeps for a session (undefined: none, the session is unknown); throws when the broker cannot say. */
  protected abstract loadHandshake(sessionId: string): Promise<Handshake | undefined>;
  /** Tells the session's worker the client closed it (best effort), then closes what is ours. */
  protected abstract closeBroker(closeSession: (() => Promise<void>) | undefined): Promise<void>;

  // ── life ─────────────────────────────────────────────────────────────────────

  async start(): Promise<void> {
    if (this.#state !== 'idle') throw new Error(`${this.kind.label}: already started; note that Client.connect() calls start() itself`);
    this.#state = 'starting';
    let url: string;
    try {
      url = await this.connectBroker();
    } catch (error) {
      this.#state = 'closed';
      throw error;
    }
    const join = this.policies.join;
    if (join !== undefined) {
      try {
        await this.#join(join);
      } catch (error) {
        this.#state = 'closing';
        this.stop.abort();
        await this.closeBroker(undefined).catch(() => {});
        this.#state = 'closed';
        throw error;
      }
    }
    this.#state = 'open';
    this.fanout.emit('connection', { state: 'open', transport: this.kind.layer, url });
    const heartbeat = this.policies.heartbeat;
    if (heartbeat !== undefined) {
      this.#probeTimer = setInterval(() => void this.#probe(), heartbeat.intervalMs);
      unref(this.#probeTimer);
    }
  }

  async send(message: JSONRPCMessage, _options?: TransportSendOptions): Promise<void> {
    const what = describeMessage(message);
    const { label, layer } = this.kind;
    if (this.#state === 'closing' || this.#state === 'closed') {
      throw new ConnectionClosedError(`${label}: cannot send ${what}: the transport is closed`, { neverSent: true, layer });
    }
    if (this.#state === 'idle' || this.#state === 'starting') {
      throw new ConnectionClosedError(`${label}: cannot send ${what}: not connected yet (start() has not finished)`, { neverSent: true, layer });
    }
    if (!this.connected) {
      throw new ConnectionClosedError(`${label}: cannot send ${what}: the ${this.kind.broker} is unreachable (the client library is reconnecting)`, { neverSent: true, layer, reason: 'disconnected' });
    }
    const request = isRequest(message) ? message : undefined;
    let route: Route;
    let sessionId = this.#session?.id;
    if (request?.method === 'initialize') {
      sessionId = this.policies.sessionId ?? randomUUID();
      route = { to: 'shared' };
    } else if (sessionId !== undefined) {
      route = { to: 'session', sessionId };
    } else if (request !== undefined) {
      route = { to: 'shared' };
    } else {
      // Without a session a notification (a 2026-07-28 cancellation) goes to every worker: only the one holding the request acts on it.
      route = { to: 'control' };
    }
    if (route.to === 'shared') await this.#ensurePresence(what);
    if ('method' in message && message.method === 'notifications/initialized' && this.#session !== undefined) this.#session.initializedSent = true;
    const cancelled = cancelledRequestId(message);
    // A cancelled request gets no answer (MCP): one that comes anyway is dropped as a duplicate.
    if (cancelled !== undefined) this.#inflight.delete(cancelled);

    const data = encode(message);
    const headers = this.headersOf(
      {
        [Header.Session]: sessionId,
        [Header.Idempotent]: request !== undefined && this.#idempotency.isIdempotent({ method: request.method, tool: toolOf(request) }) ? '1' : undefined,
      },
      message,
    );
    this.checkSize(data, headers, what);

    if (request !== undefined) {
      this.#inflight.set(request.id, { method: request.method });
      if (request.method === 'initialize') this.#pendingInitialize = { id: request.id, sessionId: sessionId as string, params: request.params };
    }
    let published: Published<V>;
    try {
      published = await Promise.race([this.publishTo(route, data, headers, request === undefined ? undefined : requestKey(this.clientId, request.id), what), this.#dropped.promise]);
    } catch (error) {
      if (request !== undefined) this.#inflight.delete(request.id);
      throw error;
    }
    if (published.duplicate && this.brokerEvents.has('broker-deduplicated')) this.brokerEvents.emit('broker-deduplicated', { where: 'stream', id: request?.id });
    if (this.brokerEvents.has('broker-published')) this.brokerEvents.emit('broker-published', { subject: published.subject, via: published.via, bytes: published.bytes, method: 'method' in message ? message.method : undefined });
  }

  async close(): Promise<void> {
    if (this.#closed !== undefined) return this.#closed;
    this.#closed = (async () => {
      const wasStarted = this.#state !== 'idle';
      this.#state = 'closing';
      this.stop.abort();
      clearInterval(this.#probeTimer);
      this.#replay?.reject(new ConnectionClosedError(`${this.kind.label}: closed`, { layer: this.kind.layer }));
      const session = this.#session;
      // Closing tells the worker to release the session now rather than when it notices this client is gone;
      // leaving tells it that this client is gone, and the session goes on for its other clients.
      const farewell = this.#farewell;
      const notice: HeaderValues | undefined = session === undefined || !this.connected || farewell === 'none' ? undefined : farewell === 'leave' ? { [Header.Listen]: 'leave' } : { [Header.Close]: '1' };
      const closeSession =
        session !== undefined && notice !== undefined
          ? () => bounded(this.publishTo({ to: 'session', sessionId: session.id }, new Uint8Array(0), this.headersOf({ [Header.Session]: session.id, ...notice }), undefined, `the ${farewell}`), CLOSE_TIMEOUT_MS)
          : undefined;
      if (wasStarted) await this.closeBroker(closeSession);
      if (wasStarted) this.#finish();
      else this.#state = 'closed';
    })();
    return this.#closed;
  }

  /**
   * Closes this transport without ending the session: its other clients (gateway
   * replicas) go on, and a client that comes back joins it again. (close() ends it for all.)
   */
  leave(): Promise<void> {
    if (this.#closed === undefined) this.#farewell = 'leave';
    return this.close();
  }

  /**
   * Tells the session's worker whether this client holds the downstream client's stream,
   * where what answers no request (list_changed, logs, requests of the server's own) should go.
   */
  async listen(holding: boolean): Promise<void> {
    await this.#notice(holding ? 'stream' : 'none');
  }

  /** Passes a message on to the session's other clients (not to the server), through its worker. */
  async relay(message: JSONRPCMessage): Promise<void> {
    const session = this.#session;
    if (session === undefined || this.#state !== 'open' || !this.connected) return;
    const data = encode(message);
    const headers = this.headersOf({ [Header.Session]: session.id, [Header.Relay]: '1' }, message);
    this.checkSize(data, headers, 'the relayed message');
    await this.publishTo({ to: 'session', sessionId: session.id }, data, headers, undefined, 'the relayed message');
  }

  async #notice(value: ListenValue): Promise<void> {
    const session = this.#session;
    if (session === undefined || (this.#state !== 'open' && this.#state !== 'starting') || !this.connected) return;
    await this.publishTo({ to: 'session', sessionId: session.id }, new Uint8Array(0), this.headersOf({ [Header.Session]: session.id, [Header.Listen]: value }), undefined, `the ${value} notice`);
  }

  /** Joins a session another client opened: known to the broker by its handshake, or refused as unknown. */
  async #join(sessionId: string): Promise<void> {
    const handshake = await this.loadHandshake(sessionId);
    if (handshake === undefined) {
      throw new TransportError(`${this.kind.label}: session ${sessionId} is unknown to the ${this.kind.broker}: no worker keeps its handshake (it ended, or expired); start a new session`, {
        layer: this.kind.layer,
        reason: 'session-unknown',
        neverSent: true,
        retryable: false,
      });
    }
    this.#joined = true;
    // A client joins a session its downstream client already initialized: the handshake is complete.
    this.#session = { id: sessionId, params: handshake.params, protocolVersion: handshake.protocolVersion, worker: handshake.worker, initializedSent: true };
    this.sessionId = sessionId;
    await this.#notice('join');
  }

  /** Our headers on everything a client publishes: who sent it and where to answer. */
  protected headersOf(values: HeaderValues, message?: JSONRPCMessage): Array<[string, string]> {
    return withTrace({ [Header.Client]: this.clientId, [Header.Reply]: this.inbox, ...values }, message);
  }

  /** Before work goes to the shared subject or stream: is anyone serving? (Checked again after a heartbeat interval.) */
  async #ensurePresence(what: string): Promise<void> {
    const ttl = this.policies.heartbeat?.intervalMs ?? 5_000;
    if (performance.now() - this.#presenceAt < ttl) return;
    await this.ensureServed(what);
    this.#presenceAt = performance.now();
  }

  /** The presence check's timeout, for the subclass. */
  protected get presenceTimeoutMs(): number {
    return this.policies.heartbeat?.timeoutMs ?? 2_000;
  }

  // ── reading ──────────────────────────────────────────────────────────────────

  /** Something arrived on the inbox; `header` reads its headers (`Mcp-Worker`, and the worker's notices). */
  protected arrived(data: Uint8Array, header: (name: string) => string | undefined, subject: string): void {
    if (this.#state === 'closed' || this.#state === 'closing') return;
    const worker = header(Header.Worker) || undefined;
    if (header(Header.Close) === '1' && this.#session !== undefined && header(Header.Session) === this.#session.id) {
      // Another client of the session (a gateway replica answering the downstream client's DELETE) closed it.
      this.#farewell = 'none';
      this.report(new ConnectionClosedError(`${this.kind.label}: session ${this.#session.id} was closed by another of its clients`, { layer: this.kind.layer, reason: 'session-closed' }));
      void this.close();
      return;
    }
    const decoded = decode(data, this.kind.unit);
    if (!decoded.ok) {
      this.garbage(subject, decoded.problem);
      return;
    }
    const message = decoded.message;
    if (header(Header.Relay) === '1') {
      try {
        this.onpeer?.(message);
      } catch (error) {
        this.report(error);
      }
      return;
    }
    if (!('method' in message)) {
      const id = message.id;
      const replay = this.#replay;
      if (replay !== undefined && id === replay.id) {
        replay.resolve({ message, worker });
        return;
      }
      const entry = id === undefined ? undefined : this.#inflight.get(id);
      if (entry === undefined) {
        // A second answer (a redelivered request answered twice), or one to a request given up on.
        if (this.brokerEvents.has('broker-deduplicated')) this.brokerEvents.emit('broker-deduplicated', { where: 'client', id });
        return;
      }
      this.#inflight.delete(id as RequestId);
      const pending = this.#pendingInitialize;
      if (pending !== undefined && id === pending.id) {
        this.#pendingInitialize = undefined;
        const version = 'result' in message ? message.result['protocolVersion'] : undefined;
        if (typeof version === 'string' && version < STATELESS_PROTOCOL_VERSION) {
          this.#session = { id: pending.sessionId, params: pending.params, protocolVersion: version, worker, initializedSent: false };
          this.sessionId = pending.sessionId;
        }
      }
      if (entry.method === 'tools/list' && 'result' in message) this.#idempotency.learn(message.result);
    } else if (message.method === 'notifications/tools/list_changed') {
      this.#idempotency.forget();
    }
    if (worker !== undefined && this.#session !== undefined && this.#state === 'open' && this.#session.worker !== worker) this.#session.worker = worker;
    this.#deliver(message);
  }

  /** Bytes on the inbox that are not one of our messages: reported and dropped. */
  protected garbage(subject: string, problem: string): void {
    if (this.#state === 'closed' || this.#state === 'closing') return;
    this.report(new InvalidMessageError(`${this.kind.label}: dropped ${problem} from the inbox ${subject}`, 'inbound', { layer: this.kind.layer, reason: 'garbage' }));
    if (this.brokerEvents.has('broker-garbage')) this.brokerEvents.emit('broker-garbage', { subject, problem, answered: false });
  }

  #deliver(message: JSONRPCMessage): void {
    if (this.divert !== undefined) {
      try {
        if (this.divert(message)) return;
      } catch (error) {
        this.report(error);
        return;
      }
    }
    deliverTo(this, message);
  }

  protected report(error: unknown): void {
    reportTo(this, error);
  }

  // ── the broker's connection ──────────────────────────────────────────────────

  /** The connection dropped: requests in flight will not be answered on it. */
  protected brokerLost(url: string | undefined): void {
    if (!this.connected) return;
    this.connected = false;
    if (this.#state === 'closing' || this.#state === 'closed') return;
    this.fanout.emit('connection', { state: 'closed', transport: this.kind.layer, ...(url === undefined ? {} : { url }), reason: `the connection to the ${this.kind.broker} was lost` });
    this.#connectionLost();
  }

  /** The client library reconnected. */
  protected brokerBack(url: string | undefined): void {
    if (this.connected) return;
    this.connected = true;
    this.#presenceAt = -Infinity;
    if (this.#state === 'closing' || this.#state === 'closed') return;
    this.fanout.emit('connection', { state: 'open', transport: this.kind.layer, ...(url === undefined ? {} : { url }) });
    this.fanout.emit('reconnect', { attempt: 1, delayMs: 0, outcome: 'connected' });
  }

  /** The connection is closed for good (the client library gave up): the transport closes. */
  protected brokerClosed(error: unknown): void {
    this.connected = false;
    if (this.#state === 'closing' || this.#state === 'closed') return;
    this.report(new ConnectionClosedError(`${this.kind.label}: the connection to the ${this.kind.broker} closed${error instanceof Error ? `: ${error.message}` : ''}`, { layer: this.kind.layer, reason: 'connection-closed' }));
    this.#finish();
  }

  /** Requests in flight will not be answered on this connection: fail them now, retryably. */
  #connectionLost(): void {
    const error = new ConnectionClosedError(`${this.kind.label}: the connection to the ${this.kind.broker} was lost; requests in flight may or may not have been executed`, {
      layer: this.kind.layer,
      reason: 'connection-lost',
    });
    const dropped = this.#dropped;
    this.#dropped = Promise.withResolvers<never>();
    this.#dropped.promise.catch(() => {});
    dropped.reject(error);
    const lost = [...this.#inflight.keys()];
    this.#inflight.clear();
    this.#pendingInitialize = undefined;
    if (this.onconnectionlost !== undefined) {
      try {
        this.onconnectionlost(error);
      } catch (cause) {
        this.report(cause);
      }
      return;
    }
    // Used without wrap(): answer for the worker, so the application's requests end now.
    for (const id of lost) {
      this.#deliver({ jsonrpc: '2.0', id, error: { code: error.code, message: error.message, data: { layer: this.kind.layer, reason: 'connection-lost', attempts: 1 } } });
    }
  }

  // ── the session's worker ─────────────────────────────────────────────────────

  async #probe(): Promise<void> {
    const session = this.#session;
    const heartbeat = this.policies.heartbeat;
    if (this.#probing || this.#state !== 'open' || !this.connected || session?.worker === undefined || heartbeat === undefined) return;
    this.#probing = true;
    const worker = session.worker;
    const started = performance.now();
    try {
      const result = await this.probeWorker(worker, session.id, heartbeat.timeoutMs);
      if (this.#state !== 'open' || session.worker !== worker) return;
      if (result.outcome === 'alive') {
        this.#missed = 0;
        this.fanout.emit('heartbeat', { outcome: 'ok', rttMs: performance.now() - started });
        // Alive, but no longer holding the session (it released it, or restarted under the same id).
        if (result.holds === false) this.#workerLost(worker, 'it no longer holds the session');
      } else if (result.outcome === 'gone') {
        this.fanout.emit('heartbeat', { outcome: 'missed' });
        this.#workerLost(worker, result.reason);
      } else if (this.connected) {
        this.fanout.emit('heartbeat', { outcome: 'missed' });
        if (++this.#missed >= heartbeat.maxMissed) this.#workerLost(worker, `${this.#missed} probes unanswered within ${heartbeat.timeoutMs} ms`);
      }
    } catch (error) {
      this.report(error);
    } finally {
      this.#probing = false;
    }
  }

  #workerLost(worker: string, reason: string): void {
    this.#missed = 0;
    if (this.brokerEvents.has('broker-worker')) this.brokerEvents.emit('broker-worker', { state: 'left', worker, reason });
    const session = this.#session;
    if (session === undefined) return;
    session.worker = undefined;
    const recover = this.policies.recover;
    if (recover === undefined) {
      const error = new ConnectionClosedError(`${this.kind.label}: the worker holding session ${session.id} is gone (${reason}), and recover is off`, { layer: this.kind.layer, reason: 'worker-lost' });
      this.report(error);
      void this.close();
      return;
    }
    void this.#recoverSession(session, recover, reason, worker);
  }

  /**
   * Replays the handshake on the shared subject or stream with the session's id: the
   * worker that takes it opens the session again and resumes its own subject or stream,
   * where what the client sent meanwhile waits. Requests the dead worker held go to the
   * new one through the broker. The replayed answer is ours, not the application's.
   */
  async #recoverSession(session: Session, policy: NonNullable<ClientPolicies['recover']>, why: string, deadWorker: string): Promise<void> {
    this.#state = 'recovering';
    let lastError: Error | undefined;
    for (let attempt = 1; attempt <= policy.maxRetries; attempt++) {
      const delayMs = attempt === 1 ? 0 : Math.min(policy.maxDelayMs, policy.initialDelayMs * 2 ** (attempt - 2));
      this.fanout.emit('reconnect', { attempt, delayMs, outcome: 'scheduled' });
      try {
        await sleep(delayMs, this.stop.signal);
        if (!this.connected) throw new ConnectionClosedError(`${this.kind.label}: the ${this.kind.broker} is unreachable`, { layer: this.kind.layer, reason: 'disconnected' });
        this.#presenceAt = -Infinity;
        await this.#ensurePresence('the replayed initialize');
        const worker = await this.#replayHandshake(session, policy, requestKey(session.id, `replay.${deadWorker}.${attempt}`));
        if (this.#state !== 'recovering') return;
        session.worker = worker;
        this.#state = 'open';
        this.fanout.emit('reconnect', { attempt, delayMs, outcome: 'connected' });
        return;
      } catch (error) {
        if (this.#state !== 'recovering') return;
        lastError = asError(error);
        this.fanout.emit('reconnect', { attempt, delayMs, outcome: 'failed', error: lastError });
        if (lastError instanceof HandshakeRejectedError || lastError instanceof SessionGoneError) break;
      }
    }
    if (this.#state !== 'recovering') return;
    const failure = new ConnectionClosedError(
      `${this.kind.label}: session ${session.id} lost its worker (${why}) and could not be re-established${lastError === undefined ? '' : `: ${lastError.message}`}`,
      { layer: this.kind.layer, reason: 'recover-failed', ...(lastError === undefined ? {} : { cause: lastError }) },
    );
    this.report(failure);
    await this.close();
  }

  /**
   * One replay. Several clients of one session (gateway replicas) notice the same dead
   * worker: their replays share one deduplication key (the session, the dead worker, the
   * attempt), so the broker keeps the first, and the others wait for the worker the
   * handshake on the broker names to hold the session. A client that joined the session
   * replays the handshake the broker keeps; when there is none the session is over.
   */
  async #replayHandshake(session: Session, policy: NonNullable<ClientPolicies['recover']>, key: string): Promise<string | undefined> {
    const timeoutMs = policy.timeoutMs;
    const id = `mcp-layers-replay-${++this.#replays}`;
    const { label, layer } = this.kind;
    let params = session.params;
    if (this.#joined) {
      const kept = await this.loadHandshake(session.id);
      if (kept === undefined) throw new SessionGoneError(layer, `${label}: session ${session.id} is over: the ${this.kind.broker} keeps no handshake for it any more`);
      params = kept.params;
    }
    const answered = new Promise<{ message: JSONRPCResponse; worker: string | undefined }>((resolve, reject) => {
      this.#replay = { id, resolve, reject };
    });
    const timer = setTimeout(() => {
      this.#replay?.reject(new TransportError(`${label}: no worker answered the replayed initialize within ${timeoutMs} ms`, { layer, reason: 'replay-timeout' }));
    }, timeoutMs);
    unref(timer);
    try {
      const headers = this.headersOf({ [Header.Session]: session.id, [Header.Replay]: session.initializedSent ? 'initialized' : 'initialize' });
      const message: JSONRPCRequest = { jsonrpc: '2.0', id, method: 'initialize', params };
      const published = await this.publishTo({ to: 'shared' }, encode(message), headers, key, 'the replayed initialize');
      if (published.duplicate) {
        this.#replay = undefined;
        return await this.#awaitReplayOfAnother(session, policy);
      }
      const { message: response, worker } = await answered;
      if ('error' in response) {
        throw new HandshakeRejectedError(layer, `${label}: the worker refused the replayed initialize (${response.error.code} ${response.error.message}); the session cannot be restored`);
      }
      const version = response.result['protocolVersion'];
      if (version !== session.protocolVersion) {
        throw new HandshakeRejectedError(layer, `${label}: the new worker negotiated protocol version ${String(version)} but the session uses ${session.protocolVersion}; the session cannot be restored`);
      }
      return worker;
    } finally {
      clearTimeout(timer);
      this.#replay = undefined;
    }
  }

  /** Another client of the session replayed it: the worker its handshake names will hold it. */
  async #awaitReplayOfAnother(session: Session, policy: NonNullable<ClientPolicies['recover']>): Promise<string> {
    const deadline = performance.now() + policy.timeoutMs;
    const probeMs = this.policies.heartbeat?.timeoutMs ?? 2_000;
    for (let wait = Math.max(10, policy.initialDelayMs); performance.now() < deadline; wait = Math.min(wait * 2, 1_000)) {
      await sleep(wait, this.stop.signal);
      const kept = await this.loadHandshake(session.id).catch(() => undefined);
      if (kept === undefined) continue;
      const probe = await this.probeWorker(kept.worker, session.id, probeMs);
      if (probe.outcome === 'alive' && probe.holds !== false) return kept.worker;
    }
    throw new TransportError(`${this.kind.label}: another client of session ${session.id} replayed its handshake, and no worker held the session within ${policy.timeoutMs} ms`, { layer: this.kind.layer, reason: 'replay-timeout' });
  }

  #finish(): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.stop.abort();
    clearInterval(this.#probeTimer);
    this.#inflight.clear();
    this.fanout.emit('connection', { state: 'closed', transport: this.kind.layer, reason: 'the transport closed' });
    try {
      this.onclose?.();
    } catch (error) {
      this.report(error);
    }
  }
}

/** How long close() waits for the session's close message to be stored: a broker gone quiet must not hold the close up. */
const CLOSE_TIMEOUT_MS = 2_000;

/** Settles when `work` does or after `ms`, whichever comes first; never rejects. */
async function bounded(work: Promise<unknown>, ms: number): Promise<void> {
  const timer = Promise.withResolvers<void>();
  const t = setTimeout(timer.resolve, ms);
  unref(t);
  await Promise.race([work.catch(() => {}), timer.promise]);
  clearTimeout(t);
}

/** The session ended meanwhile (its handshake is gone from the broker): recovering stops. */
class SessionGoneError extends McpLayersError<number> {
  static {
    brand(this, 'error.BrokerSessionGoneError');
  }

  constructor(layer: string, message: string) {
    super(ErrorCode.ConnectionClosed, message, { layer, reason: 'session-gone' });
  }
}

/** The new worker refused to restore the session: recovering stops. */
class HandshakeRejectedError extends McpLayersError<number> {
  static {
    brand(this, 'error.BrokerHandshakeRejectedError');
  }

  constructor(layer: string, message: string) {
    super(ErrorCode.ConnectionClosed, message, { layer, reason: 'handshake-rejected' });
  }
}
