/**
 * The names both brokers' transports agree on: what a service, a prefix or a worker id
 * may be (one rule, so a name valid for NATS is valid for Redis), the headers both sides
 * write (NATS headers, Redis stream fields and pub/sub frame headers carry the same
 * names), and the deduplication key of a request.
 */

const NAME = /^[A-Za-z0-9_-]{1,64}$/;

/** What the options' errors say a name must be. */
export const NAME_RULE = 'a name of 1 to 64 letters, digits, "_" or "-"';

/** True for a name that is safe in every broker's names: a subject token, a stream or consumer name, a key part. */
export function isName(value: unknown): value is string {
  return typeof value === 'string' && NAME.test(value);
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
  /**
   * On the session's own subject or stream: the client closed the session. From a worker to
   * a session's other clients: another client closed it.
   */
  Close: 'Mcp-Close',
  /**
   * On the session's own subject or stream, a message with no body that tells the worker
   * about this client (docs/scale-out.md, "Sessions"): `join` (it serves the session too),
   * `stream` (it holds the client's stream for what answers no request), `none` (no longer),
   * `leave` (it stopped serving the session; the session goes on).
   */
  Listen: 'Mcp-Listen',
  /** A message for the session's other clients, not for the server: the worker passes it on to them. */
  Relay: 'Mcp-Relay',
  /** JetStream's own deduplication key. */
  MsgId: 'Nats-Msg-Id',
  TraceParent: 'traceparent',
  TraceState: 'tracestate',
} as const;

export type ListenValue = 'join' | 'stream' | 'none' | 'leave';

export function isListenValue(value: unknown): value is ListenValue {
  return value === 'join' || value === 'stream' || value === 'none' || value === 'leave';
}

/** The deduplication key of a request: client and wire id (`1` and `"1"` differ). */
export function requestKey(client: string, id: string | number): string {
  return `${client}.${JSON.stringify(id)}`;
}

/** What a client inbox may look like to be answered: no wildcard, nothing a broker would read as a pattern. */
export function isInbox(value: string): boolean {
  return /^[A-Za-z0-9_.:{}-]+$/.test(value) && !value.includes('*');
}
