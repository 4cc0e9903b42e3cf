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
import type { EventBus, LayerEvents } from '#core/events.ts';
import type { JSONRPCMessage } from '#core/jsonrpc.ts';
import { wrap } from '#core/wrap.ts';
import { type Broker, type BrokerServer, type BrokerServerTransport, type BrokerWorker, describeEachBroker, uniqueService } from '../../support/brokers.ts';
import { createV1Client, textOf } from '../../support/clients.ts';
import { Ledger } from '../../support/ledger.ts';
import { serveAppV1 } from '../../support/server-v1.ts';
import { tool } from '../../support/test-app.ts';

/** Long enough for a busy machine, short enough that a hang fails the test with the step's name. */
const STEP_MS = 15_000;

function within<T>(promise: Promise<T>, what: string, ms = STEP_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`not within ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function nextEvent<K extends keyof LayerEvents>(bus: EventBus, type: K, match: (event: LayerEvents[K]) => boolean = () => true): Promise<LayerEvents[K]> {
  return new Promise((resolve) => {
    const off = bus.on(type, (event) => {
      if (!match(event)) return;
      off();
      resolve(event);
    });
  });
}

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
});
