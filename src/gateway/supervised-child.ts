/**
 * A stdio upstream that outlives its child (`upstream.restart`, docs/gateway.md
 * "Supervised stdio children"). When the child exits or crashes while the session is
 * open, a new one is started after cockatiel's ExponentialBackoff and the session is
 * restored on it by replaying its handshake, as the WebSocket client does after a drop
 * (src/transports/ws/client.ts):
 *
 *   - requests in flight when the child died: those safe to send twice
 *     (docs/architecture.md#invariant-3: the core's Idempotency, with the annotations of
 *     the tools/list results that pass through here and the configured tool lists) are
 *     sent again to the new child; every other one is answered at once with one error
 *     saying the server restarted under it and may or may not have completed it. This is
 *     done here rather than through `onconnectionlost`, which fails every attempt in
 *     flight alike: the gateway's default stack has no `retry` to send the idempotent
 *     ones again, and a `retry` in the stack is not needed for them;
 *   - messages sent while the child restarts are held (bounded in bytes and in time) and
 *     written, in order, once the handshake is replayed: they never left, so they run once;
 *   - answers to the dead child's requests, and cancellations of what it held, are dropped;
 *   - a child that exits before anything was ever answered did not start: it is not
 *     restarted, and the session fails as an unsupervised one does (`exit`);
 *   - more than `maxRestarts` crashes within `windowMs` is a crash loop: the transport
 *     closes, with `crashLoop` saying why, and the session with it.
 *
 * The crash loop is a plain count of crashes in a sliding window, not a cockatiel
 * breaker: a breaker half-opens to try again later, while giving up here is final, and a
 * ConsecutiveBreaker would be reset by each replay that succeeds before the next crash.
 *
 * Restarts are `reconnect` events (scheduled, connected, failed, gave-up) on every bus
 * that observes the transport (WIRE_CONTROL), so `metrics` counts them, and log records.
 */
import type { StdioServerParameters } from '@modelcontextprotocol/sdk/client/stdio.js';
import { ExponentialBackoff, type IBackoff, type IBackoffFactory } from 'cockatiel';
import { brand } from '../core/brand.ts';
import { deliverTo, reportTo } from '../core/callbacks.ts';
import { asError, ConnectionClosedError, describe, toErrorObject } from '../core/errors.ts';
import { EventBus } from '../core/events.ts';
import { Idempotency, type IdempotencyOptions } from '../core/idempotency.ts';
import { CANCELLED, isRequest, type JSONRPCMessage, type JSONRPCRequest, type JSONRPCResponse, type RequestId } from '../core/jsonrpc.ts';
import { STATELESS_PROTOCOL_VERSION, type Transport } from '../core/transport.ts';
import { EventFanout, WIRE_CONTROL, type WireControl } from '../core/wire.ts';
import { sleep } from '../layer-kit/sleep.ts';
import { type ChildExit, describeExit, exitData, type StderrMode, WatchedStdioTransport } from './child.ts';
import type { GatewayLogger } from './logger.ts';

export interface RestartPolicy {
  /** First backoff delay before a restart. */
  readonly initialDelayMs: number;
  /** Largest backoff delay. */
  readonly maxDelayMs: number;
  /** Restarts allowed within `windowMs`; one crash more is a crash loop. */
  readonly maxRestarts: number;
  readonly windowMs: number;
  /** How long a new child may take to answer the replayed initialize; then it counts as a crash. */
  readonly replayTimeoutMs: number;
  /** Bytes of messages held while the child restarts; beyond, send() fails (nothing was sent). */
  readonly maxQueuedBytes: number;
  /** How long a message may be held; then send() fails (nothing was sent). */
  readonly queueTimeoutMs: number;
}

/** What `upstream.restart` may set (docs/gateway.md); the rest are fixed. */
export type RestartConfig = false | Partial<Pick<RestartPolicy, 'initialDelayMs' | 'maxDelayMs' | 'maxRestarts' | 'windowMs'>>;

