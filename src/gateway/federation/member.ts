/**
 * One upstream of several, in one session: its own wrapped transport (its own stack —
 * breaker, concurrency — built once per gateway and shared by every session, as the one
 * upstream's is), its handshake, and whether it is up. A member that failed to start or
 * whose transport closed is down: it is tried again later with backoff (cockatiel), on
 * the next list request at the earliest (federated-transport.ts).
 */
import { ExponentialBackoff, type IBackoff } from 'cockatiel';
import { asError, ConnectionClosedError, toErrorObject, TransportError } from '../../core/errors.ts';
import type { EventBus } from '../../core/events.ts';
import { isResponse, type JSONRPCMessage, type JSONRPCParams, type JSONRPCResponse, type RequestId } from '../../core/jsonrpc.ts';
import type { Layer } from '../../core/layer.ts';
import { type LayeredTransport, wrap } from '../../core/wrap.ts';
import { type ChildExit, describeExit } from '../child.ts';
import type { GatewayLogger } from '../logger.ts';
import type { Upstream } from '../upstream.ts';
import { type WrapSettings, wrapOptionsOf } from '../wrap-options.ts';
import type { Filters } from './filters.ts';

/** What the gateway knows of one upstream of several: built once, shared by every session. */
export interface MemberSpec {
  /** Its name in `upstreams`: the prefix of its names, and `upstream:<name>` in metrics and logs. */
  readonly name: string;
  readonly upstream: Upstream;
  readonly layers: readonly Layer[];
  readonly filters: Filters;
  /** Its section's idempotency lists and maxDepth (wrap-options.ts). */
  readonly wrapOptions: WrapSettings;
}

/** The `transport` label of a member's metrics and log records (the one upstream's is `upstream`). */
export function memberTransportName(name: string): string {
  return `upstream:${name}`;
}

export type MemberState = 'idle' | 'starting' | 'up' | 'down';

/** The first wait before a down member is tried again, and the longest. */
const RETRY = { initialDelay: 1_000, maxDelay: 30_000 };

export class Member {
  readonly spec: MemberSpec;
  /** Its `initialize` result while it is up. */
  initialized: Record<string, unknown> | undefined;
  /** Messages it sends that are not answers to the federation's own requests. */
  onmessage: (message: JSONRPCMessage) => void = () => {};
  /** It went down (its transport closed) after it was up. */
  ondown: () => void = () => {};

  readonly #session: string;
  readonly #events: EventBus;
  readonly #log: GatewayLogger;
  readonly #pending = new Map<RequestId, (response: JSONRPCResponse) => void>();
  #transport: LayeredTransport | undefined;
  #state: MemberState = 'idle';
  #why: string | undefined;
  #nextId = 1;
  #backoff: IBackoff<unknown> | undefined;
  #retryAt = 0;

  constructor(spec: MemberSpec, session: string, events: EventBus, logger: GatewayLogger) {
    this.spec = spec;
    this.#session = session;
    this.#events = events;
    this.#log = logger.child({ upstream: spec.name });
  }

  get name(): string {
    return this.spec.name;
  }

  get state(): MemberState {
    return this.#state;
  }

  /** Why it is down, for the errors that say so. */
  get why(): string {
    return this.#why ?? 'it has not started';
  }

  /** Down, and its backoff has passed: worth another try. */
  get due(): boolean {
    return this.#state === 'down' && Date.now() >= this.#retryAt;
  }

  capability(name: string): Record<string, unknown> | undefined {
    const capabilities = this.initialized?.['capabilities'] as Record<string, unknown> | undefined;
    const value = capabilities?.[name];
    return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : undefined;
  }

  /**
   * Starts its transport and sends `initialize` with the client's params; resolves with
   * its answer (an error when it could not start), never rejects. Up after a result.
   */
  async connect(params: JSONRPCParams | undefined): Promise<JSONRPCResponse> {
    this.#state = 'starting';
    let transport: LayeredTransport;
    try {
      // Wrapped and started in the same turn: layers sharing the event bus attribute the start to it.
      transport = wrap(this.spec.upstream.create(this.#session), this.spec.layers, {
        name: memberTransportName(this.spec.name),
        events: this.#events,
        ...wrapOptionsOf(this.spec.wrapOptions),
      });
      this.#transport = transport;
      transport.onmessage = (message) => this.#receive(message);
      transport.onerror = (error) => this.#log.debug(`upstream ${this.name}: ${error.message}`, { event: 'upstream-error' });
      transport.onclose = () => this.#closed(transport);
      await transport.start();
    } catch (error) {
      return this.#failed(`it could not be started: ${asError(error).message}`, 'initialize');
    }
    const response = await this.request('initialize', params);
    if ('error' in response) return this.#failed(`its initialize failed: ${response.error.message}`, 'initialize', response);
    const result = response.result;
    this.initialized = result;
    if (typeof result['protocolVersion'] === 'string') transport.setProtocolVersion(result['protocolVersion']);
    this.#state = 'up';
    this.#why = undefined;
    this.#backoff = undefined;
    return response;
  }

