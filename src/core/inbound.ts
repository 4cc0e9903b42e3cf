/**
 * Inbound requests: the peer asks, the application answers.
 *
 * The request runs through the layers; the innermost `next()` hands it to the
 * application and resolves with the application's response (which arrives through
 * `send()`). When the layers have finished, exactly one response goes on the wire
 * (invariant 2): the application's, a layer's own answer (load shedding, auth), or a
 * synthesized error if a layer failed. A request the peer cancelled gets none, as MCP
 * asks; an application response that still arrives for it is dropped quietly.
 *
 *   onmessage(request) ─► layers ─► deliver to application
 *   send(response) ─► layers unwind ─► inner.send(response) ─► send() resolves
 */
import { Context } from './context.ts';
import {
  CancelledError,
  ConnectionClosedError,
  InvalidMessageError,
  LayerFaultError,
  toErrorObject,
} from './errors.ts';
import type { Slot } from './order.ts';
import type { JSONRPCRequest, JSONRPCResponse, RequestId } from './jsonrpc.ts';
import type { ComposedLayer } from './compose.ts';
import type { Port } from './port.ts';
import type { MessageExtraInfo, TransportSendOptions } from './transport.ts';

interface Exchange {
  readonly ctx: Context;
  readonly peerId: RequestId;
  readonly slot: Slot;
  delivered: boolean;
  cancelled: boolean;
  ended: boolean;
  /** Resolves the innermost next() with the application's response. */
  answer: ((response: JSONRPCResponse, options: TransportSendOptions | undefined) => void) | undefined;
  appOptions: TransportSendOptions | undefined;
  /** The application's response's place in the outbound order. */
  writeSlot: Slot | undefined;
  /** Settles the application's send() once its response was written (or dropped). */
  appSent: AppSent | undefined;
  /** With `INLINE`: the write of the response, which the application's send() returns. */
  written: Promise<void> | undefined;
}

interface AppSent {
  resolve(): void;
  reject(error: unknown): void;
}

/** The application's send() returns the response's own write (no layers: it begins within send()). */
const INLINE: AppSent = { resolve() {}, reject() {} };

/** How many cancelled peer ids are remembered, to drop late application responses quietly. */
const RECENTLY_CANCELLED = 1024;

export class InboundRequests {
  readonly #port: Port;
  /** Undefined when the transport was wrapped with no layers: the application's answer ends the exchange directly. */
  readonly #stack: ComposedLayer | undefined;
  readonly #pending = new Map<RequestId, Exchange>();
  readonly #recentlyCancelled = new Set<RequestId>();

  constructor(port: Port, stack: ComposedLayer | undefined) {
    this.#port = port;
    this.#stack = stack;
  }

  receive(message: JSONRPCRequest, extra: MessageExtraInfo | undefined): void {
    const peerId = message.id;
    if (this.#pending.has(peerId)) {
      this.#port.report(
        new InvalidMessageError(`The peer reused request id ${JSON.stringify(peerId)} while that request was still pending; the duplicate was dropped`, 'inbound'),
      );
      return;
    }
    const ctx = new Context({ direction: 'inbound', kind: 'request', message, options: undefined, extra, session: this.#port.session });
    const exchange: Exchange = {
      ctx,
      peerId,
      slot: this.#port.inbound.admit(),
      delivered: false,
      cancelled: false,
      ended: false,
      answer: undefined,
      appOptions: undefined,
      writeSlot: undefined,
      appSent: undefined,
      written: undefined,
    };
    ctx._record = exchange;
    this.#pending.set(peerId, exchange);
    if (this.#stack === undefined) {
      // No layer to run: the application's answer (or an abort) ends the exchange itself, with no promise in between.
      this.#startDelivery(ctx, () => this.#finish(exchange), (error) => this.#fail(exchange, error));
      return;
    }
    this.#stack.handle(ctx, this.#deliver).then(
      () => this.#finish(exchange),
      (error: unknown) => this.#fail(exchange, error),
    );
  }

  /** The application answers an inbound request. Resolves when the answer is on the wire. */
  respond(message: JSONRPCResponse, options: TransportSendOptions | undefined): Promise<void> {
    const peerId = message.id;
    const exchange = peerId === undefined ? undefined : this.#pending.get(peerId);
    if (exchange === undefined || exchange.answer === undefined) {
      if (peerId !== undefined && this.#recentlyCancelled.has(peerId)) return Promise.resolve();
      if (peerId === undefined || peerId === null) return this.#port.write(message, options);
      return Promise.reject(
        new InvalidMessageError(
          `The application sent a response for request id ${JSON.stringify(peerId)}, which is not pending (already answered, or never received)`,
          'outbound',
        ),
      );
    }
    const answer = exchange.answer;
    exchange.answer = undefined;
    exchange.writeSlot = this.#port.outbound.admit();
    if (this.#stack === undefined) {
      exchange.appSent = INLINE;
      answer(message, options);
      return exchange.written ?? Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      exchange.appSent = { resolve, reject };
      answer(message, options);
    });
  }

