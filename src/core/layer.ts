/**
 * What a layer is. The shortest layer is a function:
 *
 *   const stamp: Middleware = async (ctx, next) => { const t = performance.now(); await next(); log(ctx.method, performance.now() - t); };
 *
 * Layers that subscribe to events, keep per-transport state or touch the wire are
 * objects with a `name`, a `handle` and an optional `attach`.
 */
import type { Context, Session } from './context.ts';
import { describe } from './errors.ts';
import type { EventBus } from './events.ts';
import type { JSONRPCMessage } from './jsonrpc.ts';
import type { Transport, TransportSendOptions } from './transport.ts';

/**
 * Runs the rest of the stack. For an outbound request each call is one attempt that
 * ends when that attempt's response arrived (`ctx.response`) or rejects with a typed
 * error; calling it again makes another attempt. Pass a `ctx.fork()` to run an attempt
 * on its own context (concurrent attempts, per-attempt deadlines).
 */
export type Next = (ctx?: Context) => Promise<void>;

export type Middleware = (ctx: Context, next: Next) => Promise<void> | void;

/** Writes one message (or, where the inner transport accepts them, an array) to the inner transport. */
export type WireWrite = (message: JSONRPCMessage | JSONRPCMessage[], options?: TransportSendOptions) => Promise<void>;

/** What a layer sees of the wrapped transport it is attached to. */
export interface LayerHost {
  readonly session: Session;
  readonly events: EventBus;
  /** The transport being wrapped (read its capabilities; do not set its callbacks). */
  readonly inner: Transport;
  /**
   * Decorates the write to the inner transport: every message the stack puts on the
   * wire passes through `decorate`'s result (batching and compression live here).
   * The first layer's decoration is the outermost.
   */
  decorateWrite(decorate: (write: WireWrite) => WireWrite): void;
}

export interface Layer {
  /** Shown in synthesized errors (`data.layer`), events and logs. */
  readonly name: string;
  readonly handle: Middleware;
  /**
   * Called once when `wrap()` builds a transport with this layer. May throw to refuse
   * the transport (with a message naming why). Returns an optional detach function
   * that runs when the wrapped transport closes. A layer object may be attached to
   * several transports; state kept in its closure is then shared (a breaker per upstream).
   */
  readonly attach?: ((host: LayerHost) => void | (() => void)) | undefined;
}

export type LayerLike = Layer | Middleware;

function isLayer(value: unknown): value is Layer {
  return typeof value === 'object' && value !== null && typeof (value as Layer).handle === 'function';
}

/** Normalizes a function or a layer object, naming the offending position when neither. */
export function toLayer(value: unknown, position: string): Layer {
  if (typeof value === 'function') {
    const fn = value as Middleware;
    return { name: fn.name || 'anonymous', handle: fn };
  }
  if (isLayer(value)) return value;
  throw new TypeError(
    `${position} must be a layer (a function (ctx, next) or an object with a handle(ctx, next) function), got ${describe(value)}`,
  );
}
