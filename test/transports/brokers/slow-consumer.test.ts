/**
 * Slow consumers, on each broker, both ways.
 *
 * A slow worker: its tool waits at a gate the test opens, and a client sends far more than
 * the worker may hold — 200 calls in one session against `maxInFlightPerSession: 4`, 100
 * sessionless requests against `maxInFlight: 8`. The worker fills up to its limit and never
 * beyond (sampled in the tool, as `worker.inFlight`), the broker holds the rest (read back
 * from the broker itself: backpressure, not a queue in the worker's memory), and every
 * request ends with exactly one response, each tool run exactly once.
 *
 * A slow client: between it and the broker a proxy stops passing what the broker sends it,
 * as a client that does not read. Within the broker's limits nothing is lost: held, then
 * delivered in order. Past them the broker drops the client (NATS: its `max_pending`;
 * Redis: `client-output-buffer-limit pubsub`), and what was queued for it is gone: the
 * call in flight ends with the typed retryable connection-lost error, nothing hangs, the
 * client library reconnects and the session goes on.
 */
import net from 'node:net';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { createClient } from '@redis/client';
import * as z from 'zod';
import { afterEach, expect, it } from 'vitest';
import type { LayerEvents } from '#core/events.ts';
import type { JSONRPCMessage } from '#core/jsonrpc.ts';
import { wrap } from '#core/wrap.ts';
import { type Broker, type BrokerServer, type BrokerServerTransport, type BrokerWorker, describeEachBroker, uniqueService } from '../../support/brokers.ts';
import { createV1Client, textOf } from '../../support/clients.ts';
import { Ledger } from '../../support/ledger.ts';
import { startNatsServer } from '../../support/nats-server.ts';
import { captureOutcome } from '../../support/scenarios.ts';
import { serveAppV1 } from '../../support/server-v1.ts';
import { tool } from '../../support/test-app.ts';
import { nextEvent, within } from '../../support/events.ts';

/** Where the tool's calls wait until the test lets them go; `whenWaiting(n)` resolves once n are waiting. */
class Gate {
  readonly #waiting: Array<() => void> = [];
  readonly #watchers: Array<{ count: number; resolve: () => void }> = [];

