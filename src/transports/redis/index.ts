/**
 * mcp-layers/redis: MCP over Redis Streams with consumer groups, on the official client (@redis/client).
 *
 *   new RedisClientTransport({ servers, service })   a client transport to a service's workers
 *   serveRedis({ servers, service, onsession })       a worker: one server Transport per session
 *
 * The same model, options and errors as mcp-layers/nats; docs/scale-out.md describes the
 * keys, the delivery guarantees and the failure table.
 */
export { RedisClientTransport, type RedisClientTransportOptions } from './client.ts';
export { RedisWorker, serveRedis, type RedisWorkerOptions } from './worker.ts';
export { RedisServerTransport } from './session.ts';
export type { RedisCommonOptions, RedisConnectionLike, RedisConnectOptions } from './options.ts';
export type { HeartbeatOptions as RedisHeartbeatOptions, RecoverOptions as RedisRecoverOptions } from '../broker/options.ts';
