/**
 * One gateway session: a downstream transport (the client talks to us) and an upstream
 * transport (we talk to the server), both wrapped, and this small application between
 * them that forwards every message as it is.
 *
 * The wrapped transports do the hard parts: wire ids and correlation (a downstream
 * request id comes back on its upstream response; an upstream server's request id
 * comes back on the downstream client's answer), cancellation translated to live wire
 * ids, ordering, exactly one response per request. What is left here:
 *
 *   - start the upstream on the first message (a child process only for a session that
 *     says something), holding what arrives meanwhile;
 *   - tell the upstream transport the negotiated protocol version (the HTTP client
 *     sends it as a header), and let the downstream HTTP transport accept it;
 *   - put what the upstream server sends (progress, logs, sampling, elicitation) on the
 *     downstream HTTP stream of the request it belongs to — by progress token when
 *     there is one, else the oldest request still in flight, else the session's
 *     standalone stream (stdio carries no such relation; docs/gateway.md);
 *   - answer downstream requests itself when the upstream cannot (it failed to start,
 *     it closed, the gateway is shutting down), so no request is lost silently;
 *   - end both sides together, flushing answers first.
 */
import { asError, ConnectionClosedError, McpLayersError, toErrorObject, TransportError } from '../errors.ts';
import {
  CANCELLED,
  isRequest,
  isResponse,
  type JSONRPCMessage,
  type JSONRPCNotification,
  type JSONRPCRequest,
  type JSONRPCResponse,
  PROGRESS,
  type RequestId,
} from '../jsonrpc.ts';
import type { TransportSendOptions } from '../transport.ts';
import type { LayeredTransport } from '../wrap.ts';
import type { GatewayLogger } from './logger.ts';

/** Protocol versions the SDK's HTTP server transport accepts in `Mcp-Protocol-Version` by default. */
const SDK_SUPPORTED_VERSIONS = ['2025-11-25', '2025-06-18', '2025-03-26', '2024-11-05', '2024-10-07'];

export type CloseReason = 'downstream-closed' | 'upstream-closed' | 'upstream-failed' | 'idle' | 'shutdown';

export interface ProxySessionOptions {
  /** A label for logs (the downstream session id once known, else a local one). */
  readonly id: string;
  readonly listener: 'http' | 'websocket';
  readonly downstream: LayeredTransport;
  /**
   * Makes the upstream transport, wrapped — called when the session first has something
   * to send. Wrapping and starting happen in the same turn, which is what lets layers that
   * share an event bus across sessions attribute each `start` to its own transport.
   */
  readonly openUpstream: () => LayeredTransport;
  readonly logger: GatewayLogger;
  /** Closes the downstream side (the gateway picks how: a WebSocket close code, an HTTP session end). */
  readonly closeDownstream: (reason: CloseReason) => Promise<void>;
  /** A session with no traffic and nothing in flight for this long is closed; undefined: never. */
  readonly idleTimeoutMs: number | undefined;
  readonly onclose: (session: ProxySession, reason: CloseReason) => void;
}

interface DownstreamRequest {
  readonly method: string;
  readonly progressToken: unknown;
}

type UpstreamState = 'idle' | 'starting' | 'ready' | 'failed' | 'closed';

export class ProxySession {
  readonly listener: 'http' | 'websocket';
  readonly downstream: LayeredTransport;
  readonly openedAt = Date.now();

  readonly #options: ProxySessionOptions;
  readonly #log: GatewayLogger;
  /** Downstream requests forwarded upstream and not yet answered, oldest first. */
  readonly #inFlight = new Map<RequestId, DownstreamRequest>();
  readonly #byProgressToken = new Map<unknown, RequestId>();
  /** Upstream server requests forwarded downstream: the downstream request each was put with. */
  readonly #serverRequests = new Map<RequestId, RequestId | undefined>();
  /** Writes to the downstream still going: answered before the downstream closes. */
  readonly #writes = new Set<Promise<unknown>>();
  #upstreamState: UpstreamState = 'idle';
  #held: JSONRPCMessage[] = [];
  #draining = false;
  #closed: Promise<void> | undefined;
  #lastActivity = performance.now();
  #idleTimer: NodeJS.Timeout | undefined;
  #drained: (() => void) | undefined;
  #id: string;
  #upstream: LayeredTransport | undefined;
  #closedWhileStarting = false;

