/**
 * serveRedis(): a worker that serves MCP sessions of one service from Redis Streams.
 *
 *   const worker = await serveRedis({ servers: 'redis://127.0.0.1:6379', service: 'tools',
 *     onsession: async (transport) => {
 *       const server = new McpServer({ name: 'tools', version: '1.0.0' });
 *       await server.connect(wrap(transport, layers, { events: transport.events }));
 *     } });
 *
 * What every broker's worker decides (redelivery only if idempotent, deduplication,
 * sessions, capacity, drain) is in ../broker/worker.ts; this file is how Redis carries it.
 * Every worker of a service reads the service's stream through one consumer group, and
 * only while it has room; a session's later messages come from its own stream, which
 * the worker holding it reads (one blocking XREADGROUP over all of them, on a connection
 * of its own, woken with CLIENT UNBLOCK when what it should read changes). An answer is
 * published and its request acknowledged and deleted by one script, so a request is never
 * acknowledged unanswered. Requests in hand are kept from being claimed; a dead worker's
 * are claimed (XAUTOCLAIM) once idle for `ackWaitMs`, and run again only if idempotent.
 */
import { TransportError } from '../../core/errors.ts';
import { integerOption, optionsObject } from '../../core/options.ts';
import { sleep, unref } from '../../layer-kit/sleep.ts';
import { encodeHandshake, type Handshake } from '../broker/codec.ts';
import { Header, isInbox } from '../broker/names.ts';
import { type BrokerWorkerOptions, resolveWorkerPolicies, WORKER_OPTIONS } from '../broker/options.ts';
import { held, type ServerTransportInit, type WorkerLink } from '../broker/session.ts';
import { type Arrival, BrokerWorker, type SessionRecord } from '../broker/worker.ts';
import { DEFAULT_MAX_PAYLOAD, type Entry, frame, frameSize, headerRecord, readEntry, readFrame, REDIS_LIMIT } from './codec.ts';
import { type Conn, isOffline, openConnection, openDuplicate, quit, type ResolvedCommon, resolveCommon, text } from './connection.ts';
import { GROUP, HOLDS_HEADER, PROBE_HEADER } from './keys.ts';
import { COMMON_OPTIONS, type RedisCommonOptions } from './options.ts';
import { RedisServerTransport } from './session.ts';
import { ANSWER, KEEP_ALIVE, run } from './scripts.ts';

export interface RedisWorkerOptions extends RedisCommonOptions, BrokerWorkerOptions<RedisServerTransport> {
  /** The largest message, with its headers, that clients may send and this worker publishes. Written to the service's config, where clients read it. Default 1 048 576 (1 MiB). */
  maxPayload?: number;
}

const LABEL = 'mcp-layers/redis worker';
/** Most entries asked for per stream in one read: small, so that new work spreads over the workers that have room. */
const PULL_BATCH = 8;
/** How long one blocking read waits before it looks again at what it should read. */
const BLOCK_MS = 5_000;
/** A handed-back entry's idle time: over any ackWaitMs, so the next worker may claim it at once. */
const HANDED_BACK_IDLE_MS = 365 * 24 * 3_600_000;

/** A stream entry as the shared worker sees it. */
interface RedisArrival extends Arrival {
  readonly stream: string;
  readonly entryId: string;
}

export async function serveRedis(options: RedisWorkerOptions): Promise<RedisWorker> {
  const worker = new RedisWorker(options);
  await worker.start();
  return worker;
}

export class RedisWorker extends BrokerWorker<RedisServerTransport, RedisArrival, string, 'stream' | 'pubsub'> {
  readonly #common: ResolvedCommon;
  readonly #maxPayload: number;
  #conn: Conn | undefined;
  #owned = false;
  #sub: Conn | undefined;
  #reader: Conn | undefined;
  #readerId: string | undefined;
  #reading: Promise<void> | undefined;
  /** What the blocking read in progress reads (undefined: none in progress). */
  #readingNow: string | undefined;
  #unblocking = false;
  /** Counts the blocking reads, so that an unblock is tried again only for the read it meant. */
  #reads = 0;
  #idle: PromiseWithResolvers<void> | undefined;
  #reclaimTimer: NodeJS.Timeout | undefined;
  #ttlTimer: NodeJS.Timeout | undefined;

