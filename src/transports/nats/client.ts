/**
 * NatsClientTransport: an MCP client transport to a service served by workers over NATS
 * (serveNats(), worker.ts).
 *
 * What every broker's client does (routing, deduplication, idempotency, probing the
 * session's worker and replaying the handshake on another, failing requests in flight
 * when the broker goes) is in ../broker/client.ts. Over NATS: `initialize` and
 * sessionless requests go to the service's JetStream subject, a session's messages to its
 * own subject; a request is published under the stream's deduplication key
 * (`Nats-Msg-Id`); workers answer on this transport's core inbox; the worker is probed
 * with a core request ("no responders" means gone at once); the client library
 * reconnects on its own; a message over the server's `max_payload` is refused with an
 * error that names the limit.
 */
import { jetstream, type JetStreamClient } from '@nats-io/jetstream';
import { createInbox, Empty, type Msg, type NatsConnection, nuid, type Subscription } from '@nats-io/transport-node';
import { McpLayersError, TransportError } from '../../core/errors.ts';
import { optionsObject } from '../../core/options.ts';
import { BrokerClientTransport, type ProbeResult, type Published, type Route } from '../broker/client.ts';
import { decodeHandshake, type Handshake, overMaxPayload } from '../broker/codec.ts';
import { type BrokerClientOptions, CLIENT_OPTIONS, type HeartbeatOptions, type RecoverOptions, resolveClientPolicies } from '../broker/options.ts';
import { headersFor, NATS_LIMIT, wireSize } from './codec.ts';
import { isNoResponders, isTimeout, openConnection, type ResolvedCommon, resolveCommon } from './connection.ts';
import { COMMON_OPTIONS, type NatsCommonOptions } from './options.ts';
import { clientMessages, clientProbe } from './subjects.ts';

export type NatsHeartbeatOptions = HeartbeatOptions;
export type NatsRecoverOptions = RecoverOptions;

export interface NatsClientTransportOptions extends NatsCommonOptions, BrokerClientOptions {}

const LABEL = 'mcp-layers/nats client';

export class NatsClientTransport extends BrokerClientTransport<'stream' | 'core'> {
  readonly #common: ResolvedCommon;
  #nc: NatsConnection | undefined;
  #owned = false;
  #js: JetStreamClient | undefined;
  #inbox = '';
  #sub: Subscription | undefined;

  constructor(options: NatsClientTransportOptions) {
    optionsObject(options, 'NatsClientTransport', [...COMMON_OPTIONS, ...CLIENT_OPTIONS]);
    const common = resolveCommon('NatsClientTransport', options);
    const policies = resolveClientPolicies('NatsClientTransport', options);
    super({ layer: 'nats', label: LABEL, broker: 'NATS server', unit: 'NATS message' }, nuid.next(), policies, common.events, options);
    this.#common = common;
  }

  /** The service's name on the broker. */
  get service(): string {
    return this.#common.subjects.service;
  }

  /** This transport's inbox on the broker (workers publish to `<inbox>.m`); empty until start(). */
  get inbox(): string {
    return this.#inbox;
  }

