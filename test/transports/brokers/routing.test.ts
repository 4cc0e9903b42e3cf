/**
 * mcp-layers/nats and mcp-layers/redis against their real servers: where work goes (to a
 * worker with room; a session's messages to the worker holding it), what a client is told
 * when nobody serves the service, what happens to a message over the payload limit (the
 * NATS server's max_payload, the Redis service's maxPayload), and that bytes from a
 * foreign publisher on any of the subjects (streams and channels) are reported and dropped
 * while the traffic around them carries on.
 */
import { jetstream } from '@nats-io/jetstream';
import { connect, headers, type NatsConnection } from '@nats-io/transport-node';
import { createClient } from '@redis/client';
import * as z from 'zod';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import type { EventBus } from '#core/events.ts';
import { wrap } from '#core/wrap.ts';
import type { JSONRPCMessage } from '#core/jsonrpc.ts';
import { type Broker, type BrokerServer, describeEachBroker, type FixtureWorker, type FixtureWorkerOptions, fixtureWorker, uniqueService } from '../../support/brokers.ts';
import { createV1Client, textOf } from '../../support/clients.ts';
import { Ledger } from '../../support/ledger.ts';
import { serveAppV1 } from '../../support/server-v1.ts';
import { tool } from '../../support/test-app.ts';
import { nextEvent } from '../../support/events.ts';

/** A bare client transport whose every message is collected; `answer(id)` resolves with the response to `id`. */
async function rawClient(broker: Broker, url: string, service: string) {
  const transport = broker.client({ servers: url, service, heartbeat: false });
  const received: JSONRPCMessage[] = [];
  const waiters = new Map<unknown, (message: JSONRPCMessage) => void>();
  const errors: string[] = [];
  transport.onmessage = (message) => {
    received.push(message);
    if (!('method' in message)) waiters.get(message.id)?.(message);
  };
  transport.onerror = (error) => void errors.push(error.message);
  await transport.start();
  return {
    transport,
    received,
    errors,
    answer: (id: number) => new Promise<JSONRPCMessage>((resolve) => waiters.set(id, resolve)),
    call: (id: number, name: string, args: Record<string, unknown> = {}) => transport.send({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } }),
    cancel: (id: number) => transport.send({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: id, reason: 'the test is done with it' } }),
  };
}

/** What a foreign publisher needs to write garbage where a session's worker and client read. */
interface GarbageTarget {
  url: string;
  service: string;
  sessionId: string;
  /** The client transport's inbox (a subject prefix on NATS, a channel on Redis). */
  inbox: string;
  workerEvents: EventBus;
  clientEvents: EventBus;
  cleanup: Array<() => Promise<unknown>>;
}

/**
 * Each broker's foreign publisher: four pieces of garbage for the worker (one of them
 * answerable) and one for the client, each reported as it lands. Resolves with a check
 * of what the broker kept, where it keeps any, run once the garbage has been reported.
 */
