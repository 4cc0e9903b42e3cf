/**
 * Outbound requests: the application asks, the peer answers.
 *
 * One exchange per application request, keyed by the application's id. Each attempt
 * (each call of the innermost `next()`) goes on the wire with a fresh wire id from a
 * per-transport counter, so retries and hedges never reuse an id in the session and
 * never collide with the application's ids (which never reach the wire). A response
 * is matched by wire id, mapped back to the application's id, and delivered once
 * when the layer stack has finished with it.
 *
 *   send(request) ─► exchange ─► layers ─► attempt(): wire id N ─► inner.send
 *   onmessage(response N) ─► attempt settles ─► layers unwind ─► deliver(app id)
 */
import { Context, type Session } from './context.ts';
import {
  asError,
  CancelledError,
  ConnectionClosedError,
  InvalidMessageError,
  LayerFaultError,
  McpLayersError,
  StrayResponseError,
  toErrorObject,
  TransportError,
} from './errors.ts';
import { classifyConnectionError, classifyStatus } from './failure.ts';
import type { Slot } from './order.ts';
import {
  CANCELLED,
  type JSONRPCErrorResponse,
  type JSONRPCNotification,
  type JSONRPCParams,
  type JSONRPCRequest,
  type JSONRPCResponse,
  type RequestId,
  SUBSCRIPTION_ID_META_KEY,
} from './jsonrpc.ts';
import type { ComposedLayer } from './compose.ts';
import type { Port } from './port.ts';
import type { MessageExtraInfo, TransportSendOptions } from './transport.ts';

/** One application request, from `send()` until its response is delivered. */
interface Exchange {
  readonly ctx: Context;
  readonly appId: RequestId;
  readonly progressToken: unknown;
  /** The options the application passed (layers may replace `ctx.options` for the wire). */
  readonly appOptions: TransportSendOptions | undefined;
  /** True once the first attempt was written or the exchange ended. */
  accepted: boolean;
  /** The application's `send()` result when the first attempt started writing within send(). */
  firstWrite: Promise<void> | undefined;
  /** Resolves the application's `send()` when it had to wait for a later first write. */
  acceptWaiter: (() => void) | undefined;
  settled: boolean;
  /** Why it ends without a response: cancelled by the application or the peer. */
  silentEnd: 'application' | 'peer' | undefined;
  /** The application's own `notifications/cancelled`, re-addressed to each live wire id. */
  appCancel: AppCancel | undefined;
  /** Order slots of responses that arrived and are held by the layers (an array only once there are two). */
  slots: Slot | Slot[] | undefined;
  /** The request's place in the outbound order, until its first attempt is written. */
  writeSlot: Slot | undefined;
  detachRequestSignal: (() => void) | undefined;
}

/** A `notifications/cancelled` the application sent, with its send options. */
export interface AppCancel {
  readonly message: JSONRPCNotification;
  readonly options: TransportSendOptions | undefined;
}

/** One attempt on the wire. */
interface Attempt {
  readonly wireId: number;
  readonly exchange: Exchange;
  readonly ctx: Context;
  /** The attempt got its response (in `ctx.response`): its `next()` resolves, or with no layers the exchange finishes. */
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
  done: boolean;
  writeStarted: boolean;
  /** The transport's send() resolved: the request is on the connection. */
  written: boolean;
  requestController: AbortController | undefined;
  /** Abandons this attempt when its context aborts. */
  onAbort: (reason: unknown) => void;
}

export class OutboundRequests {
  readonly #port: Port;
  /** Undefined when the transport was wrapped with no layers: attempts then end their exchange directly. */
  readonly #stack: ComposedLayer | undefined;
  readonly #byAppId = new Map<RequestId, Exchange>();
  readonly #byWireId = new Map<RequestId, Attempt>();
  readonly #byProgressToken = new Map<unknown, Context>();
  #lastWireId = 0;

  constructor(port: Port, stack: ComposedLayer | undefined) {
    this.#port = port;
    this.#stack = stack;
  }