  /** The peer cancelled one of its requests: stop, and send no response for it. */
  cancel(peerId: RequestId, reason: string | undefined): boolean {
    const exchange = this.#pending.get(peerId);
    if (exchange === undefined || exchange.ended) return false;
    exchange.cancelled = true;
    this.#port.session.events.emit('cancelled', { ctx: exchange.ctx, by: 'peer', reason });
    exchange.ctx._abort(new CancelledError(reason === undefined ? 'Request cancelled by the peer' : `Request cancelled by the peer: ${reason}`));
    return true;
  }

  closeAll(error: Error): number {
    const pending = [...this.#pending.values()];
    for (const exchange of pending) {
      this.#end(exchange);
      exchange.ctx._abort(error);
      exchange.appSent?.reject(error);
    }
    return pending.length;
  }

  get size(): { exchanges: number; recentlyCancelled: number } {
    return { exchanges: this.#pending.size, recentlyCancelled: this.#recentlyCancelled.size };
  }

  /** The innermost `next()`: hands the request to the application, waits for its answer. */
  readonly #deliver = (ctx: Context): Promise<void> => new Promise<void>((resolve, reject) => this.#startDelivery(ctx, resolve, reject));

  /** Hands the request to the application; `resolve` once its answer is in `ctx.response`, or `reject` (an abort, a second call). */
  #startDelivery(ctx: Context, resolve: () => void, reject: (error: unknown) => void): void {
    const exchange = ctx._record as Exchange;
    if (exchange.delivered) {
      return reject(new LayerFaultError(`next() was called twice for inbound ${ctx.method}; the application must see a request once`));
    }
    if (ctx.aborted) return reject(ctx.abortReason);
    exchange.delivered = true;
    const onAbort = (reason: unknown) => {
      exchange.answer = undefined;
      reject(reason);
    };
    ctx._watchAbort(onAbort);
    exchange.answer = (response, options) => {
      ctx._unwatchAbort(onAbort);
      exchange.appOptions = options;
      ctx.response = response;
      resolve();
    };
    this.#port.inbound.deliver(exchange.slot, () => this.#port.deliver(ctx.message, ctx.extra));
  }

  #finish(exchange: Exchange): void {
    if (exchange.ended) return;
    const { ctx } = exchange;
    if (exchange.cancelled) return this.#end(exchange);
    const response = ctx.response;
    if (response === undefined) {
      return this.#fail(
        exchange,
        new LayerFaultError(`The layer stack finished inbound ${ctx.method} without a response: a layer returned without calling next() or setting ctx.response`),
      );
    }
    const wire = response.id === exchange.peerId ? response : { ...response, id: exchange.peerId };
    this.#write(exchange, wire, exchange.appOptions ?? { relatedRequestId: exchange.peerId });
  }

  #fail(exchange: Exchange, error: unknown): void {
    if (exchange.ended) return;
    if (exchange.cancelled || (error instanceof CancelledError && exchange.ctx.aborted)) return this.#end(exchange);
    if (error instanceof ConnectionClosedError && this.#port.session.closed) return this.#end(exchange);
    const response: JSONRPCResponse = { jsonrpc: '2.0', id: exchange.peerId, error: toErrorObject(error, 0) };
    this.#write(exchange, response, { relatedRequestId: exchange.peerId });
  }

  #write(exchange: Exchange, response: JSONRPCResponse, options: TransportSendOptions | undefined): void {
    const slot = exchange.writeSlot;
    exchange.writeSlot = undefined;
    this.#end(exchange);
    const appSent = exchange.appSent;
    let written: Promise<void>;
    try {
      written = slot === undefined ? this.#port.write(response, options) : this.#port.writeInOrder(slot, response, options);
    } catch (error) {
      written = Promise.reject(error);
    }
    if (appSent === INLINE) {
      exchange.written = written;
      return;
    }
    written.then(
      () => appSent?.resolve(),
      (error: unknown) => {
        if (appSent !== undefined) appSent.reject(error);
        else this.#port.report(error);
      },
    );
  }

  /** Forgets the exchange. Cancelled ids are remembered a while to drop late answers. */
  #end(exchange: Exchange): void {
    if (exchange.ended) return;
    exchange.ended = true;
    this.#pending.delete(exchange.peerId);
    if (!exchange.delivered) this.#port.inbound.release(exchange.slot);
    if (exchange.writeSlot !== undefined) {
      this.#port.outbound.release(exchange.writeSlot);
      exchange.writeSlot = undefined;
    }
    if (exchange.cancelled) {
      this.#recentlyCancelled.add(exchange.peerId);
      if (this.#recentlyCancelled.size > RECENTLY_CANCELLED) {
        const oldest = this.#recentlyCancelled.values().next().value as RequestId;
        this.#recentlyCancelled.delete(oldest);
      }
      exchange.appSent?.resolve();
    }
  }
}