  enter(): Promise<void> {
    return new Promise((resolve) => {
      this.#waiting.push(resolve);
      for (const watcher of this.#watchers.splice(0)) {
        if (this.#waiting.length >= watcher.count) watcher.resolve();
        else this.#watchers.push(watcher);
      }
    });
  }

  whenWaiting(count: number): Promise<void> {
    if (this.#waiting.length >= count) return Promise.resolve();
    return new Promise((resolve) => this.#watchers.push({ count, resolve }));
  }

  /** Lets every waiting call go; returns how many there were. */
  open(): number {
    const released = this.#waiting.splice(0);
    for (const resolve of released) resolve();
    return released.length;
  }
}

/** What the broker holds for the worker: delivered and not acknowledged, and not delivered yet. */
interface Held {
  delivered: number;
  waiting: number;
}

/** Reads, from the broker itself, what a stream holds of a service's requests (the shared one, or a session's). */
async function brokerHolds(broker: Broker, url: string, service: string, sessionId: string | undefined): Promise<Held> {
  if (broker.name === 'nats') {
    const nc = await connect({ servers: url });
    try {
      const jsm = await jetstreamManager(nc);
      const info = await jsm.consumers.info(`mcp_${service}`, sessionId === undefined ? 'workers' : `s-${sessionId}`);
      return { delivered: info.num_ack_pending, waiting: info.num_pending };
    } finally {
      await nc.close();
    }
  }
  const redis = createClient({ url });
  await redis.connect();
  try {
    const key = sessionId === undefined ? `mcp:{${service}}:req` : `mcp:{${service}}:s:${sessionId}`;
    // Answered entries are deleted: the stream's length is what is not answered yet, its pending list what was delivered.
    const length = Number(await redis.sendCommand(['XLEN', key]));
    const [pending] = (await redis.sendCommand(['XPENDING', key, 'workers'])) as [number];
    return { delivered: Number(pending), waiting: length - Number(pending) };
  } finally {
    await redis.close();
  }
}

interface SlowWorker {
  worker: BrokerWorker;
  gate: Gate;
  ledger: Ledger;
  /** `worker.inFlight` as each call saw it when it started. */
  seen: number[];
  errors: string[];
}

/** A worker whose tool `work { n }` counts its run, samples the worker's in-flight count, and waits at the gate. */
async function slowWorker(broker: Broker, url: string, service: string, limits: { maxInFlight?: number; maxInFlightPerSession?: number }): Promise<SlowWorker> {
  const gate = new Gate();
  const ledger = new Ledger();
  const seen: number[] = [];
  const errors: string[] = [];
  let worker: BrokerWorker | undefined;
  const app = {
    info: { name: 'slow-worker', version: '1.0.0' },
    tools: [
      tool({
        name: 'work',
        inputSchema: z.object({ n: z.number() }),
        run: async ({ n }) => {
          ledger.ran(`work ${n}`);
          seen.push(worker?.inFlight ?? -1);
          await gate.enter();
          return { content: [{ type: 'text', text: `done ${n}` }] };
        },
      }),
    ],
  };
  worker = await broker.serve({
    servers: url,
    service,
    drainTimeoutMs: 100,
    ...limits,
    onsession: async (transport: BrokerServerTransport) => {
      const server = serveAppV1(app);
      server.server.onerror = (error) => void errors.push(error.message);
      await server.connect(wrap(transport, [], { events: transport.events }));
    },
  });
  worker.onerror = (error) => void errors.push(error.message);
  return { worker, gate, ledger, seen, errors };
}

/**
 * Opens the gate round after round, each time once the worker holds all it may
 * (`limit`, or what is left): resolves with what the broker held at the first round.
 */
async function drain(slow: SlowWorker, total: number, limit: number, atFirstRound: () => Promise<Held>): Promise<Held> {
  let released = 0;
  let first: Held | undefined;
  while (released < total) {
    const expected = Math.min(limit, total - released);
    await within(slow.gate.whenWaiting(expected), `the worker took ${expected} more calls (${released} of ${total} answered)`);
    expect(slow.worker.inFlight).toBe(expected);
    first ??= await atFirstRound();
    released += slow.gate.open();
  }
  return first as Held;
}

/** A TCP proxy to the broker that can stop passing on what the broker sends: a client that stops reading, as the broker sees it. */
interface HoldingProxy {
  readonly port: number;
  /** Stops reading from the broker on every connection open now (later ones flow): the broker's writes back up. */
  hold(): void;
  /** Passes on again what was held (and, after it, the broker's close if it closed meanwhile). */
  release(): void;
  close(): Promise<void>;
}

async function holdingProxy(targetPort: number): Promise<HoldingProxy> {
  const pairs = new Set<{ client: net.Socket; upstream: net.Socket }>();
  const held = new Set<{ client: net.Socket; upstream: net.Socket }>();
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, '127.0.0.1');
    const pair = { client, upstream };
    pairs.add(pair);
    client.pipe(upstream);
    upstream.pipe(client);
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    for (const socket of [client, upstream]) socket.on('error', end).on('close', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    hold() {
      for (const pair of pairs) {
        pair.upstream.unpipe(pair.client);
        pair.upstream.pause();
        held.add(pair);
      }
    },
    release() {
      for (const pair of held) pair.upstream.pipe(pair.client);
      held.clear();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const { client, upstream } of pairs) {
          client.destroy();
          upstream.destroy();
        }
        server.close(() => resolve());
      }),
  };
}

/** What the broker queues for one client before it drops it: small, so that a burst of a few MiB goes past it. */
const CLIENT_BUFFER = 256 * 1024;
/** What a drop is logged as: nats-server, redis-server. */
const DROPPED: Record<Broker['name'], RegExp> = { nats: /Slow Consumer Detected/, redis: /overcoming of output buffer limits/ };

/** The broker with a small limit on what it queues for a client (NATS `max_pending`; Redis `client-output-buffer-limit pubsub`). */
async function startWithSmallClientBuffers(broker: Broker): Promise<BrokerServer> {
  if (broker.name === 'nats') return startNatsServer({ maxPayload: 64 * 1024, maxPending: CLIENT_BUFFER });
  const server = await broker.start();
  const redis = createClient({ url: server.url });
  await redis.connect();
  await redis.sendCommand(['CONFIG', 'SET', 'client-output-buffer-limit', `pubsub ${CLIENT_BUFFER} 0 0`]);
  await redis.close();
  return server;
}

/** Progress notifications a burst sends at most: 24 MiB of 48 KiB ones, far past the socket buffers on loopback (a few MiB) and CLIENT_BUFFER. */
const MAX_BURST = 512;
const BURST_SIZE = 48 * 1024;

/** A burst of progress notifications the test starts (a gate) and may stop. */
interface Burst {
  readonly gate: Gate;
  stop: boolean;
  sent: number;
  readonly done: PromiseWithResolvers<void>;
}