  get session(): Session {
    return this.#port.session;
  }

  /**
   * Starts an exchange. Resolves when its first attempt is written or it has ended: a
   * failed write ends the exchange with an error response, not a rejection. Rejects only
   * a request whose id is already in flight (the application broke the id contract).
   */
  send(message: JSONRPCRequest, options: TransportSendOptions | undefined): Promise<void> {
    const appId = message.id;
    if (this.#byAppId.has(appId)) {
      return Promise.reject(
        new McpLayersError(-32600, `request id ${JSON.stringify(appId)} is already in flight; an id must not be reused while its request is pending`, {
          reason: 'duplicate-id',
        }),
      );
    }
    const ctx = new Context({ direction: 'outbound', kind: 'request', message, options, extra: undefined, session: this.#port.session });
    const progressToken = message.params?._meta?.['progressToken'];
    const exchange: Exchange = {
      ctx,
      appId,
      progressToken,
      appOptions: options,
      accepted: false,
      firstWrite: undefined,
      acceptWaiter: undefined,
      settled: false,
      silentEnd: undefined,
      appCancel: undefined,
      slots: undefined,
      writeSlot: this.#port.outbound.admit(),
      detachRequestSignal: undefined,
    };
    ctx._record = exchange;
    this.#byAppId.set(appId, exchange);
    if (progressToken !== undefined) this.#byProgressToken.set(progressToken, ctx);
    const requestSignal = options?.requestSignal;
    if (requestSignal !== undefined) {
      // 2026-07-28 clients cancel by aborting the request's own signal instead of sending notifications/cancelled.
      const onAbort = () => this.cancel(appId, 'application', abortReason(requestSignal));
      if (requestSignal.aborted) queueMicrotask(onAbort);
      else {
        requestSignal.addEventListener('abort', onAbort, { once: true });
        exchange.detachRequestSignal = () => requestSignal.removeEventListener('abort', onAbort);
      }
    }
    if (this.#stack === undefined) {
      // No layer to run: the one attempt ends the exchange itself, with no promise in between.
      this.#startAttempt(ctx, () => this.#finish(exchange), (error) => this.#fail(exchange, error));
    } else {
      this.#stack.handle(ctx, this.#attempt).then(
        () => this.#finish(exchange),
        (error: unknown) => this.#fail(exchange, error),
      );
    }
    // Usually the first attempt started writing synchronously: send() settles with that write.
    if (exchange.firstWrite !== undefined) return exchange.firstWrite;
    if (exchange.accepted) return Promise.resolve();
    return new Promise<void>((resolve) => (exchange.acceptWaiter = resolve));
  }

  #accept(exchange: Exchange): void {
    if (exchange.accepted) return;
    exchange.accepted = true;
    const waiter = exchange.acceptWaiter;
    exchange.acceptWaiter = undefined;
    waiter?.();
  }

  /**
   * Ends an exchange without a response: the application cancelled it (its
   * `notifications/cancelled`, translated to every live wire id) or the peer did.
   * Returns false when no such exchange is pending.
   */
  cancel(appId: RequestId, by: 'application' | 'peer', reason: string | undefined, appCancel?: AppCancel): boolean {
    const exchange = this.#byAppId.get(appId);
    if (exchange === undefined || exchange.settled) return false;
    exchange.silentEnd = by;
    exchange.appCancel = appCancel;
    this.#port.session.events.emit('cancelled', { ctx: exchange.ctx, by, reason });
    // Aborting the context abandons every live attempt, which tells the peer (invariant 4).
    exchange.ctx._abort(new CancelledError(reason === undefined ? `Request cancelled by the ${by}` : `Request cancelled by the ${by}: ${reason}`));
    this.#settle(exchange);
    return true;
  }

  /** The application id of a live wire id, or undefined. */
  appIdOf(wireId: unknown): RequestId | undefined {
    const attempt = this.#byWireId.get(wireId as RequestId);
    return attempt?.exchange.appId;
  }

