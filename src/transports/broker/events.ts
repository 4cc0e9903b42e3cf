/**
 * The broker events as one broker publishes them: LayerEvents' `broker-*` events
 * (src/core/events.ts, where the logging and metrics layers read them), with `via`
 * narrowed to that broker's two paths. The base classes publish them on the transports'
 * fanout, as they do `connection`: on `transport.events` / `worker.events` and, through
 * the wire control, on every wrapped transport's bus.
 */
import type { LayerEvents } from '../../core/events.ts';
import type { EventFanout } from '../../core/wire.ts';

export type BrokerEventName = 'broker-published' | 'broker-redelivered' | 'broker-deduplicated' | 'broker-worker' | 'broker-session' | 'broker-garbage';

/** `Via` names the broker's paths: its durable one (`stream`) and its fire-and-forget one (`core` on NATS, `pubsub` on Redis). */
export type BrokerEvents<Via extends string = string> = { [K in BrokerEventName]: K extends 'broker-published' ? LayerEvents[K] & { via: Via } : LayerEvents[K] };

/** What the broker classes publish through: the fanout, seen as the broker events only. */
export interface BrokerEventSink<Via extends string> {
  has(type: BrokerEventName): boolean;
  emit<K extends BrokerEventName>(type: K, event: BrokerEvents<Via>[K]): void;
}

/** The fanout itself, typed so that a broker publishes only the broker events, with its own `via`. */
export function brokerEventsOn<Via extends string>(fanout: EventFanout): BrokerEventSink<Via> {
  // Sound (each BrokerEvents<Via>[K] is a LayerEvents[K]); the compiler cannot see it through the generic K.
  return fanout as BrokerEventSink<Via>;
}
