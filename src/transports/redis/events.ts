/** The Redis transports' own events: the events every broker transport publishes (../broker/events.ts), on a stream or on pub/sub. */
import type { BrokerEvents } from '../broker/events.ts';

export type RedisEvents = BrokerEvents<'stream' | 'pubsub'>;