  /** Relays `notifications/progress` to the request it reports on (timeouts may extend). */
  progress(params: JSONRPCParams): void {
    const ctx = this.#byProgressToken.get(params['progressToken']);
    ctx?._progress(params);
  }

  /**
   * A response arrived from the peer. One whose wire id is not pending — late (an
   * attempt we gave up on), duplicate, or never ours — is reported, not delivered.
   */
  receive(message: JSONRPCResponse, extra: MessageExtraInfo | undefined): void {
    const wireId = message.id;
    const attempt = wireId === undefined ? undefined : this.#byWireId.get(wireId);
    if (attempt === undefined) {
      this.#stray(message);
      return;
    }
    const { exchange } = attempt;
    holdSlot(exchange, this.#port.inbound.admit());
    const response = mapResponse(message, exchange.appId, attempt.wireId);
    attempt.ctx.responseExtra = extra;
    this.#settleAttempt(attempt, response, undefined);
  }

  /**
   * The peer answered one of our attempts with a message we refused to pass on (too
   * deep, a `__proto__` key, not JSON-RPC): the attempt ends now with an error saying
   * why, so the request does not wait for an answer that already came. The request did
   * reach the peer, and the peer would answer the same again: nothing may resend it.
   * Returns false when `wireId` is not pending.
   */
  refuse(wireId: RequestId, peer: string, problem: string): boolean {
    const attempt = this.#byWireId.get(wireId);
    if (attempt === undefined) return false;
    const error = new InvalidMessageError(`The ${peer}'s response to ${attempt.ctx.method} was refused: ${problem}`, 'inbound', {
      reason: 'invalid-response',
      neverSent: false,
      retryable: false,
    });
    this.#settleAttempt(attempt, undefined, error);
    return true;
  }

  /** The connection closed: every pending exchange ends now with a ConnectionClosed error. */
  closeAll(error: Error): number {
    const pending = [...this.#byAppId.values()];
    for (const exchange of pending) {
      if (exchange.settled) continue;
      this.#deliverError(exchange, error);
      this.#settle(exchange);
      exchange.ctx._abort(error);
    }
    return pending.length;
  }

  /** The connection under the session dropped: attempts in flight on it will never be answered. */
  connectionLost(cause: Error): void {
    for (const attempt of Array.from(this.#byWireId.values())) {
      // A send() still pending is the transport's to settle: it writes the request on the next
      // connection (it never left) or rejects it, saying whether it might have been sent.
      if (!attempt.written) continue;
      this.#settleAttempt(
        attempt,
        undefined,
        new ConnectionClosedError(`The connection was lost while the request was in flight: ${cause.message}`, {
          reason: 'connection-lost',
          cause,
        }),
      );
    }
  }

  get size(): { exchanges: number; attempts: number; progressTokens: number } {
    return { exchanges: this.#byAppId.size, attempts: this.#byWireId.size, progressTokens: this.#byProgressToken.size };
  }

  /** The innermost `next()`: one attempt on the wire. */
  readonly #attempt = (ctx: Context): Promise<void> => new Promise<void>((resolve, reject) => this.#startAttempt(ctx, resolve, reject));

  /** Puts one attempt on the wire; exactly one of `resolve` (response in `ctx.response`) and `reject` is called, once. */
  #startAttempt(ctx: Context, resolve: () => void, reject: (error: unknown) => void): void {
    const exchange = ctx._record as Exchange | undefined;
    if (exchange === undefined || exchange.settled) {
      return reject(new CancelledError('The exchange already ended; no further attempts are made', { reason: 'exchange-ended' }));
    }
    if (ctx.aborted) return reject(ctx.abortReason);
    if (this.#port.session.closed) {
      return reject(new ConnectionClosedError('Connection closed before the request was sent', { neverSent: true }));
    }
    // A new attempt supersedes responses held for earlier ones: they will not be delivered.
    this.#releaseSlots(exchange);
    const attemptNo = ctx._beginAttempt();
    const wireId = ++this.#lastWireId;
    const attempt: Attempt = {
      wireId,
      exchange,
      ctx,
      resolve,
      reject,
      done: false,
      writeStarted: false,
      written: false,
      requestController: undefined,
      onAbort: (reason) => this.#abandon(attempt, reason),
    };
    this.#byWireId.set(wireId, attempt);
    ctx._watchAbort(attempt.onAbort);
    const events = this.#port.session.events;
    if (events.has('attempt')) events.emit('attempt', { ctx, attempt: attemptNo, wireId });

    const wire: JSONRPCRequest = { ...ctx.message, id: wireId } as JSONRPCRequest;
    const options = this.#attemptOptions(attempt);
    attempt.writeStarted = true;
    // The first attempt keeps the application's send() order; retries go when they are due.
    const slot = exchange.writeSlot;
    exchange.writeSlot = undefined;
    let written: Promise<void>;
    try {
      written = slot === undefined ? this.#port.write(wire, options) : this.#port.writeInOrder(slot, wire, options);
    } catch (error) {
      written = Promise.reject(error);
    }
    const handled = written.then(
      () => {
        attempt.written = true;
        ctx._markSent();
        this.#accept(exchange);
      },
      (error: unknown) => {
        const failure = sendFailure(error);
        if (!failure.neverSent) ctx._markSent();
        this.#settleAttempt(attempt, undefined, failure);
        this.#accept(exchange);
      },
    );
    exchange.firstWrite ??= handled;
  }

  #attemptOptions(attempt: Attempt): TransportSendOptions | undefined {
    const app = attempt.ctx.options;
    const perRequest = this.#port.session.hasPerRequestStream;
    if (app === undefined && !perRequest) return undefined;
    const options: TransportSendOptions = { ...app };
    if (perRequest || app?.requestSignal !== undefined) {
      // Each attempt has its own stream; abandoning the attempt closes it.
      attempt.requestController = new AbortController();
      options.requestSignal = attempt.requestController.signal;
    }
    if (perRequest || app?.onRequestStreamEnd !== undefined) {
      options.onRequestStreamEnd = () => {
        this.#settleAttempt(
          attempt,
          undefined,
          new TransportError('The request stream ended before the response arrived', { reason: 'stream-ended' }),
        );
      };
    }
    return options;
  }

