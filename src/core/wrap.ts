/**
 * wrap(transport, layers, options?): a Transport that runs every message crossing
 * `transport` through `layers` (first = outermost), for client and server transports
 * alike, and otherwise behaves exactly like `transport`.
 *
 * This file is the switchboard: it sorts what the application sends and what the
 * peer sends into the six kinds of message and hands each to its place:
 *
 *   application send()                      peer (inner onmessage)
 *     request       ─► outbound.ts             request       ─► inbound.ts
 *     notification  ─► layers ─► wire          notification  ─► layers ─► application
 *     response      ─► inbound.ts (answer)     response      ─► outbound.ts (correlate)
 */
import { deliverTo, reportTo } from './callbacks.ts';
import { type ComposedLayer, compose } from './compose.ts';
import { Context, type Session } from './context.ts';
import { asError, ConnectionClosedError, InvalidMessageError } from './errors.ts';
import { EventBus } from './events.ts';
import { Idempotency, type IdempotencyOptions } from './idempotency.ts';
import { Order, type Slot } from './order.ts';
import { InboundRequests } from './inbound.ts';
import {
  CANCELLED,
  type JSONRPCMessage,
  type JSONRPCNotification,
  type JSONRPCRequest,
  type JSONRPCResponse,
  PROGRESS,
  type RequestId,
  SUBSCRIPTION_ID_META_KEY,
} from './jsonrpc.ts';
import type { LayerHost, LayerLike, WireWrite } from './layer.ts';
import { OutboundRequests } from './outbound.ts';
import type { Port } from './port.ts';
import { type MessageExtraInfo, STATELESS_PROTOCOL_VERSION, type Transport, type TransportSendOptions } from './transport.ts';
import { controlOf } from './wire.ts';
import { integerOption, invalidOption } from './options.ts';
import { DEFAULT_MAX_DEPTH, messageKind } from './validate.ts';

export interface WrapOptions extends IdempotencyOptions {
  /** A label for this transport in events, logs and metrics (default `mcp`). */
  name?: string;
  /**
   * Share one event bus between several wrapped transports (default: a new bus). The
   * events of our own transports (connection, reconnect, heartbeat, wire bytes) are
   * published on it too, so layers observe them like any other.
   */
  events?: EventBus;
  /**
   * How many levels of nesting a message from the peer may have, the message object
   * itself being level 1 (default 1000, `DEFAULT_MAX_DEPTH`). A deeper message is
   * refused: a request is answered -32600, a response ends its request with -32600.
   */
  maxDepth?: number;
  /**
   * What describes this transport in telemetry, beyond its name: the tracing layer puts
   * these attributes on every span of its exchanges (the gateway names a session's
   * client so: `mcp_layers.client.name`). Keep the values few: they are not for ids.
   */
  attributes?: Readonly<Record<string, string>>;
}

/** The wrapped transport: ours, plus every extra member of the inner one (e.g. `handleRequest`). */
export type Wrapped<T extends Transport> = LayeredTransport & Omit<T, keyof LayeredTransport>;

export function wrap<T extends Transport>(transport: T, layers: readonly LayerLike[] = [], options: WrapOptions = {}): Wrapped<T> {
  if (
    typeof transport !== 'object' ||
    transport === null ||
    typeof transport.start !== 'function' ||
    typeof transport.send !== 'function' ||
    typeof transport.close !== 'function'
  ) {
    throw new TypeError('wrap(transport): transport must be an MCP Transport with start(), send() and close() methods');
  }
  const wrapped = new LayeredTransport(transport, layers, options);
  forwardExtraMembers(wrapped, transport);
  return wrapped as Wrapped<T>;
}

