/** The NATS transports' own events: the events every broker transport publishes (../broker/events.ts), on core NATS or JetStream. */
import type { BrokerEvents } from '../broker/events.ts';

export type NatsEvents = BrokerEvents<'stream' | 'core'>;
