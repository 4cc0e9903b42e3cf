/** Validating the options both NATS sides take, and opening (or borrowing) the connection. */
import { connect, type NatsConnection, type NodeConnectionOptions } from '@nats-io/transport-node';
import { TransportError } from '../../core/errors.ts';
import type { EventBus } from '../../core/events.ts';
import { invalidOption } from '../../core/options.ts';
import { busOption, resolveNames } from '../broker/options.ts';
import type { NatsCommonOptions } from './options.ts';
import { type Subjects, subjectsFor } from './subjects.ts';

export interface ResolvedCommon {
  readonly subjects: Subjects;
  readonly servers: string | string[];
  readonly connection: NatsConnection | undefined;
  readonly connectOptions: NodeConnectionOptions;
  readonly events: EventBus;
}

export function resolveCommon(prefix: string, options: NatsCommonOptions): ResolvedCommon {
  const names = resolveNames(prefix, options);
  const servers = options.servers ?? 'nats://127.0.0.1:4222';
  if (typeof servers !== 'string' && !(Array.isArray(servers) && servers.length > 0 && servers.every((s) => typeof s === 'string'))) {
    throw invalidOption(`${prefix}.servers`, 'a NATS URL or a non-empty array of them', servers);
  }
  const connection = options.connection as NatsConnection | undefined;
  if (connection !== undefined && (typeof connection !== 'object' || connection === null || typeof connection.publish !== 'function')) {
    throw invalidOption(`${prefix}.connection`, 'a NatsConnection from @nats-io/transport-node', connection);
  }
  const connectOptions = (options.connectOptions ?? {}) as NodeConnectionOptions;
  if (typeof connectOptions !== 'object' || connectOptions === null) throw invalidOption(`${prefix}.connectOptions`, 'an object of connect() options', connectOptions);
  return {
    subjects: subjectsFor(names.prefix, names.service),
    servers,
    connection,
    connectOptions,
    events: busOption(`${prefix}.events`, options.events),
  };
}

/** The connection to use, and whether it is ours to close. */
export async function openConnection(common: ResolvedCommon, label: string, name: string): Promise<{ nc: NatsConnection; owned: boolean }> {
  if (common.connection !== undefined) return { nc: common.connection, owned: false };
  try {
    // The client library reconnects on its own (forever by default); the transports watch its status.
    // noAsyncTraces: the library otherwise builds two Errors with stack traces per publish and
    // request (17 % of a client's busy time in the scale-out bench) to give a failed request the
    // caller's stack; the transports wrap every failure in a typed error of their own, which says
    // what failed, so that stack only ever pointed into them. connectOptions can turn it back on.
    const nc = await connect({ name, maxReconnectAttempts: -1, noAsyncTraces: true, ...common.connectOptions, servers: common.servers });
    return { nc, owned: true };
  } catch (error) {
    throw new TransportError(`${label}: could not connect to ${String(common.servers)}: ${(error as Error).message}`, {
      layer: 'nats',
      reason: 'connect-failed',
      neverSent: true,
      cause: error,
    });
  }
}

/** True for the client library's "nobody is subscribed" answers: a core request's, and JetStream's when no stream exists. */
export function isNoResponders(error: unknown): boolean {
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 4; e = e.cause, depth++) {
    if (e.name === 'NoRespondersError' || e.name === 'JetStreamNotEnabled' || /no responders/i.test(e.message)) return true;
  }
  return false;
}

export function isTimeout(error: unknown): boolean {
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 4; e = e.cause, depth++) {
    if (e.name === 'TimeoutError' || /timeout/i.test(e.message)) return true;
  }
  return false;
}
