/**
 * The options every broker transport takes, checked once for all of them: the same
 * names, defaults and messages whichever broker carries the traffic, so swapping one for
 * the other changes the class and the URL, nothing else. Each broker adds its own
 * connection options (servers, connection, connectOptions) and its events bus.
 */
import { EventBus } from '../../core/events.ts';
import type { IdempotencyOptions } from '../../core/idempotency.ts';
import { durationOption, functionOption, integerOption, invalidOption, settingsObject, stringOption } from '../../core/options.ts';
import { isName, NAME_RULE } from './names.ts';

export interface BrokerNames {
  /** The first part of every subject, stream and key. */
  readonly prefix: string;
  readonly service: string;
}

export function resolveNames(label: string, options: { service?: unknown; prefix?: unknown }): BrokerNames {
  if (!isName(options.service)) throw invalidOption(`${label}.service`, NAME_RULE, options.service);
  const prefix = stringOption(`${label}.prefix`, options.prefix, 'mcp');
  if (!isName(prefix)) throw invalidOption(`${label}.prefix`, NAME_RULE, prefix);
  return { prefix, service: options.service };
}

/** An EventBus option: the one given, or a new bus. */
export function busOption<E extends object>(option: string, value: unknown): EventBus<E> {
  if (value !== undefined && !(value instanceof EventBus)) throw invalidOption(option, 'an EventBus', value);
  return (value as EventBus<E> | undefined) ?? new EventBus<E>();
}

export interface HeartbeatOptions {
  /** How often the session's worker is probed. Default 5 000 ms. */
  intervalMs?: number;
  /** How long a probe may go unanswered. Default 2 000 ms. */
  timeoutMs?: number;
  /** Unanswered probes in a row after which the worker is taken for gone. Default 2. ("No responders" is at once.) */
  maxMissed?: number;
}

export interface RecoverOptions {
  /** Replays of the handshake tried before the transport gives up and closes. Default 10. */
  maxRetries?: number;
  /** Wait before the second replay; doubles after each. Default 100 ms. */
  initialDelayMs?: number;
  /** Longest wait between replays. Default 5 000 ms. */
  maxDelayMs?: number;
  /** How long a replayed initialize may wait for its answer. Default 10 000 ms. */
  timeoutMs?: number;
}

export interface BrokerClientOptions extends IdempotencyOptions {
  /** Probes of the session's worker. `false` turns them off (a dead worker is then noticed by nothing). */
  heartbeat?: false | HeartbeatOptions;
  /** Re-establish a 2025-era session on another worker when its worker is gone. `false` closes the transport instead. */
  recover?: false | RecoverOptions;
  /** How long a publish waits for the broker to store it. Default 5 000 ms. */
  publishTimeoutMs?: number;
  /**
   * The id a 2025-era `initialize` opens the session under. Default a random UUID. The
   * gateway passes its downstream `Mcp-Session-Id`, so that every replica finds the
   * session on the broker from the header alone.
   */
  sessionId?: string;
  /**
   * Joins the session of this id, which another client opened, instead of opening one:
   * start() fails (`session-unknown`) when the broker keeps no handshake for it. A
   * gateway replica joins a session another replica opened (docs/scale-out.md, "Sessions").
   */
  join?: string;
}

export const CLIENT_OPTIONS = ['heartbeat', 'recover', 'publishTimeoutMs', 'sessionId', 'join', 'idempotentTools', 'nonIdempotentTools'] as const;

export interface ClientPolicies {
  readonly heartbeat: Required<HeartbeatOptions> | undefined;
  readonly recover: Required<RecoverOptions> | undefined;
  readonly publishTimeoutMs: number;
  readonly sessionId: string | undefined;
  readonly join: string | undefined;
}

export function resolveClientPolicies(label: string, options: BrokerClientOptions): ClientPolicies {
  let heartbeat: Required<HeartbeatOptions> | undefined;
  if (options.heartbeat !== false) {
    const h = settingsObject(`${label}.heartbeat`, options.heartbeat, ['intervalMs', 'timeoutMs', 'maxMissed']);
    const intervalMs = durationOption(`${label}.heartbeat.intervalMs`, h['intervalMs'], 5_000, 1);
    heartbeat = {
      intervalMs,
      timeoutMs: durationOption(`${label}.heartbeat.timeoutMs`, h['timeoutMs'], Math.min(2_000, intervalMs), 1),
      maxMissed: integerOption(`${label}.heartbeat.maxMissed`, h['maxMissed'], 2, 1),
    };
  }
  let recover: Required<RecoverOptions> | undefined;
  if (options.recover !== false) {
    const r = settingsObject(`${label}.recover`, options.recover, ['maxRetries', 'initialDelayMs', 'maxDelayMs', 'timeoutMs']);
    const initialDelayMs = durationOption(`${label}.recover.initialDelayMs`, r['initialDelayMs'], 100);
    recover = {
      maxRetries: integerOption(`${label}.recover.maxRetries`, r['maxRetries'], 10, 1),
      initialDelayMs,
      maxDelayMs: durationOption(`${label}.recover.maxDelayMs`, r['maxDelayMs'], Math.max(5_000, initialDelayMs), initialDelayMs),
      timeoutMs: durationOption(`${label}.recover.timeoutMs`, r['timeoutMs'], 10_000, 1),
    };
  }
  if (options.sessionId !== undefined && !isName(options.sessionId)) throw invalidOption(`${label}.sessionId`, NAME_RULE, options.sessionId);
  if (options.join !== undefined && !isName(options.join)) throw invalidOption(`${label}.join`, NAME_RULE, options.join);
  return { heartbeat, recover, publishTimeoutMs: durationOption(`${label}.publishTimeoutMs`, options.publishTimeoutMs, 5_000, 1), sessionId: options.sessionId, join: options.join };
}

