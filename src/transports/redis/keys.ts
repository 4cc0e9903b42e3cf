/**
 * Where a service's traffic goes on Redis: stream keys, channels and the consumer group,
 * all derived from the prefix and the service name, so every process finds the same
 * routing from its configuration alone. The service is a hash tag (`{service}`), so that
 * on a cluster every key a script touches lives on one node.
 *
 *   <prefix>:{<service>}:req          stream: initialize (new and replayed sessions) and
 *                                     sessionless requests; group `workers`, read by every
 *                                     worker that has room
 *   <prefix>:{<service>}:s:<session>  stream: everything a client sends in one session;
 *                                     group `workers`, read by the worker holding it
 *   <prefix>:{<service>}:config       hash: what the workers set (window, ages, maxPayload)
 *   <prefix>:{<service>}:d:<key>      a request's deduplication key, for dedupWindowMs
 *   <prefix>:{<service>}:ctl          pub/sub, every worker: cancellations of sessionless
 *                                     requests; its subscribers are the workers serving
 *   <prefix>:{<service>}:w:<worker>   pub/sub: one worker's liveness probe
 *   <prefix>:{<service>}:workers      pub/sub: workers announce that they joined or left
 *   <prefix>:{<service>}:c:<client>   pub/sub: everything workers send to one client
 *   <prefix>:{<service>}:h:<session>  string, expires after sessionIdleMs: a session's
 *                                     handshake, kept by the worker holding it, read by any
 *                                     client of the session
 */

export interface Keys {
  readonly service: string;
  readonly requests: string;
  readonly config: string;
  readonly control: string;
  readonly announcements: string;
  /** What every client channel starts with (a worker answers nowhere else). */
  readonly clientPrefix: string;
  session(id: string): string;
  /** The session a stream key belongs to, or undefined for another key. */
  sessionOf(key: string): string | undefined;
  dedup(key: string): string;
  worker(id: string): string;
  client(id: string): string;
  handshake(id: string): string;
}

/** The one consumer group of every stream of a service. */
export const GROUP = 'workers';

export function keysFor(prefix: string, service: string): Keys {
  const base = `${prefix}:{${service}}`;
  const sessions = `${base}:s:`;
  return {
    service,
    requests: `${base}:req`,
    config: `${base}:config`,
    control: `${base}:ctl`,
    announcements: `${base}:workers`,
    clientPrefix: `${base}:c:`,
    session: (id) => `${sessions}${id}`,
    sessionOf: (key) => (key.startsWith(sessions) ? key.slice(sessions.length) : undefined),
    dedup: (key) => `${base}:d:${key}`,
    worker: (id) => `${base}:w:${id}`,
    client: (id) => `${base}:c:${id}`,
    handshake: (id) => `${base}:h:${id}`,
  };
}

/** The stream field that holds the message itself; every other field is a header. */
export const MESSAGE_FIELD = 'm';
/** On a probe's answer: the probe it answers, and whether the worker holds the session. */
export const PROBE_HEADER = 'Mcp-Probe';
export const HOLDS_HEADER = 'Mcp-Holds';