  /** A request of the federation's own (fan-out, list pages): its answer, or an error response when the member cannot take it. */
  request(method: string, params?: JSONRPCParams): Promise<JSONRPCResponse> {
    const id = `federation-${this.#nextId++}`;
    const transport = this.#transport;
    if (transport === undefined || (this.#state !== 'up' && this.#state !== 'starting')) return Promise.resolve(errorResponse(id, this.unavailable(method)));
    return new Promise((resolve) => {
      this.#pending.set(id, resolve);
      transport.send({ jsonrpc: '2.0', id, method, ...(params === undefined ? {} : { params }) }).catch((error: unknown) => {
        if (this.#pending.delete(id)) resolve(errorResponse(id, error));
      });
    });
  }

  /** Passes a message on (a routed request, a notification, an answer to its request); rejects when it cannot. */
  send(message: JSONRPCMessage): Promise<void> {
    const transport = this.#transport;
    if (transport === undefined || this.#state !== 'up') return Promise.reject(this.unavailable('method' in message ? message.method : 'the answer'));
    return transport.send(message);
  }

  /** What a request routed to it is answered with while it is down. */
  unavailable(method: string): TransportError {
    return new TransportError(`The upstream "${this.name}" is unavailable (${this.why}); ${method} was not sent to it. The other upstreams keep serving.`, {
      layer: 'gateway',
      reason: 'upstream-unavailable',
      neverSent: true,
      data: { upstream: this.name },
    });
  }

  async close(): Promise<void> {
    const transport = this.#transport;
    this.#transport = undefined;
    this.#state = 'down';
    this.#why ??= 'the session closed';
    await transport?.close().catch(() => {});
  }

  #receive(message: JSONRPCMessage): void {
    if (isResponse(message) && message.id !== undefined) {
      const resolve = this.#pending.get(message.id);
      if (resolve !== undefined) {
        this.#pending.delete(message.id);
        return resolve(message);
      }
    }
    this.onmessage(message);
  }

  #closed(transport: LayeredTransport): void {
    if (this.#transport !== transport) return;
    this.#transport = undefined;
    const exit = (transport.inner as { exit?: ChildExit }).exit;
    const wasUp = this.#state === 'up';
    this.#down(exit === undefined ? 'its connection closed' : `it ${describeExit(exit)}`);
    for (const [id, resolve] of this.#pending) resolve(errorResponse(id, new ConnectionClosedError(`The upstream "${this.name}" closed`, { layer: 'gateway', reason: 'upstream-closed' })));
    this.#pending.clear();
    if (wasUp) {
      this.#log.warn(`upstream ${this.name} is down: ${this.why}; its entries leave the lists and the other upstreams keep serving`, { event: 'upstream-down' });
      this.ondown();
    }
  }

  #failed(why: string, method: string, response?: JSONRPCResponse): JSONRPCResponse {
    this.#down(why);
    this.#log.warn(`upstream ${this.name} is down: ${why}`, { event: 'upstream-down' });
    const transport = this.#transport;
    this.#transport = undefined;
    void transport?.close().catch(() => {});
    return response ?? errorResponse('initialize', this.unavailable(method));
  }

  #down(why: string): void {
    this.#state = 'down';
    this.initialized = undefined;
    this.#why = why;
    this.#backoff = this.#backoff === undefined ? new ExponentialBackoff(RETRY).next() : this.#backoff.next(undefined);
    this.#retryAt = Date.now() + this.#backoff.duration;
  }
}

export function errorResponse(id: RequestId, error: unknown): JSONRPCResponse {
  return { jsonrpc: '2.0', id, error: toErrorObject(error, 0) };
}
