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
 *     standalone stream (stdio carries no such relation; docs/gateway.md); when there is
 *     no stream at all, hold it until one opens (an HTTP transport has nowhere to put it;
 *     the SDK's drops it silently), and answer a server request that can never be
 *     delivered with an error;
 *   - reclaim sessions nobody uses: idle, detached (an HTTP client holding no stream), or
 *     never spoken (a WebSocket that sends nothing) — each with its own timeout;
 *   - ask the session's client's policy (src/gateway/clients/) before each request goes
 *     upstream — a refused one is answered at once — and hide from its tools/list results
 *     what it may not use;
 *   - answer downstream requests itself when the upstream cannot (it failed to start,
 *     it closed, the gateway is shutting down), so no request is lost silently;
 *   - end a session whose initialize failed (HTTP: its session id must not stay usable);
 *   - say why an upstream child ended (exit code or signal, last stderr lines: child.ts),
 *     or why a supervised one is no longer restarted (a crash loop: supervised-child.ts);
 *   - end both sides together, flushing answers first;
 *   - HTTP over a broker upstream (`shared`): other gateway replicas serve the same session
 *     (docs/gateway.md, "Replicas"). The server's requests and the client's answers travel
 *     past both stacks under the server's own ids, since the answer may reach any replica;
 *     a cancellation of a request another replica holds is relayed to it; the replica
 *     holding the GET stream tells the worker so; only the client's DELETE ends the
 *     session on the broker — reclaiming or shutting down ends this replica's part of it;
 *   - one 2026-07-28 request over HTTP (`perRequest`): the session is that one exchange —
 *     its downstream transport closes once the request is answered or its client went
 *     away, and the session with it. Everything the upstream sends belongs to that
 *     request and goes on its stream; a server request is answered with an error at once
 *     (the era asks the client with an `input_required` result, and a client has nowhere
 *     to post an answer).
 */
import type { ServerResponse } from 'node:http';
import { asError, ConnectionClosedError, ErrorCode, McpLayersError, toErrorObject, TransportError } from '../core/errors.ts';
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
} from '../core/jsonrpc.ts';
import type { TransportSendOptions } from '../core/transport.ts';
import type { LayeredTransport } from '../core/wrap.ts';
import { type ChildExit, describeExit, exitData } from './child.ts';
import type { GatewayLogger } from './logger.ts';

/** HTTP: how many server messages may wait for a stream to the client at once. */
export const MAX_HELD_MESSAGES = 256;

/** Protocol versions the downstream HTTP transport accepts in `Mcp-Protocol-Version` by default (the SDK's list). */
const SDK_SUPPORTED_VERSIONS = ['2025-11-25', '2025-06-18', '2025-03-26', '2024-11-05', '2024-10-07'];

export type CloseReason =
  | 'downstream-closed'
  | 'upstream-closed'
  | 'upstream-failed'
  | 'initialize-failed'
  | 'idle'
  | 'detached'
  | 'handshake-timeout'
  | 'evicted'
  | 'shutdown';

/**
 * What carries the downstream side: the gateway's listeners, or a worker's broker
 * (mcp-layers worker: one session per 2025-era broker session, or per sessionless
 * request). Only `http` has streams to put messages on and session ids to retire.
 */
export type Listener = 'http' | 'websocket' | 'nats' | 'redis';