export interface BrokerWorkerOptions<T> extends IdempotencyOptions {
  /** Called with each new session's (or sessionless request's) transport, not started yet: connect your McpServer to it. */
  onsession: (transport: T) => void | Promise<void>;
  /** Requests this worker holds at once; beyond, it takes no new sessions or sessionless requests. Default 64. */
  maxInFlight?: number;
  /** Sessions this worker holds at once; beyond, it takes no new ones. Default 1 000. */
  maxSessions?: number;
  /** Requests of one session delivered and not answered at once; the broker holds back the rest. Default 32. */
  maxInFlightPerSession?: number;
  /**
   * How long the broker waits for a delivered request to be acknowledged before another
   * worker may take it. Requests in hand are kept alive, so this is how soon a dead
   * worker's requests move, not a limit on how long one may run. Default 10 000 ms.
   */
  ackWaitMs?: number;
  /** The window in which a second publish of the same client and wire id is dropped by the broker, and a worker remembers answered requests. Default 120 000 ms. */
  dedupWindowMs?: number;
  /** Messages older than this are dropped from the streams (a session nobody resumed). Default 3 600 000 ms. */
  maxAgeMs?: number;
  /** A session's own subject or stream is released by the broker after this long without a worker reading it. Default 3 600 000 ms. */
  sessionIdleMs?: number;
  /** How often each session's client is asked whether it is still there; a client that is gone releases its session. `false`: never. Default 30 000 ms. */
  clientCheckMs?: number | false;
  /** How long close() waits for the requests in hand to be answered before it hands them back to the broker. Default 10 000 ms. */
  drainTimeoutMs?: number;
  /** This worker's id on the broker. Default a random one. */
  id?: string;
}

export const WORKER_OPTIONS = [
  'onsession',
  'maxInFlight',
  'maxSessions',
  'maxInFlightPerSession',
  'ackWaitMs',
  'dedupWindowMs',
  'maxAgeMs',
  'sessionIdleMs',
  'clientCheckMs',
  'drainTimeoutMs',
  'id',
  'idempotentTools',
  'nonIdempotentTools',
] as const;

export interface WorkerPolicies<T> {
  readonly onsession: (transport: T) => void | Promise<void>;
  readonly maxInFlight: number;
  readonly maxSessions: number;
  readonly perSession: number;
  readonly ackWaitMs: number;
  readonly dedupWindowMs: number;
  readonly maxAgeMs: number;
  readonly sessionIdleMs: number;
  readonly clientCheckMs: number | false;
  readonly drainTimeoutMs: number;
  readonly id: string | undefined;
}

export function resolveWorkerPolicies<T>(label: string, options: BrokerWorkerOptions<T>): WorkerPolicies<T> {
  const onsession = functionOption<BrokerWorkerOptions<T>['onsession']>(`${label}.onsession`, options.onsession);
  if (onsession === undefined) throw invalidOption(`${label}.onsession`, 'a function (transport) => void', undefined);
  if (options.id !== undefined && !isName(options.id)) throw invalidOption(`${label}.id`, NAME_RULE, options.id);
  return {
    onsession,
    maxInFlight: integerOption(`${label}.maxInFlight`, options.maxInFlight, 64, 1),
    maxSessions: integerOption(`${label}.maxSessions`, options.maxSessions, 1_000, 1),
    perSession: integerOption(`${label}.maxInFlightPerSession`, options.maxInFlightPerSession, 32, 1),
    ackWaitMs: durationOption(`${label}.ackWaitMs`, options.ackWaitMs, 10_000, 100),
    dedupWindowMs: durationOption(`${label}.dedupWindowMs`, options.dedupWindowMs, 120_000, 100),
    maxAgeMs: durationOption(`${label}.maxAgeMs`, options.maxAgeMs, 3_600_000, 1_000),
    sessionIdleMs: durationOption(`${label}.sessionIdleMs`, options.sessionIdleMs, 3_600_000, 1_000),
    clientCheckMs: options.clientCheckMs === false ? false : durationOption(`${label}.clientCheckMs`, options.clientCheckMs, 30_000, 10),
    drainTimeoutMs: durationOption(`${label}.drainTimeoutMs`, options.drainTimeoutMs, 10_000),
    id: options.id,
  };
}