export class LayeredTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage, extra?: MessageExtraInfo) => void;

  readonly name: string;
  readonly events: EventBus;
  /** The wrapped transport. */
  readonly inner: Transport;
  readonly session: Session;

  readonly #stack: ComposedLayer;
  /** No layers: messages go straight between the exchange tables and the wire (same order, same guarantees, fewer promises). */
  readonly #direct: boolean;
  readonly #detach: () => void;
  readonly #idempotency: Idempotency;
  readonly #inOrder: Order;
  readonly #outOrder: Order;
  readonly #outbound: OutboundRequests;
  readonly #inbound: InboundRequests;
  readonly #port: Port;
  readonly #maxDepth: number;
  #write: WireWrite;
  /** A notification reached the application and the microtask queue has not run dry since. */
  #notified = false;
  readonly #clearNotified = () => {
    this.#notified = false;
  };
  #started = false;
  #closing: Promise<void> | undefined;
  /** What the session view reads; mutated as the session learns. */
  readonly #state: { closed: boolean; protocolVersion: string | undefined; role: 'client' | 'server' | undefined } = {
    closed: false,
    protocolVersion: undefined,
    role: undefined,
  };

  constructor(inner: Transport, layers: readonly LayerLike[], options: WrapOptions) {
    if (!Array.isArray(layers)) throw new TypeError(`wrap(transport, layers): layers must be an array of layers, got ${typeof layers}`);
    if (options.name !== undefined && (typeof options.name !== 'string' || options.name === '')) {
      throw new TypeError('wrap options.name: expected a non-empty string');
    }
    this.#maxDepth = integerOption('wrap options.maxDepth', options.maxDepth, DEFAULT_MAX_DEPTH, 2);
    const attributes = attributesOption(options.attributes);
    this.inner = inner;
    this.name = options.name ?? 'mcp';
    this.events = options.events ?? new EventBus();
    this.events.onListenerError = (error, type) =>
      this.#report(new Error(`An event listener for "${String(type)}" threw: ${asError(error).message}`, { cause: error }));
    this.#idempotency = new Idempotency(options);
    this.#inOrder = new Order((error) => this.#report(error));
    this.#outOrder = new Order((error) => this.#report(error));
    this.#write = (message, sendOptions) => inner.send(message as JSONRPCMessage, sendOptions);
    this.#stack = compose(layers, 'stack');
    this.#direct = layers.length === 0;

    const state = this.#state;
    const name = this.name;
    this.session = {
      name,
      get sessionId() {
        return inner.sessionId;
      },
      get protocolVersion() {
        return state.protocolVersion;
      },
      get role() {
        return state.role;
      },
      get hasPerRequestStream() {
        return inner.hasPerRequestStream === true;
      },
      get closed() {
        return state.closed;
      },
      events: this.events,
      idempotency: this.#idempotency,
      attributes,
    };

    const port: Port = (this.#port = {
      session: this.session,
      inbound: this.#inOrder,
      outbound: this.#outOrder,
      write: (message, sendOptions) => this.#write(message, sendOptions),
      writeInOrder: (slot, message, sendOptions) => {
        if (this.#outOrder.isNext(slot)) {
          const written = this.#safeWrite(message, sendOptions);
          this.#outOrder.release(slot);
          return written;
        }
        return new Promise<void>((resolve, reject) =>
          this.#outOrder.deliver(slot, () => this.#safeWrite(message, sendOptions).then(resolve, reject)),
        );
      },
      deliver: (message, extra) => this.#deliver(message, extra),
      notifiedThisTurn: () => this.#notified,
      report: (error) => this.#report(error),
      cancelsByClosingStream: () =>
        this.session.hasPerRequestStream && this.#state.protocolVersion !== undefined && this.#state.protocolVersion >= STATELESS_PROTOCOL_VERSION,
    });
    const stack = this.#direct ? undefined : this.#stack;
    this.#outbound = new OutboundRequests(port, stack);
    this.#inbound = new InboundRequests(port, stack);

    // Decorations apply in reverse so that the first layer's is the outermost.
    const decorations: Array<(write: WireWrite) => WireWrite> = [];
    const host: LayerHost = {
      session: this.session,
      events: this.events,
      inner,
      decorateWrite: (decorate) => void decorations.push(decorate),
    };
    const detachLayers = this.#stack.attach(host);
    const unobserve = controlOf(inner)?.observe(this.events);
    this.#detach = unobserve === undefined ? detachLayers : () => (detachLayers(), unobserve());
    for (const decorate of decorations.reverse()) this.#write = decorate(this.#write);
  }

  get sessionId(): string | undefined {
    return this.inner.sessionId;
  }

  set sessionId(value: string | undefined) {
    this.inner.sessionId = value;
  }

  get hasPerRequestStream(): boolean | undefined {
    return this.inner.hasPerRequestStream;
  }

  /** The negotiated protocol version, once known. */
  get protocolVersion(): string | undefined {
    return this.#state.protocolVersion;
  }

  setProtocolVersion(version: string): void {
    this.#noteProtocolVersion(version);
    this.inner.setProtocolVersion?.(version);
  }

  setSupportedProtocolVersions(versions: string[]): void {
    this.inner.setSupportedProtocolVersions?.(versions);
  }

  async start(): Promise<void> {
    if (this.#started) throw new Error(`${this.name}: the wrapped transport is already started`);
    this.#started = true;
    // Installed here, not in wrap(): transports such as InMemoryTransport queue what
    // arrives before their callbacks exist, and the application's must exist first.
    this.inner.onmessage = (message: unknown, extra?: MessageExtraInfo) => this.#onInnerMessage(message, extra);
    this.inner.onerror = (error: Error) => this.#report(error);
    this.inner.onclose = () => this.#onInnerClose();
    this.inner.onconnectionlost = (error: Error) => this.#outbound.connectionLost(asError(error));
    this.events.emit('start', { name: this.name });
    await this.inner.start();
  }

  // Not `async`: the hot path returns the exchange's own promise instead of wrapping it.
  send(message: JSONRPCMessage, options?: TransportSendOptions): Promise<void> {
    if (this.#state.closed) {
      return Promise.reject(new ConnectionClosedError(`${this.name}: cannot send ${describeMessage(message)}: the transport is closed`, { neverSent: true }));
    }
    // The application's own messages are trusted not to smuggle __proto__ keys: shallow check only.
    const kind = messageKind(message, false);
    switch (kind) {
      case 'request':
        this.#noteRole((message as JSONRPCRequest).method, 'client');
        return this.#outbound.send(message as JSONRPCRequest, options);
      case 'notification':
        return this.#sendNotification(message as JSONRPCNotification, options);
      case 'response':
        this.#noteOwnResponse(message as JSONRPCResponse);
        return this.#inbound.respond(message as JSONRPCResponse, options);
      default:
        return Promise.reject(new InvalidMessageError(`${this.name}: the application tried to send an invalid message: ${kind.problem}`, 'outbound'));
    }
  }

  async close(): Promise<void> {
    if (this.#closing === undefined) {
      this.#closing = (async () => {
        try {
          await this.inner.close();
        } finally {
          // A transport whose close() does not call onclose still ends the session once.
          this.#onInnerClose();
        }
      })();
    }
    return this.#closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** Live bookkeeping sizes; all zero once traffic has settled (invariant 5). */
  stats(): { outbound: number; attempts: number; progressTokens: number; inbound: number; queued: number } {
    const out = this.#outbound.size;
    return {
      outbound: out.exchanges,
      attempts: out.attempts,
      progressTokens: out.progressTokens,
      inbound: this.#inbound.size.exchanges,
      queued: this.#inOrder.size + this.#outOrder.size,
    };
  }

  #sendNotification(message: JSONRPCNotification, options: TransportSendOptions | undefined): Promise<void> {
    if (message.method === CANCELLED) {
      const requestId = message.params?.['requestId'] as RequestId | undefined;
      const reason = message.params?.['reason'];
      // Translated: the peer never saw the application's id; every live wire id is cancelled instead.
      if (requestId !== undefined && this.#outbound.cancel(requestId, 'application', typeof reason === 'string' ? reason : undefined, { message, options })) {
        return Promise.resolve();
      }
      // A cancel for a request that already ended (a race the SDK allows) has nothing to say to the peer.
      if (requestId !== undefined) return Promise.resolve();
    }
    if (this.#direct) return this.#port.writeInOrder(this.#outOrder.admit(), message, options);
    const ctx = new Context({ direction: 'outbound', kind: 'notification', message, options, extra: undefined, session: this.session });
    let slot: Slot | undefined = this.#outOrder.admit();
    const done = this.#stack.handle(ctx, (current) => {
      // The first write keeps the application's send() order.
      const ordered = slot;
      slot = undefined;
      return ordered === undefined ? this.#write(current.message, current.options) : this.#port.writeInOrder(ordered, current.message, current.options);
    });
    return done.finally(() => {
      if (slot !== undefined) this.#outOrder.release(slot);
    });
  }

  #onInnerMessage(message: unknown, extra: MessageExtraInfo | undefined): void {
    if (this.#state.closed) {
      // Nothing can be answered or delivered any more; a buggy transport must not revive the session.
      this.#report(new ConnectionClosedError(`${this.name}: dropped a message that arrived after the transport closed`));
      return;
    }
    // Never throw into the inner transport's callback: whatever happens is reported.
    try {
      if (Array.isArray(message)) {
        if (message.length === 0) this.#rejectInvalid(message, 'an empty JSON-RPC batch');
        for (const item of message) this.#receive(item, extra);
      } else {
        this.#receive(message, extra);
      }
    } catch (error) {
      this.#report(error);
    }
  }

  #receive(message: unknown, extra: MessageExtraInfo | undefined): void {
    const kind = messageKind(message, this.#maxDepth);
    switch (kind) {
      case 'response':
        this.#noteResponse(message as JSONRPCResponse);
        return this.#outbound.receive(message as JSONRPCResponse, extra);
      case 'request':
        this.#noteRole((message as JSONRPCRequest).method, 'server');
        return this.#inbound.receive(message as JSONRPCRequest, extra);
      case 'notification':
        return this.#receiveNotification(message as JSONRPCNotification, extra);
      default:
        return this.#rejectInvalid(message, kind.problem, kind.id);
    }
  }

  #receiveNotification(message: JSONRPCNotification, extra: MessageExtraInfo | undefined): void {
    const params = message.params;
    if (message.method === CANCELLED && params !== undefined) {
      const requestId = params['requestId'] as RequestId;
      const reason = typeof params['reason'] === 'string' ? params['reason'] : undefined;
      if (!this.#inbound.cancel(requestId, reason)) {
        // The peer ended one of *our* requests (2026-07-28 subscription teardown): say so in the application's ids.
        const appId = this.#outbound.appIdOf(requestId);
        if (appId !== undefined) {
          message = { ...message, params: { ...params, requestId: appId } };
          this.#outbound.cancel(appId, 'peer', reason);
        }
      }
    } else if (message.method === PROGRESS && params !== undefined) {
      this.#outbound.progress(params);
    } else if (message.method === 'notifications/tools/list_changed') {
      this.#idempotency.forget();
    }
    const meta = params?._meta;
    if (meta !== undefined && meta !== null && meta[SUBSCRIPTION_ID_META_KEY] !== undefined) {
      const appId = this.#outbound.appIdOf(meta[SUBSCRIPTION_ID_META_KEY]);
      if (appId !== undefined) {
        message = { ...message, params: { ...message.params, _meta: { ...meta, [SUBSCRIPTION_ID_META_KEY]: appId } } };
      }
    }
    const slot = this.#inOrder.admit();
    if (this.#direct) {
      const delivered = message;
      return this.#inOrder.deliver(slot, () => this.#deliver(delivered, extra));
    }
    const ctx = new Context({ direction: 'inbound', kind: 'notification', message, options: undefined, extra, session: this.session });
    let delivered = false;
    this.#stack
      .handle(ctx, (current) => {
        if (!delivered) {
          delivered = true;
          this.#inOrder.deliver(slot, () => this.#deliver(current.message, current.extra));
        }
        return Promise.resolve();
      })
      .then(
        () => {
          if (!delivered) this.#inOrder.release(slot);
        },
        (error: unknown) => {
          if (!delivered) this.#inOrder.release(slot);
          this.#report(error);
        },
      );
  }

  /**
   * A peer's message that is not valid JSON-RPC: report it. Whoever waits for it still
   * gets an answer: a readable request is answered with -32600, and a response whose id
   * is one of our pending wire ids ends that request with an error saying why.
   */
  #rejectInvalid(message: unknown, problem: string, id?: RequestId): void {
    const error = new InvalidMessageError(`${this.name}: received an invalid JSON-RPC message: ${problem}`, 'inbound');
    this.events.emit('invalid-message', { error });
    this.#report(error);
    if (id === undefined || this.#state.closed) return;
    const looksLikeRequest = typeof message === 'object' && message !== null && 'method' in message;
    if (looksLikeRequest) {
      const reply: JSONRPCResponse = { jsonrpc: '2.0', id, error: { code: -32600, message: `Invalid Request: ${problem}` } };
      this.#write(reply, { relatedRequestId: id }).catch((cause: unknown) => this.#report(cause));
    } else {
      const peer = this.#state.role === 'client' ? 'server' : this.#state.role === 'server' ? 'client' : 'peer';
      this.#outbound.refuse(id, peer, problem);
    }
  }

  /** Writes through the wire decorations; a synchronous throw becomes a rejection. */
  #safeWrite(message: JSONRPCMessage | JSONRPCMessage[], options: TransportSendOptions | undefined): Promise<void> {
    try {
      return this.#write(message, options);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  #deliver(message: JSONRPCMessage, extra: MessageExtraInfo | undefined): void {
    if (this.onmessage === undefined) return;
    if (!this.#notified && 'method' in message && !('id' in message)) {
      this.#notified = true;
      queueMicrotask(this.#clearNotified);
    }
    deliverTo(this, message, extra);
  }

  #report(error: unknown): void {
    reportTo(this, error);
  }

  #onInnerClose(): void {
    if (this.#state.closed) return;
    this.#state.closed = true;
    this.#inOrder.drain();
    this.#outOrder.drain();
    const error = new ConnectionClosedError();
    const pending = this.#outbound.closeAll(error) + this.#inbound.closeAll(error);
    // Layers still listen: they see their transport's close (session durations, last logs).
    this.events.emit('close', { name: this.name, pending });
    try {
      this.#detach();
    } catch (cause) {
      this.#report(cause);
    }
    const onclose = this.onclose;
    if (onclose !== undefined) {
      try {
        onclose();
      } catch (cause) {
        this.#report(cause);
      }
    }
  }

  #noteRole(method: string, role: 'client' | 'server'): void {
    if (this.#state.role === undefined && (method === 'initialize' || method === 'server/discover')) this.#state.role = role;
  }

  /** Learns from responses the peer sends us: tool annotations, the negotiated version. */
  #noteResponse(message: JSONRPCResponse): void {
    if (!('result' in message)) return;
    const result = message.result;
    if (Array.isArray(result['tools'])) this.#idempotency.learn(result);
    if (typeof result['protocolVersion'] === 'string' && 'capabilities' in result) this.#noteProtocolVersion(result['protocolVersion']);
  }

  /** Learns from the application's own answers (a server's initialize result). */
  #noteOwnResponse(message: JSONRPCResponse): void {
    if (!('result' in message)) return;
    const result = message.result;
    if (typeof result['protocolVersion'] === 'string' && 'capabilities' in result) this.#noteProtocolVersion(result['protocolVersion']);
  }

  #noteProtocolVersion(version: string): void {
    if (this.#state.protocolVersion === version) return;
    this.#state.protocolVersion = version;
    this.events.emit('protocol-version', { version });
  }
}

