/**
 * The options both NATS sides take. Only types: the client library's own declarations
 * stay out of what a consumer compiles (connection.ts uses them).
 */
import type { EventBus } from '../../core/events.ts';

/**
 * The connection the transports accept, by shape: a NatsConnection from
 * @nats-io/transport-node fits. Written out rather than imported so that the package's
 * declarations do not pull the client library's into a consumer's compilation (some of
 * them fail a strict `tsc --init` project's checks: exactOptionalPropertyTypes).
 */
export interface NatsConnectionLike {
  publish(subject: string, payload?: Uint8Array | string, options?: object): void;
  subscribe(subject: string, options?: object): unknown;
  request(subject: string, payload?: Uint8Array | string, options?: object): Promise<unknown>;
  closed(): Promise<void | Error>;
  close(): Promise<void>;
  isClosed(): boolean;
  getServer(): string;
}

/** Options of @nats-io/transport-node's `connect()`, passed as they are (its documentation lists them all). */
export interface NatsConnectOptions {
  name?: string;
  user?: string;
  pass?: string;
  token?: string;
  authenticator?: unknown;
  tls?: object | null;
  timeout?: number;
  maxReconnectAttempts?: number;
  reconnectTimeWait?: number;
  pingInterval?: number;
  maxPingOut?: number;
  inboxPrefix?: string;
  waitOnFirstConnect?: boolean;
  [option: string]: unknown;
}

export interface NatsCommonOptions {
  /** The service's name: its workers and clients meet on its subjects (`mcp.<service>.…`). Letters, digits, `_` and `-`. */
  service: string;
  /** NATS server URL(s) to connect to. Default `nats://127.0.0.1:4222`. Ignored with `connection`. */
  servers?: string | string[];
  /** An open connection to use instead: shared with the application, never closed by the transport. */
  connection?: NatsConnectionLike;
  /** Passed to the client library's `connect()` as is: credentials, TLS, `name`, reconnect settings. */
  connectOptions?: NatsConnectOptions;
  /** The first token of every subject, and of the stream's name. Default `mcp`. */
  prefix?: string;
  /** Where `connection`, `reconnect` and `heartbeat` are published (default: a bus of its own, `events`). */
  events?: EventBus;
}

export const COMMON_OPTIONS = ['service', 'servers', 'connection', 'connectOptions', 'prefix', 'events'] as const;