/** A worker whose `burst { count, size }` waits at the gate, then sends up to `count` progress notifications of `size` bytes (until told to stop), and answers. */
async function burstWorker(broker: Broker, url: string, service: string): Promise<{ worker: BrokerWorker; burst: Burst; errors: string[] }> {
  const burst: Burst = { gate: new Gate(), stop: false, sent: 0, done: Promise.withResolvers<void>() };
  const errors: string[] = [];
  const app = {
    info: { name: 'burst-worker', version: '1.0.0' },
    tools: [
      tool({
        name: 'burst',
        inputSchema: z.object({ count: z.number(), size: z.number() }),
        run: async ({ count, size }, call) => {
          await burst.gate.enter();
          const padding = 'x'.repeat(size);
          for (let i = 0; i < Math.min(count, MAX_BURST) && !burst.stop; i++) {
            await call.progress({ progress: i, message: padding });
            burst.sent++;
            // One turn of the event loop per notification, so the worker's socket drains and the test can say stop.
            await new Promise((resolve) => setImmediate(resolve));
          }
          burst.done.resolve();
          return { content: [{ type: 'text', text: `sent ${burst.sent}` }] };
        },
      }),
      tool({ name: 'echo', inputSchema: z.object({ text: z.string() }), run: ({ text }) => ({ content: [{ type: 'text', text }] }) }),
    ],
  };
  const worker = await broker.serve({
    servers: url,
    service,
    drainTimeoutMs: 100,
    onsession: async (transport: BrokerServerTransport) => {
      const server = serveAppV1(app);
      server.server.onerror = (error) => void errors.push(error.message);
      await server.connect(wrap(transport, [], { events: transport.events }));
    },
  });
  worker.onerror = (error) => void errors.push(error.message);
  return { worker, burst, errors };
}

