/**
 * NatsClientTransport: an MCP client transport to a service served by workers over NATS
 * (serveNats(), worker.ts).
 *
 *   - `initialize` and sessionless (2026-07-28) requests are published to the service's
 *     JetStream subject, where whichever worker has room pulls them; after a 2025-era
 *     `initialize` every message of the session goes to the session's own subject, which
 *     only the worker holding the session consumes. Workers answer on this transport's
 *     inbox. Nothing about the routing is kept in any process: it is in the subject names.
 *   - A request is published under the stream's deduplication key (this transport's id
 *     and the wire id), with `Mcp-Idempotent: 1` when the core's rules (invariant 3:
 *     annotations learned from tools/list results that pass through, and configuration)
 *     say it may run twice. A worker that dies holding requests leaves them unacknowledged;
 *     the broker redelivers them, and the next worker runs the idempotent ones and answers
 *     the others with one error. A second answer to a request is dropped here.
 *   - The session's worker is probed (a core request to its own subject): "no responders"
 *     means it is gone at once, unanswered probes mean it is gone after `maxMissed`. The
 *     session is then re-established on another worker by replaying its handshake, under
 *     the same session id; the application never notices. What the dead server held in
 *     memory for the session is gone.
 *   - The broker unreachable: the client library reconnects on its own; requests in flight
 *     fail at once with a retryable ConnectionClosedError (through `onconnectionlost` when
 *     wrapped, or as a synthesized error response when bare), and sends fail until it is back.
 *   - A message over the server's `max_payload` is refused with an error that names the limit.
 */
import { randomUUID } from 'node:crypto';
import { jetstream, type JetStreamClient } from '@nats-io/jetstream';
import { createInbox, Empty, type Msg, type NatsConnection, nuid, type Subscription } from '@nats-io/transport-node';
import { brand } from '../../core/brand.ts';
import { asError, ConnectionClosedError, ErrorCode, InvalidMessageError, McpLayersError, TransportError } from '../../core/errors.ts';
import type { EventBus } from '../../core/events.ts';
import { Idempotency, type IdempotencyOptions } from '../../core/idempotency.ts';
import { CANCELLED, isRequest, type JSONRPCMessage, type JSONRPCRequest, type JSONRPCResponse, type RequestId } from '../../core/jsonrpc.ts';
import { durationOption, integerOption, optionsObject, settingsObject } from '../../core/options.ts';
import { type MessageExtraInfo, STATELESS_PROTOCOL_VERSION, type Transport, type TransportSendOptions } from '../../core/transport.ts';
import { EventFanout, WIRE_CONTROL, type WireControl } from '../../core/wire.ts';
import { sleep, unref } from '../../layer-kit/sleep.ts';
import { decode, describeMessage, encode, headersFor, overMaxPayload, toolOf, wireSize } from './codec.ts';
import type { NatsEvents } from './events.ts';
import { isNoResponders, isTimeout, openConnection, type ResolvedCommon, resolveCommon } from './connection.ts';
import { COMMON_OPTIONS, type NatsCommonOptions } from './options.ts';
import { clientMessages, clientProbe, Header, requestKey } from './subjects.ts';

export interface NatsHeartbeatOptions {
  /** How often the session's worker is probed. Default 5 000 ms. */
  intervalMs?: number;
  /** How long a probe may go unanswered. Default 2 000 ms. */
  timeoutMs?: number;
  /** Unanswered probes in a row after which the worker is taken for gone. Default 2. ("No responders" is at once.) */
  maxMissed?: number;
}

export interface NatsRecoverOptions {
  /** Replays of the handshake tried before the transport gives up and closes. Default 10. */
  maxRetries?: number;
  /** Wait before the second replay; doubles after each. Default 100 ms. */
  initialDelayMs?: number;
  /** Longest wait between replays. Default 5 000 ms. */
  maxDelayMs?: number;
  /** How long a replayed initialize may wait for its answer. Default 10 000 ms. */
  timeoutMs?: number;
}