  constructor(options: ProxySessionOptions) {
    this.#options = options;
    this.#id = options.id;
    this.listener = options.listener;
    this.downstream = options.downstream;
    this.#log = options.logger.child({ session: options.id });
    const { downstream } = options;
    downstream.onmessage = (message) => this.#fromDownstream(message);
    downstream.onerror = (error) => this.#log.debug(`downstream: ${error.message}`, { event: 'downstream-error' });
    downstream.onclose = () => void this.close('downstream-closed');
    this.#armIdleTimer();
  }

  /** The gateway's label for this session in logs and events (`local-1`, `local-2`…). */
  get id(): string {
    return this.#id;
  }

  /** The downstream session's `Mcp-Session-Id` (HTTP), once the transport has one. */
  get sessionId(): string | undefined {
    return this.downstream.sessionId;
  }

  /** Downstream requests waiting for the upstream's answer. */
  get inFlight(): number {
    return this.#inFlight.size;
  }

  get closed(): boolean {
    return this.#closed !== undefined;
  }

  /** The upstream transport, once the session has started it. */
  get upstream(): LayeredTransport | undefined {
    return this.#upstream;
  }

  /**
   * Stops forwarding new downstream requests (they are answered with an error saying the
   * gateway is shutting down); everything in flight carries on. Resolves when nothing is.
   */
  drain(): Promise<void> {
    this.#draining = true;
    if (this.#inFlight.size === 0 || this.closed) return Promise.resolve();
    return new Promise<void>((resolve) => (this.#drained = resolve));
  }

  /**
   * Ends what is still in flight: each request is cancelled upstream and answered
   * downstream with an error that says why. Then closes the session.
   */
  async abort(reason: string): Promise<void> {
    // A snapshot: answering a request removes it from the map.
    for (const [id, request] of Array.from(this.#inFlight)) {
      if (this.#upstream !== undefined && this.#upstreamState === 'ready') {
        this.#upstream.send({ jsonrpc: '2.0', method: CANCELLED, params: { requestId: id, reason } }).catch(() => {});
      }
      this.#answer(id, new ConnectionClosedError(`${request.method}: ${reason}; the upstream server may or may not have completed the request`, { layer: 'gateway', reason: 'shutdown' }));
    }
    await this.close('shutdown');
  }

  /** Closes both sides once (answers already on their way are written first). */
  close(reason: CloseReason): Promise<void> {
    if (this.#closed !== undefined) return this.#closed;
    this.#closed = (async () => {
      clearTimeout(this.#idleTimer);
      this.#drained?.();
      const level = reason === 'upstream-closed' || reason === 'upstream-failed' ? 'warn' : 'info';
      this.#log.log(level, `session closed (${reason})`, {
        event: 'session-close',
        reason,
        in_flight: this.#inFlight.size,
        ...(this.sessionId === undefined ? {} : { mcp_session_id: this.sessionId }),
      });
      if (this.#upstreamState !== 'ready') this.#failHeld(new ConnectionClosedError('The session closed before the upstream server was reached', { layer: 'gateway', reason, neverSent: true }));
      this.#upstreamState = 'closed';
      await this.#flush(2_000);
      await Promise.allSettled([this.#options.closeDownstream(reason), this.#closeUpstream()]);
      this.#options.onclose(this, reason);
    })();
    return this.#closed;
  }

  async #closeUpstream(): Promise<void> {
    const upstream = this.#upstream;
    if (upstream === undefined) return;
    // A remote upstream session is ended politely (HTTP DELETE), then the transport closed.
    const terminate = (upstream as unknown as { terminateSession?: () => Promise<void> }).terminateSession;
    if (typeof terminate === 'function' && upstream.sessionId !== undefined && !upstream.session.closed) {
      await withTimeout(terminate.call(upstream), 2_000).catch(() => {});
    }
    await upstream.close();
  }

  // --- downstream → upstream -------------------------------------------------------

  #fromDownstream(message: JSONRPCMessage): void {
    this.#touch();
    if (isRequest(message)) {
      if (this.#draining) {
        this.#answerNow(message.id, new ConnectionClosedError(`The gateway is shutting down; ${message.method} was not forwarded (retry on another instance)`, { layer: 'gateway', reason: 'shutting-down', neverSent: true, retryable: true }));
        return;
      }
      if (this.closed) {
        this.#answerNow(message.id, new ConnectionClosedError(`The session is closing; ${message.method} was not forwarded`, { layer: 'gateway', reason: 'session-closing', neverSent: true }));
        return;
      }
      const progressToken = message.params?._meta?.['progressToken'];
      this.#inFlight.set(message.id, { method: message.method, progressToken });
      if (progressToken !== undefined) this.#byProgressToken.set(progressToken, message.id);
    } else if (isResponse(message)) {
      if (message.id !== undefined) this.#serverRequests.delete(message.id);
    } else if (message.method === CANCELLED) {
      const id = message.params?.['requestId'] as RequestId | undefined;
      // The downstream transport ended the request already; no answer will be sent for it.
      if (id !== undefined) this.#settled(id);
    }
    this.#toUpstream(message);
  }

  #toUpstream(message: JSONRPCMessage): void {
    switch (this.#upstreamState) {
      case 'ready':
        return this.#sendUpstream(message);
      case 'idle':
        this.#held.push(message);
        return void this.#startUpstream();
      case 'starting':
        return void this.#held.push(message);
      default:
        if (isRequest(message)) this.#answer(message.id, new ConnectionClosedError('The upstream server is gone; the session is closing', { layer: 'gateway', reason: 'upstream-closed', neverSent: true }));
    }
  }

  #sendUpstream(message: JSONRPCMessage): void {
    (this.#upstream as LayeredTransport).send(message).catch((error: unknown) => {
      // A request always ends with an answer (the wrapped transport answers what it takes);
      // one it refused outright (closed) is answered here.
      if (isRequest(message)) this.#answer(message.id, error);
      else this.#log.debug(`could not forward ${describe(message)} upstream: ${(error as Error).message}`, { event: 'forward-failed' });
    });
  }

