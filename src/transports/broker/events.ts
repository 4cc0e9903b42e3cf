/**
 * What the broker transports report beyond the events every transport shares
 * (`connection`, `reconnect`, `heartbeat` on the LayerEvents bus). They travel on a bus
 * of their own (`natsEvents`, `redisEvents`): LayerEvents is exhaustive in the logging
 * and metrics layers, so a transport cannot add to it without them (docs/scale-out.md
 * says what merging them takes). Both brokers publish the same events, so one handler
 * serves either.
 */
import type { RequestId } from '../../core/jsonrpc.ts';

/** `Via` names the broker's two paths: its durable one (`stream`) and its fire-and-forget one (core NATS, Redis pub/sub). */
export interface BrokerEvents<Via extends string = string> {
  /** A message went to the broker: `stream` (stored by it, acknowledged to the publisher) or the fire-and-forget path. */
  published: { subject: string; via: Via; bytes: number; method: string | undefined };
  /**
   * A worker received a request the broker had delivered before (its previous worker
   * stopped before acknowledging it): `delivered` again when idempotent, else `refused`
   * with one error response.
   */
  redelivered: { id: RequestId; method: string; deliveryCount: number; outcome: 'delivered' | 'refused' };
  /**
   * A duplicate was dropped: the broker's window refused a second publish of the same
   * client and wire id (`stream`), a worker dropped a request it had answered or holds
   * (`worker`), or a client dropped a second answer to one request (`client`).
   */
  deduplicated: { where: 'stream' | 'worker' | 'client'; id: RequestId | undefined };
  /** A worker joined or left the service (seen by the worker itself, or by a client that lost its worker). */
  worker: { state: 'joined' | 'left'; worker: string; reason?: string };
  /** A session opened on a worker (a first initialize or a replayed one), or closed. */
  session: { state: 'opened' | 'replayed' | 'closed'; sessionId: string; reason?: string };
  /** Bytes on a subject or key that are not one of our messages; dropped, and answered when the request could be identified. */
  garbage: { subject: string; problem: string; answered: boolean };
}
