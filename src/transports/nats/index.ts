/**
 * mcp-layers/nats: MCP over NATS and JetStream, on the official client (@nats-io/transport-node).
 *
 *   new NatsClientTransport({ servers, service })   a client transport to a service's workers
 *   serveNats({ servers, service, onsession })       a worker: one server Transport per session
 *
 * docs/scale-out.md describes the subjects, the delivery guarantees and the failure table.
 */
export { NatsClientTransport, type NatsClientTransportOptions, type NatsHeartbeatOptions, type NatsRecoverOptions } from './client.ts';
export { NatsWorker, serveNats, type NatsWorkerOptions } from './worker.ts';
export { NatsServerTransport } from './session.ts';
export type { NatsCommonOptions, NatsConnectionLike, NatsConnectOptions } from './options.ts';
