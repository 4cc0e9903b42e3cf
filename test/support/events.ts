/**
 * One of every event a layer or the core can publish, as the resilience, transport and
 * auth layers would publish them — for checking that metrics and logging see them all.
 * Also: waiting for one real event on a bus, and bounding a wait by a step's deadline.
 */
import type { Context } from '#core/context.ts';
import type { EventBus, LayerEvents } from '#core/events.ts';

export type EveryEvent = { [K in keyof LayerEvents]: LayerEvents[K] };

/**
 * A sample of every event type; `ctx` is a live exchange's context. `satisfies` makes a new
 * event type a compile error here until it is added. Samples also carry the fields the
 * resilience layers add to their events (`error`, `serverDirected`...), so they read the
 * same before and after those layers' declarations land.
 */
export function everyEvent(ctx: Context): EveryEvent {
  const events = {
    attempt: { ctx, attempt: 1, wireId: 41 },
    'cancel-sent': { ctx, wireId: 41, reason: 'attempt timed out' },
    cancelled: { ctx, by: 'application', reason: 'user aborted' },
    'stray-response': { wireId: 40, reason: 'late' },
    'invalid-message': { error: new Error('bad json-rpc') },
    'protocol-version': { version: '2025-11-25' },
    start: { name: 'client' },
    close: { name: 'client', pending: 0 },
    retry: { ctx, attempt: 2, delayMs: 100, reason: 'http-503', serverDirected: false, error: new Error('HTTP 503 from upstream') },
    'retry-budget-exhausted': { ctx, attempt: 2, reason: 'budget' },
    'give-up': { ctx, attempts: 3, reason: 'retries-exhausted', error: new Error('HTTP 503 from upstream') },
    timeout: { ctx, scope: 'attempt', ms: 250, attempt: 1 },
    'breaker-state': { key: 'upstream', from: 'closed', to: 'open', reason: 'failure-rate' },
    'breaker-rejected': { ctx, key: 'upstream', state: 'open', retryAfterMs: 1000 },
    shed: { ctx, reason: 'queue-full', inFlight: 8, queued: 16 },
    queued: { ctx, queued: 3, inFlight: 8 },
    hedge: { ctx, attempt: 2, delayMs: 50 },
    'hedge-outcome': { ctx, winner: 2, cancelled: 1 },
    chaos: { ctx, fault: 'latency', delayMs: 100 },
    reconnect: { attempt: 1, delayMs: 500, outcome: 'scheduled' },
    connection: { state: 'open', transport: 'ws' },
    heartbeat: { outcome: 'ok', rttMs: 12 },
    'token-refresh': { outcome: 'ok', durationMs: 80, reason: 'expired' },
    'token-store-failed': { operation: 'save', error: new Error('EACCES: permission denied') },
    'batch-flushed': { size: 4, bytes: 900 },
    'bytes-compressed': { encoding: 'gzip', direction: 'outbound', before: 1000, after: 300 },
    wire: { direction: 'outbound', bytes: 300, encoding: 'gzip' },
    'broker-published': { subject: 'mcp.tools.req', via: 'stream', bytes: 180, method: 'tools/call' },
    'broker-redelivered': { id: 41, method: 'tools/call', deliveryCount: 2, outcome: 'refused' },
    'broker-deduplicated': { where: 'stream', id: 41 },
    'broker-worker': { state: 'left', worker: 'worker-a', reason: 'no responders' },
    'broker-session': { state: 'replayed', sessionId: 'session-1' },
    'broker-garbage': { subject: 'mcp.tools.req', problem: 'a message that is not valid JSON', answered: false },
  } satisfies Record<keyof LayerEvents, object>;
  return events as unknown as EveryEvent;
}

/** Emits every event on the exchange's bus. */
export function emitEveryEvent(ctx: Context): void {
  const events = everyEvent(ctx);
  for (const type of Object.keys(events) as Array<keyof LayerEvents>) ctx.events.emit(type, events[type] as never);
}

/**
 * Publishes one event of `type` on the exchange's bus: the sample above with `fields`
 * over it. Tests state only the fields they assert on, whatever else the event declares.
 */
export function publish<K extends keyof LayerEvents>(ctx: Context, type: K, fields: Partial<LayerEvents[K]> = {}): void {
  ctx.events.emit(type, { ...everyEvent(ctx)[type], ...fields } as LayerEvents[K]);
}

/** Resolves with the next `type` event on `bus` that `match` accepts (a real event: no polling, no delay). */
export function nextEvent<K extends keyof LayerEvents>(bus: EventBus, type: K, match: (event: LayerEvents[K]) => boolean = () => true): Promise<LayerEvents[K]> {
  return new Promise((resolve) => {
    const off = bus.on(type, (event) => {
      if (!match(event)) return;
      off();
      resolve(event);
    });
  });
}

/** Long enough for a busy machine, short enough that a hang fails the test with the step's name. */
export const STEP_MS = 15_000;

/** `promise`, or a failure naming `what` when it has not settled within `ms`. */
export function within<T>(promise: Promise<T>, what: string, ms = STEP_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`not within ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