export interface ProxySessionOptions {
  /** A label for logs (the downstream session id once known, else a local one). */
  readonly id: string;
  readonly listener: Listener;
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
  /** HTTP: the same, for a session whose client holds no response open (no GET stream), when shorter than idleTimeoutMs. */
  readonly detachedTimeoutMs?: number | undefined;
  /** A session whose client has sent nothing at all for this long is closed, when shorter than idleTimeoutMs. */
  readonly handshakeTimeoutMs?: number | undefined;
  /**
   * HTTP: how long a server message with no stream to go on waits for one (a GET stream,
   * or a request from the client). Clients open their GET stream right after
   * initialization; this covers that gap with room to spare. Default 30 000.
   */
  readonly heldMessageTimeoutMs?: number;
  readonly onclose: (session: ProxySession, reason: CloseReason) => void;
  /** HTTP over a broker upstream: other gateway replicas may serve this session too. */
  readonly shared?: boolean;
  /**
   * A session another replica opened, adopted here: its upstream has joined it on the
   * broker already (started), and the downstream side starts initialized, at this version.
   */
  readonly adopted?: { readonly upstream: LayeredTransport; readonly protocolVersion: string | undefined };
  /** One 2026-07-28 request over HTTP: the session lives as long as its exchange (docs/gateway.md, "The 2026-07-28 era over HTTP"). */
  readonly perRequest?: boolean;
  /** Who the session's client is, and what its policy lets through (src/gateway/clients/; docs/gateway.md, "Clients and policies"). */
  readonly client?: SessionClient;
}

/** The session's client as its policy sees it: asked before each of its requests goes upstream. */
export interface SessionClient {
  /** Labels the session's log records. */
  readonly name: string;
  /**
   * Admits a request — charging the client's rate limit, taking one of its in-flight
   * slots (given back by `release`, once) — or says why not; nothing is sent then.
   */
  admit(request: JSONRPCRequest): { readonly refused: McpLayersError } | { readonly release: () => void };
  /** A result on its way to the client, without what its policy hides (tools it may not use). */
  visible(method: string, result: Record<string, unknown>): Record<string, unknown>;
}

/** What a broker client transport (the upstream of a shared session) offers the session, beyond Transport. */
interface SharedUpstream {
  divert?: (message: JSONRPCMessage) => boolean;
  onpeer?: (message: JSONRPCMessage) => void;
  send(message: JSONRPCMessage): Promise<void>;
  relay(message: JSONRPCMessage): Promise<void>;
  listen(holding: boolean): Promise<void>;
  leave(): Promise<void>;
}

/** Why a shared session closes when it is the client or the server that ended it: the session ends on the broker too. */
const ENDS_THE_SESSION: ReadonlySet<CloseReason> = new Set(['downstream-closed', 'upstream-closed', 'upstream-failed', 'initialize-failed']);

interface DownstreamRequest {
  readonly method: string;
  readonly progressToken: unknown;
  /** Gives the client's in-flight slot back. */
  readonly release: (() => void) | undefined;
}

type UpstreamState = 'idle' | 'starting' | 'ready' | 'failed' | 'closed';

export class ProxySession {
  readonly listener: Listener;
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
  /** The client's notifications (a cancellation) still being written upstream: written before the upstream closes. */
  readonly #upstreamWrites = new Set<Promise<unknown>>();
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
  /** The client has sent something (a WebSocket that never does is reclaimed early). */
  #spoke = false;
  /** The upstream has answered a request with a result (a child that exits before then failed to start). */
  #upstreamAnswered = false;
  /** HTTP: responses of this session still open (its GET stream, POSTs being answered). */
  #responses = 0;
  /** HTTP: the standalone GET stream, while it is open. */
  #standalone: ServerResponse | undefined;
  /** HTTP: server messages that had no stream to go on, oldest first. */
  #awaitingStream: Array<{ message: JSONRPCRequest | JSONRPCNotification; at: number }> = [];
  #heldTimer: NodeJS.Timeout | undefined;
  readonly #shared: boolean;
  /** Shared: the client's answers that came before the upstream was ready. */
  #rawHeld: JSONRPCMessage[] = [];
  /** Shared: whether this replica holds the client's GET stream, as last told to the worker. */
  #listening = false;