  async #startUpstream(): Promise<void> {
    this.#upstreamState = 'starting';
    const started = performance.now();
    try {
      const upstream = this.#options.openUpstream();
      this.#upstream = upstream;
      upstream.onmessage = (message) => this.#fromUpstream(message);
      upstream.onerror = (error) => this.#log.warn(`upstream: ${error.message}`, { event: 'upstream-error' });
      upstream.onclose = () => {
        // While starting, the failed start() says why; a close right after it is reported there.
        if (this.#upstreamState === 'starting') this.#closedWhileStarting = true;
        else void this.close(this.#upstreamState === 'ready' ? 'upstream-closed' : 'upstream-failed');
      };
      await upstream.start();
    } catch (error) {
      if (this.closed) return;
      this.#upstreamState = 'failed';
      const cause = error instanceof Error ? error : new Error(String(error));
      this.#log.error(`upstream failed to start: ${cause.message}`, { event: 'upstream-start-failed' });
      this.#failHeld(new TransportError(`The upstream server could not be reached: ${cause.message}`, { layer: 'gateway', reason: 'upstream-unavailable', neverSent: true, cause }));
      void this.close('upstream-failed');
      return;
    }
    if (this.closed) return;
    if (this.#closedWhileStarting) {
      this.#upstreamState = 'failed';
      this.#failHeld(new TransportError('The upstream server closed the connection as it started', { layer: 'gateway', reason: 'upstream-unavailable', neverSent: true }));
      void this.close('upstream-failed');
      return;
    }
    this.#log.debug('upstream started', { event: 'upstream-start', duration_ms: Math.round(performance.now() - started) });
    this.#upstreamState = 'ready';
    const held = this.#held;
    this.#held = [];
    for (const message of held) this.#sendUpstream(message);
  }

  #failHeld(error: Error): void {
    const held = this.#held;
    this.#held = [];
    for (const message of held) if (isRequest(message)) this.#answer(message.id, error);
  }

  // --- upstream → downstream -------------------------------------------------------