  constructor(options: RedisWorkerOptions) {
    optionsObject(options, 'serveRedis', [...COMMON_OPTIONS, ...WORKER_OPTIONS, 'maxPayload']);
    const common = resolveCommon('serveRedis', options);
    const policies = resolveWorkerPolicies('serveRedis', options);
    const maxPayload = integerOption('serveRedis.maxPayload', options.maxPayload, DEFAULT_MAX_PAYLOAD, 1_024);
    super(
      { layer: 'redis', label: LABEL, unit: 'stream entry', limit: REDIS_LIMIT, connection: 'the connection to the Redis server' },
      policies,
      policies.id ?? randomId(),
      common.events,
      options,
      'serveRedis.nonIdempotentTools',
    );
    this.#common = common;
    this.#maxPayload = maxPayload;
  }

  /** The service's stream on the broker. */
  get stream(): string {
    return this.#common.keys.requests;
  }

  protected override newTransport(link: WorkerLink, init: ServerTransportInit): RedisServerTransport {
    return new RedisServerTransport(link, init);
  }

  protected override isClientInbox(inbox: string): boolean {
    return inbox.startsWith(this.#common.keys.clientPrefix);
  }

  // ── the broker's side ────────────────────────────────────────────────────────

  protected override async connect(): Promise<string> {
    const { keys } = this.#common;
    const { conn, owned } = await openConnection(this.#common, LABEL, `mcp-layers-worker-${keys.service}-${this.id}`);
    this.#conn = conn;
    this.#owned = owned;
    try {
      await this.#setUp(conn);
      this.#sub = await openDuplicate(this.#common, conn, owned, LABEL, `mcp-layers-worker-${this.id}-pubsub`);
      this.#reader = await openDuplicate(this.#common, conn, owned, LABEL, `mcp-layers-worker-${this.id}-reader`);
      this.#readerId = text(await this.#reader.sendCommand(['CLIENT', 'ID']));
      await this.#sub.subscribe(keys.control, (payload, channel) => {
        const { data, headers } = readFrame(payload);
        this.onControl(data, headers.get(Header.Client), text(channel), headerRecord(headers));
      }, true);
      await this.#sub.subscribe(keys.worker(this.id), (payload) => this.#probed(payload), true);
    } catch (error) {
      for (const c of [this.#reader, this.#sub]) c?.destroy();
      if (owned) conn.destroy();
      if (error instanceof TransportError) throw error;
      throw new TransportError(`${LABEL}: could not set up ${keys.requests} for "${keys.service}": ${(error as Error).message}`, { layer: 'redis', reason: 'setup-failed', cause: error });
    }
    this.#reader.on('ready', () => {
      void this.#reader?.sendCommand(['CLIENT', 'ID']).then((id) => void (this.#readerId = text(id)), () => {});
    });
    conn.on('ready', () => {
      if (this.connected) return;
      // Reading waits for this (`connected`): the server may have come back without what it held.
      void this.#restore(conn).then(() => {
        if (this.connected || !conn.isReady) return;
        this.connected = true;
        this.fanout.emit('connection', { state: 'open', transport: 'redis', url: this.#common.url });
      });
    });
    conn.on('reconnecting', () => {
      if (!this.connected) return;
      this.connected = false;
      this.fanout.emit('connection', { state: 'closed', transport: 'redis', url: this.#common.url, reason: 'the connection to the Redis server was lost' });
    });
    return this.#common.url;
  }

  /** The service's group and config: what clients need before they can publish (the script refuses without the config). */
  async #setUp(conn: Conn): Promise<void> {
    const { keys } = this.#common;
    const p = this.policies;
    await createGroup(conn, keys.requests);
    await conn.sendCommand(['HSET', keys.config, 'dedupWindowMs', String(p.dedupWindowMs), 'maxAgeMs', String(p.maxAgeMs), 'sessionIdleMs', String(p.sessionIdleMs), 'maxPayload', String(this.#maxPayload)]);
  }

  /**
   * After a reconnection, before reading again: writes back what this worker needs on the
   * server — the service's group and config, and for every session it holds the stream's
   * group, its time to live and the handshake — since a server restarted without
   * persistence (or failed over to a replica that lacked the writes) has lost them. What
   * is still there is left as it is: a handshake another worker wrote meanwhile (it took
   * the session over) wins (`NX`). What was in the lost streams is gone.
   */
  async #restore(conn: Conn): Promise<void> {
    const { keys } = this.#common;
    const idle = String(this.policies.sessionIdleMs);
    try {
      await this.#setUp(conn);
      await Promise.all(
        [...this.sessionRecords()].map(async (record) => {
          if (record.binding === undefined) return;
          await createGroup(conn, record.binding);
          await conn.sendCommand(['PEXPIRE', record.binding, idle]);
          if (record.protocolVersion === undefined) return;
          const handshake = encodeHandshake({ params: record.params, protocolVersion: record.protocolVersion, worker: this.id });
          await conn.sendCommand(['SET', keys.handshake(record.id), Buffer.from(handshake), 'PX', idle, 'NX']);
        }),
      );
    } catch (error) {
      if (!isOffline(error)) this.report(new TransportError(`${LABEL}: could not write the service's config and sessions back after reconnecting: ${(error as Error).message}`, { layer: 'redis', reason: 'restore-failed', cause: error }));
    }
  }

  protected override startReading(): void {
    this.#reading = this.#read();
    this.#reclaimTimer = setInterval(() => void this.#reclaim(), Math.max(50, this.policies.ackWaitMs / 2));
    unref(this.#reclaimTimer);
    this.#ttlTimer = setInterval(() => this.#refreshSessions(), Math.max(1_000, this.policies.sessionIdleMs / 3));
    unref(this.#ttlTimer);
  }

  protected override async stopReading(): Promise<void> {
    clearInterval(this.#reclaimTimer);
    clearInterval(this.#ttlTimer);
    this.#wake(true);
    if (this.#readingNow !== undefined && this.#conn?.isReady !== true) this.#reader?.destroy();
    await this.#reading?.catch(() => {});
  }

  protected override async disconnect(): Promise<void> {
    await quit(this.#sub);
    await quit(this.#reader);
    if (this.#owned) await quit(this.#conn);
  }

  protected override announce(state: 'joined' | 'left'): void {
    void this.#conn?.sendCommand(['PUBLISH', this.#common.keys.announcements, JSON.stringify({ worker: this.id, state })]).catch(() => {});
  }

  /** A client's probe: answered on its channel, saying whether this worker holds the session. */
  #probed(payload: Buffer): void {
    let probe: { probe?: unknown; session?: unknown; reply?: unknown };
    try {
      probe = JSON.parse(payload.toString('utf8')) as typeof probe;
    } catch {
      return;
    }
    if (typeof probe.probe !== 'string' || typeof probe.reply !== 'string' || !isInbox(probe.reply) || !this.isClientInbox(probe.reply)) return;
    const headers: Array<[string, string]> = [[Header.Worker, this.id], [PROBE_HEADER, probe.probe]];
    if (typeof probe.session === 'string') headers.push([HOLDS_HEADER, this.sessionRecord(probe.session) === undefined ? '0' : '1']);
    void this.#conn?.sendCommand(['PUBLISH', probe.reply, frame(new Uint8Array(0), headers)]).catch(() => {});
  }

  // ── reading ──────────────────────────────────────────────────────────────────

  /** What to read now: the shared stream while there is room, and every bound session's stream that is below its limit. */
  #streams(): string[] {
    const streams = this.room > 0 && this.state === 'serving' ? [this.#common.keys.requests] : [];
    for (const record of this.sessionRecords()) {
      if (record.binding !== undefined && record.transport[held].size < this.policies.perSession) streams.push(record.binding);
    }
    return streams;
  }

  /**
   * How many entries one read may bring per stream. One COUNT applies to every stream it
   * reads, so it is the least room of any: the shared stream's (`maxInFlight`) and each
   * session's (`maxInFlightPerSession`), so that no read takes a session past its limit.
   */
  #readCount(streams: string[]): number {
    let count = PULL_BATCH;
    if (streams[0] === this.#common.keys.requests) count = Math.min(count, this.room);
    for (const record of this.sessionRecords()) {
      if (record.binding !== undefined && streams.includes(record.binding)) count = Math.min(count, this.policies.perSession - record.transport[held].size);
    }
    return Math.max(1, count);
  }

  async #read(): Promise<void> {
    const reader = this.#reader as Conn;
    while (!this.stop.signal.aborted) {
      if (!reader.isReady || !this.connected) {
        await sleep(100, this.stop.signal).catch(() => {});
        continue;
      }
      const streams = this.#streams();
      if (streams.length === 0) {
        this.#idle = Promise.withResolvers<void>();
        await this.#idle.promise;
        continue;
      }
      const count = this.#readCount(streams);
      let reply: unknown;
      this.#readingNow = streams.join('\n');
      this.#reads++;
      try {
        reply = await reader.sendCommand(['XREADGROUP', 'GROUP', GROUP, this.id, 'COUNT', String(count), 'BLOCK', String(BLOCK_MS), 'STREAMS', ...streams, ...streams.map(() => '>')]);
      } catch (error) {
        if (this.stop.signal.aborted) return;
        await this.#readFailed(error);
        continue;
      } finally {
        this.#readingNow = undefined;
        this.#unblocking = false;
      }
      if (!Array.isArray(reply)) continue;
      // Pub/sub arrives on another connection. A client publishes a cancellation and then adds a request on one
      // connection, so Redis wrote the cancellation to our subscriber before the entry existed: the answer to a PING
      // on that connection comes after it, and the cancellation is handled before the request, as it was sent.
      await this.#sub?.sendCommand(['PING']).catch(() => {});
      for (const [stream, entries] of reply as Array<[unknown, Array<[unknown, unknown]>]>) {
        for (const [id, fields] of entries) this.#arrive(text(stream), text(id), readEntry(fields), 1);
      }
    }
  }

  async #readFailed(error: unknown): Promise<void> {
    const message = (error as Error)?.message ?? String(error);
    const missing = /NOGROUP No such key '([^']+)'/.exec(message)?.[1];
    if (missing === this.#common.keys.requests) {
      // Deleted under us (FLUSHALL, a cleanup): make it again, so the service keeps working.
      this.report(new TransportError(`${LABEL}: ${missing} or its group was gone; made again`, { layer: 'redis', reason: 'stream-missing', cause: error }));
      await createGroup(this.#conn as Conn, missing).catch(() => {});
      return;
    }
    const sessionId = missing === undefined ? undefined : this.#common.keys.sessionOf(missing);
    const record = sessionId === undefined ? undefined : this.sessionRecord(sessionId);
    if (record !== undefined) {
      this.lost(record, `its stream ${missing} is gone from the broker (idle for sessionIdleMs, or deleted)`);
      return;
    }
    if (!isOffline(error) && this.connected) this.report(new TransportError(`${LABEL}: reading the streams failed; trying again: ${message}`, { layer: 'redis', reason: 'pull-failed', cause: error }));
    await sleep(isOffline(error) ? 100 : 500, this.stop.signal).catch(() => {});
  }

  /** Makes the blocking read look again at what it reads, when that changed (or at once, `force`). */
  #wake(force = false): void {
    const idle = this.#idle;
    if (idle !== undefined && (force || this.#streams().length > 0)) {
      this.#idle = undefined;
      idle.resolve();
      return;
    }
    if (this.#readingNow === undefined || this.#unblocking || this.#readerId === undefined) return;
    if (!force && this.#streams().join('\n') === this.#readingNow) return;
    this.#unblocking = true;
    void this.#unblock(this.#reads);
  }

  /**
   * CLIENT UNBLOCK travels on another connection than the read, so it may reach the
   * server before the read blocks (it then unblocks nothing): tried again while that same
   * read is still under way, a bounded number of times.
   */
  async #unblock(read: number): Promise<void> {
    for (let attempt = 0; attempt < 50 && this.#reads === read && this.#readingNow !== undefined; attempt++) {
      try {
        if (Number(await (this.#conn as Conn).sendCommand(['CLIENT', 'UNBLOCK', this.#readerId as string])) === 1) return;
      } catch {
        break;
      }
      await sleep(5);
    }
    if (this.#reads === read) this.#unblocking = false;
  }

  protected override freed(): void {
    super.freed();
    this.#wake();
  }

  #arrive(stream: string, entryId: string, entry: Entry, deliveryCount: number): void {
    const arrival = this.#arrival(stream, entryId, entry, deliveryCount);
    if (stream === this.#common.keys.requests) {
      this.onShared(arrival);
      return;
    }
    const sessionId = this.#common.keys.sessionOf(stream);
    const record = sessionId === undefined ? undefined : this.sessionRecord(sessionId);
    // Released while the read was under way: the session's next worker gets it.
    if (record === undefined || record.binding !== stream) arrival.handBack();
    else this.onSession(record, arrival);
  }

  #arrival(stream: string, entryId: string, entry: Entry, deliveryCount: number): RedisArrival {
    return {
      stream,
      entryId,
      data: entry.data,
      subject: stream,
      redelivered: deliveryCount > 1,
      deliveryCount,
      header: (name) => entry.headers.get(name),
      headers: () => headerRecord(entry.headers),
      ack: () => this.#ack(stream, entryId),
      handBack: () => this.#handBack(stream, entryId),
      terminate: () => this.#ack(stream, entryId),
    };
  }

  #ack(stream: string, entryId: string): void {
    const conn = this.#conn as Conn;
    void Promise.all([conn.sendCommand(['XACK', stream, GROUP, entryId]), conn.sendCommand(['XDEL', stream, entryId])]).catch((error: unknown) => {
      if (!isOffline(error)) this.report(error);
    });
  }

  #handBack(stream: string, entryId: string): void {
    void this.#conn?.sendCommand(['XCLAIM', stream, GROUP, this.id, '0', entryId, 'IDLE', String(HANDED_BACK_IDLE_MS), 'JUSTID']).catch(() => {});
  }

  /**
   * Takes over what dead workers left pending: on the shared stream while there is room,
   * and on the streams of sessions this worker took over from another (a replayed
   * handshake). What comes this way was delivered before: it runs only if idempotent.
   */
  async #reclaim(): Promise<void> {
    if (!this.connected || this.state !== 'serving') return;
    const claims: Array<Promise<void>> = [];
    if (this.room > 0) claims.push(this.#claim(this.#common.keys.requests, Math.min(PULL_BATCH, this.room)));
    for (const record of this.sessionRecords()) {
      if (record.binding !== undefined && record.replay !== undefined) {
        const room = this.policies.perSession - record.transport[held].size;
        if (room > 0) claims.push(this.#claim(record.binding, room));
      }
    }
    await Promise.all(claims);
  }

  async #claim(stream: string, count: number): Promise<void> {
    const conn = this.#conn as Conn;
    try {
      const reply = await conn.sendCommand<[unknown, Array<[unknown, unknown]>, unknown]>(['XAUTOCLAIM', stream, GROUP, this.id, String(this.policies.ackWaitMs), '0-0', 'COUNT', String(count)]);
      const entries = (reply[1] ?? []).filter(([, fields]) => Array.isArray(fields));
      if (entries.length === 0) return;
      const ids = entries.map(([id]) => text(id));
      const pending = await conn.sendCommand<Array<[unknown, unknown, unknown, unknown]>>(['XPENDING', stream, GROUP, ids[0] as string, ids.at(-1) as string, String(ids.length * 2), this.id]);
      const counts = new Map(pending.map(([id, , , n]) => [text(id), Number(n)]));
      for (const [i, [, fields]] of entries.entries()) {
        const id = ids[i] as string;
        this.#arrive(stream, id, readEntry(fields), Math.max(2, counts.get(id) ?? 2));
      }
    } catch (error) {
      if (isOffline(error) || /NOGROUP/.test((error as Error).message)) return;
      this.report(new TransportError(`${LABEL}: claiming idle entries of ${stream} failed: ${(error as Error).message}`, { layer: 'redis', reason: 'claim-failed', cause: error }));
    }
  }

  /** Sessions held stay on the broker however long their clients are quiet. */
  #refreshSessions(): void {
    const conn = this.#conn as Conn;
    if (!this.connected) return;
    for (const record of this.sessionRecords()) {
      if (record.binding !== undefined) void conn.sendCommand(['PEXPIRE', record.binding, String(this.policies.sessionIdleMs)]).catch(() => {});
    }
  }

  protected override async saveHandshake(sessionId: string, handshake: Handshake): Promise<void> {
    await (this.#conn as Conn).sendCommand(['SET', this.#common.keys.handshake(sessionId), Buffer.from(encodeHandshake(handshake)), 'PX', String(this.policies.sessionIdleMs)]);
  }

  protected override dropHandshake(sessionId: string): void {
    void this.#conn?.sendCommand(['DEL', this.#common.keys.handshake(sessionId)]).catch(() => {});
  }

  protected override keepAlive(deliveries: RedisArrival[]): void {
    const conn = this.#conn as Conn;
    if (!this.connected) return;
    const byStream = new Map<string, string[]>();
    for (const d of deliveries) {
      const ids = byStream.get(d.stream);
      if (ids === undefined) byStream.set(d.stream, [d.entryId]);
      else ids.push(d.entryId);
    }
    for (const [stream, ids] of byStream) void run(conn, KEEP_ALIVE, [stream], [this.id, ...ids]).catch(() => {});
  }

  protected override async clientsGone(inboxes: string[]): Promise<Set<string>> {
    const reply = await (this.#conn as Conn).sendCommand<unknown[]>(['PUBSUB', 'NUMSUB', ...inboxes]);
    const gone = new Set<string>();
    for (let i = 0; i + 1 < reply.length; i += 2) if (Number(reply[i + 1]) === 0) gone.add(text(reply[i]));
    return gone;
  }

  /** After a session's initialize is answered: its own stream, from this worker on. */
  protected override async bind(record: SessionRecord<RedisServerTransport, string>): Promise<void> {
    const conn = this.#conn as Conn;
    const stream = this.#common.keys.session(record.id);
    await createGroup(conn, stream);
    await conn.sendCommand(['PEXPIRE', stream, String(this.policies.sessionIdleMs)]);
    if (this.sessionRecord(record.id) !== record) return;
    record.binding = stream;
    this.#wake();
    // Taken over from another worker: what it held is claimable once idle (at once, if it handed it back).
    if (record.replay !== undefined) void this.#claim(stream, this.policies.perSession);
  }

  protected override unbind(record: SessionRecord<RedisServerTransport, string>, forGood: boolean): void {
    const stream = record.binding ?? this.#common.keys.session(record.id);
    record.binding = undefined;
    if (forGood) void this.#conn?.sendCommand(['DEL', stream]).catch(() => {});
    this.#wake();
  }

  // ── what goes out ────────────────────────────────────────────────────────────

  protected override async publish(inbox: string, data: Uint8Array, headers: Array<[string, string]>, ack: RedisArrival | undefined, method: string | undefined): Promise<void> {
    const conn = this.#conn;
    if (conn === undefined) throw new TransportError(`${LABEL}: cannot send: not connected`, { layer: 'redis', reason: 'connection-closed', neverSent: true });
    const payload = frame(data, headers);
    try {
      if (ack === undefined) await conn.sendCommand(['PUBLISH', inbox, payload]);
      else await run(conn, ANSWER, [ack.stream], [inbox, payload, ack.entryId]);
    } catch (error) {
      if (isOffline(error)) throw new TransportError(`${LABEL}: cannot send: the connection to the Redis server is closed`, { layer: 'redis', reason: 'connection-closed', neverSent: true, cause: error });
      throw error;
    }
    if (this.brokerEvents.has('broker-published')) this.brokerEvents.emit('broker-published', { subject: inbox, via: 'pubsub', bytes: payload.length, method });
  }

  protected override sizeOf(data: Uint8Array, headers: Array<[string, string]>): number {
    return frameSize(data, headers);
  }

  protected override maxPayload(): number {
    return this.#maxPayload;
  }
}

/** A stream's consumer group, made with the stream when missing; from id 0, so nothing added before it is missed. */
async function createGroup(conn: Conn, stream: string): Promise<void> {
  try {
    await conn.sendCommand(['XGROUP', 'CREATE', stream, GROUP, '0', 'MKSTREAM']);
  } catch (error) {
    if (!/BUSYGROUP/.test((error as Error).message)) throw error;
  }
}

function randomId(): string {
  return crypto.randomUUID().replaceAll('-', '');
}
