/**
 * Where a service's traffic goes on the broker: subject, stream and consumer names, and
 * the headers both sides write. The routing lives here, in names every process derives
 * from the service name alone, so no replica keeps a table another one would need.
 *
 *   <prefix>.<service>.req          JetStream: initialize (new and replayed sessions) and
 *                                    sessionless requests; consumer `workers`, pulled by
 *                                    every worker with free capacity
 *   <prefix>.<service>.s.<session>  JetStream: everything a client sends in one session;
 *                                    consumer `s-<session>`, pulled by the worker holding it
 *   <prefix>.<service>.ctl          core, to every worker: cancellations of sessionless requests
 *   <prefix>.<service>.presence     core request, queue group: is any worker serving?
 *   <prefix>.<service>.w.<worker>   core request: one worker's liveness probe
 *   <prefix>.<service>.workers      core: workers announce that they joined or left
 *   <prefix>.<service>.h.<session>  JetStream, stream <prefix>_<service>_handshakes (the last
 *                                    message per subject, for sessionIdleMs): a session's
 *                                    handshake, kept by the worker holding it, read by any
 *                                    client of the session
 *   <client inbox>.m / .p           core: messages to one client / probes of its liveness
 */

export { Header, isName, requestKey } from '../broker/names.ts';

export interface Subjects {
  readonly service: string;
  readonly stream: string;
  readonly requests: string;
  readonly sessionsWildcard: string;
  readonly control: string;
  readonly presence: string;
  readonly announcements: string;
  /** The stream of the sessions' handshakes, and the subjects it stores. */
  readonly handshakes: string;
  readonly handshakesWildcard: string;
  session(id: string): string;
  worker(id: string): string;
  handshake(id: string): string;
}

export function subjectsFor(prefix: string, service: string): Subjects {
  const base = `${prefix}.${service}`;
  return {
    service,
    stream: `${prefix}_${service}`,
    requests: `${base}.req`,
    sessionsWildcard: `${base}.s.*`,
    control: `${base}.ctl`,
    presence: `${base}.presence`,
    announcements: `${base}.workers`,
    handshakes: `${prefix}_${service}_handshakes`,
    handshakesWildcard: `${base}.h.*`,
    session: (id) => `${base}.s.${id}`,
    worker: (id) => `${base}.w.${id}`,
    handshake: (id) => `${base}.h.${id}`,
  };
}

/** The durable consumer every worker pulls new sessions and sessionless requests from. */
export const WORKERS_CONSUMER = 'workers';
/** Queue group of the presence responders. */
export const WORKERS_QUEUE = 'workers';

export function sessionConsumer(sessionId: string): string {
  return `s-${sessionId}`;
}

/** The subject a client's messages arrive on, and the one its liveness is probed on. */
export function clientMessages(inbox: string): string {
  return `${inbox}.m`;
}
export function clientProbe(inbox: string): string {
  return `${inbox}.p`;
}
