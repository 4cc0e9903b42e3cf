/**
 * The options both Redis sides take. Only types: the client library's own declarations
 * stay out of what a consumer compiles (connection.ts uses them).
 */
import type { EventBus } from '../../core/events.ts';

/**
 * The connection the transports accept, by shape: a client from `@redis/client` (or the
 * `redis` package's createClient()) fits. The transports send their commands on it and
 * open their own duplicates of it for pub/sub and the blocking reads.
 */
export interface RedisConnectionLike {
  sendCommand(args: ReadonlyArray<string | Buffer>, options?: object): Promise<unknown>;
  duplicate(overrides?: object): unknown;
  readonly isReady: boolean;
  on(event: string, listener: (...args: never[]) => void): unknown;
}

/** Options of `@redis/client`'s createClient(), passed as they are (its documentation lists them all). */
export interface RedisConnectOptions {
  username?: string;
  password?: string;
  name?: string;
  database?: number;
  socket?: { connectTimeout?: number; reconnectStrategy?: false | number | ((retries: number, cause: Error) => false | Error | number); tls?: boolean; [option: string]: unknown };
  pingInterval?: number;
  [option: string]: unknown;
}

export interface RedisCommonOptions {
  /** The service's name: its workers and clients meet on its keys (`mcp:{<service>}:…`). Letters, digits, `_` and `-`. */
  service: string;
  /** The Redis server's URL (`redis://` or `rediss://`). Default `redis://127.0.0.1:6379`. Ignored with `connection`. */
  servers?: string;
  /** An open client to use instead: shared with the application, never closed by the transport (its duplicates are). */
  connection?: RedisConnectionLike;
  /** Passed to the client library's `createClient()` as is: credentials, TLS, `socket.reconnectStrategy`. */
  connectOptions?: RedisConnectOptions;
  /** The first part of every key and channel. Default `mcp`. */
  prefix?: string;
  /** Where `connection`, `reconnect` and `heartbeat` are published (default: a bus of its own, `events`). */
  events?: EventBus;
}

export const COMMON_OPTIONS = ['service', 'servers', 'connection', 'connectOptions', 'prefix', 'events'] as const;