  #settleAttempt(attempt: Attempt, response: JSONRPCResponse | undefined, error: unknown): void {
    if (attempt.done) return;
    attempt.done = true;
    this.#byWireId.delete(attempt.wireId);
    attempt.ctx._unwatchAbort(attempt.onAbort);
    if (response !== undefined) {
      attempt.ctx.response = response;
      attempt.resolve();
    } else {
      attempt.reject(error);
    }
  }

  /** The stack gave up on an attempt (timeout, hedge loser, cancel): tell the peer. */
  #abandon(attempt: Attempt, reason: unknown): void {
    if (attempt.done) return;
    this.#settleAttempt(attempt, undefined, reason instanceof Error ? reason : new CancelledError(String(reason)));
    if (!attempt.writeStarted) return;
    attempt.requestController?.abort(reason);
    const { ctx } = attempt;
    // MCP forbids cancelling initialize; a 2026-era per-request stream is cancelled by closing it.
    if (ctx.method === 'initialize' || (attempt.requestController !== undefined && this.#port.cancelsByClosingStream())) return;
    const text = reason instanceof Error ? reason.message : String(reason);
    // The application's own cancel reaches the peer as written (reason, _meta...), only re-addressed.
    const appCancel = attempt.exchange.appCancel;
    const cancel: JSONRPCNotification =
      appCancel === undefined
        ? { jsonrpc: '2.0', method: CANCELLED, params: { requestId: attempt.wireId, reason: text } }
        : { ...appCancel.message, params: { ...appCancel.message.params, requestId: attempt.wireId } };
    const related = ctx.options?.relatedRequestId;
    let written: Promise<void>;
    try {
      written = this.#port.write(cancel, appCancel?.options ?? (related === undefined ? undefined : { relatedRequestId: related }));
    } catch (error) {
      written = Promise.reject(error);
    }
    written.catch((error: unknown) => {
      if (!this.#port.session.closed) this.#port.report(new Error(`Failed to send notifications/cancelled for wire id ${attempt.wireId}: ${asError(error).message}`, { cause: error }));
    });
    const events = this.#port.session.events;
    if (events.has('cancel-sent')) events.emit('cancel-sent', { ctx, wireId: attempt.wireId, reason: text });
  }

  #finish(exchange: Exchange): void {
    if (exchange.settled) return;
    const { ctx } = exchange;
    const response = ctx.response;
    if (response === undefined) {
      this.#fail(
        exchange,
        new LayerFaultError(`The layer stack finished ${ctx.method} without a response: a layer returned without calling next() or setting ctx.response`),
      );
      return;
    }
    this.#settle(exchange);
    const delivered = response.id === exchange.appId ? response : { ...response, id: exchange.appId };
    this.#deliverHeld(exchange, delivered, ctx.responseExtra);
  }

  #fail(exchange: Exchange, error: unknown): void {
    if (exchange.settled) return;
    this.#settle(exchange);
    // Cancelled by the application or the peer: it ends without a response (with no layers, its attempt's abort lands here first).
    if (exchange.silentEnd !== undefined) return;
    const options = exchange.appOptions;
    if (error instanceof TransportError && error.reason === 'stream-ended' && options?.onRequestStreamEnd !== undefined) {
      // The application reads the end of a per-request stream as the outcome (subscriptions/listen).
      this.#releaseSlots(exchange);
      callSafely(options.onRequestStreamEnd, this.#port);
      return;
    }
    this.#deliverError(exchange, error);
  }

  #deliverError(exchange: Exchange, error: unknown): void {
    this.#releaseSlots(exchange);
    const response: JSONRPCErrorResponse = {
      jsonrpc: '2.0',
      id: exchange.appId,
      error: toErrorObject(error, exchange.ctx.attempts),
    };
    this.#port.deliver(response, undefined);
  }

  /** Delivers through the newest held slot (keeps wire order); releases the others. */
  #deliverHeld(exchange: Exchange, response: JSONRPCResponse, extra: MessageExtraInfo | undefined): void {
    if (exchange.slots !== undefined && this.#port.notifiedThisTurn()) {
      // Its progress went to the application just now; the SDK handles that a microtask
      // later, and must still know the request then. The held slot keeps what follows behind.
      queueMicrotask(() => this.#deliverHeldNow(exchange, response, extra));
      return;
    }
    this.#deliverHeldNow(exchange, response, extra);
  }

  #deliverHeldNow(exchange: Exchange, response: JSONRPCResponse, extra: MessageExtraInfo | undefined): void {
    const held = exchange.slots;
    let slot: Slot | undefined;
    if (Array.isArray(held)) slot = held.pop();
    else {
      slot = held;
      exchange.slots = undefined;
    }
    this.#releaseSlots(exchange);
    const order = this.#port.inbound;
    if (slot === undefined) {
      this.#port.deliver(response, extra);
    } else if (order.isNext(slot)) {
      // First in line (the common case): deliver now, then let the ones behind it go.
      this.#port.deliver(response, extra);
      order.release(slot);
    } else {
      order.deliver(slot, () => this.#port.deliver(response, extra));
    }
  }

  #releaseSlots(exchange: Exchange): void {
    const held = exchange.slots;
    if (held === undefined) return;
    exchange.slots = undefined;
    if (Array.isArray(held)) for (const slot of held) this.#port.inbound.release(slot);
    else this.#port.inbound.release(held);
  }

  /** Marks the exchange ended and forgets it; a silent end releases held responses. */
  #settle(exchange: Exchange): void {
    if (exchange.settled) return;
    exchange.settled = true;
    this.#byAppId.delete(exchange.appId);
    if (exchange.progressToken !== undefined && this.#byProgressToken.get(exchange.progressToken) === exchange.ctx) {
      this.#byProgressToken.delete(exchange.progressToken);
    }
    if (exchange.detachRequestSignal !== undefined) exchange.detachRequestSignal();
    if (exchange.writeSlot !== undefined) {
      this.#port.outbound.release(exchange.writeSlot);
      exchange.writeSlot = undefined;
    }
    if (exchange.silentEnd !== undefined) this.#releaseSlots(exchange);
    this.#accept(exchange);
  }

  #stray(message: JSONRPCResponse): void {
    const wireId = message.id;
    if (wireId === undefined || wireId === null) {
      const error = 'error' in message ? message.error : undefined;
      this.#port.report(
        new StrayResponseError(
          `The peer sent an error response without an id (it could not read a request): ${error?.code} ${error?.message}`,
          wireId,
          'unknown',
        ),
      );
      return;
    }
    // Wire ids come from our counter: a smaller integer was ours and already answered or abandoned.
    const late = typeof wireId === 'number' && Number.isInteger(wireId) && wireId > 0 && wireId <= this.#lastWireId;
    const events = this.#port.session.events;
    if (events.has('stray-response')) events.emit('stray-response', { wireId, reason: late ? 'late' : 'unknown' });
    if (!late) {
      this.#port.report(
        new StrayResponseError(`Dropped a response for id ${JSON.stringify(wireId)}: no request with that id is pending`, wireId, 'unknown'),
      );
    }
  }
}

