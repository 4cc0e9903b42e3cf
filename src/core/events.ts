/**
 * The event bus of a wrapped transport. Layers publish what they do (a retry, a
 * timeout, a breaker transition...) as typed values; `metrics`, `logging` and `tracing`
 * subscribe, so observability sees every other layer without importing it.
 *
 * `LayerEvents` here holds what the core and the transports publish. A layer declares
 * its own events in its own module, by declaration merging (docs/architecture.md,
 * "Writing a layer"); a layer of this package names this file, an application's names
 * the package:
 *
 *   declare module 'mcp-layers' { interface LayerEvents { 'my-layer:thing': { ctx: Context } } }
 *
 * A throwing listener never breaks the message path: the error goes to `onListenerError`.
 * The bus is branded (brand.ts): a transport accepts a bus made by another copy of the package.
 */
import { brand, isBranded } from './brand.ts';
import type { Context } from './context.ts';
import type { RequestId } from './jsonrpc.ts';

/** Which way a message travels, seen from the application. */
export type Direction = 'outbound' | 'inbound';

/** Every event the core, a transport or a layer may publish. Layers extend it by declaration merging. */
export interface LayerEvents {
  /** The core put an attempt of an outbound request on the wire with a fresh wire id. */
  attempt: { ctx: Context; attempt: number; wireId: RequestId };
  /** The core sent `notifications/cancelled` for a wire id it gave up on (invariant 4). */
  'cancel-sent': { ctx: Context; wireId: RequestId; reason: string };
  /** An exchange was cancelled by the application or the peer. */
  cancelled: { ctx: Context; by: 'application' | 'peer'; reason: string | undefined };
  /** A response arrived for a wire id that is not pending; it was dropped. */
  'stray-response': { wireId: unknown; reason: 'late' | 'unknown' };
  /** A peer's message was not valid JSON-RPC; it went to `onerror`. */
  'invalid-message': { error: Error };
  /** The negotiated protocol version became known. */
  'protocol-version': { version: string };
  /** The wrapped transport started. */
  start: { name: string };
  /** The wrapped transport closed; `pending` exchanges were settled. */
  close: { name: string; pending: number };

  // Transports publish these (mcp-layers/ws, mcp-layers/http, or one of your own): the
  // contract between any transport and the observability layers, so it lives here.
  /** A transport restoring its connection (a child, for a supervised stdio upstream): `gave-up` when it stopped trying, before it closes. */
  reconnect: { attempt: number; delayMs: number; outcome: 'scheduled' | 'connected' | 'failed' | 'gave-up'; error?: Error };
  /** A connection under a transport opened, closed (`code`/`reason` from the close frame) or was refused at the upgrade. */
  connection: { state: 'open' | 'closed' | 'rejected'; transport: string; url?: string; code?: number; reason?: string };
  heartbeat: { outcome: 'ok' | 'missed'; rttMs?: number };
  'bytes-compressed': { encoding: string; direction: Direction; before: number; after: number };
  wire: { direction: Direction; bytes: number; encoding: string };

  // The broker transports (mcp-layers/nats, mcp-layers/redis) publish these too, the same
  // on either broker: a client transport on its bus, a worker on its bus and on every
  // session's. docs/scale-out.md ("Events") says who publishes which.
  /**
   * A message went to the broker: `via` its durable path (`stream`: stored, acknowledged
   * to the publisher) or its fire-and-forget one (`core` on NATS, `pubsub` on Redis).
   * `method` is the message's (undefined for a response).
   */
  'broker-published': { subject: string; via: string; bytes: number; method: string | undefined };
  /**
   * A worker received a request the broker had delivered before (its previous worker
   * stopped before acknowledging it): `delivered` again when idempotent (invariant 3),
   * else `refused` with one error response.
   */
  'broker-redelivered': { id: RequestId; method: string; deliveryCount: number; outcome: 'delivered' | 'refused' };
  /**
   * A duplicate was dropped: the broker's window refused a second publish of the same
   * client and wire id (`stream`), a worker dropped a request it had answered or holds
   * (`worker`), or a client dropped a second answer to one request (`client`).
   */
  'broker-deduplicated': { where: 'stream' | 'worker' | 'client'; id: RequestId | undefined };
  /**
   * A worker joined or left the service: the worker itself says so as it starts and closes
   * (no `reason`); a client that lost its worker says `left` with the reason it counts it gone.
   */
  'broker-worker': { state: 'joined' | 'left'; worker: string; reason?: string };
  /** A session opened on a worker (a first initialize, or a replayed one after its worker was lost), or closed there. */
  'broker-session': { state: 'opened' | 'replayed' | 'closed'; sessionId: string; reason?: string };
  /** Bytes on a subject or key that are not one of our messages: dropped, and answered when the request could be identified. */
  'broker-garbage': { subject: string; problem: string; answered: boolean };
}

export type EventListener<T> = (event: T) => void;

export class EventBus<M extends object = LayerEvents> {
  static {
    brand(this, 'event-bus');
  }

  static [Symbol.hasInstance](value: unknown): boolean {
    return isBranded(this, value);
  }

  readonly #listeners = new Map<keyof M, Set<EventListener<never>>>();
  /** Where listener exceptions go. The wrapped transport points this at its `onerror`. */
  onListenerError: (error: unknown, type: PropertyKey) => void = () => {};

  /** Subscribes; returns the function that unsubscribes. */
  on<K extends keyof M>(type: K, listener: EventListener<M[K]>): () => void {
    let set = this.#listeners.get(type);
    if (set === undefined) this.#listeners.set(type, (set = new Set()));
    set.add(listener as EventListener<never>);
    return () => {
      set.delete(listener as EventListener<never>);
      if (set.size === 0 && this.#listeners.get(type) === set) this.#listeners.delete(type);
    };
  }

  /** True when someone listens: lets publishers skip building an event nobody reads. */
  has(type: keyof M): boolean {
    return this.#listeners.has(type);
  }

  emit<K extends keyof M>(type: K, event: M[K]): void {
    const set = this.#listeners.get(type);
    if (set === undefined) return;
    for (const listener of set) {
      try {
        (listener as EventListener<M[K]>)(event);
      } catch (error) {
        this.onListenerError(error, type);
      }
    }
  }

  /** Number of listeners across all types (for leak checks in tests). */
  get listenerCount(): number {
    let n = 0;
    for (const set of this.#listeners.values()) n += set.size;
    return n;
  }
}
