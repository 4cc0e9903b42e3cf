/**
 * A fault-injecting link: a pair of connected transports (like the SDK's
 * InMemoryTransport) whose every message passes a rule the test sets, which can
 * deliver it, lose it, delay it, or fail the sender's send() before or after the
 * message got across. Real SDK clients and servers run on its two ends; only the wire
 * between them misbehaves on demand.
 *
 * Faults, as a real network shows them to the sender:
 * - `refuse`: send() rejects with ECONNREFUSED and nothing is delivered (the core
 *   knows the bytes never left);
 * - `reset`:  the message is delivered, then send() rejects with ECONNRESET (the bytes
 *   left; the peer may act on them);
 * - `drop`:   send() resolves, the message is never delivered;
 * - `lose`:   dropped, and the receiving end reports `onconnectionlost` — as a
 *   reconnecting transport whose connection fell — so the attempts in flight fail with
 *   a retryable error instead of waiting for a timeout;
 * - `{ delayMs }`: delivered after a delay (a timer, so fake timers drive it).
 * Delivery is asynchronous (a microtask), never synchronous re-entry.
 */
import type { JSONRPCMessage, JSONRPCRequest, RequestId } from '#core/jsonrpc.ts';
import type { MessageExtraInfo, Transport, TransportSendOptions } from '#core/transport.ts';

export type Side = 'client' | 'server';
export type Fault = 'deliver' | 'drop' | 'lose' | 'refuse' | 'reset' | { delayMs: number };
/** `answers`: for a response, the request (sent the other way, earlier) that it answers. */
export type FaultRule = (message: JSONRPCMessage, from: Side, answers?: JSONRPCRequest) => Fault | undefined;

export interface LinkCounts {
  /** send() calls per sending side (whatever their fate). */
  sent: Record<Side, number>;
  delivered: Record<Side, number>;
  dropped: number;
  refused: number;
  reset: number;
}

export class LinkEnd implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage, extra?: MessageExtraInfo) => void;
  onconnectionlost?: (error: Error) => void;
  sessionId?: string;
  readonly #link: FaultyLink;
  readonly side: Side;

  constructor(link: FaultyLink, side: Side) {
    this.#link = link;
    this.side = side;
  }

  async start(): Promise<void> {}

  send(message: JSONRPCMessage, _options?: TransportSendOptions): Promise<void> {
    return this.#link.carry(message, this.side);
  }

  async close(): Promise<void> {
    this.#link.close();
  }
}

export class FaultyLink {
  readonly client: LinkEnd;
  readonly server: LinkEnd;
  /** Decides each message's fate; undefined (or a rule returning undefined) delivers. */
  rule: FaultRule | undefined;
  /** Every message sent, with its fate, in order (off for load tests: `record = false`). */
  readonly log: Array<{ from: Side; message: JSONRPCMessage; fault: Fault }> = [];
  record = true;
  readonly counts: LinkCounts = { sent: { client: 0, server: 0 }, delivered: { client: 0, server: 0 }, dropped: 0, refused: 0, reset: 0 };
  /** The messages the link dropped or lost, in order. */
  readonly dropped: Array<JSONRPCMessage & { id?: RequestId }> = [];
  closed = false;
  readonly #lost = new AbortController();

  constructor(rule?: FaultRule) {
    this.rule = rule;
    this.client = new LinkEnd(this, 'client');
    this.server = new LinkEnd(this, 'server');
  }

  /** Aborts when the first response is dropped or lost: for layers that abandon an attempt on their own. */
  get lost(): AbortSignal {
    return this.#lost.signal;
  }

  /** Every message the client side sent, in order (any fate). */
  get wire(): JSONRPCMessage[] {
    return this.log.filter((entry) => entry.from === 'client').map((entry) => entry.message);
  }

  /** @internal */
  carry(message: JSONRPCMessage, from: Side): Promise<void> {
    if (this.closed) return Promise.reject(new Error('Not connected'));
    const fault = this.rule?.(message, from, this.#requestAnswered(message, from)) ?? 'deliver';
    this.counts.sent[from]++;
    if (this.record) this.log.push({ from, message, fault });
    const to = from === 'client' ? this.server : this.client;
    const deliver = () => {
      if (this.closed) return;
      this.counts.delivered[from]++;
      to.onmessage?.(message);
    };
    switch (fault) {
      case 'deliver':
        queueMicrotask(deliver);
        return Promise.resolve();
      case 'drop':
      case 'lose':
        this.counts.dropped++;
        this.dropped.push(message);
        if (!('method' in message)) this.#lost.abort(new Error(`the link lost the response to wire id ${String(message.id)}`));
        if (fault === 'lose') queueMicrotask(() => to.onconnectionlost?.(new Error('the link dropped a response')));
        return Promise.resolve();
      case 'refuse':
        this.counts.refused++;
        return Promise.reject(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED' }));
      case 'reset':
        this.counts.reset++;
        queueMicrotask(deliver);
        return new Promise((_, reject) => queueMicrotask(() => reject(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }))));
      default:
        setTimeout(deliver, fault.delayMs);
        return Promise.resolve();
    }
  }

  #requestAnswered(message: JSONRPCMessage, from: Side): JSONRPCRequest | undefined {
    if ('method' in message) return undefined;
    for (const entry of this.log) {
      if (entry.from !== from && 'method' in entry.message && 'id' in entry.message && entry.message.id === message.id) return entry.message as JSONRPCRequest;
    }
    return undefined;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.client.onclose?.();
    this.server.onclose?.();
  }

  /** Requests the client sent (any fate), optionally of one method. */
  requests(method?: string): JSONRPCRequest[] {
    return this.log
      .filter((entry) => entry.from === 'client' && 'method' in entry.message && 'id' in entry.message && entry.message.id !== undefined)
      .map((entry) => entry.message as JSONRPCRequest)
      .filter((request) => method === undefined || request.method === method);
  }

  /** Notifications the client sent of one method (e.g. notifications/cancelled). */
  notifications(method: string): JSONRPCMessage[] {
    return this.log
      .filter((entry) => entry.from === 'client' && 'method' in entry.message && entry.message.method === method && !('id' in entry.message && entry.message.id !== undefined))
      .map((entry) => entry.message);
  }
}

/** A rule that applies `fault` to the next `n` client requests matching `match`, then delivers. */
export function nextRequests(n: number, fault: Fault, match: (request: JSONRPCRequest) => boolean = () => true): FaultRule {
  let left = n;
  return (message, from) => {
    if (from !== 'client' || left === 0 || !('method' in message) || !('id' in message) || message.id === undefined) return undefined;
    if (!match(message as JSONRPCRequest)) return undefined;
    left--;
    return fault;
  };
}

/** A rule that applies `fault` to the server's next `n` responses (to requests matching `match`), then delivers. */
export function nextResponses(n: number, fault: Fault, match: (request: JSONRPCRequest | undefined) => boolean = () => true): FaultRule {
  let left = n;
  return (message, from, answers) => {
    if (from !== 'server' || left === 0 || 'method' in message) return undefined;
    if (!match(answers)) return undefined;
    left--;
    return fault;
  };
}

/** Matches `tools/call` of the named tool (for nextRequests and nextResponses). */
export function toolCall(name: string): (request: JSONRPCRequest | undefined) => boolean {
  return (request) => request?.method === 'tools/call' && request.params?.['name'] === name;
}

