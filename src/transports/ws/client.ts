/**
 * WebSocketClientTransport: an MCP client transport over WebSocket (subprotocol `mcp`)
 * that survives the server going away.
 *
 * When the connection drops unexpectedly the transport stays open and reconnects with
 * cockatiel's exponential backoff:
 *
 *   - requests in flight on the dead connection are failed at once: through
 *     `onconnectionlost` when wrapped (a retryable ConnectionClosedError, so `retry`
 *     re-sends the idempotent ones), or with a synthesized JSON-RPC error response
 *     (-32000) when used bare — never left hanging, never silently re-sent;
 *   - messages sent while disconnected are queued (bounded in bytes and in time) and
 *     written, in order, once the new connection is ready — they provably never left, so
 *     sending them later executes them exactly once; a queued request that is cancelled
 *     leaves the queue. That includes messages sent after the peer went but before ws
 *     emitted `close` (the socket is closing, the reconnect not scheduled yet);
 *   - responses to the old connection's requests, and cancellations of its requests,
 *     are dropped: the peer that could use them is gone;
 *   - for 2025-era sessions (initialize handshake) the recorded `initialize` request and
 *     `notifications/initialized` are replayed first, and the replayed response is
 *     swallowed, so the application's Client never notices. 2026-07-28 sessions carry
 *     their context in every request and need no replay.
 *
 * A close the server means (1000, or a protocol/policy error such as 1002, 1007, 1008,
 * 1009) and a final refusal of the upgrade (a 4xx other than 408/425/429, a 501 or a
 * 505: the table in docs/errors.md) end the transport instead; the other 5xx, 408, 425
 * and 429 are tried again, no sooner than their Retry-After. With `onunauthorized`, a 401 upgrade or a close with an unauthorized code
 * (4401) first renews the credentials and connects again, once. `reconnect()` replaces
 * the connection on purpose (the oauth layer renews a connection before its token expires).
 */
import type { Socket } from 'node:net';
import { ExponentialBackoff, type IBackoff, type IBackoffFactory } from 'cockatiel';
import { type ClientOptions, WebSocket } from 'ws';
import { brand } from '../../core/brand.ts';
import type { EventBus } from '../../core/events.ts';
import {
  CANCELLED,
  type JSONRPCMessage,
  type JSONRPCRequest,
  type JSONRPCResponse,
  type RequestId,
} from '../../core/jsonrpc.ts';
import { type MessageExtraInfo, STATELESS_PROTOCOL_VERSION, type Transport, type TransportSendOptions } from '../../core/transport.ts';
import { asError, ConnectionClosedError, describe, ErrorCode, McpLayersError, TransportError } from '../../core/errors.ts';
import { classifyConnectionError, classifyStatus } from '../../core/failure.ts';
import { parseRetryAfter } from '../../core/retry-after.ts';
import { sleep } from '../../layer-kit/sleep.ts';
import { booleanOption, durationOption, functionOption, integerOption, invalidOption, optionsObject, settingsObject } from '../../core/options.ts';
import { type CompressionSettings, EventFanout, WIRE_CONTROL, type WireControl } from '../../core/wire.ts';
import { Channel, CloseCode, encode } from './channel.ts';
import { COMMON_OPTIONS, resolveCommon, SUBPROTOCOL, type WebSocketCommonOptions, wsDeflateOptions } from './options.ts';
import { deliverTo, reportTo } from '../../core/callbacks.ts';

export interface ReconnectOptions {
  /** Connection attempts after a drop (retries: the lost connection was the first) before the transport gives up and closes. Default 20; `Infinity` never gives up. */
  maxRetries?: number;
  /** First backoff delay. Default 200 ms. */
  initialDelayMs?: number;
  /** Largest backoff delay. Default 10 000 ms. */
  maxDelayMs?: number;
  /** A cockatiel backoff to use instead (e.g. `new ConstantBackoff(500)`). */
  backoff?: IBackoffFactory<unknown>;
  /** Replay `initialize` + `notifications/initialized` on the new connection (2025-era sessions). Default true. */
  replayHandshake?: boolean;
  /** Bytes of messages held while disconnected; beyond, send() fails (nothing was sent). Default 16 MiB. */
  maxQueuedBytes?: number;
  /** How long a message may be held waiting for the connection to be restored; then send() fails (nothing was sent). Default 30 000 ms. */
  queueTimeoutMs?: number;
}

export interface WebSocketClientTransportOptions extends WebSocketCommonOptions {
  /** Headers for the upgrade request (e.g. Authorization); a function is called before every connection. */
  headers?: Record<string, string> | (() => Record<string, string> | Promise<Record<string, string>>);
  /** The Origin header to send (browsers send one; Node clients usually do not). */
  origin?: string;
  /** How long the opening handshake (and a replayed initialize) may take. Default 10 000 ms. */
  connectTimeoutMs?: number;
  /** Reconnect after an unexpected drop. Default on; `false` closes the transport instead. */
  reconnect?: false | ReconnectOptions;
  /**
   * Called when the server refuses the credentials: an upgrade answered 401, or a close with
   * one of `unauthorizedCloseCodes`. Renew them (`headers` is called again before the next
   * connection); the transport then connects again at once. If the hook throws, or the next
   * upgrade is refused with 401 too, the transport gives up with that error.
   */
  onunauthorized?: (event: { status?: number; code?: number; reason?: string }) => void | Promise<void>;
  /** Close codes that mean "your credentials are no longer accepted" (with `onunauthorized`). Default [4401]. */
  unauthorizedCloseCodes?: readonly number[];
  /** Passed to `ws` as is: TLS (`ca`, `cert`, `key`, `rejectUnauthorized` — verification stays on unless you turn it off), `agent`... */
  wsOptions?: Omit<ClientOptions, 'perMessageDeflate' | 'maxPayload' | 'handshakeTimeout' | 'headers' | 'origin' | 'protocolVersion'>;
}