  protected override async connectBroker(): Promise<string> {
    const { nc, owned } = await openConnection(this.#common, LABEL, `mcp-layers client ${this.#common.subjects.service}`);
    this.#nc = nc;
    this.#owned = owned;
    this.#js = jetstream(nc);
    this.#inbox = createInbox(this.#common.connectOptions.inboxPrefix);
    this.#sub = nc.subscribe(`${this.#inbox}.>`, { callback: (error, msg) => (error === null ? this.#receive(msg) : this.report(error)) });
    this.connected = !nc.isClosed();
    void this.#watch(nc);
    return nc.getServer();
  }

  protected override async closeBroker(closeSession: (() => Promise<void>) | undefined): Promise<void> {
    if (closeSession !== undefined) await closeSession();
    this.#sub?.unsubscribe();
    if (this.#nc !== undefined && this.#owned) await this.#nc.close().catch(() => {});
  }

  // ── publishing ───────────────────────────────────────────────────────────────

  /** Before work goes to the shared subject: is anyone serving? "No responders" answers at once. */
  protected override async ensureServed(what: string): Promise<void> {
    const nc = this.#nc as NatsConnection;
    try {
      await nc.request(this.#common.subjects.presence, Empty, { timeout: this.presenceTimeoutMs });
    } catch (error) {
      if (isNoResponders(error)) {
        throw new TransportError(`${LABEL}: cannot send ${what}: no worker serves "${this.service}" (no responders on ${this.#common.subjects.presence}); it was not sent`, {
          layer: 'nats',
          reason: 'no-responders',
          neverSent: true,
          retryable: true,
          cause: error,
        });
      }
      // A slow answer is no proof of absence: the stream keeps the request until a worker takes it.
    }
  }

  protected override checkSize(data: Uint8Array, headers: Array<[string, string]>, what: string): number {
    const size = wireSize(data, headersFor(headers));
    const maxPayload = this.#nc?.info?.max_payload;
    if (maxPayload !== undefined && size > maxPayload) throw overMaxPayload(LABEL, NATS_LIMIT, what, size, maxPayload);
    return size;
  }

  protected override async publishTo(route: Route, data: Uint8Array, pairs: Array<[string, string]>, key: string | undefined, what: string): Promise<Published<'stream' | 'core'>> {
    const nc = this.#nc as NatsConnection;
    const js = this.#js as JetStreamClient;
    const { subjects } = this.#common;
    const headers = headersFor(pairs);
    const subject = route.to === 'shared' ? subjects.requests : route.to === 'session' ? subjects.session(route.sessionId) : subjects.control;
    const bytes = wireSize(data, headers);
    try {
      if (route.to === 'control') {
        nc.publish(subject, data, { headers });
        return { subject, via: 'core', bytes, duplicate: false };
      }
      const ack = await js.publish(subject, data.length === 0 ? Empty : data, { headers, timeout: this.policies.publishTimeoutMs, ...(key === undefined ? {} : { msgID: key }) });
      return { subject, via: 'stream', bytes, duplicate: ack.duplicate };
    } catch (error) {
      throw this.#publishError(error, what, subject, bytes);
    }
  }

  #publishError(error: unknown, what: string, subject: string, size: number): Error {
    if (error instanceof McpLayersError) return error;
    const message = (error as Error)?.message ?? String(error);
    if (/max_payload/i.test(message)) return overMaxPayload(LABEL, NATS_LIMIT, what, size, this.#nc?.info?.max_payload ?? size);
    if (isNoResponders(error)) {
      return new TransportError(`${LABEL}: cannot send ${what}: no stream stores ${subject} (no worker of "${this.service}" has ever started: serveNats() creates it); it was not sent`, {
        layer: 'nats',
        reason: 'no-stream',
        neverSent: true,
        retryable: true,
        cause: error,
      });
    }
    if (isTimeout(error)) {
      return new TransportError(`${LABEL}: ${what}: the stream did not confirm it within ${this.policies.publishTimeoutMs} ms; it may or may not have been stored`, {
        layer: 'nats',
        reason: 'publish-timeout',
        cause: error,
      });
    }
    return new TransportError(`${LABEL}: could not publish ${what}: ${message}`, { layer: 'nats', reason: 'publish-failed', cause: error });
  }

  // ── reading ──────────────────────────────────────────────────────────────────

  #receive(msg: Msg): void {
    if (msg.subject === clientProbe(this.#inbox)) {
      // A worker asks whether this client is still here (it releases the session otherwise).
      msg.respond(Empty);
      return;
    }
    if (msg.subject !== clientMessages(this.#inbox)) {
      this.garbage(msg.subject, `a message on an unexpected subject (${msg.subject})`);
      return;
    }
    this.arrived(msg.data, (name) => msg.headers?.get(name) || undefined, msg.subject);
  }

  // ── the broker's connection ──────────────────────────────────────────────────

  async #watch(nc: NatsConnection): Promise<void> {
    void nc.closed().then((error) => this.brokerClosed(error));
    try {
      for await (const status of nc.status()) {
        if (status.type === 'disconnect') this.brokerLost(status.server);
        else if (status.type === 'reconnect') this.brokerBack(status.server);
      }
    } catch (error) {
      this.report(error);
    }
  }

  // ── the session's worker ─────────────────────────────────────────────────────

  protected override async loadHandshake(sessionId: string): Promise<Handshake | undefined> {
    const { subjects } = this.#common;
    const jsm = await (this.#js as JetStreamClient).jetstreamManager(false);
    try {
      const stored = await jsm.streams.getMessage(subjects.handshakes, { last_by_subj: subjects.handshake(sessionId) });
      return decodeHandshake(stored?.data);
    } catch (error) {
      // No such message, or no such stream (no worker of this version ever started): the session is unknown.
      if (/not found|no message/i.test((error as Error)?.message ?? '')) return undefined;
      throw new TransportError(`${LABEL}: could not read session ${sessionId}'s handshake from ${subjects.handshakes}: ${(error as Error).message}`, { layer: 'nats', reason: 'handshake-unreadable', cause: error });
    }
  }

  protected override async probeWorker(worker: string, sessionId: string, timeoutMs: number): Promise<ProbeResult> {
    const nc = this.#nc as NatsConnection;
    try {
      const answer = await nc.request(this.#common.subjects.worker(worker), sessionId, { timeout: timeoutMs });
      return { outcome: 'alive', holds: holds(answer.data) };
    } catch (error) {
      if (isNoResponders(error)) return { outcome: 'gone', reason: 'no responders on its probe subject' };
      return { outcome: 'missed' };
    }
  }
}

function holds(data: Uint8Array): boolean | undefined {
  try {
    const value = JSON.parse(new TextDecoder().decode(data)) as { holds?: unknown };
    return typeof value.holds === 'boolean' ? value.holds : undefined;
  } catch {
    return undefined;
  }
}