  #fromUpstream(message: JSONRPCMessage): void {
    this.#touch();
    if (isResponse(message)) {
      if (message.id === undefined) return;
      const request = this.#inFlight.get(message.id);
      if (request?.method === 'initialize' && 'result' in message) this.#negotiated(message.result['protocolVersion']);
      this.#settled(message.id);
      this.#write(this.downstream.send(message), message);
      return;
    }
    const options = this.#relatedOptions(message);
    if (isRequest(message)) this.#serverRequests.set(message.id, options?.relatedRequestId);
    else if (message.method === CANCELLED) this.#serverRequests.delete(message.params?.['requestId'] as RequestId);
    this.#write(this.downstream.send(message, options), message);
  }

  /** Which downstream request an upstream message belongs with (its HTTP stream). */
  #relatedOptions(message: JSONRPCRequest | JSONRPCNotification): TransportSendOptions | undefined {
    let related: RequestId | undefined;
    if (message.method === PROGRESS) {
      related = this.#byProgressToken.get(message.params?.['progressToken']);
    } else if (message.method === CANCELLED) {
      related = this.#serverRequests.get(message.params?.['requestId'] as RequestId);
    } else {
      // stdio carries no relation: the oldest request in flight is the likeliest (and its stream the longest-lived).
      for (const [id, request] of this.#inFlight) {
        if (request.method !== 'initialize') {
          related = id;
          break;
        }
      }
    }
    return related !== undefined && this.#inFlight.has(related) ? { relatedRequestId: related } : undefined;
  }

  #negotiated(version: unknown): void {
    if (typeof version !== 'string') return;
    // The upstream HTTP client sends it as Mcp-Protocol-Version from now on.
    this.#upstream?.setProtocolVersion(version);
    // The downstream HTTP transport checks that header against the versions it knows.
    if (!SDK_SUPPORTED_VERSIONS.includes(version)) this.downstream.setSupportedProtocolVersions([version, ...SDK_SUPPORTED_VERSIONS]);
  }

  // --- answers ---------------------------------------------------------------------

  /** Answers a downstream request with an error the gateway decided on. */
  #answer(id: RequestId, error: unknown): void {
    if (!this.#inFlight.has(id) && !this.#heldRequest(id)) return;
    this.#settled(id);
    this.#answerNow(id, error);
  }

  #answerNow(id: RequestId, error: unknown): void {
    // Our own errors keep their code and reason; anything else is a transport failure of the upstream.
    const failure = error instanceof McpLayersError ? error : new TransportError(`The upstream could not take the request: ${asError(error).message}`, { layer: 'gateway', cause: error });
    const response: JSONRPCResponse = { jsonrpc: '2.0', id, error: toErrorObject(failure, 0) };
    this.#write(this.downstream.send(response), response);
  }

  #heldRequest(id: RequestId): boolean {
    return this.#held.some((m) => isRequest(m) && m.id === id);
  }

  /** A downstream request is over (answered or cancelled). */
  #settled(id: RequestId): void {
    const request = this.#inFlight.get(id);
    if (request === undefined) return;
    this.#inFlight.delete(id);
    if (request.progressToken !== undefined && this.#byProgressToken.get(request.progressToken) === id) this.#byProgressToken.delete(request.progressToken);
    if (this.#inFlight.size === 0 && this.#drained !== undefined) {
      const drained = this.#drained;
      this.#drained = undefined;
      drained();
    }
  }

  #write(written: Promise<void>, message: JSONRPCMessage): void {
    const tracked = written.catch((error: unknown) => {
      if (!this.downstream.session.closed) this.#log.debug(`could not deliver ${describe(message)} downstream: ${(error as Error).message}`, { event: 'deliver-failed' });
    });
    this.#writes.add(tracked);
    void tracked.finally(() => this.#writes.delete(tracked));
  }

  async #flush(ms: number): Promise<void> {
    if (this.#writes.size === 0) return;
    await withTimeout(Promise.allSettled(this.#writes), ms).catch(() => {});
  }

  // --- idle ------------------------------------------------------------------------

  #touch(): void {
    this.#lastActivity = performance.now();
  }

  #armIdleTimer(delay = this.#options.idleTimeoutMs): void {
    if (delay === undefined) return;
    this.#idleTimer = setTimeout(() => this.#checkIdle(), delay);
    this.#idleTimer.unref();
  }

  #checkIdle(): void {
    const limit = this.#options.idleTimeoutMs as number;
    if (this.closed) return;
    const quiet = performance.now() - this.#lastActivity;
    // Busy is not idle: a long tool call keeps its session whatever the timeout.
    if (this.#inFlight.size > 0 || this.#serverRequests.size > 0) return this.#armIdleTimer(limit);
    if (quiet >= limit) {
      void this.close('idle');
      return;
    }
    this.#armIdleTimer(Math.max(1, Math.ceil(limit - quiet)));
  }
}

function describe(message: JSONRPCMessage): string {
  if ('method' in message) return isRequest(message) ? `request ${message.method}` : `notification ${message.method}`;
  return `the response to ${JSON.stringify((message as JSONRPCResponse).id)}`;
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    timer.unref();
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