function describeMessage(message: unknown): string {
  if (typeof message === 'object' && message !== null && 'method' in message) return String((message as { method: unknown }).method);
  return 'a response';
}

const OWN_MEMBERS = new Set<PropertyKey>([
  'constructor',
  'start',
  'send',
  'close',
  'onclose',
  'onerror',
  'onmessage',
  'sessionId',
  'setProtocolVersion',
  'setSupportedProtocolVersions',
  'hasPerRequestStream',
  'onconnectionlost',
]);

/**
 * Gives the wrapped transport every other public member of the inner one — methods
 * such as `handleRequest()` (server HTTP transports) or `terminateSession()`, and
 * getters such as `protocolVersion` — forwarded live. Underscore-prefixed members are
 * the SDK's private state and are not forwarded.
 */
function forwardExtraMembers(wrapped: LayeredTransport, inner: Transport): void {
  const seen = new Set<PropertyKey>();
  for (let object: object | null = inner; object !== null && object !== Object.prototype; object = Object.getPrototypeOf(object)) {
    for (const key of Reflect.ownKeys(object)) {
      if (seen.has(key) || OWN_MEMBERS.has(key) || (typeof key === 'string' && key.startsWith('_')) || key in wrapped) continue;
      seen.add(key);
      const descriptor = Object.getOwnPropertyDescriptor(object, key) as PropertyDescriptor;
      if (typeof descriptor.value === 'function') {
        Object.defineProperty(wrapped, key, {
          configurable: true,
          writable: true,
          value: (...args: unknown[]) => (Reflect.get(inner, key) as (...a: unknown[]) => unknown).apply(inner, args),
        });
      } else {
        Object.defineProperty(wrapped, key, {
          configurable: true,
          enumerable: descriptor.enumerable ?? false,
          get: () => Reflect.get(inner, key),
          set: (value: unknown) => {
            Reflect.set(inner, key, value);
          },
        });
      }
    }
  }
}

function attributesOption(value: WrapOptions['attributes']): Readonly<Record<string, string>> {
  if (value === undefined) return NO_ATTRIBUTES;
  if (typeof value !== 'object' || value === null || Array.isArray(value) || Object.values(value).some((v) => typeof v !== 'string')) {
    throw invalidOption('wrap options.attributes', 'an object of string attributes', value);
  }
  return Object.freeze({ ...value });
}

const NO_ATTRIBUTES: Readonly<Record<string, string>> = Object.freeze({});