  constructor(options: ProxySessionOptions) {
    this.#options = options;
    this.#id = options.id;
    this.listener = options.listener;
    this.downstream = options.downstream;
    this.#log = options.logger.child({ session: options.id, ...(options.client === undefined ? {} : { client: options.client.name }) });
    this.#shared = options.shared === true;
    const { downstream } = options;
    downstream.onmessage = (message) => this.#fromDownstream(message);
    downstream.onerror = (error) => this.#log.debug(`downstream: ${error.message}`, { event: 'downstream-error' });
    downstream.onclose = () => void this.close('downstream-closed');
    // The client's answers to the server's requests go straight to the broker, past both stacks.
    if (this.#shared) (downstream.inner as { divert?: (message: JSONRPCMessage) => boolean }).divert = (message) => this.#fromClientRaw(message);
    const adopted = options.adopted;
    if (adopted !== undefined) {
      // Its client initialized it through another replica: it has spoken, and the upstream is there.
      this.#spoke = true;
      this.#attachUpstream(adopted.upstream);
      this.#upstreamState = 'ready';
      this.#upstreamAnswered = true;
      this.#negotiated(adopted.protocolVersion);
    }
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

  /** The session's client (its name and policy). */
  get client(): SessionClient | undefined {
    return this.#options.client;
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
   * HTTP: a response of this session is open until it closes — `standalone` for the GET
   * stream. A session whose client holds none is detached (reclaimed sooner), and server
   * messages with no stream to go on wait for the GET stream to open.
   */
  attachResponse(res: ServerResponse, standalone: boolean): void {
    this.#responses++;
    this.#touch();
    if (standalone) {
      // The SDK registers the stream before the headers go out: once they have, it can carry messages.
      const writeHead = res.writeHead;
      res.writeHead = ((...args: Parameters<typeof writeHead>) => {
        res.writeHead = writeHead;
        const written = writeHead.apply(res, args);
        if (res.statusCode === 200 && !this.closed) {
          this.#standalone = res;
          this.#listen(true);
          this.#deliverAwaiting(undefined);
        }
        return written;
      }) as typeof writeHead;
    }
    res.once('close', () => {
      this.#responses--;
      if (this.#standalone === res) {
        this.#standalone = undefined;
        this.#listen(false);
      }
      this.#touch();
      if (this.closed || this.#responses > 0) return;
      // The response that created the session ended and no initialize reached us: a layer refused it.
      if (!this.#spoke) return void this.close('initialize-failed');
      this.#log.debug('the client holds no stream open: the session is detached', { event: 'session-detached', ...(this.sessionId === undefined ? {} : { mcp_session_id: this.sessionId }) });
      this.#rearmIdleTimer();
    });
  }

  /**
   * Something is in flight. A shared session's server requests do not count: the client
   * may answer them through another replica, and reclaiming this one loses nothing.
   */
  get #busy(): boolean {
    return this.#inFlight.size > 0 || (!this.#shared && this.#serverRequests.size > 0);
  }

  /** When the client or the upstream last did something (performance.now()). */
  get lastActivity(): number {
    return this.#lastActivity;
  }

  /**
   * Whether closing this session to admit a new one loses nobody's work: nothing in
   * flight, and a client that either never spoke or (HTTP) holds no stream open.
   */
  get evictable(): boolean {
    if (this.closed || this.#busy) return false;
    return !this.#spoke || (this.listener === 'http' && this.#responses === 0);
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
      const failed = reason === 'upstream-closed' || reason === 'upstream-failed' || reason === 'initialize-failed';
      // A 2026-07-28 request's session ends with every request: that is not news.
      const level = failed ? 'warn' : this.#options.perRequest === true ? 'debug' : 'info';
      const exit = this.#upstreamExit();
      const gaveUp = this.#upstreamGaveUp();
      const why = gaveUp !== undefined ? `: ${gaveUp.message}` : exit === undefined ? '' : `: the upstream server ${describeExit(exit)}`;
      this.#log.log(level, `session closed (${reason})${why}`, {
        event: 'session-close',
        reason,
        in_flight: this.#inFlight.size,
        ...(this.sessionId === undefined ? {} : { mcp_session_id: this.sessionId }),
        ...(exit === undefined ? {} : { exit_code: exit.exitCode, signal: exit.signal, stderr: exit.stderr }),
      });
      this.#expireAwaiting(Number.POSITIVE_INFINITY, 'the session closed');
      if (this.#upstreamState !== 'ready') this.#failHeld(new ConnectionClosedError('The session closed before the upstream server was reached', { layer: 'gateway', reason, neverSent: true }));
      this.#upstreamState = 'closed';
      await this.#flush(2_000);
      await Promise.allSettled([this.#options.closeDownstream(reason), this.#closeUpstream(reason)]);
      // What never got an answer here gives its client's in-flight slots back.
      for (const id of Array.from(this.#inFlight.keys())) this.#settled(id);
      this.#options.onclose(this, reason);
    })();
    return this.#closed;
  }

  async #closeUpstream(reason: CloseReason): Promise<void> {
    const upstream = this.#upstream;
    if (upstream === undefined) return;
    // Reclaimed or shut down here: the session goes on through the other replicas.
    if (this.#shared && !ENDS_THE_SESSION.has(reason)) await this.#sharedUpstream?.leave().catch(() => {});
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
    this.#spoke = true;
    if (isRequest(message)) {
      if (this.#draining) {
        this.#answerNow(message.id, new ConnectionClosedError(`The gateway is shutting down; ${message.method} was not forwarded (retry on another instance)`, { layer: 'gateway', reason: 'shutting-down', neverSent: true, retryable: true }));
        return;
      }
      if (this.closed) {
        this.#answerNow(message.id, new ConnectionClosedError(`The session is closing; ${message.method} was not forwarded`, { layer: 'gateway', reason: 'session-closing', neverSent: true }));
        return;
      }
      const admitted = this.#options.client?.admit(message);
      if (admitted !== undefined && 'refused' in admitted) {
        this.#log.debug(admitted.refused.message, { event: 'client-refused', method: message.method, reason: admitted.refused.reason });
        this.#answerNow(message.id, admitted.refused);
        return;
      }
      const progressToken = message.params?._meta?.['progressToken'];
      this.#inFlight.set(message.id, { method: message.method, progressToken, release: admitted?.release });
      if (progressToken !== undefined) this.#byProgressToken.set(progressToken, message.id);
    } else if (isResponse(message)) {
      if (message.id !== undefined) this.#serverRequests.delete(message.id);
    } else if (message.method === CANCELLED) {
      const id = message.params?.['requestId'] as RequestId | undefined;
      if (this.#shared && id !== undefined && !this.#inFlight.has(id)) {
        // Not a request of this replica's: the one that holds it gets the cancellation.
        this.#whenUpstream((upstream) => upstream.relay(message));
        return;
      }
      // The downstream transport ended the request already; no answer will be sent for it.
      if (id !== undefined) this.#settled(id);
    }
    this.#toUpstream(message);
    // A request's response stream can carry what waited for a stream.
    if (isRequest(message) && this.#awaitingStream.length > 0) this.#deliverAwaiting(message.id);
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
    const sent = (this.#upstream as LayeredTransport).send(message).catch((error: unknown) => {
      // A request always ends with an answer (the wrapped transport answers what it takes);
      // one it refused outright (closed) is answered here.
      if (isRequest(message)) this.#answer(message.id, error);
      else this.#log.debug(`could not forward ${describe(message)} upstream: ${(error as Error).message}`, { event: 'forward-failed' });
    });
    // A 2026-07-28 client cancels and goes at once: its cancellation must be on its way before the upstream closes.
    if (!isRequest(message) && 'method' in message) {
      this.#upstreamWrites.add(sent);
      void sent.finally(() => this.#upstreamWrites.delete(sent));
    }
  }

  async #startUpstream(): Promise<void> {
    this.#upstreamState = 'starting';
    const started = performance.now();
    try {
      const upstream = this.#options.openUpstream();
      this.#attachUpstream(upstream);
      await upstream.start();
    } catch (error) {
      if (this.closed) return;
      this.#upstreamState = 'failed';
      const cause = asError(error);
      this.#log.error(`upstream failed to start: ${cause.message}`, { event: 'upstream-start-failed' });
      this.#failHeld(new TransportError(`The upstream server could not be reached: ${cause.message}`, { layer: 'gateway', reason: 'upstream-unavailable', neverSent: true, cause }));
      void this.close('upstream-failed');
      return;
    }
    if (this.closed) return;
    if (this.#closedWhileStarting) {
      this.#upstreamState = 'failed';
      const exit = this.#upstreamExit();
      this.#failHeld(
        new TransportError(`The upstream server ${exit === undefined ? 'closed the connection as it started' : describeExit(exit, 'as it started')}`, {
          layer: 'gateway',
          reason: 'upstream-unavailable',
          neverSent: true,
          ...(exit === undefined ? {} : { data: exitData(exit) }),
        }),
      );
      void this.close('upstream-failed');
      return;
    }
    this.#log.debug('upstream started', { event: 'upstream-start', duration_ms: Math.round(performance.now() - started) });
    this.#upstreamState = 'ready';
    const held = this.#held;
    this.#held = [];
    for (const message of held) this.#sendUpstream(message);
    this.#upstreamReady();
  }

  #attachUpstream(upstream: LayeredTransport): void {
    this.#upstream = upstream;
    upstream.onmessage = (message) => this.#fromUpstream(message);
    upstream.onerror = (error) => this.#log.warn(`upstream: ${error.message}`, { event: 'upstream-error' });
    upstream.onclose = () => {
      // While starting, the failed start() says why; a close right after it is reported there.
      if (this.#upstreamState === 'starting') this.#closedWhileStarting = true;
      else void this.close(this.#upstreamState === 'ready' && this.#upstreamAnswered && this.#upstreamGaveUp() === undefined ? 'upstream-closed' : 'upstream-failed');
    };
    const shared = this.#sharedUpstream;
    if (shared === undefined) return;
    // The server's requests, and its cancellations of them, go straight to the client, past both stacks.
    shared.divert = (message) => this.#fromServerRaw(message);
    shared.onpeer = (message) => this.#fromPeer(message);
  }

  /** The broker client under a shared session's upstream stack. */
  get #sharedUpstream(): SharedUpstream | undefined {
    return this.#shared ? (this.#upstream?.inner as unknown as SharedUpstream | undefined) : undefined;
  }

  /** Shared: what waited for the upstream. */
  #upstreamReady(): void {
    const raw = this.#rawHeld;
    this.#rawHeld = [];
    for (const message of raw) this.#rawToServer(message);
    if (this.#listening) this.#whenUpstream((upstream) => upstream.listen(true));
  }

  /** Shared: runs `act` on the broker client once the upstream is ready (now, if it is). */
  #whenUpstream(act: (upstream: SharedUpstream) => Promise<void>): void {
    const upstream = this.#sharedUpstream;
    if (upstream === undefined || this.#upstreamState !== 'ready') return;
    act(upstream).catch((error: unknown) => this.#log.debug(`could not reach the broker: ${asError(error).message}`, { event: 'forward-failed' }));
  }

  /** Shared: this replica holds (or no longer holds) the client's GET stream; the worker sends what answers no request to it. */
  #listen(holding: boolean): void {
    if (!this.#shared || this.#listening === holding) return;
    this.#listening = holding;
    this.#whenUpstream((upstream) => upstream.listen(holding));
  }

  /** Shared: a client's answer to a server request, which any replica may receive. */
  #fromClientRaw(message: JSONRPCMessage): boolean {
    if ('method' in message) return false;
    this.#touch();
    this.#spoke = true;
    if (message.id !== undefined) this.#serverRequests.delete(message.id);
    if (this.#upstreamState === 'ready') this.#rawToServer(message);
    else if (this.#upstreamState === 'idle' || this.#upstreamState === 'starting') this.#rawHeld.push(message);
    return true;
  }

  #rawToServer(message: JSONRPCMessage): void {
    this.#sharedUpstream?.send(message).catch((error: unknown) => this.#log.debug(`could not forward ${describe(message)} upstream: ${asError(error).message}`, { event: 'forward-failed' }));
  }

  /** Shared: the server's request (or its cancellation of one), under its own id. */
  #fromServerRaw(message: JSONRPCMessage): boolean {
    if (!('method' in message) || (!isRequest(message) && message.method !== CANCELLED)) return false;
    if (this.closed) return true;
    this.#touch();
    const options = this.#relatedOptions(message);
    if (isRequest(message)) {
      this.#serverRequests.set(message.id, options?.relatedRequestId);
      // Answered through another replica, it is never removed here: the oldest go first.
      if (this.#serverRequests.size > MAX_HELD_MESSAGES) this.#serverRequests.delete(this.#serverRequests.keys().next().value as RequestId);
    } else {
      this.#serverRequests.delete(message.params?.['requestId'] as RequestId);
    }
    if (options === undefined && this.#standalone === undefined) this.#awaitStream(message);
    else this.#write(this.#toClient(message, options), message);
    return true;
  }

  /** Shared: a message another replica relayed: a cancellation of one of this replica's requests, as if its client had sent it here. */
  #fromPeer(message: JSONRPCMessage): void {
    if (!('method' in message) || message.method !== CANCELLED) return;
    const id = message.params?.['requestId'] as RequestId | undefined;
    if (id === undefined || !this.#inFlight.has(id)) return;
    (this.downstream.inner as { receive?: (message: JSONRPCMessage) => void }).receive?.(message);
  }

  /** Sends to the client: a shared session's server requests and their cancellations past the downstream stack, the rest through it. */
  #toClient(message: JSONRPCMessage, options: TransportSendOptions | undefined): Promise<void> {
    if (this.#shared && 'method' in message && (isRequest(message) || message.method === CANCELLED)) return this.downstream.inner.send(message, options);
    return this.downstream.send(message, options);
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
      const id = message.id;
      if (id === undefined) return;
      const request = this.#inFlight.get(id);
      if ('result' in message) {
        this.#upstreamAnswered = true;
        if (request?.method === 'initialize') this.#negotiated(message.result['protocolVersion']);
        const client = this.#options.client;
        const shown = client === undefined || request === undefined ? message.result : client.visible(request.method, message.result);
        // A copy only when the client's allow-lists hid something (visible() returns the result itself otherwise).
        if (shown !== message.result) message = { ...message, result: shown };
      } else if (message.error.code === ErrorCode.ConnectionClosed) {
        const exit = this.#upstreamExit();
        if (exit !== undefined) message = { jsonrpc: '2.0', id, error: toErrorObject(this.#exitError(exit, request?.method ?? 'the request'), 0) };
      }
      this.#settled(id);
      this.#write(this.downstream.send(message), message);
      // HTTP: the session id the client was given must not stay usable (nor hold a slot) after a failed initialize.
      if (request?.method === 'initialize' && 'error' in message && this.listener === 'http') {
        // An upstream that died under it is the better answer to why.
        void this.close(this.#upstreamExit() !== undefined || this.#upstream?.session.closed === true ? 'upstream-failed' : 'initialize-failed');
      }
      return;
    }
    if (this.#options.perRequest === true && isRequest(message)) return this.#refuseServerRequest(message);
    const options = this.#relatedOptions(message);
    if (isRequest(message)) this.#serverRequests.set(message.id, options?.relatedRequestId);
    else if (message.method === CANCELLED) this.#serverRequests.delete(message.params?.['requestId'] as RequestId);
    if (options === undefined && this.listener === 'http' && this.#standalone === undefined) return this.#awaitStream(message);
    this.#write(this.downstream.send(message, options), message);
  }

  /** A 2026-07-28 request's server asked the client something: it cannot be carried, and the server hears so at once. */
  #refuseServerRequest(message: JSONRPCRequest): void {
    const error = new TransportError(
      `The gateway cannot deliver ${message.method} to a 2026-07-28 client over HTTP: the era carries no server requests (ask with an input_required result)`,
      { layer: 'gateway', reason: 'no-client-stream' },
    );
    this.#log.warn(error.message, { event: 'deliver-failed', method: message.method });
    this.#upstream?.send({ jsonrpc: '2.0', id: message.id, error: toErrorObject(error, 0) }).catch(() => {});
  }

  /** Why the upstream ended, when it is a child that exited on its own. */
  #upstreamExit(): ChildExit | undefined {
    return (this.#upstream?.inner as { exit?: ChildExit } | undefined)?.exit;
  }

  /** A supervised child's restarts ended (a crash loop): why (src/gateway/supervised-child.ts). */
  #upstreamGaveUp(): McpLayersError | undefined {
    return (this.#upstream?.inner as { gaveUp?: { error: McpLayersError } } | undefined)?.gaveUp?.error;
  }

  /** What a request in flight is answered with when the upstream child exits under it. */
  #exitError(exit: ChildExit, method: string): McpLayersError {
    const data = exitData(exit);
    const gaveUp = this.#upstreamGaveUp();
    if (gaveUp !== undefined) return new ConnectionClosedError(`${gaveUp.message}; ${method} may or may not have completed`, { layer: 'gateway', reason: gaveUp.reason, data });
    // A child that never answered anything did not start: nothing was done, and saying so is the useful part.
    if (!this.#upstreamAnswered) {
      return new TransportError(`The upstream server ${describeExit(exit, `before it answered ${method}`)}`, { layer: 'gateway', reason: 'upstream-unavailable', data });
    }
    return new ConnectionClosedError(`The upstream server ${describeExit(exit, `while ${method} was in flight`)}; it may or may not have completed`, { layer: 'gateway', reason: 'upstream-exited', data });
  }

  // --- server messages with no stream to go on (HTTP) -------------------------------

  #awaitStream(message: JSONRPCRequest | JSONRPCNotification): void {
    this.#awaitingStream.push({ message, at: performance.now() });
    this.#log.debug(`holding ${describe(message)}: the client has no stream open to carry it yet`, { event: 'held-for-stream' });
    if (this.#awaitingStream.length > MAX_HELD_MESSAGES) this.#expireAwaiting(Number.POSITIVE_INFINITY, `more than ${MAX_HELD_MESSAGES} messages waited for one`, 1);
    if (this.#heldTimer === undefined) this.#armHeldTimer(this.#heldTimeoutMs);
  }

  get #heldTimeoutMs(): number {
    return this.#options.heldMessageTimeoutMs ?? 30_000;
  }

  #deliverAwaiting(relatedRequestId: RequestId | undefined): void {
    const awaiting = this.#awaitingStream;
    this.#awaitingStream = [];
    clearTimeout(this.#heldTimer);
    this.#heldTimer = undefined;
    const options = relatedRequestId === undefined ? undefined : { relatedRequestId };
    for (const { message } of awaiting) {
      if (isRequest(message)) this.#serverRequests.set(message.id, relatedRequestId);
      this.#write(this.#toClient(message, options), message);
    }
  }

  #armHeldTimer(delay: number): void {
    this.#heldTimer = setTimeout(() => {
      this.#heldTimer = undefined;
      const limit = this.#heldTimeoutMs;
      this.#expireAwaiting(limit, `the client held no stream open and sent no request for ${limit} ms (downstream.heldMessageTimeoutMs)`);
      const oldest = this.#awaitingStream[0];
      if (oldest !== undefined) this.#armHeldTimer(Math.max(1, Math.ceil(oldest.at + limit - performance.now())));
    }, delay);
    this.#heldTimer.unref();
  }

  /**
   * Gives up on server messages that waited `olderThanMs` or longer (at most `count` of
   * them, oldest first): a request is answered upstream with an error that says why, so
   * the server never waits in silence; a notification is dropped, as MCP allows.
   */
  #expireAwaiting(olderThanMs: number, why: string, count = Number.POSITIVE_INFINITY): void {
    const now = performance.now();
    let expired = 0;
    while (expired < count && this.#awaitingStream.length > 0) {
      const oldest = this.#awaitingStream[0] as { message: JSONRPCRequest | JSONRPCNotification; at: number };
      if (olderThanMs !== Number.POSITIVE_INFINITY && now - oldest.at < olderThanMs) break;
      this.#awaitingStream.shift();
      expired++;
      const { message } = oldest;
      if (!isRequest(message)) {
        this.#log.debug(`dropped ${describe(message)}: no stream to the client (${why})`, { event: 'deliver-failed' });
        continue;
      }
      this.#serverRequests.delete(message.id);
      const error = new TransportError(`The gateway could not deliver ${message.method} to the client: ${why}`, { layer: 'gateway', reason: 'no-client-stream' });
      this.#log.warn(error.message, { event: 'deliver-failed', method: message.method });
      const answer: JSONRPCResponse = { jsonrpc: '2.0', id: message.id, error: toErrorObject(error, 0) };
      // A shared session's server request came past the stacks: its answer goes back the same way.
      (this.#shared ? this.#sharedUpstream?.send(answer) : this.#upstream?.send(answer))?.catch(() => {});
    }
    if (this.#awaitingStream.length === 0) {
      clearTimeout(this.#heldTimer);
      this.#heldTimer = undefined;
    }
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
    request.release?.();
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
    if (this.#writes.size === 0 && this.#upstreamWrites.size === 0) return;
    await withTimeout(Promise.allSettled([...this.#writes, ...this.#upstreamWrites]), ms).catch(() => {});
  }

  // --- idle ------------------------------------------------------------------------

  #touch(): void {
    this.#lastActivity = performance.now();
  }

  /**
   * Which reclaim timeout applies now: a client that never spoke gets the handshake
   * timeout, an HTTP client holding no stream the detached one, anyone else the idle one.
   */
  #reclaim(): { limit: number | undefined; reason: CloseReason } {
    const { idleTimeoutMs, detachedTimeoutMs, handshakeTimeoutMs } = this.#options;
    // The shorter of the special timeout and the idle one applies; a tie is plain idleness.
    const sooner = (limit: number | undefined, reason: CloseReason) =>
      limit !== undefined && (idleTimeoutMs === undefined || limit < idleTimeoutMs) ? { limit, reason } : { limit: idleTimeoutMs, reason: 'idle' as const };
    if (!this.#spoke) return sooner(handshakeTimeoutMs, 'handshake-timeout');
    if (this.listener === 'http' && this.#responses === 0) return sooner(detachedTimeoutMs, 'detached');
    return { limit: idleTimeoutMs, reason: 'idle' };
  }

  #armIdleTimer(delay = this.#reclaim().limit): void {
    if (delay === undefined) return;
    this.#idleTimer = setTimeout(() => this.#checkIdle(), delay);
    this.#idleTimer.unref();
  }

  /** The timeout in force may have become shorter (the client's last stream closed). */
  #rearmIdleTimer(): void {
    clearTimeout(this.#idleTimer);
    this.#checkIdle();
  }

  #checkIdle(): void {
    if (this.closed) return;
    const { limit, reason } = this.#reclaim();
    if (limit === undefined) return;
    const quiet = performance.now() - this.#lastActivity;
    // Busy is not idle: a long tool call keeps its session whatever the timeout.
    if (this.#busy) return this.#armIdleTimer(limit);
    if (quiet >= limit) {
      void this.close(reason);
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
