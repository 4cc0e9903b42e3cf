/**
 * The context a layer receives: one exchange (a request and its response, or one
 * notification) as it crosses the wrapped transport.
 *
 * `ctx.response` holds the response once `await next()` resolves. Retries call `next()`
 * again on the same context. Attempts that run at the same time (hedging) or under
 * their own deadline (attempt timeouts) each run on a `ctx.fork()`: a context with its
 * own `signal` and `response` that shares everything else with its parent.
 */
import type { Direction, EventBus } from './events.ts';
import type { Idempotency } from './idempotency.ts';
import type {
  JSONRPCNotification,
  JSONRPCParams,
  JSONRPCRequest,
  JSONRPCResponse,
  RequestId,
} from './jsonrpc.ts';
import type { MessageExtraInfo, TransportSendOptions } from './transport.ts';

export type ExchangeKind = 'request' | 'notification';

/** What layers may know about the wrapped transport an exchange crosses. */
export interface Session {
  /** The `name` given to `wrap()` (defaults to `mcp`); used as a label by observability. */
  readonly name: string;
  /** The transport's session id (`Mcp-Session-Id`), once known. */
  readonly sessionId: string | undefined;
  /** The negotiated protocol version, once known. */
  readonly protocolVersion: string | undefined;
  /** `client` when this side sent `initialize`/`server/discover`, `server` when it received one. */
  readonly role: 'client' | 'server' | undefined;
  /** True when the inner transport opens one HTTP request per outbound request. */
  readonly hasPerRequestStream: boolean;
  /** True once the wrapped transport has closed. */
  readonly closed: boolean;
  readonly events: EventBus;
  readonly idempotency: Idempotency;
  /** `wrap(…, { attributes })`: what describes the transport in telemetry (every span of its exchanges carries them). */
  readonly attributes?: Readonly<Record<string, string>>;
}

export type ProgressListener = (params: JSONRPCParams) => void;

export interface ContextInit {
  direction: Direction;
  kind: ExchangeKind;
  message: JSONRPCRequest | JSONRPCNotification;
  options: TransportSendOptions | undefined;
  extra: MessageExtraInfo | undefined;
  session: Session;
}

export class Context {
  /** `outbound`: the application sends it. `inbound`: the peer sent it. */
  readonly direction: Direction;
  readonly kind: ExchangeKind;
  /**
   * The application's message (outbound) or the peer's (inbound). An outbound layer may
   * *replace* it (never mutate it: the application owns that object) to change what the
   * attempts below it put on the wire — tracing adds `params._meta.traceparent` this
   * way. Keep `method` and `id`: the wire id replaces the id per attempt anyway.
   */
  message: JSONRPCRequest | JSONRPCNotification;
  readonly method: string;
  /** The request id the application knows: its own (outbound) or the peer's (inbound). */
  readonly id: RequestId | undefined;
  /**
   * Send options for the inner transport (outbound): the application's, which a layer
   * may replace with a new object for the attempts below it (an Authorization header
   * in `headers`, for instance).
   */
  options: TransportSendOptions | undefined;
  /** Extra info the inner transport attached (inbound). */
  readonly extra: MessageExtraInfo | undefined;
  readonly session: Session;
  /** `performance.now()` when the exchange began. */
  readonly startedAt: number;
  // The AbortController is created only when a layer asks for `signal`: the core itself
  // watches aborts through plain callbacks, which keeps an exchange cheap.
  #controller: AbortController | undefined = undefined;
  #abortReason: unknown = undefined;
  #aborted = false;
  #watcher: ((reason: unknown) => void) | undefined = undefined;
  #watchers: Array<(reason: unknown) => void> | undefined = undefined;
  /** The response, once `next()` resolved or a layer answered. */
  response: JSONRPCResponse | undefined = undefined;
  /** Extra info the inner transport attached to the response. */
  responseExtra: MessageExtraInfo | undefined = undefined;
  /** The number of the latest attempt made on this context (1-based; 0 before any). */
  attempt = 0;

  /**
   * The exchange's own context, which holds what a context shares with its forks (this
   * one for the exchange's context): no second object per exchange.
   */
  readonly #root: Context;
  #attempts = 0;
  #sent = false;
  #idempotent: boolean | undefined = undefined;
  #state: Map<unknown, unknown> | undefined = undefined;
  #progress: Set<ProgressListener> | undefined = undefined;
  /** The core's bookkeeping record for this exchange. */
  #record: unknown = undefined;