async function natsGarbage({ url, service, sessionId, inbox: clientInbox, workerEvents, clientEvents, cleanup }: GarbageTarget): Promise<undefined> {
  const foreign: NatsConnection = await connect({ servers: url });
  cleanup.push(() => foreign.close());
  const js = jetstream(foreign);
  const subjects = { requests: `mcp.${service}.req`, session: `mcp.${service}.s.${sessionId}` };

  // Not JSON, on the shared subject: reported, dropped.
  const onShared = nextEvent(workerEvents, 'broker-garbage', (e) => e.subject === subjects.requests);
  await js.publish(subjects.requests, new Uint8Array([0xff, 0xfe, 0x00]));
  expect(await onShared).toEqual({ subject: subjects.requests, problem: 'a message that is not UTF-8 text', answered: false });

  // Readable, with an id and an inbox, but not JSON-RPC 2.0: answered -32600 there.
  const inbox = `_INBOX.foreign-${process.pid}`;
  const answer = new Promise<unknown>((resolve) => {
    const sub = foreign.subscribe(`${inbox}.m`, { max: 1, callback: (_error, msg) => resolve(msg.json()) });
    cleanup.push(async () => sub.unsubscribe());
  });
  const h = headers();
  h.set('Mcp-Client', 'foreign');
  h.set('Mcp-Reply', inbox);
  await js.publish(subjects.requests, JSON.stringify({ id: 7, method: 'ping' }), { headers: h });
  expect(await answer).toMatchObject({ jsonrpc: '2.0', id: 7, error: { code: -32600, message: expect.stringContaining('"jsonrpc" must be "2.0"') } });

  // On the session's own subject and on the client's inbox.
  const onSession = nextEvent(workerEvents, 'broker-garbage', (e) => e.subject === subjects.session);
  await js.publish(subjects.session, '{"truncated": ');
  expect(await onSession).toMatchObject({ subject: subjects.session, problem: 'a message that is not valid JSON' });
  const onInbox = nextEvent(clientEvents, 'broker-garbage');
  foreign.publish(`${clientInbox}.m`, '[1,2,3]');
  expect(await onInbox).toMatchObject({ problem: expect.stringContaining('a JSON array'), answered: false });

  // A control message without its header: reported, dropped.
  const onControl = nextEvent(workerEvents, 'broker-garbage', (e) => e.subject === `mcp.${service}.ctl`);
  foreign.publish(`mcp.${service}.ctl`, JSON.stringify({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 1 } }));
  expect(await onControl).toMatchObject({ problem: expect.stringContaining('without the Mcp-Client header') });
  // No read-back of what the stream kept (the NATS suite has none).
  return undefined;
}

async function redisGarbage({ url, service, sessionId, inbox: clientInbox, workerEvents, clientEvents, cleanup }: GarbageTarget): Promise<() => Promise<void>> {
  const foreign = createClient({ url });
  await foreign.connect();
  cleanup.push(() => foreign.close());
  const keys = { requests: `mcp:{${service}}:req`, session: `mcp:{${service}}:s:${sessionId}`, control: `mcp:{${service}}:ctl` };

  // Not UTF-8, on the shared stream: reported, acknowledged, dropped.
  const onShared = nextEvent(workerEvents, 'broker-garbage', (e) => e.subject === keys.requests);
  await foreign.sendCommand(['XADD', keys.requests, '*', 'm', Buffer.from([0xff, 0xfe, 0x00])]);
  expect(await onShared).toEqual({ subject: keys.requests, problem: 'a message that is not UTF-8 text', answered: false });

  // Readable, with an id and a client channel, but not JSON-RPC 2.0: answered -32600 there.
  const inbox = `mcp:{${service}}:c:foreign-${process.pid}`;
  const listener = foreign.duplicate();
  await listener.connect();
  cleanup.push(() => listener.close());
  const answer = Promise.withResolvers<unknown>();
  await listener.subscribe(inbox, (payload) => answer.resolve(JSON.parse(payload.slice(payload.indexOf('\n') + 1))));
  await foreign.sendCommand(['XADD', keys.requests, '*', 'm', JSON.stringify({ id: 7, method: 'ping' }), 'Mcp-Client', 'foreign', 'Mcp-Reply', inbox]);
  expect(await answer.promise).toMatchObject({ jsonrpc: '2.0', id: 7, error: { code: -32600, message: expect.stringContaining('"jsonrpc" must be "2.0"') } });

  // On the session's own stream (an entry without our message field), and on the client's channel.
  const onSession = nextEvent(workerEvents, 'broker-garbage', (e) => e.subject === keys.session);
  await foreign.sendCommand(['XADD', keys.session, '*', 'garbage', '{"truncated": ']);
  expect(await onSession).toMatchObject({ subject: keys.session, problem: 'an empty message' });
  const onInbox = nextEvent(clientEvents, 'broker-garbage');
  await foreign.sendCommand(['PUBLISH', clientInbox, '[1,2,3]']);
  expect(await onInbox).toMatchObject({ problem: expect.stringContaining('a JSON array'), answered: false });

  // A control message without its header: reported, dropped.
  const onControl = nextEvent(workerEvents, 'broker-garbage', (e) => e.subject === keys.control);
  await foreign.sendCommand(['PUBLISH', keys.control, JSON.stringify({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 1 } })]);
  expect(await onControl).toMatchObject({ problem: expect.stringContaining('without the Mcp-Client header') });
  return async () => {
    // Nothing was left behind: every garbage entry was acknowledged and deleted.
    expect(await foreign.sendCommand(['XLEN', keys.requests])).toBe(0);
  };
}

