/**
 * The event bus of a wrapped transport. Layers publish what they do (a retry, a
 * timeout, a breaker transition...) as typed values; `metrics`, `logging` and `tracing`
 * subscribe, so observability sees every other layer without importing it.
 *
 * Layers add their own event types by declaration merging:
 *
 *   declare module 'mcp-layers' { interface LayerEvents { 'my-layer:thing': { ctx: Context } } }
 *
 * A throwing listener never breaks the message path: the error goes to `onListenerError`.
 */
import type { Context } from './context.ts';
import type { RequestId } from './jsonrpc.ts';

/** Which way a message travels, seen from the application. */
export type Direction = 'outbound' | 'inbound';

/** Every event a layer or the core may publish. Extend it by declaration merging. */
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

  // Resilience layers (middleware/*.ts) publish these; docs/layers.md describes each.
  /** retry will make attempt number `attempt` after waiting `delayMs` (the peer's delay when `serverDirected`). */
  retry: { ctx: Context; attempt: number; delayMs: number; reason: string; serverDirected: boolean; error: Error | undefined };
  /** retry wanted to try again after `attempt` attempts, but the retry budget was spent. */
  'retry-budget-exhausted': { ctx: Context; attempt: number; reason: string };
  /** retry stopped on a transient failure: `reason` is why (max-attempts, not-idempotent, budget-exhausted, deadline...). */
  'give-up': { ctx: Context; attempts: number; reason: string; error: Error | undefined };
  /** A deadline passed: the attempt was abandoned (its wire id cancelled) and the exchange ends with -32001. */
  timeout: { ctx: Context; scope: 'attempt' | 'total'; ms: number; attempt: number };
  /** A circuit breaker changed state; `reason` says what opened it. */
  'breaker-state': { key: string; from: BreakerState; to: BreakerState; reason: string | undefined };
  /** An open breaker failed a request fast; nothing was sent. */
  'breaker-rejected': { ctx: Context; key: string; state: BreakerState; retryAfterMs: number | undefined };
  /** A concurrency limit refused a request (outbound: nothing sent; inbound: the peer got an error). */
  shed: { ctx: Context; reason: string; inFlight: number; queued: number };
  /** A request waits for a concurrency slot. */
  queued: { ctx: Context; queued: number; inFlight: number };
  /** hedging launched attempt number `attempt` because the earlier ones were slower than `delayMs`. */
  hedge: { ctx: Context; attempt: number; delayMs: number };
  /** A hedged exchange ended: attempt `winner` answered, `cancelled` others were cancelled on the wire. */
  'hedge-outcome': { ctx: Context; winner: number; cancelled: number };
  /** chaos injected a fault into this exchange (`delayMs` for latency). */
  chaos: { ctx: Context; fault: ChaosFault; delayMs: number | undefined };

  // Transports, wire layers and auth publish these.
  reconnect: { attempt: number; delayMs: number; outcome: 'scheduled' | 'connected' | 'failed'; error?: Error };
  /** A connection under a transport opened, closed (`code`/`reason` from the close frame) or was refused at the upgrade. */
  connection: { state: 'open' | 'closed' | 'rejected'; transport: string; url?: string; code?: number; reason?: string };
  heartbeat: { outcome: 'ok' | 'missed'; rttMs?: number };
  /** A token request ended (`reason`: initial, expired, proactive, rejected, renewal). Never carries a token. */
  'token-refresh': { outcome: 'ok' | 'failed'; durationMs: number; reason: string; error?: Error };
  /** The token store could not load or save; a rotated refresh token may be lost on restart. */
  'token-store-failed': { operation: 'load' | 'save'; error: Error };
  'batch-flushed': { size: number; bytes?: number };
  'bytes-compressed': { encoding: string; direction: Direction; before: number; after: number };
  wire: { direction: Direction; bytes: number; encoding: string };
}

export type BreakerState = 'closed' | 'open' | 'half-open' | 'isolated';
export type ChaosFault = 'latency' | 'error' | 'drop' | 'disconnect';

export type EventListener<T> = (event: T) => void;

export class EventBus<M extends object = LayerEvents> {
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