describeEachBroker('test/transports/brokers/slow-consumer.test.ts', (b) => `mcp-layers/${b.name}: slow consumers`, (kind) => {
  let broker: BrokerServer | undefined;
  const cleanup: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const close of cleanup.splice(0).reverse()) await close().catch(() => {});
    await broker?.stop();
    broker = undefined;
  });

  it('a slow worker holds at most maxInFlightPerSession of a session at once, the broker the rest; 200 calls, 200 answers, each run once', async () => {
    broker = await kind.start();
    const url = broker.url;
    const service = uniqueService('slow-session');
    const LIMIT = 4;
    const TOTAL = 200;
    const slow = await slowWorker(kind, url, service, { maxInFlightPerSession: LIMIT });
    cleanup.push(() => slow.worker.close());

    const transport = kind.client({ servers: url, service });
    let published = 0;
    const allPublished = Promise.withResolvers<void>();
    transport.events.on('broker-published', (event) => {
      if (event.method === 'tools/call' && ++published === TOTAL) allPublished.resolve();
    });
    const client = createV1Client();
    await client.connect(wrap(transport, [], { events: transport.events }));
    cleanup.push(() => client.close());
    const sessionId = transport.sessionId as string;

    const calls = Array.from({ length: TOTAL }, (_, n) => client.callTool('work', { n }).then(textOf, (error: Error) => `failed: ${error.message}`));
    const first = await drain(slow, TOTAL, LIMIT, async () => {
      await within(allPublished.promise, 'the client published every call');
      return brokerHolds(kind, url, service, sessionId);
    });
    // At the first round the worker held LIMIT calls; the broker had delivered those and kept the rest.
    expect(first).toEqual({ delivered: LIMIT, waiting: TOTAL - LIMIT });

    expect(await within(Promise.all(calls), 'every call answered')).toEqual(Array.from({ length: TOTAL }, (_, n) => `done ${n}`));
    expect(Math.max(...slow.seen)).toBe(LIMIT);
    expect(slow.seen).toHaveLength(TOTAL);
    for (let n = 0; n < TOTAL; n++) expect(slow.ledger.runs(`work ${n}`)).toBe(1);
    expect(await brokerHolds(kind, url, service, sessionId)).toEqual({ delivered: 0, waiting: 0 });
    expect(slow.worker.inFlight).toBe(0);
    expect(slow.errors).toEqual([]);
  });

  it('a slow worker takes at most maxInFlight sessionless requests at once, the broker the rest; 100 requests, 100 answers, each run once', async () => {
    broker = await kind.start();
    const url = broker.url;
    const service = uniqueService('slow-shared');
    const LIMIT = 8;
    const TOTAL = 100;
    const slow = await slowWorker(kind, url, service, { maxInFlight: LIMIT });
    cleanup.push(() => slow.worker.close());

    // A bare client transport: requests without a session (as the 2026-07-28 era sends them) go to the shared stream.
    const transport = kind.client({ servers: url, service, heartbeat: false });
    const answers = new Map<unknown, JSONRPCMessage[]>();
    const allAnswered = Promise.withResolvers<void>();
    transport.onmessage = (message) => {
      if ('method' in message) return;
      const list = answers.get(message.id) ?? [];
      list.push(message);
      answers.set(message.id, list);
      if (answers.size === TOTAL) allAnswered.resolve();
    };
    const transportErrors: string[] = [];
    transport.onerror = (error) => void transportErrors.push(error.message);
    await transport.start();
    cleanup.push(() => transport.close());
    for (let n = 0; n < TOTAL; n++) await transport.send({ jsonrpc: '2.0', id: n, method: 'tools/call', params: { name: 'work', arguments: { n } } });

    const first = await drain(slow, TOTAL, LIMIT, () => brokerHolds(kind, url, service, undefined));
    expect(first).toEqual({ delivered: LIMIT, waiting: TOTAL - LIMIT });
    await within(allAnswered.promise, 'every request answered');

    for (let n = 0; n < TOTAL; n++) {
      expect(answers.get(n)).toEqual([{ jsonrpc: '2.0', id: n, result: { content: [{ type: 'text', text: `done ${n}` }] } }]);
      expect(slow.ledger.runs(`work ${n}`)).toBe(1);
    }
    expect(Math.max(...slow.seen)).toBe(LIMIT);
    expect(await brokerHolds(kind, url, service, undefined)).toEqual({ delivered: 0, waiting: 0 });
    expect([...slow.errors, ...transportErrors]).toEqual([]);
  });

  /** A session through the holding proxy (no worker probes: a held connection would answer none, which is another scenario). */
  async function slowClient(url: string, service: string) {
    const proxy = await holdingProxy(Number(new URL(url).port));
    cleanup.push(() => proxy.close());
    const transport = kind.client({ servers: `${kind.name}://127.0.0.1:${proxy.port}`, service, quickReconnect: true, heartbeat: false });
    const connections: Array<LayerEvents['connection']['state']> = [];
    transport.events.on('connection', (event) => void connections.push(event.state));
    const client = createV1Client();
    await client.connect(wrap(transport, [], { events: transport.events }));
    cleanup.push(() => client.close());
    return { proxy, transport, client, connections };
  }

  it('a client slow to read, within the broker\'s limits: what was sent meanwhile is held, then delivered in order; nothing is lost', async () => {
    broker = await startWithSmallClientBuffers(kind);
    const service = uniqueService('slow-reader');
    const served = await burstWorker(kind, broker.url, service);
    cleanup.push(() => served.worker.close());
    const { proxy, client, connections } = await slowClient(broker.url, service);

    const progress: number[] = [];
    const call = client.callTool('burst', { count: 100, size: 512 }, { onprogress: (p) => void progress.push(p.progress) });
    await within(served.burst.gate.whenWaiting(1), 'the burst reached the worker');
    proxy.hold();
    served.burst.gate.open();
    await within(served.burst.done.promise, 'the worker sent the burst');
    expect(progress).toEqual([]);
    proxy.release();
    expect(textOf(await within(call, 'the burst call answered'))).toBe('sent 100');
    expect(progress).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(connections).toEqual(['open']);
    expect(served.errors).toEqual([]);
  });

  it('a client slower than the broker\'s limit is dropped by the broker: the call in flight ends with a typed retryable error, the client reconnects, the session goes on', async () => {
    broker = await startWithSmallClientBuffers(kind);
    const service = uniqueService('too-slow');
    const served = await burstWorker(kind, broker.url, service);
    cleanup.push(() => served.worker.close());
    const { proxy, transport, client, connections } = await slowClient(broker.url, service);
    const sessionId = transport.sessionId;

    const progress: number[] = [];
    const call = captureOutcome(() => client.callTool('burst', { count: MAX_BURST, size: BURST_SIZE }, { onprogress: (p) => void progress.push(p.progress) }));
    await within(served.burst.gate.whenWaiting(1), 'the burst reached the worker');
    proxy.hold();
    const dropped = broker.logged(DROPPED[kind.name]);
    const lost = nextEvent(transport.events, 'connection', (e) => e.state === 'closed');
    served.burst.gate.open();
    // The broker's own word that it dropped the client (NATS stalls the worker's connection a while first).
    await within(dropped, `${kind.server} dropped the slow client`);
    served.burst.stop = true;
    proxy.release();

    await within(lost, 'the client saw its connection drop');
    expect(await within(call, 'the burst call ended')).toMatchObject({
      error: { code: -32000, data: { reason: 'connection-lost' }, message: expect.stringContaining('requests in flight may or may not have been executed') },
    });
    // What reached the client before the drop is the start of what was sent, in order; the rest is gone.
    expect(progress).toEqual(Array.from({ length: progress.length }, (_, i) => i));
    expect(progress.length).toBeLessThan(served.burst.sent);

    await within(nextEvent(transport.events, 'reconnect', (e) => e.outcome === 'connected'), 'the client reconnected');
    expect(textOf(await within(client.callTool('echo', { text: 'after the drop' }), 'a call after the reconnection'))).toBe('after the drop');
    expect(transport.sessionId).toBe(sessionId);
    expect(connections).toEqual(['open', 'closed', 'open']);
    expect(served.errors).toEqual([]);
  });
});