const FOREIGN: Record<Broker['name'], (target: GarbageTarget) => Promise<(() => Promise<void>) | undefined>> = { nats: natsGarbage, redis: redisGarbage };

/** A regular expression matching `text` literally. */
function literal(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

describeEachBroker('test/transports/brokers/routing.test.ts', (b) => `mcp-layers/${b.name}: routing, limits and garbage through a real ${b.server}`, (kind) => {
  let broker: BrokerServer | undefined;
  const cleanup: Array<() => Promise<unknown>> = [];
  beforeAll(async () => {
    broker = await kind.start();
  });
  afterEach(async () => {
    for (const close of cleanup.splice(0).reverse()) await close();
  });
  afterAll(async () => {
    await broker?.stop();
  });

  async function worker(service: string, id: string, options: FixtureWorkerOptions = {}): Promise<FixtureWorker> {
    const served = await fixtureWorker(kind, broker!.url, service, 'v1', { id, ...options });
    cleanup.push(() => served.close());
    return served;
  }

  it('sends sessionless requests to the workers that have room, and no worker holds more than maxInFlight', async () => {
    const service = uniqueService('share');
    const a = await worker(service, 'worker-a', { maxInFlight: 2 });
    const b = await worker(service, 'worker-b', { maxInFlight: 2 });
    const client = await rawClient(kind, broker!.url, service);
    cleanup.push(() => client.transport.close());

    for (const id of [1, 2, 3, 4]) await client.call(id, 'slow');
    await Promise.all([a.ledger.whenRan('slow', 2), b.ledger.whenRan('slow', 2)]);
    expect([a.ledger.runs('slow'), b.ledger.runs('slow'), a.worker.inFlight, b.worker.inFlight]).toEqual([2, 2, 2, 2]);

    // Both are full: the next request waits on the broker until one has room, and goes there.
    const echoed = client.answer(5);
    await client.call(5, 'echo', { text: 'to whoever is free' });
    await client.cancel(1);
    const holder = await Promise.race([a.ledger.whenAborted('slow').then(() => a), b.ledger.whenAborted('slow').then(() => b)]);
    const other = holder === a ? b : a;
    expect(await echoed).toMatchObject({ id: 5, result: { content: [{ type: 'text', text: 'to whoever is free' }] } });
    expect([holder.ledger.runs('echo'), other.ledger.runs('echo')]).toEqual([1, 0]);
    for (const id of [2, 3, 4]) await client.cancel(id);
    await Promise.all([a.ledger.whenAborted('slow'), b.ledger.whenAborted('slow')]);
    expect(client.errors).toEqual([]);
  });

  it('pins a session to the worker that opened it: every later message goes there, and the client keeps its session id', async () => {
    const service = uniqueService('pin');
    const a = await worker(service, 'worker-a');
    const b = await worker(service, 'worker-b');
    const transport = kind.client({ servers: broker!.url, service });
    const client = createV1Client();
    await client.connect(wrap(transport, [], { events: transport.events }));
    cleanup.push(() => client.close());
    const holder = transport.worker === 'worker-a' ? a : b;
    const other = holder === a ? b : a;
    expect(transport.sessionId).toMatch(/^[0-9a-f-]{36}$/);
    expect(holder.worker.sessions).toBe(1);
    expect(other.worker.sessions).toBe(0);

    const texts = await Promise.all(Array.from({ length: 20 }, (_, i) => client.callTool('echo', { text: `call ${i}` }).then(textOf)));
    expect(texts).toEqual(Array.from({ length: 20 }, (_, i) => `call ${i}`));
    expect([holder.ledger.runs('echo'), other.ledger.runs('echo')]).toEqual([20, 0]);
    expect(holder.instances).toBe(1);
  });

  it('answers at once, with a typed retryable error, when no worker serves the service', async () => {
    const service = uniqueService('nobody');
    const transport = kind.client({ servers: broker!.url, service, heartbeat: false });
    const client = createV1Client();
    const started = performance.now();
    const refused = await client.connect(wrap(transport, [])).then(
      () => undefined,
      (error: unknown) => error as Error & { code?: number; data?: { reason?: string; layer?: string } },
    );
    cleanup.push(() => client.close());
    expect(refused?.message).toContain(`no worker serves "${service}"`);
    expect(refused).toMatchObject({ code: -32054, data: { layer: kind.name, reason: 'no-responders' } });
    // "At once": the broker's no-responders answer, not a timeout (the presence probe's is 2 s).
    expect(performance.now() - started).toBeLessThan(1_500);
  });

  it('refuses a request over max_payload with an error naming the limit, and answers a response over it with one', async () => {
    const service = uniqueService('payload');
    const maxPayload = 1024 * 1024;
    const served = await kind.serve({
      servers: broker!.url,
      service,
      onsession: async (transport) => {
        const app = serveAppV1({
          info: { name: 'big', version: '1.0.0' },
          tools: [tool({ name: 'big', inputSchema: z.object({ bytes: z.number() }), run: ({ bytes }) => ({ content: [{ type: 'text', text: 'x'.repeat(bytes) }] }) })],
        });
        await app.connect(wrap(transport, []));
      },
    });
    const workerErrors: string[] = [];
    served.onerror = (error) => void workerErrors.push(error.message);
    cleanup.push(() => served.close());
    const transport = kind.client({ servers: broker!.url, service });
    const client = createV1Client();
    await client.connect(wrap(transport, []));
    cleanup.push(() => client.close());

    const tooBig = await client.callTool('big', { bytes: 1, padding: 'p'.repeat(maxPayload) }).catch((error: unknown) => error as Error & { code?: number; data?: unknown });
    const limit = literal(`${kind.payloadLimit.owner} ${kind.payloadLimit.word}`);
    expect((tooBig as Error).message).toMatch(new RegExp(`tools/call is \\d+ bytes with its headers, over ${limit} of 1048576 bytes; it was not sent`));
    expect(tooBig).toMatchObject({ code: -32054, data: { layer: kind.name, reason: 'max-payload', maxPayload } });

    const answeredTooBig = await client.callTool('big', { bytes: maxPayload + 10 }).catch((error: unknown) => error as Error & { code?: number; data?: unknown });
    expect((answeredTooBig as Error).message).toMatch(new RegExp(`a response is \\d+ bytes with its headers, over ${limit} of 1048576 bytes; the response was not sent`));
    expect(answeredTooBig).toMatchObject({ code: -32054, data: { reason: 'max-payload' } });
    expect(workerErrors).toEqual([expect.stringContaining(kind.payloadLimit.word)]);
    // Neither broke the session.
    expect(textOf(await client.callTool('big', { bytes: 3 }))).toBe('xxx');
  });

  it(`reports and drops a foreign publisher's bytes on every ${kind.places}, answers what it can identify, and carries on`, async () => {
    const service = uniqueService('garbage');
    const ledger = new Ledger();
    const served = await worker(service, 'worker-g', { ledger });
    const workerErrors: string[] = [];
    served.worker.onerror = (error) => void workerErrors.push(error.message);
    const transport = kind.client({ servers: broker!.url, service });
    const clientErrors: string[] = [];
    const client = createV1Client();
    const wrapped = wrap(transport, []);
    await client.connect(wrapped);
    wrapped.onerror = (error) => void clientErrors.push(error.message);
    cleanup.push(() => client.close());

    const leftBehind = await FOREIGN[kind.name]({
      url: broker!.url,
      service,
      sessionId: transport.sessionId!,
      inbox: transport.inbox,
      workerEvents: served.worker.events,
      clientEvents: transport.events,
      cleanup,
    });

    expect(workerErrors).toHaveLength(4);
    expect(workerErrors.every((m) => m.startsWith(`mcp-layers/${kind.name} worker: dropped `))).toBe(true);
    expect(clientErrors).toEqual([expect.stringContaining('dropped a JSON array')]);
    await leftBehind?.();
    // The session carries on, on the same worker, as if nothing had happened.
    expect(textOf(await client.callTool('echo', { text: 'still here' }))).toBe('still here');
    expect(ledger.runs('echo')).toBe(1);
  });
});
