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
 *   <client inbox>.m / .p           core: messages to one client / probes of its liveness
 */

const NAME = /^[A-Za-z0-9_-]{1,64}$/;

/** True for a name that is safe as a subject token, a stream name and a consumer name. */
export function isName(value: unknown): value is string {
  return typeof value === 'string' && NAME.test(value);
}

export interface Subjects {
  readonly service: string;
  readonly stream: string;
  readonly requests: string;
  readonly sessionsWildcard: string;
  readonly control: string;
  readonly presence: string;
  readonly announcements: string;
  session(id: string): string;
  worker(id: string): string;
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
    session: (id) => `${base}.s.${id}`,
    worker: (id) => `${base}.w.${id}`,
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

export const Header = {
  /** The client transport that sent the message (random per transport). */
  Client: 'Mcp-Client',
  /** The client's inbox: where every answer to this message goes. */
  Reply: 'Mcp-Reply',
  Session: 'Mcp-Session-Id',
  /** On a replayed initialize: `initialized` when the client had sent notifications/initialized. */
  Replay: 'Mcp-Replay',
  /** `1` when the client's idempotency rules (invariant 3) allow running the request again. */
  Idempotent: 'Mcp-Idempotent',
  /** The worker that published a message to a client. */
  Worker: 'Mcp-Worker',
  /** On the session subject: the client closed the session. */
  Close: 'Mcp-Close',
  /** JetStream's own deduplication key. */
  MsgId: 'Nats-Msg-Id',
  TraceParent: 'traceparent',
  TraceState: 'tracestate',
} as const;

/** The stream's deduplication key of a request: client and wire id (`1` and `"1"` differ). */
export function requestKey(client: string, id: string | number): string {
  return `${client}.${JSON.stringify(id)}`;
}