export const RESTART_DEFAULTS: RestartPolicy = {
  initialDelayMs: 100,
  maxDelayMs: 10_000,
  maxRestarts: 5,
  windowMs: 60_000,
  replayTimeoutMs: 10_000,
  maxQueuedBytes: 16 * 1024 * 1024,
  queueTimeoutMs: 30_000,
};

/** The policy `upstream.restart` asks for; undefined: children are not supervised. */
export function restartPolicy(config: RestartConfig | undefined, byDefault: boolean): RestartPolicy | undefined {
  if (config === false || (config === undefined && !byDefault)) return undefined;
  return { ...RESTART_DEFAULTS, ...config };
}

export interface SupervisedChildOptions {
  readonly params: Omit<StdioServerParameters, 'stderr'>;
  readonly stderr: StderrMode;
  readonly onStderrLine: (line: string) => void;
  readonly restart: RestartPolicy;
  readonly idempotency: IdempotencyOptions;
  readonly logger: GatewayLogger;
  /** The session's label, on every log record. */
  readonly session: string;
}

/** Why the gateway stopped restarting the child (a crash loop, a session the new child refused): the error, and the last exit. */
export interface GaveUp {
  readonly error: ConnectionClosedError;
  readonly exit: ChildExit;
}

interface Child {
  readonly transport: WatchedStdioTransport;
  exited: boolean;
}

interface Held {
  readonly message: JSONRPCMessage;
  readonly bytes: number;
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
  timer: NodeJS.Timeout | undefined;
}

type State = 'idle' | 'open' | 'restarting' | 'closing' | 'closed';

const NO_EXIT: ChildExit = { exitCode: null, signal: null, stderr: [] };