export interface NatsClientTransportOptions extends NatsCommonOptions, IdempotencyOptions {
  /** Probes of the session's worker. `false` turns them off (a dead worker is then noticed by nothing). */
  heartbeat?: false | NatsHeartbeatOptions;
  /** Re-establish a 2025-era session on another worker when its worker is gone. `false` closes the transport instead. */
  recover?: false | NatsRecoverOptions;
  /** How long a publish waits for the stream to store it. Default 5 000 ms. */
  publishTimeoutMs?: number;
}

type State = 'idle' | 'starting' | 'open' | 'recovering' | 'closing' | 'closed';

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

const LABEL = 'mcp-layers/nats client';

export class NatsClientTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage, extra?: MessageExtraInfo) => void;
  onconnectionlost?: (error: Error) => void;
  /** The session's id once a 2025-era `initialize` succeeded; kept across workers. */
  sessionId?: string | undefined = undefined;

  /** Where `connection`, `reconnect` and `heartbeat` are published. */
  readonly events: EventBus;
  /** Where `published`, `deduplicated` and `worker` are published. */
  readonly natsEvents: EventBus<NatsEvents>;
  /** This transport's id on the broker (in every message's `Mcp-Client` header and deduplication key). */
  readonly clientId: string = nuid.next();
  readonly [WIRE_CONTROL]: WireControl;

  readonly #common: ResolvedCommon;
  readonly #fanout: EventFanout;
  readonly #idempotency: Idempotency;
  readonly #heartbeat: Required<NatsHeartbeatOptions> | undefined;
  readonly #recover: Required<NatsRecoverOptions> | undefined;
  readonly #publishTimeoutMs: number;
  readonly #stop = new AbortController();

  #state: State = 'idle';
  #nc: NatsConnection | undefined;
  #owned = false;
  #js: JetStreamClient | undefined;
  #inbox = '';
  #sub: Subscription | undefined;
  #connected = false;
  /** Rejects publishes waiting for the stream when the connection drops (replaced on each drop). */
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

  constructor(options: NatsClientTransportOptions) {
    optionsObject(options, 'NatsClientTransport', [...COMMON_OPTIONS, 'heartbeat', 'recover', 'publishTimeoutMs', 'idempotentTools', 'nonIdempotentTools']);
    this.#common = resolveCommon('NatsClientTransport', options);
    this.events = this.#common.events;
    this.natsEvents = this.#common.natsEvents;
    this.#fanout = new EventFanout(this.events);
    this.#idempotency = new Idempotency({ idempotentTools: options.idempotentTools, nonIdempotentTools: options.nonIdempotentTools });
    if (options.heartbeat === false) {
      this.#heartbeat = undefined;
    } else {
      const h = settingsObject('NatsClientTransport.heartbeat', options.heartbeat, ['intervalMs', 'timeoutMs', 'maxMissed']);
      const intervalMs = durationOption('NatsClientTransport.heartbeat.intervalMs', h['intervalMs'], 5_000, 1);
      this.#heartbeat = {
        intervalMs,
        timeoutMs: durationOption('NatsClientTransport.heartbeat.timeoutMs', h['timeoutMs'], Math.min(2_000, intervalMs), 1),
        maxMissed: integerOption('NatsClientTransport.heartbeat.maxMissed', h['maxMissed'], 2, 1),
      };
    }
    if (options.recover === false) {
      this.#recover = undefined;
    } else {
      const r = settingsObject('NatsClientTransport.recover', options.recover, ['maxRetries', 'initialDelayMs', 'maxDelayMs', 'timeoutMs']);
      const initialDelayMs = durationOption('NatsClientTransport.recover.initialDelayMs', r['initialDelayMs'], 100);
      this.#recover = {
        maxRetries: integerOption('NatsClientTransport.recover.maxRetries', r['maxRetries'], 10, 1),
        initialDelayMs,
        maxDelayMs: durationOption('NatsClientTransport.recover.maxDelayMs', r['maxDelayMs'], Math.max(5_000, initialDelayMs), initialDelayMs),
        timeoutMs: durationOption('NatsClientTransport.recover.timeoutMs', r['timeoutMs'], 10_000, 1),
      };
    }
    this.#publishTimeoutMs = durationOption('NatsClientTransport.publishTimeoutMs', options.publishTimeoutMs, 5_000, 1);
    this.#dropped.promise.catch(() => {});
    this[WIRE_CONTROL] = {
      kind: 'nats',
      acceptsBatches: false,
      compress: () => {},
      observe: (bus: EventBus) => this.#fanout.add(bus),
    };
  }

  /** The service's name on the broker. */
  get service(): string {
    return this.#common.subjects.service;
  }

  /** This transport's inbox on the broker (workers publish to `<inbox>.m`); empty until start(). */
  get inbox(): string {
    return this.#inbox;
  }

  /** The worker holding the session (from its answers), while one is known. */
  get worker(): string | undefined {
    return this.#session?.worker;
  }

  /** `open`, or `recovering` while the session is being re-established on another worker. */
  get state(): State {
    return this.#state;
  }

  get protocolVersion(): string | undefined {
    return this.#protocolVersion ?? this.#session?.protocolVersion;
  }

  setProtocolVersion(version: string): void {
    this.#protocolVersion = version;
  }

  async start(): Promise<void> {
    if (this.#state !== 'idle') throw new Error(`${LABEL}: already started; note that Client.connect() calls start() itself`);
    this.#state = 'starting';
    try {
      const { nc, owned } = await openConnection(this.#common, LABEL, `mcp-layers client ${this.#common.subjects.service}`);
      this.#nc = nc;
      this.#owned = owned;
      this.#js = jetstream(nc);
      this.#inbox = createInbox(this.#common.connectOptions.inboxPrefix);
      this.#sub = nc.subscribe(`${this.#inbox}.>`, { callback: (error, msg) => (error === null ? this.#receive(msg) : this.#report(error)) });
      this.#connected = !nc.isClosed();
      void this.#watch(nc);
    } catch (error) {
      this.#state = 'closed';
      throw error;
    }
    this.#state = 'open';
    this.#fanout.emit('connection', { state: 'open', transport: 'nats', url: this.#nc.getServer() });
    if (this.#heartbeat !== undefined) {
      this.#probeTimer = setInterval(() => void this.#probe(), this.#heartbeat.intervalMs);
      unref(this.#probeTimer);
    }
  }

  async send(message: JSONRPCMessage, _options?: TransportSendOptions): Promise<void> {
    const what = describeMessage(message);
    if (this.#state === 'closing' || this.#state === 'closed') {
      throw new ConnectionClosedError(`${LABEL}: cannot send ${what}: the transport is closed`, { neverSent: true, layer: 'nats' });
    }
    const nc = this.#nc;
    const js = this.#js;
    if (this.#state === 'idle' || this.#state === 'starting' || nc === undefined || js === undefined) {
      throw new ConnectionClosedError(`${LABEL}: cannot send ${what}: not connected yet (start() has not finished)`, { neverSent: true, layer: 'nats' });
    }
    if (!this.#connected) {
      throw new ConnectionClosedError(`${LABEL}: cannot send ${what}: the NATS server is unreachable (the client library is reconnecting)`, {
        neverSent: true,
        layer: 'nats',
        reason: 'disconnected',
      });
    }
    const { subjects } = this.#common;
    const request = isRequest(message) ? message : undefined;
    let subject: string;
    let sessionId = this.#session?.id;
    let via: 'stream' | 'core' = 'stream';
    if (request?.method === 'initialize') {
      sessionId = randomUUID();
      subject = subjects.requests;
    } else if (sessionId !== undefined) {
      subject = subjects.session(sessionId);
    } else if (request !== undefined) {
      subject = subjects.requests;
    } else {
      // Without a session a notification (a 2026-07-28 cancellation) goes to every worker: only the one holding the request acts on it.
      subject = subjects.control;
      via = 'core';
    }
    if (subject === subjects.requests) await this.#ensurePresence(what);
    if ('method' in message && message.method === 'notifications/initialized' && this.#session !== undefined) this.#session.initializedSent = true;
    const cancelled = cancelledRequestId(message);
    // A cancelled request gets no answer (MCP): one that comes anyway is dropped as a duplicate.
    if (cancelled !== undefined) this.#inflight.delete(cancelled);

    const data = encode(message);
    const headers = headersFor(
      {
        [Header.Client]: this.clientId,
        [Header.Reply]: this.#inbox,
        [Header.Session]: sessionId,
        [Header.Idempotent]: request !== undefined && this.#idempotency.isIdempotent({ method: request.method, tool: toolOf(request) }) ? '1' : undefined,
      },
      message,
    );
    const maxPayload = nc.info?.max_payload;
    const size = wireSize(data, headers);
    if (maxPayload !== undefined && size > maxPayload) throw overMaxPayload(LABEL, what, size, maxPayload);

    if (request !== undefined) {
      this.#inflight.set(request.id, { method: request.method });
      if (request.method === 'initialize') this.#pendingInitialize = { id: request.id, sessionId: sessionId as string, params: request.params };
    }
    try {
      if (via === 'core') {
        nc.publish(subject, data, { headers });
      } else {
        const ack = await Promise.race([
          js.publish(subject, data, {
            headers,
            timeout: this.#publishTimeoutMs,
            ...(request === undefined ? {} : { msgID: requestKey(this.clientId, request.id) }),
          }),
          this.#dropped.promise,
        ]);
        if (ack.duplicate && this.natsEvents.has('deduplicated')) this.natsEvents.emit('deduplicated', { where: 'stream', id: request?.id });
      }
    } catch (error) {
      if (request !== undefined) this.#inflight.delete(request.id);
      throw this.#publishError(error, what, subject, size, maxPayload);
    }
    if (this.natsEvents.has('published')) this.natsEvents.emit('published', { subject, via, bytes: size, method: 'method' in message ? message.method : undefined });
  }

  async close(): Promise<void> {
    if (this.#closed !== undefined) return this.#closed;
    this.#closed = (async () => {
      const wasStarted = this.#state !== 'idle';
      this.#state = 'closing';
      this.#stop.abort();
      clearInterval(this.#probeTimer);
      this.#replay?.reject(new ConnectionClosedError(`${LABEL}: closed`, { layer: 'nats' }));
      const nc = this.#nc;
      const session = this.#session;
      if (nc !== undefined && this.#js !== undefined && session !== undefined && this.#connected) {
        // Tells the worker to release the session now rather than when it notices this client is gone.
        const headers = headersFor({ [Header.Client]: this.clientId, [Header.Reply]: this.#inbox, [Header.Session]: session.id, [Header.Close]: '1' });
        await this.#js.publish(this.#common.subjects.session(session.id), Empty, { headers, timeout: Math.min(this.#publishTimeoutMs, 2_000) }).catch(() => {});
      }
      this.#sub?.unsubscribe();
      if (nc !== undefined && this.#owned) await nc.close().catch(() => {});
      if (wasStarted) this.#finish();
      else this.#state = 'closed';
    })();
    return this.#closed;
  }

  // ── publishing ───────────────────────────────────────────────────────────────

  /** Before work goes to the shared subject: is anyone serving? "No responders" answers at once. */
  async #ensurePresence(what: string): Promise<void> {
    const ttl = this.#heartbeat?.intervalMs ?? 5_000;
    if (performance.now() - this.#presenceAt < ttl) return;
    const nc = this.#nc as NatsConnection;
    try {
      await nc.request(this.#common.subjects.presence, Empty, { timeout: this.#heartbeat?.timeoutMs ?? 2_000 });
      this.#presenceAt = performance.now();
    } catch (error) {
      if (isNoResponders(error)) {
        throw new TransportError(`${LABEL}: cannot send ${what}: no worker serves "${this.service}" (no responders on ${this.#common.subjects.presence}); it was not sent`, {
          layer: 'nats',
          reason: 'no-responders',
          neverSent: true,
          retryable: true,
          cause: error,
        });
      }
      // A slow answer is no proof of absence: the stream keeps the request until a worker takes it.
    }
  }

  #publishError(error: unknown, what: string, subject: string, size: number, maxPayload: number | undefined): Error {
    if (error instanceof McpLayersError) return error;
    const message = (error as Error)?.message ?? String(error);
    if (/max_payload/i.test(message)) return overMaxPayload(LABEL, what, size, maxPayload ?? size);
    if (isNoResponders(error)) {
      return new TransportError(`${LABEL}: cannot send ${what}: no stream stores ${subject} (no worker of "${this.service}" has ever started: serveNats() creates it); it was not sent`, {
        layer: 'nats',
        reason: 'no-stream',
        neverSent: true,
        retryable: true,
        cause: error,
      });
    }
    if (isTimeout(error)) {
      return new TransportError(`${LABEL}: ${what}: the stream did not confirm it within ${this.#publishTimeoutMs} ms; it may or may not have been stored`, {
        layer: 'nats',
        reason: 'publish-timeout',
        cause: error,
      });
    }
    return new TransportError(`${LABEL}: could not publish ${what}: ${message}`, { layer: 'nats', reason: 'publish-failed', cause: error });
  }

  // ── reading ──────────────────────────────────────────────────────────────────

  #receive(msg: Msg): void {
    if (msg.subject === clientProbe(this.#inbox)) {
      // A worker asks whether this client is still here (it releases the session otherwise).
      msg.respond(Empty);
      return;
    }
    if (this.#state === 'closed' || this.#state === 'closing') return;
    const decoded = decode(msg.data);
    if (!decoded.ok || msg.subject !== clientMessages(this.#inbox)) {
      const problem = decoded.ok ? `a message on an unexpected subject (${msg.subject})` : decoded.problem;
      this.#report(new InvalidMessageError(`${LABEL}: dropped ${problem} from the inbox ${msg.subject}`, 'inbound', { layer: 'nats', reason: 'garbage' }));
      if (this.natsEvents.has('garbage')) this.natsEvents.emit('garbage', { subject: msg.subject, problem, answered: false });
      return;
    }
    const message = decoded.message;
    const worker = msg.headers?.get(Header.Worker) || undefined;
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
        if (this.natsEvents.has('deduplicated')) this.natsEvents.emit('deduplicated', { where: 'client', id });
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

  #deliver(message: JSONRPCMessage): void {
    try {
      this.onmessage?.(message);
    } catch (error) {
      this.#report(error);
    }
  }

  #report(error: unknown): void {
    try {
      this.onerror?.(asError(error));
    } catch {
      // nowhere left to report
    }
  }

  // ── the broker's connection ──────────────────────────────────────────────────

  async #watch(nc: NatsConnection): Promise<void> {
    void nc.closed().then((error) => {
      this.#connected = false;
      if (this.#state === 'closing' || this.#state === 'closed') return;
      const failure = new ConnectionClosedError(`${LABEL}: the connection to the NATS server closed${error instanceof Error ? `: ${error.message}` : ''}`, {
        layer: 'nats',
        reason: 'connection-closed',
      });
      this.#report(failure);
      this.#finish();
    });
    try {
      for await (const status of nc.status()) {
        if (status.type === 'disconnect') {
          if (!this.#connected) continue;
          this.#connected = false;
          this.#fanout.emit('connection', { state: 'closed', transport: 'nats', url: status.server, reason: 'the connection to the NATS server was lost' });
          this.#connectionLost();
        } else if (status.type === 'reconnect') {
          this.#connected = true;
          this.#presenceAt = -Infinity;
          this.#fanout.emit('connection', { state: 'open', transport: 'nats', url: status.server });
          this.#fanout.emit('reconnect', { attempt: 1, delayMs: 0, outcome: 'connected' });
        }
      }
    } catch (error) {
      this.#report(error);
    }
  }

  /** Requests in flight will not be answered on this connection: fail them now, retryably. */
  #connectionLost(): void {
    const error = new ConnectionClosedError(`${LABEL}: the connection to the NATS server was lost; requests in flight may or may not have been executed`, {
      layer: 'nats',
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
        this.#report(cause);
      }
      return;
    }
    // Used without wrap(): answer for the worker, so the application's requests end now.
    for (const id of lost) {
      this.#deliver({ jsonrpc: '2.0', id, error: { code: error.code, message: error.message, data: { layer: 'nats', reason: 'connection-lost', attempts: 1 } } });
    }
  }

  // ── the session's worker ─────────────────────────────────────────────────────

  async #probe(): Promise<void> {
    const session = this.#session;
    const heartbeat = this.#heartbeat;
    const nc = this.#nc;
    if (this.#probing || this.#state !== 'open' || !this.#connected || session?.worker === undefined || heartbeat === undefined || nc === undefined) return;
    this.#probing = true;
    const worker = session.worker;
    const started = performance.now();
    try {
      const answer = await nc.request(this.#common.subjects.worker(worker), session.id, { timeout: heartbeat.timeoutMs });
      if (this.#state !== 'open' || session.worker !== worker) return;
      this.#missed = 0;
      this.#fanout.emit('heartbeat', { outcome: 'ok', rttMs: performance.now() - started });
      // Alive, but no longer holding the session (it released it, or restarted under the same id).
      if (holds(answer.data) === false) this.#workerLost(worker, 'it no longer holds the session');
    } catch (error) {
      if (this.#state !== 'open' || session.worker !== worker) return;
      if (isNoResponders(error)) {
        this.#fanout.emit('heartbeat', { outcome: 'missed' });
        this.#workerLost(worker, 'no responders on its probe subject');
      } else if (this.#connected) {
        this.#fanout.emit('heartbeat', { outcome: 'missed' });
        if (++this.#missed >= heartbeat.maxMissed) this.#workerLost(worker, `${this.#missed} probes unanswered within ${heartbeat.timeoutMs} ms`);
      }
    } finally {
      this.#probing = false;
    }
  }

  #workerLost(worker: string, reason: string): void {
    this.#missed = 0;
    if (this.natsEvents.has('worker')) this.natsEvents.emit('worker', { state: 'left', worker, reason });
    const session = this.#session;
    if (session === undefined) return;
    session.worker = undefined;
    if (this.#recover === undefined) {
      const error = new ConnectionClosedError(`${LABEL}: the worker holding session ${session.id} is gone (${reason}), and recover is off`, { layer: 'nats', reason: 'worker-lost' });
      this.#report(error);
      void this.close();
      return;
    }
    void this.#recoverSession(session, this.#recover, reason);
  }

  /**
   * Replays the handshake on the shared subject with the session's id: the worker that
   * takes it opens the session again and resumes its subject, where what the client sent
   * meanwhile waits. Requests the dead worker held are redelivered to the new one by the
   * broker. The replayed answer is ours, not the application's.
   */
  async #recoverSession(session: Session, policy: Required<NatsRecoverOptions>, why: string): Promise<void> {
    this.#state = 'recovering';
    let lastError: Error | undefined;
    for (let attempt = 1; attempt <= policy.maxRetries; attempt++) {
      const delayMs = attempt === 1 ? 0 : Math.min(policy.maxDelayMs, policy.initialDelayMs * 2 ** (attempt - 2));
      this.#fanout.emit('reconnect', { attempt, delayMs, outcome: 'scheduled' });
      try {
        await sleep(delayMs, this.#stop.signal);
        if (!this.#connected) throw new ConnectionClosedError(`${LABEL}: the NATS server is unreachable`, { layer: 'nats', reason: 'disconnected' });
        this.#presenceAt = -Infinity;
        await this.#ensurePresence('the replayed initialize');
        const worker = await this.#replayHandshake(session, policy.timeoutMs);
        if (this.#state !== 'recovering') return;
        session.worker = worker;
        this.#state = 'open';
        this.#fanout.emit('reconnect', { attempt, delayMs, outcome: 'connected' });
        return;
      } catch (error) {
        if (this.#state !== 'recovering') return;
        lastError = asError(error);
        this.#fanout.emit('reconnect', { attempt, delayMs, outcome: 'failed', error: lastError });
        if (lastError instanceof HandshakeRejectedError) break;
      }
    }
    if (this.#state !== 'recovering') return;
    const failure = new ConnectionClosedError(
      `${LABEL}: session ${session.id} lost its worker (${why}) and could not be re-established${lastError === undefined ? '' : `: ${lastError.message}`}`,
      { layer: 'nats', reason: 'recover-failed', ...(lastError === undefined ? {} : { cause: lastError }) },
    );
    this.#report(failure);
    await this.close();
  }

  async #replayHandshake(session: Session, timeoutMs: number): Promise<string | undefined> {
    const id = `mcp-layers-replay-${++this.#replays}`;
    const answered = new Promise<{ message: JSONRPCResponse; worker: string | undefined }>((resolve, reject) => {
      this.#replay = { id, resolve, reject };
    });
    const timer = setTimeout(() => {
      this.#replay?.reject(new TransportError(`${LABEL}: no worker answered the replayed initialize within ${timeoutMs} ms`, { layer: 'nats', reason: 'replay-timeout' }));
    }, timeoutMs);
    unref(timer);
    try {
      const headers = headersFor({
        [Header.Client]: this.clientId,
        [Header.Reply]: this.#inbox,
        [Header.Session]: session.id,
        [Header.Replay]: session.initializedSent ? 'initialized' : 'initialize',
      });
      const message: JSONRPCRequest = { jsonrpc: '2.0', id, method: 'initialize', params: session.params };
      await (this.#js as JetStreamClient).publish(this.#common.subjects.requests, encode(message), { headers, msgID: requestKey(this.clientId, id), timeout: this.#publishTimeoutMs });
      const { message: response, worker } = await answered;
      if ('error' in response) {
        throw new HandshakeRejectedError(`${LABEL}: the worker refused the replayed initialize (${response.error.code} ${response.error.message}); the session cannot be restored`);
      }
      const version = response.result['protocolVersion'];
      if (version !== session.protocolVersion) {
        throw new HandshakeRejectedError(`${LABEL}: the new worker negotiated protocol version ${String(version)} but the session uses ${session.protocolVersion}; the session cannot be restored`);
      }
      return worker;
    } finally {
      clearTimeout(timer);
      this.#replay = undefined;
    }
  }

  #finish(): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#stop.abort();
    clearInterval(this.#probeTimer);
    this.#inflight.clear();
    this.#fanout.emit('connection', { state: 'closed', transport: 'nats', reason: 'the transport closed' });
    try {
      this.onclose?.();
    } catch (error) {
      this.#report(error);
    }
  }
}

/** The new worker refused to restore the session: recovering stops. */
class HandshakeRejectedError extends McpLayersError<number> {
  static {
    brand(this, 'error.NatsHandshakeRejectedError');
  }

  constructor(message: string) {
    super(ErrorCode.ConnectionClosed, message, { layer: 'nats', reason: 'handshake-rejected' });
  }
}

function cancelledRequestId(message: JSONRPCMessage): RequestId | undefined {
  if (!('method' in message) || message.method !== CANCELLED) return undefined;
  const id = message.params?.['requestId'];
  return typeof id === 'string' || typeof id === 'number' ? id : undefined;
}

function holds(data: Uint8Array): boolean | undefined {
  try {
    const value = JSON.parse(new TextDecoder().decode(data)) as { holds?: unknown };
    return typeof value.holds === 'boolean' ? value.holds : undefined;
  } catch {
    return undefined;
  }
}
