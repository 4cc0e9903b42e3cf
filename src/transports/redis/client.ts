/**
 * RedisClientTransport: an MCP client transport to a service served by workers over
 * Redis Streams (serveRedis(), worker.ts).
 *
 * What every broker's client does (routing, deduplication, idempotency, probing the
 * session's worker and replaying the handshake on another, failing requests in flight
 * when the broker goes) is in ../broker/client.ts. Over Redis: `initialize` and
 * sessionless requests are added to the service's stream, a session's messages to its
 * own stream, each by one script that also refuses a second publish of the same client
 * and wire id within the window, checks the service's maxPayload and trims old entries;
 * workers answer on this transport's pub/sub channel; the worker is probed by publishing
 * to its channel (nobody subscribed means it is gone at once); the client library
 * reconnects on its own.
 */
import { randomBytes } from 'node:crypto';
import { McpLayersError, TransportError } from '../../core/errors.ts';
import { invalidOption, optionsObject } from '../../core/options.ts';
import { unref } from '../../layer-kit/sleep.ts';
import { BrokerClientTransport, type ProbeResult, type Published, type Route } from '../broker/client.ts';
import { decodeHandshake, type Handshake, overMaxPayload } from '../broker/codec.ts';
import { type BrokerClientOptions, CLIENT_OPTIONS, resolveClientPolicies } from '../broker/options.ts';
import { entryFields, entrySize, frame, readFrame, REDIS_LIMIT } from './codec.ts';
import { type Conn, isOffline, offline, openConnection, openDuplicate, quit, type ResolvedCommon, resolveCommon, text } from './connection.ts';
import { HOLDS_HEADER, PROBE_HEADER } from './keys.ts';
import { COMMON_OPTIONS, type RedisCommonOptions, type RedisConnectionLike } from './options.ts';
import { PUBLISH, run } from './scripts.ts';

export interface RedisClientTransportOptions extends RedisCommonOptions, BrokerClientOptions {
  /**
   * An open connection to subscribe this transport's channel on, shared with other
   * transports (a gateway's sessions share one) instead of a duplicate of its own: the
   * transport unsubscribes its channel on close and never closes the connection.
   */
  subscriber?: RedisConnectionLike;
}

const LABEL = 'mcp-layers/redis client';

export class RedisClientTransport extends BrokerClientTransport<'stream' | 'pubsub'> {
  readonly #common: ResolvedCommon;
  #conn: Conn | undefined;
  #owned = false;
  #sub: Conn | undefined;
  /** The `subscriber` option: a subscriber connection other transports share. */
  readonly #sharedSub: Conn | undefined;
  /** What this transport listens to on its connections, removed on close (they may outlive it). */
  readonly #watching: Array<[Conn, string, (...args: never[]) => void]> = [];
  readonly #onChannel = (payload: Buffer, channel: Buffer) => this.#receive(payload, text(channel));
  #inbox = '';
  /** The service's limit, from its config (learnt with the presence check, or from a refusal). */
  #maxPayload: number | undefined;
  #probes = 0;
  readonly #probeWaiters = new Map<string, (answer: { holds: boolean | undefined } | undefined) => void>();

  constructor(options: RedisClientTransportOptions) {
    optionsObject(options, 'RedisClientTransport', [...COMMON_OPTIONS, ...CLIENT_OPTIONS, 'subscriber']);
    const common = resolveCommon('RedisClientTransport', options);
    const sub = options.subscriber as unknown as Conn | undefined;
    if (sub !== undefined && (typeof sub !== 'object' || sub === null || typeof sub.subscribe !== 'function' || typeof sub.unsubscribe !== 'function' || typeof sub.on !== 'function')) {
      throw invalidOption('RedisClientTransport.subscriber', 'a connected client from @redis/client (createClient())', sub);
    }
    const policies = resolveClientPolicies('RedisClientTransport', options);
    super({ layer: 'redis', label: LABEL, broker: 'Redis server', unit: 'stream entry' }, randomBytes(12).toString('base64url'), policies, common.events, options);
    this.#common = common;
    this.#sharedSub = sub;
  }

  /** The service's name on the broker. */
  get service(): string {
    return this.#common.keys.service;
  }

  /** This transport's pub/sub channel (workers publish there); empty until start(). */
  get inbox(): string {
    return this.#inbox;
  }

