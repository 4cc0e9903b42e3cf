/**
 * The server transport a worker gives the application — one per 2025-era session, or
 * one per sessionless (2026-07-28) request. The worker feeds it what the broker delivers
 * and publishes what it sends to a client's inbox.
 *
 * Every request it delivers stays unacknowledged on the broker until the application's
 * response to it is published: a worker that dies holding it leaves it to be redelivered.
 *
 * A session may have several clients (gateway replicas that each serve some of the
 * downstream client's requests): what answers a request — its response, and whatever the
 * application sends with `relatedRequestId` naming it (progress, logs, sampling) — goes
 * to the inbox of the client that sent that request; anything else goes to `inbox`, the
 * session's listener (worker.ts decides which client that is).
 */
import { ConnectionClosedError } from '../../core/errors.ts';
import type { EventBus } from '../../core/events.ts';
import { isRequest, type JSONRPCMessage, type RequestId } from '../../core/jsonrpc.ts';
import type { MessageExtraInfo, Transport, TransportSendOptions } from '../../core/transport.ts';
import { type EventFanout, WIRE_CONTROL, type WireControl } from '../../core/wire.ts';
import { deliverTo, reportTo } from '../../core/callbacks.ts';

/** The broker's message that carried a request to this worker, and what the worker may do with it. */
export interface Delivery {
  /** Done with: the broker forgets it. */
  ack(): void;
  /** Given back: the next worker may take it now (it runs there only if idempotent). */
  handBack(): void;
  /** The broker delivered it before (a worker stopped before acknowledging it). */
  readonly redelivered: boolean;
  readonly deliveryCount: number;
}

/** A request delivered and not answered yet, and the broker's message that carried it. */
export interface Held<D extends Delivery = Delivery> {
  delivery: D;
  readonly method: string;
  /** The deduplication key (client and wire id). */
  readonly key: string;
  /** The inbox of the client that sent it: its answer, and what relates to it, go there. */
  readonly reply: string;
  /** The id its client sent it under, when the application sees another (a second client's request). */
  readonly wireId?: RequestId;
}

/** What a transport asks of its worker. */
export interface WorkerLink {
  /** Publishes to a client's inbox; a response too large for the broker is replaced by an error that says so. */
  publish(transport: BrokerServerTransport, message: JSONRPCMessage, inbox: string): void | Promise<void>;
  /** The application answered a held request: publish the answer, then acknowledge the request. */
  answer(transport: BrokerServerTransport, held: Held, response: JSONRPCMessage): void | Promise<void>;
  /** The application closed the transport. */
  closed(transport: BrokerServerTransport): void;
}

export interface ServerTransportInit {
  readonly sessionId: string | undefined;
  readonly clientId: string;
  readonly inbox: string;
  readonly fanout: EventFanout;
  /** `nats`, `redis`: the layer errors name, and the wire control's kind. */
  readonly layer: string;
  /** `mcp-layers/nats worker`: what errors start with. */
  readonly label: string;
}

/** Worker-only members (symbols keep them off the application's autocomplete). */
export const deliver = Symbol('deliver');
export const end = Symbol('end');
export const held = Symbol('held');

export class BrokerServerTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage, extra?: MessageExtraInfo) => void;
  /** The session's id (chosen by the client, kept across workers); undefined for a sessionless request. */
  sessionId: string | undefined;
  /** The client transport that opened the session (`Mcp-Client`). */
  readonly clientId: string;
  /** The session's listener: where what answers no request goes (the client that opened the session, until worker.ts moves it). */
  inbox: string;
  /** The worker's bus: `connection` and whatever layers publish through the wire control. */
  readonly events: EventBus;
  readonly [WIRE_CONTROL]: WireControl;

  readonly #link: WorkerLink;
  readonly #layer: string;
  readonly #label: string;
  readonly #held = new Map<RequestId, Held>();
  #buffer: Array<[JSONRPCMessage, MessageExtraInfo | undefined]> | undefined = [];
  #started = false;
  #closed = false;

  constructor(link: WorkerLink, init: ServerTransportInit) {
    this.#link = link;
    this.#layer = init.layer;
    this.#label = init.label;
    this.sessionId = init.sessionId;
    this.clientId = init.clientId;
    this.inbox = init.inbox;
    this.events = init.fanout.primary;
    this[WIRE_CONTROL] = {
      kind: init.layer,
      acceptsBatches: false,
      compress: () => {},
      observe: (bus) => init.fanout.add(bus),
    };
  }

  /** True for the transport of one sessionless request: it closes once that request is answered. */
  get sessionless(): boolean {
    return this.sessionId === undefined;
  }

  get closed(): boolean {
    return this.#closed;
  }

  async start(): Promise<void> {
    if (this.#started) throw new Error(`${this.#label}: transport already started; note that McpServer.connect() calls start() itself`);
    this.#started = true;
    if (this.#closed) throw new ConnectionClosedError(`${this.#label}: the session ended before it started`, { neverSent: true, layer: this.#layer });
    const buffered = this.#buffer ?? [];
    this.#buffer = undefined;
    for (const [message, extra] of buffered) this.#handOver(message, extra);
  }

  async send(message: JSONRPCMessage, options?: TransportSendOptions): Promise<void> {
    if (this.#closed) throw new ConnectionClosedError(`${this.#label}: cannot send: the session is closed`, { neverSent: true, layer: this.#layer });
    const entry = 'method' in message || message.id === undefined ? undefined : this.#held.get(message.id);
    if (entry === undefined) {
      const related = options?.relatedRequestId === undefined ? undefined : this.#held.get(options.relatedRequestId);
      await this.#link.publish(this, message, related?.reply ?? this.inbox);
      return;
    }
    this.#held.delete((message as { id: RequestId }).id);
    await this.#link.answer(this, entry, entry.wireId === undefined ? message : ({ ...message, id: entry.wireId } as JSONRPCMessage));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#link.closed(this);
  }

  /** Hands a message from the broker to the application (held until start()). */
  [deliver](message: JSONRPCMessage, extra: MessageExtraInfo | undefined, entry?: Held): void {
    if (this.#closed) return;
    if (entry !== undefined && isRequest(message)) this.#held.set(message.id, entry);
    if (this.#buffer !== undefined) this.#buffer.push([message, extra]);
    else this.#handOver(message, extra);
  }

  /** The requests delivered and not answered yet. */
  get [held](): Map<RequestId, Held> {
    return this.#held;
  }

  /** Ends the transport for the worker's reason; the application's onclose runs once. */
  [end](): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#buffer = undefined;
    try {
      this.onclose?.();
    } catch (error) {
      this.#report(error);
    }
  }

  #handOver(message: JSONRPCMessage, extra: MessageExtraInfo | undefined): void {
    deliverTo(this, message, extra);
  }

  #report(error: unknown): void {
    reportTo(this, error);
  }
}