  constructor(init: ContextInit, parent?: Context, signal?: AbortSignal) {
    this.direction = init.direction;
    this.kind = init.kind;
    this.message = init.message;
    this.method = init.message.method;
    this.id = init.kind === 'request' ? (init.message as JSONRPCRequest).id : undefined;
    this.options = init.options;
    this.extra = init.extra;
    this.session = init.session;
    if (parent === undefined) {
      this.startedAt = performance.now();
      this.#root = this;
    } else {
      this.startedAt = parent.startedAt;
      this.#root = parent.#root;
      this.attempt = parent.attempt;
      if (parent.#aborted) this._abort(parent.#abortReason);
      else parent._watchAbort((reason) => this._abort(reason));
      if (signal !== undefined) {
        if (signal.aborted) this._abort(signal.reason);
        else signal.addEventListener('abort', () => this._abort(signal.reason), { once: true });
      }
    }
  }

  /** Aborts when the exchange is cancelled or the transport closes (and, on a fork, by its own signal). */
  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.#aborted) this.#controller.abort(this.#abortReason);
    }
    return this.#controller.signal;
  }

  /** True once the exchange (or this fork) was aborted; cheaper than `signal.aborted`. */
  get aborted(): boolean {
    return this.#aborted;
  }

  /** Why it was aborted (a typed error), once `aborted`. */
  get abortReason(): unknown {
    return this.#abortReason;
  }

  get events(): EventBus {
    return this.session.events;
  }

  get params(): JSONRPCParams | undefined {
    return this.message.params;
  }

  /** `params.name` of a `tools/call`, else undefined. */
  get tool(): string | undefined {
    return this.method === 'tools/call' ? stringParam(this.message.params, 'name') : undefined;
  }

  /**
   * What the exchange acts on, for span names and labels: the tool or prompt name,
   * the resource URI, or undefined.
   */
  get target(): string | undefined {
    switch (this.method) {
      case 'tools/call':
      case 'prompts/get':
        return stringParam(this.message.params, 'name');
      case 'resources/read':
      case 'resources/subscribe':
      case 'resources/unsubscribe':
        return stringParam(this.message.params, 'uri');
      default:
        return undefined;
    }
  }

  /** Attempts started on this exchange so far, across retries and hedges. */
  get attempts(): number {
    return this.#root.#attempts;
  }

  /** True once some attempt's bytes may have reached the peer. */
  get sent(): boolean {
    return this.#root.#sent;
  }

  /**
   * True when sending this request twice is safe (docs/architecture.md#invariant-3): a read-only
   * method, a tool whose annotations or configuration say so, or a layer's override.
   */
  get idempotent(): boolean {
    return this.#root.#idempotent ?? (this.kind === 'request' && this.session.idempotency.isIdempotent(this));
  }

  set idempotent(value: boolean) {
    this.#root.#idempotent = value;
  }

  /** Per-exchange storage for layers (a span, a start time...), shared with forks. */
  get state(): Map<unknown, unknown> {
    return (this.#root.#state ??= new Map());
  }

  /** A context for one attempt with its own signal and response; see the class comment. */
  fork(options: { signal?: AbortSignal } = {}): Context {
    return new Context(this, this, options.signal);
  }

  /** Calls `listener` for each `notifications/progress` the peer sends for this request. */
  onProgress(listener: ProgressListener): () => void {
    const set = (this.#root.#progress ??= new Set());
    set.add(listener);
    return () => set.delete(listener);
  }

  /** @internal The core's record of this exchange (shared with forks). */
  get _record(): unknown {
    return this.#root.#record;
  }

  /** @internal */
  set _record(record: unknown) {
    this.#root.#record = record;
  }

  /** @internal The core records that an attempt started; returns its number. */
  _beginAttempt(): number {
    this.attempt = ++this.#root.#attempts;
    return this.attempt;
  }

  /** @internal The core records that bytes of an attempt may have reached the peer. */
  _markSent(): void {
    this.#root.#sent = true;
  }

  /** @internal The core relays a progress notification for this request. */
  _progress(params: JSONRPCParams): void {
    const set = this.#root.#progress;
    if (set === undefined) return;
    for (const listener of set) listener(params);
  }

  /** @internal Calls `watcher` once if this context aborts (see `_unwatchAbort`). */
  _watchAbort(watcher: (reason: unknown) => void): void {
    // Most contexts have one watcher (the attempt in flight): no array for them.
    if (this.#watcher === undefined) this.#watcher = watcher;
    else (this.#watchers ??= []).push(watcher);
  }

  /** @internal Stops calling `watcher`. */
  _unwatchAbort(watcher: (reason: unknown) => void): void {
    if (this.#watcher === watcher) {
      this.#watcher = undefined;
      return;
    }
    const watchers = this.#watchers;
    if (watchers === undefined) return;
    const i = watchers.indexOf(watcher);
    if (i !== -1) watchers.splice(i, 1);
  }

  /**
   * Abandons what runs on this context: on a fork, exactly the attempt running on it
   * (the core cancels it on the wire and its `next()` rejects with `reason`); on the
   * exchange's own context, every attempt. Forks follow their parent. Pass a typed error
   * (`TimeoutError`, `CancelledError`...): it is what the layers above see. Cheaper than
   * `fork({ signal })`, which needs an AbortController.
   */
  abort(reason: Error): void {
    this._abort(reason);
  }

  /** @internal The core aborts the exchange (cancel, close); forks follow. */
  _abort(reason: unknown): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#abortReason = reason;
    const first = this.#watcher;
    const watchers = this.#watchers;
    this.#watcher = undefined;
    this.#watchers = undefined;
    if (first !== undefined) first(reason);
    if (watchers !== undefined) for (const watcher of watchers) watcher(reason);
    this.#controller?.abort(reason);
  }
}

function stringParam(params: JSONRPCParams | undefined, key: string): string | undefined {
  const value = params?.[key];
  return typeof value === 'string' ? value : undefined;
}