  protected override async connectBroker(): Promise<string> {
    const { conn, owned } = await openConnection(this.#common, LABEL, `mcp-layers-client-${this.service}`);
    this.#conn = conn;
    this.#owned = owned;
    try {
      this.#sub = this.#sharedSub ?? (await openDuplicate(this.#common, conn, owned, LABEL, `mcp-layers-client-${this.service}-pubsub`));
      this.#inbox = this.#common.keys.client(this.clientId);
      await this.#sub.subscribe(this.#inbox, this.#onChannel, true);
    } catch (error) {
      if (this.#sharedSub === undefined) this.#sub?.destroy();
      if (owned) conn.destroy();
      throw error;
    }
    for (const c of owned ? [conn, this.#sub] : [this.#sub]) {
      this.#watch(c, 'ready', () => {
        if (this.#conn?.isReady === true && this.#sub?.isReady === true) this.brokerBack(this.#common.url);
      });
      this.#watch(c, 'reconnecting', () => this.brokerLost(this.#common.url));
      this.#watch(c, 'end', () => this.brokerClosed(new Error('the client library stopped reconnecting')));
    }
    this.connected = conn.isReady && this.#sub.isReady;
    return this.#common.url;
  }

  protected override async closeBroker(closeSession: (() => Promise<void>) | undefined): Promise<void> {
    if (closeSession !== undefined) await closeSession();
    for (const resolve of this.#probeWaiters.values()) resolve(undefined);
    this.#probeWaiters.clear();
    for (const [c, event, listener] of this.#watching.splice(0)) c.off(event, listener);
    if (this.#sharedSub === undefined) await quit(this.#sub);
    else if (this.#sub?.isReady === true) await this.#sub.unsubscribe(this.#inbox, this.#onChannel, true).catch(() => {});
    if (this.#owned) await quit(this.#conn);
  }

  #watch(c: Conn, event: string, listener: () => void): void {
    c.on(event, listener);
    this.#watching.push([c, event, listener]);
  }

  // ── publishing ───────────────────────────────────────────────────────────────

  /** Before work goes to the shared stream: is any worker subscribed to the service's control channel? */
  protected override async ensureServed(what: string): Promise<void> {
    const conn = this.#conn as Conn;
    const { keys } = this.#common;
    const timer = Promise.withResolvers<undefined>();
    const t = setTimeout(() => timer.resolve(undefined), this.presenceTimeoutMs);
    unref(t);
    let answer: [unknown[], unknown] | undefined;
    try {
      answer = await Promise.race([Promise.all([conn.sendCommand<unknown[]>(['PUBSUB', 'NUMSUB', keys.control]), conn.sendCommand(['HGET', keys.config, 'maxPayload'])]), timer.promise]);
    } catch (error) {
      if (isOffline(error)) throw offline(LABEL, what, error);
      return; // no answer is no proof of absence: the stream keeps the request until a worker takes it
    } finally {
      clearTimeout(t);
    }
    if (answer === undefined) return;
    const [numsub, maxPayload] = answer;
    if (maxPayload !== null && maxPayload !== undefined) this.#maxPayload = Number(text(maxPayload));
    if (Number(numsub[1]) === 0) {
      throw new TransportError(`${LABEL}: cannot send ${what}: no worker serves "${this.service}" (nobody subscribes to ${keys.control}); it was not sent`, {
        layer: 'redis',
        reason: 'no-responders',
        neverSent: true,
        retryable: true,
      });
    }
  }

  protected override checkSize(data: Uint8Array, headers: Array<[string, string]>, what: string): number {
    const size = entrySize(data, headers);
    if (this.#maxPayload !== undefined && size > this.#maxPayload) throw overMaxPayload(LABEL, REDIS_LIMIT, what, size, this.#maxPayload);
    return size;
  }

  protected override async publishTo(route: Route, data: Uint8Array, headers: Array<[string, string]>, key: string | undefined, what: string): Promise<Published<'stream' | 'pubsub'>> {
    const conn = this.#conn as Conn;
    const { keys } = this.#common;
    if (route.to === 'control') {
      const payload = frame(data, headers);
      try {
        await conn.sendCommand(['PUBLISH', keys.control, payload]);
      } catch (error) {
        throw this.#publishError(error, what, payload.length);
      }
      return { subject: keys.control, via: 'pubsub', bytes: payload.length, duplicate: false };
    }
    const stream = route.to === 'shared' ? keys.requests : keys.session(route.sessionId);
    const size = entrySize(data, headers);
    const timer = Promise.withResolvers<never>();
    const t = setTimeout(() => timer.reject(new PublishTimeout()), this.policies.publishTimeoutMs);
    unref(t);
    try {
      const stored = await Promise.race([
        run(conn, PUBLISH, [stream, keys.config, key === undefined ? stream : keys.dedup(key)], [key === undefined ? '0' : '1', route.to === 'session' ? '1' : '0', String(size), ...entryFields(data, headers)]),
        timer.promise,
      ]);
      return { subject: stream, via: 'stream', bytes: size, duplicate: Number(stored) === 0 };
    } catch (error) {
      throw this.#publishError(error, what, size, stream);
    } finally {
      clearTimeout(t);
    }
  }

  #publishError(error: unknown, what: string, size: number, stream?: string): Error {
    if (error instanceof McpLayersError) return error;
    if (isOffline(error)) return offline(LABEL, what, error);
    const message = (error as Error)?.message ?? String(error);
    const limit = /MAXPAYLOAD (\d+)/.exec(message);
    if (limit !== null) {
      this.#maxPayload = Number(limit[1]);
      return overMaxPayload(LABEL, REDIS_LIMIT, what, size, this.#maxPayload);
    }
    if (/NOSTREAM/.test(message)) {
      return new TransportError(`${LABEL}: cannot send ${what}: no worker of "${this.service}" has ever started (serveRedis() writes ${this.#common.keys.config}); it was not sent`, {
        layer: 'redis',
        reason: 'no-stream',
        neverSent: true,
        retryable: true,
        cause: error,
      });
    }
    if (error instanceof PublishTimeout) {
      return new TransportError(`${LABEL}: ${what}: ${stream ?? 'the stream'} did not confirm it within ${this.policies.publishTimeoutMs} ms; it may or may not have been stored`, {
        layer: 'redis',
        reason: 'publish-timeout',
        cause: error,
      });
    }
    return new TransportError(`${LABEL}: could not publish ${what}: ${message}`, { layer: 'redis', reason: 'publish-failed', cause: error });
  }

  // ── reading ──────────────────────────────────────────────────────────────────

  #receive(payload: Buffer, channel: string): void {
    const { data, headers } = readFrame(payload);
    const probe = headers.get(PROBE_HEADER);
    if (probe !== undefined) {
      const holds = headers.get(HOLDS_HEADER);
      this.#probeWaiters.get(probe)?.({ holds: holds === '1' ? true : holds === '0' ? false : undefined });
      return;
    }
    this.arrived(data, (name) => headers.get(name), channel);
  }

  // ── the session's worker ─────────────────────────────────────────────────────

  protected override async loadHandshake(sessionId: string): Promise<Handshake | undefined> {
    try {
      return decodeHandshake((await (this.#conn as Conn).sendCommand<Buffer | null>(['GET', this.#common.keys.handshake(sessionId)])) ?? undefined);
    } catch (error) {
      if (isOffline(error)) throw offline(LABEL, `the lookup of session ${sessionId}`, error);
      throw new TransportError(`${LABEL}: could not read session ${sessionId}'s handshake: ${(error as Error).message}`, { layer: 'redis', reason: 'handshake-unreadable', cause: error });
    }
  }

  protected override async probeWorker(worker: string, sessionId: string, timeoutMs: number): Promise<ProbeResult> {
    const conn = this.#conn as Conn;
    const probe = String(++this.#probes);
    const answered = new Promise<{ holds: boolean | undefined } | undefined>((resolve) => this.#probeWaiters.set(probe, resolve));
    const t = setTimeout(() => this.#probeWaiters.get(probe)?.(undefined), timeoutMs);
    unref(t);
    try {
      const receivers = await conn.sendCommand(['PUBLISH', this.#common.keys.worker(worker), JSON.stringify({ probe, session: sessionId, reply: this.#inbox })]);
      if (Number(receivers) === 0) return { outcome: 'gone', reason: 'nobody listens on its probe channel' };
      const answer = await answered;
      return answer === undefined ? { outcome: 'missed' } : { outcome: 'alive', holds: answer.holds };
    } catch {
      return { outcome: 'missed' };
    } finally {
      clearTimeout(t);
      this.#probeWaiters.delete(probe);
    }
  }
}

class PublishTimeout extends Error {}