/** The client accepts larger messages than the server by default: results (resources, tool lists) are the big ones. */
const DEFAULT_CLIENT_MAX_PAYLOAD = 16 * 1024 * 1024;

interface ReconnectPolicy {
  readonly maxRetries: number;
  readonly backoff: IBackoffFactory<unknown>;
  readonly replay: boolean;
  readonly maxQueuedBytes: number;
  readonly queueTimeoutMs: number;
}

type State = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closing' | 'closed';

interface Queued {
  /** Place in send() order: a message put back after a failed flush goes before later ones. */
  readonly seq: number;
  readonly text: string;
  readonly bytes: number;
  /** What it is, for error messages (`tools/call`, `a batch of 3 messages`). */
  readonly what: string;
  /** Request ids in this frame (so a cancel can pull it out). */
  readonly requestIds: readonly RequestId[];
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
  /** Ends the wait after queueTimeoutMs; cleared once the message is written or failed. */
  timer: NodeJS.Timeout | undefined;
  /** `writing`: handed to a new connection, not yet written; `expired`: its wait ran out meanwhile. */
  phase: 'queued' | 'writing' | 'expired';
}

interface Handshake {
  params: JSONRPCRequest['params'];
  protocolVersion: string;
}

const LABEL = 'websocket client';

export class WebSocketClientTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage, extra?: MessageExtraInfo) => void;
  onconnectionlost?: (error: Error) => void;
  /** WebSocket sessions have no `Mcp-Session-Id`. */
  sessionId?: string | undefined = undefined;

  readonly url: URL;
  /** Where `connection`, `reconnect`, `heartbeat`, `wire` and `bytes-compressed` are published. */
  readonly events: EventBus;
  readonly [WIRE_CONTROL]: WireControl;

  readonly #fanout: EventFanout;
  readonly #common: ReturnType<typeof resolveCommon>;
  readonly #headers: WebSocketClientTransportOptions['headers'];
  readonly #origin: string | undefined;
  readonly #connectTimeoutMs: number;
  readonly #wsOptions: NonNullable<WebSocketClientTransportOptions['wsOptions']>;
  readonly #reconnect: ReconnectPolicy | undefined;
  readonly #onunauthorized: WebSocketClientTransportOptions['onunauthorized'];
  readonly #unauthorizedCloseCodes: ReadonlySet<number>;
  /** Set by reconnect(): the next close is ours, and the next connection is made at once. */
  #renewing = false;
  readonly #reopened: Array<() => void> = [];
  #compressThreshold: number | undefined;

  #state: State = 'idle';
  #channel: Channel | undefined;
  /** Counts connections; requests and inbound requests remember theirs. */
  #epoch = 0;
  /** The epoch of the open connection, or -1 between connections. */
  #liveEpoch = -1;
  readonly #queue: Queued[] = [];
  #queuedBytes = 0;
  #queueSeq = 0;
  /** Outbound request id → the connection it was written on. */
  readonly #inflight = new Map<RequestId, number>();
  /** Inbound request id → the connection it arrived on. */
  readonly #inbound = new Map<RequestId, number>();
  #pendingInitialize: { id: RequestId; params: JSONRPCRequest['params'] } | undefined;
  #handshake: Handshake | undefined;
  #initializedSent = false;
  #replay: { id: string; resolve: (response: JSONRPCResponse) => void; reject: (error: Error) => void } | undefined;
  #replayCounter = 0;
  #protocolVersion: string | undefined;
  readonly #stop = new AbortController();
  #closed: Promise<void> | undefined;

  constructor(url: string | URL, options: WebSocketClientTransportOptions = {}) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw invalidOption('WebSocketClientTransport(url)', 'a ws:// or wss:// URL', url);
    }
    if (parsed.protocol !== 'ws:' && parsed.protocol !== 'wss:') {
      throw invalidOption('WebSocketClientTransport(url)', 'a ws:// or wss:// URL', String(url));
    }
    this.url = parsed;
    optionsObject(options, 'WebSocketClientTransport', [
      ...COMMON_OPTIONS,
      'headers',
      'origin',
      'connectTimeoutMs',
      'reconnect',
      'wsOptions',
      'onunauthorized',
      'unauthorizedCloseCodes',
    ]);
    this.#common = resolveCommon('WebSocketClientTransport', LABEL, options, DEFAULT_CLIENT_MAX_PAYLOAD);
    this.events = this.#common.events;
    this.#fanout = new EventFanout(this.events);
    this.#compressThreshold = this.#common.deflate?.minBytes;
    if (options.headers !== undefined && typeof options.headers !== 'function' && (typeof options.headers !== 'object' || options.headers === null)) {
      throw invalidOption('WebSocketClientTransport.headers', 'an object of header values or a function returning one', options.headers);
    }
    this.#headers = options.headers;
    if (options.origin !== undefined && typeof options.origin !== 'string') throw invalidOption('WebSocketClientTransport.origin', 'a string', options.origin);
    this.#origin = options.origin;
    this.#connectTimeoutMs = durationOption('WebSocketClientTransport.connectTimeoutMs', options.connectTimeoutMs, 10_000, 1);
    if (options.wsOptions !== undefined && (typeof options.wsOptions !== 'object' || options.wsOptions === null)) {
      throw invalidOption('WebSocketClientTransport.wsOptions', 'an object of ws client options', options.wsOptions);
    }
    this.#wsOptions = options.wsOptions ?? {};
    if (options.reconnect === false) {
      this.#reconnect = undefined;
    } else {
      const r = settingsObject('WebSocketClientTransport.reconnect', options.reconnect, [
        'maxRetries',
        'initialDelayMs',
        'maxDelayMs',
        'backoff',
        'replayHandshake',
        'maxQueuedBytes',
        'queueTimeoutMs',
      ]);
      const maxRetries = r['maxRetries'] === Infinity ? Infinity : integerOption('WebSocketClientTransport.reconnect.maxRetries', r['maxRetries'], 20, 1);
      const initialDelay = durationOption('WebSocketClientTransport.reconnect.initialDelayMs', r['initialDelayMs'], 200, 0);
      const maxDelay = durationOption('WebSocketClientTransport.reconnect.maxDelayMs', r['maxDelayMs'], 10_000, 0);
      if (maxDelay < initialDelay) throw invalidOption('WebSocketClientTransport.reconnect.maxDelayMs', `a number >= initialDelayMs (${initialDelay})`, maxDelay);
      const backoff = r['backoff'];
      if (backoff !== undefined && (typeof backoff !== 'object' || backoff === null || typeof (backoff as IBackoffFactory<unknown>).next !== 'function')) {
        throw invalidOption('WebSocketClientTransport.reconnect.backoff', 'a cockatiel backoff (an object with next())', backoff);
      }
      this.#reconnect = {
        maxRetries,
        backoff: (backoff as IBackoffFactory<unknown> | undefined) ?? new ExponentialBackoff({ initialDelay, maxDelay }),
        replay: booleanOption('WebSocketClientTransport.reconnect.replayHandshake', r['replayHandshake'], true),
        maxQueuedBytes: integerOption('WebSocketClientTransport.reconnect.maxQueuedBytes', r['maxQueuedBytes'], 16 * 1024 * 1024, 0),
        queueTimeoutMs: durationOption('WebSocketClientTransport.reconnect.queueTimeoutMs', r['queueTimeoutMs'], 30_000, 1),
      };
    }
    this.#onunauthorized = functionOption('WebSocketClientTransport.onunauthorized', options.onunauthorized);
    const codes = options.unauthorizedCloseCodes ?? [4401];
    if (!Array.isArray(codes) || !codes.every((c) => Number.isInteger(c) && c >= 1000 && c <= 4999)) {
      throw invalidOption('WebSocketClientTransport.unauthorizedCloseCodes', 'an array of close codes (1000-4999)', codes);
    }
    this.#unauthorizedCloseCodes = new Set(codes);
    this[WIRE_CONTROL] = {
      kind: 'websocket',
      acceptsBatches: true,
      compress: (settings: CompressionSettings) => this.#setCompression(settings),
      observe: (bus: EventBus) => this.#fanout.add(bus),
    };
  }

  /** `open` while connected, `reconnecting` between connections. */
  get state(): State {
    return this.#state;
  }

  /** Bytes waiting in the socket's send buffer (0 when disconnected). */
  get bufferedAmount(): number {
    return this.#channel?.socket.bufferedAmount ?? 0;
  }

  /** The protocol version the application negotiated (the SDK tells the transport). */
  get protocolVersion(): string | undefined {
    return this.#protocolVersion ?? this.#handshake?.protocolVersion;
  }

  setProtocolVersion(version: string): void {
    this.#protocolVersion = version;
  }

  async start(): Promise<void> {
    if (this.#state !== 'idle') {
      throw new Error(`${LABEL}: already started; note that Client.connect() calls start() itself`);
    }
    this.#state = 'connecting';
    try {
      let channel: Channel;
      try {
        channel = await this.#connect();
      } catch (error) {
        if (!(error instanceof TransportError && error.status === 401 && this.#onunauthorized !== undefined)) throw error;
        await this.#onunauthorized({ status: 401 });
        channel = await this.#connect();
      }
      this.#adopt(channel);
    } catch (error) {
      this.#state = 'closed';
      throw error;
    }
    this.#state = 'open';
  }

  async send(message: JSONRPCMessage | JSONRPCMessage[], _options?: TransportSendOptions): Promise<void> {
    const all = Array.isArray(message) ? message : [message];
    if (this.#state === 'closed' || this.#state === 'closing') {
      throw new ConnectionClosedError(`${LABEL}: cannot send ${describeMessages(all)}: the transport is closed`, { neverSent: true, layer: 'websocket' });
    }
    if (this.#state === 'idle' || this.#state === 'connecting') {
      throw new ConnectionClosedError(`${LABEL}: cannot send ${describeMessages(all)}: not connected yet (start() has not finished)`, { neverSent: true, layer: 'websocket' });
    }
    const live = all.filter((m) => this.#stillMeaningful(m));
    if (live.length === 0) return;
    const requestIds: RequestId[] = [];
    for (const m of live) {
      if ('method' in m && 'id' in m && m.id !== undefined) {
        requestIds.push(m.id);
        if (m.method === 'initialize') this.#pendingInitialize = { id: m.id, params: m.params };
      } else if ('method' in m && m.method === 'notifications/initialized') {
        this.#initializedSent = true;
      } else if (!('method' in m) && m.id !== undefined) {
        this.#inbound.delete(m.id);
      }
    }
    const text = encode(Array.isArray(message) ? live : (live[0] as JSONRPCMessage));
    const what = describeMessages(live);
    // Taken now, so a message that waited for the socket and then has to be held keeps its place.
    const seq = ++this.#queueSeq;
    const channel = this.#channel;
    // A channel that is no longer open while the state still says `open`: the peer is gone
    // (a close frame, FIN or reset arrived) but ws has not emitted `close` yet, so the
    // reconnect is not scheduled yet. A message sent in that window waits for it too.
    if (this.#state === 'open' && channel !== undefined && (channel.open || this.#reconnect === undefined)) {
      for (const id of requestIds) this.#inflight.set(id, this.#epoch);
      try {
        await channel.write(text);
      } catch (error) {
        if ((error as { neverSent?: boolean }).neverSent !== true) throw error;
        // Never handed to the socket: not in flight, nothing to fail later.
        for (const id of requestIds) this.#inflight.delete(id);
        // The connection dropped while this waited for the socket's buffer to drain.
        const state = this.#state as State; // the write awaited: it may have changed
        if (this.#reconnect === undefined || state === 'closing' || state === 'closed') throw error;
        await this.#enqueue(seq, text, what, requestIds);
      }
      return;
    }
    await this.#enqueue(seq, text, what, requestIds);
  }

  async close(): Promise<void> {
    if (this.#closed !== undefined) return this.#closed;
    this.#closed = (async () => {
      const wasIdle = this.#state === 'idle';
      this.#state = 'closing';
      this.#stop.abort();
      this.#rejectQueue('the transport was closed', 'connection-closed');
      this.#replay?.reject(new ConnectionClosedError(`${LABEL}: closed`, { layer: 'websocket' }));
      const channel = this.#channel;
      if (channel !== undefined && channel.open) {
        const closedEvent = new Promise<void>((resolve) => channel.socket.once('close', () => resolve()));
        await channel.closeAndWait(CloseCode.Normal, 'client closed the session', closedEvent);
      }
      if (!wasIdle || channel !== undefined) this.#finish();
      else this.#state = 'closed';
    })();
    return this.#closed;
  }

  /**
   * Replaces the connection with a new one, made at once: `headers` is called again (a
   * renewed token for the handshake) and a 2025-era handshake is replayed. Requests in
   * flight on the old connection fail as connection-lost; messages sent meanwhile are
   * queued. Resolves when the new connection is ready, or the transport gave up and closed.
   */
  async reconnect(reason = 'the client is reconnecting'): Promise<void> {
    const channel = this.#channel;
    if (this.#state !== 'open' || channel === undefined) return;
    if (this.#reconnect === undefined) throw new Error(`${LABEL}: reconnect() needs the reconnect option (it is false)`);
    const reopened = new Promise<void>((resolve) => this.#reopened.push(resolve));
    this.#renewing = true;
    const closing = channel.closeAndWait(RENEWING, reason, reopened);
    // Handled as closed now (its own close event is then ignored): sends queue for the new connection.
    this.#onChannelClose(channel, RENEWING, reason);
    await closing;
  }

  // ── connecting ────────────────────────────────────────────────────────────────

  async #connect(): Promise<Channel> {
    const headers = typeof this.#headers === 'function' ? await this.#headers() : this.#headers;
    return new Promise<Channel>((resolve, reject) => {
      let settled = false;
      let raw: Socket | undefined;
      const fail = (error: Error) => {
        if (settled) return;
        settled = true;
        socket.removeAllListeners();
        socket.on('error', () => {}); // late errors of an abandoned socket go nowhere
        if (socket.readyState !== WebSocket.CLOSED) socket.terminate();
        reject(error);
      };
      const socket = new WebSocket(this.url, [SUBPROTOCOL], {
        ...this.#wsOptions,
        perMessageDeflate: wsDeflateOptions(this.#common.deflate),
        maxPayload: this.#common.channel.maxPayload,
        handshakeTimeout: this.#connectTimeoutMs,
        followRedirects: false,
        // The channel checks UTF-8 itself, so that its 1007 close can say what was wrong.
        skipUTF8Validation: true,
        ...(headers === undefined ? {} : { headers }),
        ...(this.#origin === undefined ? {} : { origin: this.#origin }),
      });
      const onStop = () => fail(new ConnectionClosedError(`${LABEL}: closed while connecting`, { neverSent: true, layer: 'websocket' }));
      this.#stop.signal.addEventListener('abort', onStop, { once: true });
      socket.once('upgrade', (response) => {
        raw = response.socket as Socket;
      });
      socket.once('unexpected-response', (request, response) => {
        const status = response.statusCode ?? 0;
        const { retryable, retryAfter } = classifyStatus(status);
        const header = response.headers['retry-after'];
        const retryAfterMs = retryAfter ? parseRetryAfter(Array.isArray(header) ? header[0] : header) : undefined;
        readSome(response, 4096).then((body) => {
          request.destroy();
          fail(
            new TransportError(`${LABEL}: ${this.url.href} refused the WebSocket upgrade: HTTP ${status} ${response.statusMessage ?? ''}${body === '' ? '' : `: ${body}`}`.trim(), {
              layer: 'websocket',
              reason: `http-${status}`,
              neverSent: true,
              retryable,
              ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
              ...(status >= 400 && status <= 599 ? { status } : {}),
            }),
          );
        });
      });
      socket.on('error', (error) => {
        fail(
          new TransportError(`${LABEL}: could not connect to ${this.url.href}: ${error.message}`, {
            layer: 'websocket',
            reason: 'connect-failed',
            // The handshake failed: no message of ours was on this connection yet.
            neverSent: true,
            retryable: classifyConnectionError((error as NodeJS.ErrnoException).code).retryable,
            cause: error,
          }),
        );
      });
      socket.once('close', () => fail(new TransportError(`${LABEL}: the connection to ${this.url.href} closed during the handshake`, { layer: 'websocket', neverSent: true })));
      socket.once('open', () => {
        if (settled) return;
        settled = true;
        this.#stop.signal.removeEventListener('abort', onStop);
        socket.removeAllListeners('error');
        socket.removeAllListeners('close');
        socket.removeAllListeners('unexpected-response');
        let channel: Channel | undefined = undefined;
        channel = new Channel(socket, raw, this.#common.channel, this.#fanout, {
          messages: (messages) => this.#receive(channel as Channel, messages),
          error: (error) => this.#report(error),
          close: (code, reason) => this.#onChannelClose(channel as Channel, code, reason),
        });
        resolve(channel);
      });
    });
  }

  #adopt(channel: Channel): void {
    this.#epoch++;
    this.#liveEpoch = this.#epoch;
    this.#channel = channel;
    channel.setCompressionThreshold(channel.deflateNegotiated ? this.#compressThreshold : undefined);
    this.#fanout.emit('connection', { state: 'open', transport: 'websocket', url: this.url.href });
  }

  #onChannelClose(channel: Channel, code: number, reason: string): void {
    if (channel !== this.#channel) return;
    this.#channel = undefined;
    this.#liveEpoch = -1;
    this.#fanout.emit('connection', { state: 'closed', transport: 'websocket', url: this.url.href, code, reason });
    if (this.#state === 'closing' || this.#state === 'closed') return; // close() finishes
    const error = new ConnectionClosedError(`${LABEL}: the connection to ${this.url.href} closed (${describeClose(code, reason)})`, {
      layer: 'websocket',
      reason: 'connection-lost',
    });
    if (this.#state === 'reconnecting') {
      // Dropped during the replay: the reconnect loop tries again.
      this.#replay?.reject(error);
      return;
    }
    this.#failInflight(error);
    const renewing = this.#renewing;
    this.#renewing = false;
    const unauthorized = this.#onunauthorized !== undefined && this.#unauthorizedCloseCodes.has(code) ? { code, reason } : undefined;
    if (this.#reconnect === undefined || (!reconnectable(code) && !renewing && unauthorized === undefined)) {
      const final =
        this.#reconnect === undefined ? error : new ConnectionClosedError(`${error.message}; not reconnecting after close code ${code}`, { layer: 'websocket', reason: 'connection-closed' });
      this.#report(final);
      this.#finish(final);
      return;
    }
    this.#state = 'reconnecting';
    void this.#reconnectLoop(this.#reconnect, renewing, unauthorized);
  }

  async #reconnectLoop(policy: ReconnectPolicy, renewing = false, unauthorized?: { code: number; reason: string }): Promise<void> {
    let backoff: IBackoff<unknown> | undefined;
    let lastError: Error | undefined;
    /** What the last refusal asked for (Retry-After): the next attempt waits at least that long. */
    let retryAfterMs: number | undefined;
    // The credentials were renewed for this connection: right away, and no second renewal on a 401.
    let immediate = renewing;
    let renewed = false;
    if (unauthorized !== undefined) {
      lastError = await this.#renewCredentials(unauthorized);
      renewed = immediate = lastError === undefined;
    }
    for (let attempt = 1; attempt <= policy.maxRetries && (unauthorized === undefined || renewed); attempt++) {
      backoff = backoff === undefined ? policy.backoff.next(undefined) : backoff.next(undefined);
      const delayMs = immediate ? 0 : Math.max(backoff.duration, Math.min(retryAfterMs ?? 0, MAX_RETRY_AFTER_MS));
      immediate = false;
      retryAfterMs = undefined;
      this.#fanout.emit('reconnect', { attempt, delayMs, outcome: 'scheduled' });
      await sleep(delayMs, this.#stop.signal).catch(() => {}); // a close ends the wait; the state check below stops
      if (this.#state !== 'reconnecting') return;
      let channel: Channel;
      try {
        channel = await this.#connect();
      } catch (error) {
        lastError = error as Error;
        this.#fanout.emit('reconnect', { attempt, delayMs, outcome: 'failed', error: lastError });
        if (this.#state !== 'reconnecting') return;
        if (lastError instanceof TransportError && lastError.status === 401 && this.#onunauthorized !== undefined && !renewed) {
          const failure = await this.#renewCredentials({ status: 401 });
          if (failure !== undefined) {
            lastError = failure;
            break;
          }
          renewed = immediate = true;
          continue;
        }
        // A final refusal (401, 403, 404, 501… by the table of src/core/failure.ts), or headers() failing
        // for good (the oauth layer: re-authorization needed): trying again cannot help.
        if (lastError instanceof McpLayersError && !lastError.retryable) break;
        if (lastError instanceof McpLayersError) retryAfterMs = lastError.retryAfterMs;
        continue;
      }
      if (this.#state !== 'reconnecting') {
        channel.close(CloseCode.Normal, 'client closed the session');
        return;
      }
      this.#adopt(channel);
      try {
        await this.#replayHandshake(channel, policy.replay);
      } catch (error) {
        lastError = error as Error;
        this.#fanout.emit('reconnect', { attempt, delayMs, outcome: 'failed', error: lastError });
        if (this.#state !== 'reconnecting') return;
        if (lastError instanceof HandshakeRejectedError) {
          channel.close(CloseCode.Normal, 'the session could not be restored');
          break;
        }
        channel.terminate();
        continue;
      }
      if (this.#channel !== channel || !channel.open) continue; // dropped again right away
      this.#state = 'open';
      this.#fanout.emit('reconnect', { attempt, delayMs, outcome: 'connected' });
      this.#flushQueue(channel);
      for (const resolve of this.#reopened.splice(0)) resolve();
      return;
    }
    if (this.#state !== 'reconnecting') return;
    let message = `${LABEL}: gave up reconnecting to ${this.url.href}${lastError === undefined ? '' : `: ${lastError.message}`}`;
    if (lastError instanceof TransportError && lastError.status !== undefined && !lastError.retryable && lastError.status !== 401) {
      message +=
        lastError.status >= 500
          ? `; HTTP ${lastError.status} is final (it says what the server is, not how it is: it answers the same until it is redeployed)`
          : `; HTTP ${lastError.status} is final (only 408, 425, 429 and 5xx are tried again)`;
    }
    const failure = new ConnectionClosedError(message, { layer: 'websocket', reason: 'reconnect-failed', ...(lastError === undefined ? {} : { cause: lastError }) });
    this.#report(failure);
    this.#finish(failure);
  }

  /** Runs the onunauthorized hook; returns its failure (then the transport gives up). */
  async #renewCredentials(event: { status?: number; code?: number; reason?: string }): Promise<Error | undefined> {
    try {
      await this.#onunauthorized?.(event);
      return undefined;
    } catch (error) {
      return asError(error);
    }
  }

  /** Re-establishes a 2025-era session on a fresh connection; the application never sees it. */
  async #replayHandshake(channel: Channel, enabled: boolean): Promise<void> {
    const handshake = this.#handshake;
    if (!enabled || handshake === undefined || handshake.protocolVersion >= STATELESS_PROTOCOL_VERSION) return;
    const id = `mcp-layers-replay-${++this.#replayCounter}`;
    const answered = new Promise<JSONRPCResponse>((resolve, reject) => {
      this.#replay = { id, resolve, reject };
    });
    const timer = setTimeout(() => {
      this.#replay?.reject(new TransportError(`${LABEL}: the server did not answer the replayed initialize within ${this.#connectTimeoutMs} ms`, { layer: 'websocket', reason: 'replay-timeout' }));
    }, this.#connectTimeoutMs);
    timer.unref();
    try {
      await channel.write(encode({ jsonrpc: '2.0', id, method: 'initialize', params: handshake.params }));
      const response = await answered;
      if ('error' in response) {
        throw new HandshakeRejectedError(`${LABEL}: the server refused the replayed initialize (${response.error.code} ${response.error.message}); the session cannot be restored`);
      }
      const version = response.result['protocolVersion'];
      if (version !== handshake.protocolVersion) {
        throw new HandshakeRejectedError(
          `${LABEL}: after reconnecting, the server negotiated protocol version ${describe(version)} but the session uses ${handshake.protocolVersion}; the session cannot be restored`,
        );
      }
      if (this.#initializedSent) await channel.write(encode({ jsonrpc: '2.0', method: 'notifications/initialized' }));
    } finally {
      clearTimeout(timer);
      this.#replay = undefined;
    }
  }

  // ── reading ───────────────────────────────────────────────────────────────────

  #receive(channel: Channel, messages: JSONRPCMessage[]): void {
    for (const message of messages) {
      if (channel !== this.#channel) return;
      if (!('method' in message)) {
        const id = message.id;
        const replay = this.#replay;
        if (replay !== undefined && id === replay.id) {
          replay.resolve(message);
          continue; // the replayed handshake's answer is ours, not the application's
        }
        if (id !== undefined) this.#inflight.delete(id);
        const pending = this.#pendingInitialize;
        if (pending !== undefined && id === pending.id) {
          this.#pendingInitialize = undefined;
          const version = 'result' in message ? message.result['protocolVersion'] : undefined;
          if (typeof version === 'string') this.#handshake = { params: pending.params, protocolVersion: version };
        }
      } else if ('id' in message && message.id !== undefined) {
        this.#inbound.set(message.id, this.#epoch);
      }
      this.#deliver(message);
    }
  }

  #deliver(message: JSONRPCMessage): void {
    deliverTo(this, message);
  }

  #report(error: unknown): void {
    reportTo(this, error);
  }

  // ── what happens to messages around a drop ─────────────────────────────────────

  /** False for messages whose peer is gone: answers to, and cancellations of, an old connection's requests. */
  #stillMeaningful(message: JSONRPCMessage): boolean {
    if (!('method' in message)) {
      const epoch = message.id === undefined ? undefined : this.#inbound.get(message.id);
      if (epoch !== undefined && epoch !== this.#liveEpoch) {
        this.#inbound.delete(message.id as RequestId);
        return false;
      }
      return true;
    }
    if (message.method === CANCELLED && !('id' in message && message.id !== undefined)) {
      const requestId = message.params?.['requestId'] as RequestId | undefined;
      if (requestId === undefined) return true;
      if (this.#unqueue(requestId)) return false;
      const epoch = this.#inflight.get(requestId);
      if (epoch !== undefined && epoch !== this.#liveEpoch) {
        this.#inflight.delete(requestId);
        return false;
      }
    }
    return true;
  }

  #enqueue(seq: number, text: string, what: string, requestIds: RequestId[]): Promise<void> {
    const policy = this.#reconnect;
    if (policy === undefined) {
      return Promise.reject(new ConnectionClosedError(`${LABEL}: cannot send ${what}: not connected, and reconnect is off`, { neverSent: true, layer: 'websocket' }));
    }
    const bytes = Buffer.byteLength(text);
    if (this.#queuedBytes + bytes > policy.maxQueuedBytes) {
      return Promise.reject(
        new ConnectionClosedError(`${LABEL}: cannot send ${what}: not connected, and the queue of messages waiting for the reconnection is full (reconnect.maxQueuedBytes: ${policy.maxQueuedBytes} bytes)`, {
          neverSent: true,
          layer: 'websocket',
          reason: 'queue-full',
        }),
      );
    }
    return new Promise<void>((resolve, reject) => {
      const entry: Queued = { seq, text, bytes, what, requestIds, resolve, reject, timer: undefined, phase: 'queued' };
      entry.timer = setTimeout(() => this.#expire(entry, policy.queueTimeoutMs), policy.queueTimeoutMs);
      entry.timer.unref();
      this.#insert(entry);
    });
  }

  /** Puts a message in the queue at its place in send() order. */
  #insert(entry: Queued): void {
    const queue = this.#queue;
    let index = queue.length;
    while (index > 0 && (queue[index - 1] as Queued).seq > entry.seq) index--;
    queue.splice(index, 0, entry);
    this.#queuedBytes += entry.bytes;
  }

  #expire(entry: Queued, ms: number): void {
    if (entry.phase === 'writing') {
      entry.phase = 'expired'; // failed when it comes back unwritten; a write that succeeds wins
      return;
    }
    const index = this.#queue.indexOf(entry);
    if (index === -1) return;
    this.#queue.splice(index, 1);
    this.#queuedBytes -= entry.bytes;
    entry.reject(this.#expired(entry, ms));
  }

  #expired(entry: Queued, ms: number): ConnectionClosedError {
    return new ConnectionClosedError(`${LABEL}: ${entry.what} waited ${ms} ms (reconnect.queueTimeoutMs) for the connection to ${this.url.href} to be restored; it was never sent`, {
      neverSent: true,
      layer: 'websocket',
      reason: 'reconnect-timeout',
    });
  }

  /** Removes a queued request (it was cancelled before it could be sent). */
  #unqueue(requestId: RequestId): boolean {
    const index = this.#queue.findIndex((q) => q.requestIds.includes(requestId));
    if (index === -1) return false;
    const [entry] = this.#queue.splice(index, 1) as [Queued];
    this.#queuedBytes -= entry.bytes;
    clearTimeout(entry.timer);
    entry.reject(new ConnectionClosedError(`${LABEL}: the request was cancelled while waiting for the reconnection; it was never sent`, { neverSent: true, layer: 'websocket', reason: 'cancelled' }));
    return true;
  }

  #flushQueue(channel: Channel): void {
    const queued = this.#queue.splice(0);
    this.#queuedBytes = 0;
    for (const entry of queued) {
      entry.phase = 'writing';
      for (const id of entry.requestIds) this.#inflight.set(id, this.#epoch);
      channel.write(entry.text).then(
        () => {
          clearTimeout(entry.timer);
          entry.resolve();
        },
        (error: unknown) => this.#flushFailed(entry, error as Error),
      );
    }
  }

  /** A held message the new connection could not take: it waits for the next one, unless its time is up. */
  #flushFailed(entry: Queued, error: Error): void {
    for (const id of entry.requestIds) this.#inflight.delete(id);
    const policy = this.#reconnect;
    const waiting = this.#state === 'reconnecting' || this.#state === 'open';
    if ((error as { neverSent?: boolean }).neverSent !== true || policy === undefined || !waiting || entry.phase === 'expired') {
      clearTimeout(entry.timer);
      entry.reject(entry.phase === 'expired' && policy !== undefined ? this.#expired(entry, policy.queueTimeoutMs) : error);
      return;
    }
    entry.phase = 'queued';
    this.#insert(entry);
    // Already reconnected again meanwhile: nothing else would flush it.
    const channel = this.#channel;
    if (this.#state === 'open' && channel !== undefined && channel.open) this.#flushQueue(channel);
  }

  /** Fails every held message: it was never sent, and says why. */
  #rejectQueue(why: string, reason: string, cause?: Error): void {
    const queued = this.#queue.splice(0);
    this.#queuedBytes = 0;
    for (const entry of queued) {
      clearTimeout(entry.timer);
      entry.reject(new ConnectionClosedError(`${LABEL}: ${entry.what} was never sent: ${why}`, { neverSent: true, layer: 'websocket', reason, ...(cause === undefined ? {} : { cause }) }));
    }
  }

  /** Requests written on the dead connection will never be answered: fail them now. */
  #failInflight(error: ConnectionClosedError): void {
    const lost: RequestId[] = [];
    for (const [id, epoch] of this.#inflight) if (epoch === this.#epoch) lost.push(id);
    for (const id of lost) this.#inflight.delete(id);
    if (this.#pendingInitialize !== undefined) this.#pendingInitialize = undefined;
    if (this.onconnectionlost !== undefined) {
      try {
        this.onconnectionlost(error);
      } catch (cause) {
        this.#report(cause);
      }
      return;
    }
    // Used without wrap(): answer for the peer, so the application's requests end now.
    for (const id of lost) {
      this.#deliver({
        jsonrpc: '2.0',
        id,
        error: {
          code: error.code,
          message: `${error.message}; the request may or may not have been executed`,
          data: { layer: 'websocket', reason: 'connection-lost', attempts: 1 },
        },
      });
    }
  }

  /** Ends the transport; `why` (reported already) is what held messages fail with. */
  #finish(why?: ConnectionClosedError): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#stop.abort();
    this.#rejectQueue(why === undefined ? 'the transport closed' : stripLabel(why.message), why?.reason ?? 'connection-closed', why);
    this.#inflight.clear();
    this.#inbound.clear();
    for (const resolve of this.#reopened.splice(0)) resolve();
    try {
      this.onclose?.();
    } catch (error) {
      this.#report(error);
    }
  }

  #setCompression(settings: CompressionSettings): void {
    this.#compressThreshold = settings.encodings.includes('deflate') && this.#common.deflate !== undefined ? settings.minBytes : undefined;
    const channel = this.#channel;
    if (channel !== undefined) channel.setCompressionThreshold(channel.deflateNegotiated ? this.#compressThreshold : undefined);
  }
}

/** The server refused to restore the session on a new connection: reconnecting stops. */
class HandshakeRejectedError extends McpLayersError<number> {
  static {
    brand(this, 'error.HandshakeRejectedError');
  }

  constructor(message: string) {
    super(ErrorCode.ConnectionClosed, message, { layer: 'websocket', reason: 'handshake-rejected' });
  }
}

/** The longest Retry-After of a refused upgrade that is honoured as asked; a longer one waits this long. */
const MAX_RETRY_AFTER_MS = 5 * 60_000;

function stripLabel(message: string): string {
  return message.startsWith(`${LABEL}: `) ? message.slice(LABEL.length + 2) : message;
}

/** The close code reconnect() sends: the client is replacing the connection (private range). */
const RENEWING = 4000;

/** Close codes after which trying again is pointless or unwanted. */
function reconnectable(code: number): boolean {
  switch (code) {
    case CloseCode.Normal:
    case CloseCode.ProtocolError:
    case 1003:
    case CloseCode.InvalidPayload:
    case CloseCode.PolicyViolation:
    case CloseCode.MessageTooBig:
    case 1010:
      return false;
    default:
      return true;
  }
}

function describeClose(code: number, reason: string): string {
  const name = code === CloseCode.Abnormal ? 'abnormally, without a close frame' : `code ${code}`;
  return reason === '' ? name : `${name}: ${reason}`;
}

function describeMessages(messages: JSONRPCMessage[]): string {
  if (messages.length !== 1) return `a batch of ${messages.length} messages`;
  const [m] = messages as [JSONRPCMessage];
  return 'method' in m ? m.method : 'a response';
}

/** Reads at most `limit` bytes of a refused upgrade's body, for the error message. */
function readSome(stream: NodeJS.ReadableStream & { destroy?: () => void }, limit: number): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = () => resolve(Buffer.concat(chunks).toString('utf8').slice(0, limit).trim());
    const timer = setTimeout(done, 1000);
    timer.unref();
    stream.on('data', (chunk: Buffer) => {
      if (size < limit) chunks.push(chunk);
      size += chunk.length;
    });
    stream.on('end', () => {
      clearTimeout(timer);
      done();
    });
    stream.on('error', () => {
      clearTimeout(timer);
      done();
    });
  });
}