/** Holds a response's order slot on its exchange; most exchanges only ever hold one. */
function holdSlot(exchange: Exchange, slot: Slot): void {
  const held = exchange.slots;
  if (held === undefined) exchange.slots = slot;
  else if (Array.isArray(held)) held.push(slot);
  else exchange.slots = [held, slot];
}

/** Copies the peer's response with the application's id (and subscription id) restored. */
function mapResponse(message: JSONRPCResponse, appId: RequestId, wireId: number): JSONRPCResponse {
  if ('result' in message) {
    const meta = message.result['_meta'] as Record<string, unknown> | undefined;
    if (meta !== undefined && meta !== null && meta[SUBSCRIPTION_ID_META_KEY] === wireId) {
      return { ...message, id: appId, result: { ...message.result, _meta: { ...meta, [SUBSCRIPTION_ID_META_KEY]: appId } } };
    }
  }
  return { ...message, id: appId };
}

/** Classifies a rejected write: did the bytes provably never leave? Was it an HTTP status? */
function sendFailure(error: unknown): McpLayersError {
  if (error instanceof McpLayersError) return error;
  const cause = asError(error);
  const { code, status: rawStatus } = cause as { code?: unknown; status?: unknown };
  // The SDKs' HTTP errors carry the status as `code` (v1 StreamableHTTPError) or `status`.
  const status = httpStatus(rawStatus) ?? httpStatus(code);
  const failure = status !== undefined ? classifyStatus(status) : classifyConnectionError(code);
  // The SDKs' transports say so in words when nothing is connected yet.
  const neverSent = failure.neverSent || /not connected/i.test(cause.message);
  return new TransportError(`The transport failed to send the request: ${cause.message}`, {
    reason: status !== undefined ? `http-${status}` : neverSent ? 'not-sent' : 'send-failed',
    neverSent,
    retryable: failure.retryable,
    cause,
    ...(status === undefined ? {} : { status }),
  });
}

function httpStatus(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isInteger(value) && value >= 400 && value <= 599 ? value : undefined;
}

function abortReason(signal: AbortSignal): string | undefined {
  const reason: unknown = signal.reason;
  if (reason === undefined) return undefined;
  return reason instanceof Error ? reason.message : String(reason);
}

function callSafely(fn: () => void, port: Port): void {
  try {
    fn();
  } catch (error) {
    port.report(error);
  }
}