export class SupervisedStdioTransport implements Transport {
  // Messages that name a transport name the SDK class a user knows, as WatchedStdioTransport's do.
  static {
    Object.defineProperty(this, 'name', { value: 'StdioClientTransport' });
  }

  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage) => void;
  /** Where `reconnect` (a restart) is published. */
  readonly events = new EventBus();
  readonly [WIRE_CONTROL]: WireControl;

  readonly #options: SupervisedChildOptions;
  readonly #policy: RestartPolicy;
  readonly #backoffs: IBackoffFactory<unknown>;
  readonly #fanout = new EventFanout(this.events);
  readonly #idempotency: Idempotency;
  readonly #stop = new AbortController();
  #state: State = 'idle';
  #child: Child | undefined;
  #closed: Promise<void> | undefined;
  /** Requests written to the live child and not answered yet, in send() order. */
  readonly #inflight = new Map<RequestId, JSONRPCRequest>();
  /** Idempotent requests the dead child held: sent again to the next one. */
  #resend: JSONRPCRequest[] = [];
  /** The live child's requests to the client: answers to any other are dropped. */
  readonly #serverRequests = new Set<RequestId>();
  #held: Held[] = [];
  #heldBytes = 0;
  #pendingInitialize: { id: RequestId; params: JSONRPCRequest['params'] } | undefined;
  #handshake: { params: JSONRPCRequest['params']; protocolVersion: string } | undefined;
  #initializedSent = false;
  #replay: { id: string; resolve: (response: JSONRPCResponse) => void; reject: (error: Error) => void } | undefined;
  #replays = 0;
  /** A child has answered a request with a result: the server starts, so a crash is worth a restart. */
  #answered = false;
  /** When each recent crash happened (performance.now()), oldest first, within windowMs. */
  readonly #crashes: number[] = [];
  #backoff: IBackoff<unknown> | undefined;
  #exit: ChildExit | undefined;
  #gaveUp: GaveUp | undefined;

  constructor(options: SupervisedChildOptions) {
    this.#options = options;
    this.#policy = options.restart;
    this.#backoffs = new ExponentialBackoff({ initialDelay: this.#policy.initialDelayMs, maxDelay: this.#policy.maxDelayMs });
    this.#idempotency = new Idempotency(options.idempotency);
    this[WIRE_CONTROL] = {
      kind: 'stdio',
      acceptsBatches: false,
      compress: () => {
        throw new TypeError('compression: a stdio upstream has no compression this layer can drive (its messages go through a pipe)');
      },
      observe: (bus: EventBus) => this.#fanout.add(bus),
    };
  }

  /** The live child's process id (null between children). */
  get pid(): number | null {
    return this.#child?.transport.pid ?? null;
  }

  /** How the child ended when it ended the transport without being restarted (it never started, or kept crashing). */
  get exit(): ChildExit | undefined {
    return this.#exit ?? this.#gaveUp?.exit;
  }

  /** Set when the gateway stopped restarting the child. */
  get gaveUp(): GaveUp | undefined {
    return this.#gaveUp;
  }

  async start(): Promise<void> {
    if (this.#state !== 'idle') throw new Error('StdioClientTransport: already started');
    const child = this.#spawn();
    try {
      await child.transport.start();
    } catch (error) {
      this.#state = 'closed';
      throw error;
    }
    if (this.#state === 'idle') this.#state = 'open';
  }

  send(message: JSONRPCMessage): Promise<void> {
    if (this.#state === 'closing' || this.#state === 'closed' || this.#state === 'idle') {
      return Promise.reject(new ConnectionClosedError(`StdioClientTransport: cannot send ${what(message)}: ${this.#state === 'idle' ? 'not started' : 'the transport is closed'}`, { neverSent: true, layer: 'gateway' }));
    }
    if (!('method' in message)) {
      // An answer to a request of a child that is gone: nobody is left to read it.
      if (message.id !== undefined && !this.#serverRequests.delete(message.id)) return Promise.resolve();
    } else if (isRequest(message)) {
      if (message.method === 'initialize') this.#pendingInitialize = { id: message.id, params: message.params };
    } else if (message.method === 'notifications/initialized') {
      this.#initializedSent = true;
    } else if (message.method === CANCELLED && this.#dropCancel(message.params?.['requestId'] as RequestId | undefined)) {
      return Promise.resolve();
    }
    return this.#state === 'open' ? this.#write(message) : this.#hold(message);
  }

  async close(): Promise<void> {
    if (this.#closed !== undefined) return this.#closed;
    this.#closed = (async () => {
      const started = this.#state !== 'idle';
      this.#state = 'closing';
      this.#stop.abort();
      this.#replay?.reject(new ConnectionClosedError('StdioClientTransport: closed', { layer: 'gateway' }));
      const child = this.#child;
      if (child !== undefined && !child.exited) await child.transport.close();
      this.#finish(started ? undefined : 'the transport was closed before it started');
    })();
    return this.#closed;
  }

  // ── children ──────────────────────────────────────────────────────────────────

  #spawn(): Child {
    const { params, stderr, onStderrLine } = this.#options;
    const child: Child = { transport: new WatchedStdioTransport(params, stderr, onStderrLine), exited: false };
    child.transport.onmessage = (message) => this.#receive(child, message);
    child.transport.onerror = (error) => {
      if (child === this.#child) reportTo(this, error);
    };
    child.transport.onclose = () => this.#childClosed(child);
    this.#child = child;
    return child;
  }

  #childClosed(child: Child): void {
    child.exited = true;
    if (child !== this.#child || this.#state === 'closing' || this.#state === 'closed') return;
    const exit = child.transport.exit ?? NO_EXIT;
    if (this.#state === 'restarting') {
      // A new child that died before its handshake was replayed: the restart loop counts it.
      this.#replay?.reject(new ConnectionClosedError(`the restarted server ${describeExit(exit, 'before it answered the replayed initialize')}`, { layer: 'gateway', reason: 'upstream-exited' }));
      return;
    }
    if (!this.#answered || this.#state === 'idle') {
      // It never started: what an unsupervised child does (the session says why, from `exit`).
      this.#exit = exit;
      this.#finish();
      return;
    }
    this.#crashed(exit);
  }

  /** The live child crashed: its requests are re-sent or answered, and a new one is started. */
  #crashed(exit: ChildExit): void {
    this.#state = 'restarting';
    this.#serverRequests.clear();
    const lost = [...this.#inflight.values()];
    this.#inflight.clear();
    for (const request of lost) {
      if (this.#idempotency.isIdempotent({ method: request.method, tool: toolOf(request) })) {
        this.#resend.push(request);
        continue;
      }
      const error = new ConnectionClosedError(
        `The upstream server ${describeExit(exit, `while ${request.method} was in flight`)}; the gateway restarted it, but ${request.method} is not safe to send twice: it may or may not have completed`,
        { layer: 'gateway', reason: 'upstream-restarted', retryable: false, data: exitData(exit) },
      );
      deliverTo(this, { jsonrpc: '2.0', id: request.id, error: toErrorObject(error, 1) });
    }
    void this.#restart(exit);
  }

  async #restart(exit: ChildExit): Promise<void> {
    const policy = this.#policy;
    let last = exit;
    let failure: Error | undefined;
    for (;;) {
      const now = performance.now();
      this.#crashes.push(now);
      while ((this.#crashes[0] as number) < now - policy.windowMs) this.#crashes.shift();
      if (this.#crashes.length > policy.maxRestarts) return this.#giveUp(this.#crashLoopError(last, now), last);
      // The delays grow while crashes follow each other within the window, and start over after a quiet one.
      this.#backoff = this.#crashes.length === 1 || this.#backoff === undefined ? this.#backoffs.next(undefined) : this.#backoff.next(undefined);
      const attempt = this.#crashes.length;
      const delayMs = this.#backoff.duration;
      this.#fanout.emit('reconnect', { attempt, delayMs, outcome: 'scheduled' });
      this.#options.logger.warn(
        `the upstream server ${failure === undefined ? describeExit(last) : `could not be restarted: ${failure.message}`}; restarting it in ${Math.round(delayMs)} ms (restart ${attempt} of at most ${policy.maxRestarts} within ${policy.windowMs} ms)`,
        { event: 'upstream-restart', session: this.#options.session, attempt, delay_ms: Math.round(delayMs), exit_code: last.exitCode, signal: last.signal, stderr: last.stderr },
      );
      await sleep(delayMs, this.#stop.signal).catch(() => {});
      if (this.#state !== 'restarting') return;
      const child = this.#spawn();
      try {
        await child.transport.start();
        await this.#replayHandshake(child);
        if (child.exited) throw new ConnectionClosedError(`the restarted server ${describeExit(child.transport.exit ?? NO_EXIT, 'as its handshake was replayed')}`, { layer: 'gateway' });
      } catch (error) {
        if (this.#state !== 'restarting') return;
        failure = asError(error);
        this.#fanout.emit('reconnect', { attempt, delayMs, outcome: 'failed', error: failure });
        if (error instanceof RestoreRefusedError) return this.#giveUp(error, last);
        if (!child.exited) void child.transport.close().catch(() => {});
        last = child.transport.exit ?? last;
        continue;
      }
      if (this.#state !== 'restarting') return;
      this.#state = 'open';
      this.#fanout.emit('reconnect', { attempt, delayMs, outcome: 'connected' });
      this.#options.logger.info(`the upstream server was restarted and the session restored on it${this.#resend.length === 0 ? '' : `; ${this.#resend.length} idempotent request(s) sent to it again`}`, {
        event: 'upstream-restarted',
        session: this.#options.session,
        attempt,
        resent: this.#resend.length,
      });
      this.#flush();
      return;
    }
  }

  #crashLoopError(exit: ChildExit, now: number): ConnectionClosedError {
    const { maxRestarts, windowMs } = this.#policy;
    const crashes = this.#crashes.length;
    const ms = Math.round(now - (this.#crashes[0] as number));
    return new ConnectionClosedError(
      `The upstream server is in a crash loop: it crashed ${crashes} times in ${ms} ms and the gateway stopped restarting it (upstream.restart.maxRestarts: ${maxRestarts} restarts within upstream.restart.windowMs: ${windowMs} ms); the last time it ${describeExit(exit)}`,
      { layer: 'gateway', reason: 'crash-loop', retryable: false, data: exitData(exit) },
    );
  }

  #giveUp(error: ConnectionClosedError, exit: ChildExit): void {
    this.#gaveUp = { error, exit };
    this.#fanout.emit('reconnect', { attempt: this.#crashes.length, delayMs: 0, outcome: 'gave-up', error });
    this.#options.logger.error(error.message, { event: 'upstream-crash-loop', session: this.#options.session, reason: error.reason, exit_code: exit.exitCode, signal: exit.signal, stderr: exit.stderr });
    const child = this.#child;
    if (child !== undefined && !child.exited) void child.transport.close().catch(() => {});
    this.#finish(error.message);
  }

  /** Re-establishes a 2025-era session on a new child; the application never sees it. */
  async #replayHandshake(child: Child): Promise<void> {
    const handshake = this.#handshake;
    if (handshake === undefined || handshake.protocolVersion >= STATELESS_PROTOCOL_VERSION) return;
    const id = `mcp-layers-restart-${++this.#replays}`;
    const answered = new Promise<JSONRPCResponse>((resolve, reject) => {
      this.#replay = { id, resolve, reject };
    });
    const ms = this.#policy.replayTimeoutMs;
    const timer = setTimeout(() => this.#replay?.reject(new ConnectionClosedError(`the restarted server did not answer the replayed initialize within ${ms} ms`, { layer: 'gateway', reason: 'replay-timeout' })), ms);
    timer.unref();
    try {
      if (child.exited) throw new ConnectionClosedError(`the restarted server ${describeExit(child.transport.exit ?? NO_EXIT, 'as it started')}`, { layer: 'gateway', reason: 'upstream-exited' });
      await child.transport.send({ jsonrpc: '2.0', id, method: 'initialize', params: handshake.params });
      const response = await answered;
      if ('error' in response) throw new RestoreRefusedError(`the restarted server refused the replayed initialize (${response.error.code} ${response.error.message})`);
      const version = response.result['protocolVersion'];
      if (version !== handshake.protocolVersion) throw new RestoreRefusedError(`the restarted server negotiated protocol version ${describe(version)} but the session uses ${handshake.protocolVersion}`);
      if (this.#initializedSent) await child.transport.send({ jsonrpc: '2.0', method: 'notifications/initialized' });
    } finally {
      clearTimeout(timer);
      this.#replay = undefined;
    }
  }

  // ── messages ──────────────────────────────────────────────────────────────────

  #receive(child: Child, message: JSONRPCMessage): void {
    if (child !== this.#child) return;
    if (!('method' in message)) {
      const id = message.id;
      const replay = this.#replay;
      if (replay !== undefined && id === replay.id) return replay.resolve(message);
      const request = id === undefined ? undefined : this.#inflight.get(id);
      if (request !== undefined) this.#inflight.delete(request.id);
      if ('result' in message) {
        this.#answered = true;
        if (request?.method === 'tools/list') this.#idempotency.learn(message.result);
        const pending = this.#pendingInitialize;
        if (pending !== undefined && id === pending.id) {
          this.#pendingInitialize = undefined;
          const version = message.result['protocolVersion'];
          if (typeof version === 'string') this.#handshake = { params: pending.params, protocolVersion: version };
        }
      }
    } else if (message.method === 'notifications/tools/list_changed') {
      this.#idempotency.forget();
    } else if (isRequest(message)) {
      this.#serverRequests.add(message.id);
    }
    deliverTo(this, message);
  }

  /** Writes to the live child; a message it could not take (it is dying) waits for the next one. */
  #write(message: JSONRPCMessage, resent = false): Promise<void> {
    const child = this.#child as Child;
    if (isRequest(message)) this.#inflight.set(message.id, message);
    return child.transport.send(message).catch((error: unknown) => {
      // Taken by the crash already (sent again or answered): accounted for.
      if (isRequest(message) && !this.#inflight.delete(message.id)) return;
      if (this.#state !== 'open' && this.#state !== 'restarting') throw error;
      if (!resent) return this.#hold(message);
      if (isRequest(message)) this.#resend.push(message);
      return undefined;
    });
  }

  #hold(message: JSONRPCMessage): Promise<void> {
    const text = JSON.stringify(message);
    const bytes = Buffer.byteLength(text);
    const { maxQueuedBytes, queueTimeoutMs } = this.#policy;
    if (this.#heldBytes + bytes > maxQueuedBytes) {
      return Promise.reject(
        new ConnectionClosedError(`StdioClientTransport: cannot send ${what(message)}: the upstream server is restarting, and the messages waiting for it fill the queue (${maxQueuedBytes} bytes); it was never sent`, {
          neverSent: true,
          layer: 'gateway',
          reason: 'queue-full',
        }),
      );
    }
    return new Promise<void>((resolve, reject) => {
      const entry: Held = { message, bytes, resolve, reject, timer: undefined };
      entry.timer = setTimeout(() => {
        this.#unhold(entry);
        reject(new ConnectionClosedError(`StdioClientTransport: ${what(message)} waited ${queueTimeoutMs} ms for the upstream server to restart; it was never sent`, { neverSent: true, layer: 'gateway', reason: 'restart-timeout' }));
      }, queueTimeoutMs);
      entry.timer.unref();
      this.#held.push(entry);
      this.#heldBytes += bytes;
    });
  }

  #unhold(entry: Held): boolean {
    const index = this.#held.indexOf(entry);
    if (index === -1) return false;
    this.#held.splice(index, 1);
    this.#heldBytes -= entry.bytes;
    clearTimeout(entry.timer);
    return true;
  }

  /** A cancellation of a request the new child never got (held, or waiting to be sent again): the request goes, and so does the cancellation. */
  #dropCancel(requestId: RequestId | undefined): boolean {
    if (requestId === undefined || this.#state === 'open') return false;
    const resend = this.#resend.findIndex((r) => r.id === requestId);
    if (resend !== -1) {
      this.#resend.splice(resend, 1);
      return true;
    }
    const held = this.#held.find((h) => isRequest(h.message) && h.message.id === requestId);
    if (held === undefined) return false;
    this.#unhold(held);
    held.reject(new ConnectionClosedError('StdioClientTransport: the request was cancelled while the upstream server restarted; it was never sent', { neverSent: true, layer: 'gateway', reason: 'cancelled' }));
    return true;
  }

  /** The session is restored: what the dead child held first, then what waited, in order. */
  #flush(): void {
    const resend = this.#resend;
    this.#resend = [];
    for (const request of resend) void this.#write(request, true);
    const held = this.#held;
    this.#held = [];
    this.#heldBytes = 0;
    for (const entry of held) {
      clearTimeout(entry.timer);
      this.#write(entry.message).then(entry.resolve, entry.reject);
    }
  }

  /** Ends the transport; `why` is what held messages fail with. */
  #finish(why = 'the transport closed'): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#stop.abort();
    const held = this.#held;
    this.#held = [];
    this.#heldBytes = 0;
    this.#resend = [];
    this.#inflight.clear();
    this.#serverRequests.clear();
    for (const entry of held) {
      clearTimeout(entry.timer);
      entry.reject(new ConnectionClosedError(`StdioClientTransport: ${what(entry.message)} was never sent: ${why}`, { neverSent: true, layer: 'gateway', reason: this.#gaveUp?.error.reason ?? 'connection-closed' }));
    }
    try {
      this.onclose?.();
    } catch (error) {
      reportTo(this, error);
    }
  }
}

/** The restarted server would not take the session back: restarting again cannot help. */
class RestoreRefusedError extends ConnectionClosedError {
  static {
    brand(this, 'error.RestoreRefusedError');
  }

  constructor(message: string) {
    super(`The upstream server was restarted but the session could not be restored on it: ${message}`, { layer: 'gateway', reason: 'restore-failed', retryable: false });
  }
}

function toolOf(request: JSONRPCRequest): string | undefined {
  const name = request.params?.['name'];
  return request.method === 'tools/call' && typeof name === 'string' ? name : undefined;
}

function what(message: JSONRPCMessage): string {
  return 'method' in message ? message.method : 'a response';
}
