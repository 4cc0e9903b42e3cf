/**
 * Validating the options both Redis sides take, and opening (or borrowing) connections.
 *
 * Each side keeps its commands on one connection and opens duplicates for what would
 * block it: pub/sub (a subscribed connection takes no other command) and, on a worker,
 * the blocking XREADGROUP. Ours are made with `disableOfflineQueue`, so that a command
 * sent while the server is unreachable fails at once instead of waiting for a reconnect,
 * and with RESP2 replies as Buffers, so that a foreign publisher's bytes are seen as
 * they are.
 */
import { ClientClosedError, ClientOfflineError, createClient, RESP_TYPES } from '@redis/client';
import { ConnectionClosedError, TransportError } from '../../core/errors.ts';
import type { EventBus } from '../../core/events.ts';
import { invalidOption } from '../../core/options.ts';
import { busOption, resolveNames } from '../broker/options.ts';
import { type Keys, keysFor } from './keys.ts';
import type { RedisCommonOptions, RedisConnectOptions } from './options.ts';

/** What the transports use of a node-redis client (its own types are generic beyond need here). */
export interface Conn {
  sendCommand<T = unknown>(args: ReadonlyArray<string | Buffer>, options?: object): Promise<T>;
  duplicate(overrides?: object): Conn;
  connect(): Promise<unknown>;
  close(): Promise<void>;
  destroy(): void;
  subscribe(channels: string | string[], listener: (message: Buffer, channel: Buffer) => void, bufferMode: true): Promise<void>;
  unsubscribe(channels?: string | string[], listener?: (message: Buffer, channel: Buffer) => void, bufferMode?: true): Promise<void>;
  readonly isReady: boolean;
  readonly isOpen: boolean;
  on(event: string, listener: (...args: never[]) => void): Conn;
  off(event: string, listener: (...args: never[]) => void): Conn;
}

export interface ResolvedCommon {
  readonly keys: Keys;
  readonly url: string;
  readonly connection: Conn | undefined;
  readonly connectOptions: RedisConnectOptions;
  readonly events: EventBus;
}

export function resolveCommon(prefix: string, options: RedisCommonOptions): ResolvedCommon {
  const names = resolveNames(prefix, options);
  const url = options.servers ?? 'redis://127.0.0.1:6379';
  if (typeof url !== 'string' || !/^rediss?:\/\//.test(url)) throw invalidOption(`${prefix}.servers`, 'a redis:// or rediss:// URL', url);
  const connection = options.connection as unknown as Conn | undefined;
  if (connection !== undefined && (typeof connection !== 'object' || connection === null || typeof connection.sendCommand !== 'function' || typeof connection.duplicate !== 'function')) {
    throw invalidOption(`${prefix}.connection`, 'a client from @redis/client (createClient())', connection);
  }
  const connectOptions = options.connectOptions ?? {};
  if (typeof connectOptions !== 'object' || connectOptions === null) throw invalidOption(`${prefix}.connectOptions`, 'an object of createClient() options', connectOptions);
  return {
    keys: keysFor(names.prefix, names.service),
    url,
    connection,
    connectOptions,
    events: busOption(`${prefix}.events`, options.events),
  };
}

/** Replies as Buffers, on every connection we make. */
const BUFFERS = { typeMapping: { [RESP_TYPES.BLOB_STRING]: Buffer, [RESP_TYPES.SIMPLE_STRING]: Buffer } };

/** Attempts at the first connection before start() gives up (the client library's backoff between them); after it, reconnection never stops. */
const FIRST_CONNECT_ATTEMPTS = 3;

/** The command connection to use, and whether it is ours to close. */
export async function openConnection(common: ResolvedCommon, label: string, name: string): Promise<{ conn: Conn; owned: boolean }> {
  if (common.connection !== undefined) return { conn: common.connection, owned: false };
  const conn = newClient(common, name);
  await connectOrThrow(conn, label, common.url);
  return { conn, owned: true };
}

/** A connection of our own beside the command one (pub/sub, blocking reads): a duplicate of it, with our settings. */
export async function openDuplicate(common: ResolvedCommon, base: Conn, owned: boolean, label: string, name: string): Promise<Conn> {
  const conn = owned ? newClient(common, name) : base.duplicate({ disableOfflineQueue: true, RESP: 2, commandOptions: BUFFERS, name });
  await connectOrThrow(conn, label, common.url);
  return conn;
}

function newClient(common: ResolvedCommon, name: string): Conn {
  const { socket, ...rest } = common.connectOptions;
  let connected = false;
  const strategy = socket?.reconnectStrategy;
  const conn = createClient({
    name,
    ...rest,
    url: common.url,
    RESP: 2,
    disableOfflineQueue: true,
    commandOptions: BUFFERS,
    socket: {
      ...socket,
      reconnectStrategy: (retries: number, cause: Error) => {
        if (!connected && retries >= FIRST_CONNECT_ATTEMPTS) return cause;
        if (strategy === undefined) return Math.min(2 ** retries * 50, 2_000) + Math.floor(Math.random() * 100);
        return typeof strategy === 'function' ? strategy(retries, cause) : strategy;
      },
    },
  } as never) as unknown as Conn;
  conn.on('ready', () => void (connected = true));
  return conn;
}

async function connectOrThrow(conn: Conn, label: string, url: string): Promise<void> {
  // Without a listener the client library's 'error' events would crash the process; the transports watch 'ready' and 'reconnecting' instead.
  conn.on('error', () => {});
  try {
    await conn.connect();
  } catch (error) {
    throw new TransportError(`${label}: could not connect to ${url}: ${(error as Error).message}`, { layer: 'redis', reason: 'connect-failed', neverSent: true, cause: error });
  }
}

/** True for the client library's "not connected" errors: the command never left. */
export function isOffline(error: unknown): boolean {
  return error instanceof ClientOfflineError || error instanceof ClientClosedError;
}

/** The error a command met while the server was unreachable, as the core's retryable one. */
export function offline(label: string, what: string, error: unknown): ConnectionClosedError {
  return new ConnectionClosedError(`${label}: cannot send ${what}: the Redis server is unreachable (the client library is reconnecting)`, {
    neverSent: true,
    layer: 'redis',
    reason: 'disconnected',
    cause: error,
  });
}

/** A reply's text (a Buffer, or a string from a borrowed connection). */
export function text(value: unknown): string {
  return Buffer.isBuffer(value) ? value.toString('utf8') : String(value);
}

/** Closes a connection of ours: gracefully when it is up, at once when it is not (nothing could be flushed). */
export async function quit(conn: Conn | undefined): Promise<void> {
  if (conn === undefined || !conn.isOpen) return;
  if (!conn.isReady) {
    conn.destroy();
    return;
  }
  await conn.close().catch(() => conn.destroy());
}
