/**
 * The broker restarted under a worker and its clients, on each broker: killed (SIGKILL, as
 * a crash) with a call in flight and brought back on the same port. The call in flight
 * ends with the typed retryable connection-lost error (test/transports/brokers/broker.test.ts
 * covers that in full); then both client libraries reconnect on their own, and without the
 * application doing anything its sessions go on under the same ids, a new client opens a
 * new session on the same worker, and another client can still join an old one.
 *
 * What survives differs: the NATS server keeps its JetStream file store (streams,
 * consumers, the sessions' handshakes) across the restart; the Redis test server persists
 * nothing (`--save '' --appendonly no`), so it comes back empty, and the worker writes back
 * what it needs (the service's config and group, the streams and handshakes of the
 * sessions it holds) before it reads again — its `connection` event says when it has.
 * Every wait is on an event, bounded by `within`.
 */
import { afterEach, expect, it } from 'vitest';
import type { EventBus, LayerEvents } from '#core/events.ts';
import { wrap } from '#core/wrap.ts';
import { type Broker, type BrokerServer, describeEachBroker, type FixtureWorkerOptions, fixtureWorker, uniqueService } from '../../support/brokers.ts';
import { createClient, type Sdk, type TestClient, textOf } from '../../support/clients.ts';
import { captureOutcome } from '../../support/scenarios.ts';
import { nextEvent, within } from '../../support/events.ts';

/**
 * The worker's own options for this scenario: NATS's file storage (the default outside the
 * tests, whose fixture uses memory), and both libraries reconnecting within some 50 ms.
 */
function restartable(broker: Broker): FixtureWorkerOptions {
  const options = broker.name === 'nats' ? { storage: 'file', connectOptions: { reconnectTimeWait: 50 } } : { connectOptions: { socket: { reconnectStrategy: 50 } } };
  return { drainTimeoutMs: 100, ...options } as FixtureWorkerOptions;
}

interface Session {
  sdk: Sdk;
  client: TestClient;
  events: EventBus;
  sessionId: string | undefined;
  connections: Array<LayerEvents['connection']['state']>;
}

describeEachBroker('test/transports/brokers/restart.test.ts', (b) => `mcp-layers/${b.name}: the broker restarted`, (kind) => {
  let broker: BrokerServer | undefined;
  const cleanup: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const close of cleanup.splice(0).reverse()) await close().catch(() => {});
    await broker?.stop();
  });

  it('the call in flight ends with a retryable error; then the sessions go on under their ids, and the worker takes new ones', async () => {
    broker = await kind.start();
    const url = broker.url;
    const service = uniqueService('restart');
    const served = await fixtureWorker(kind, url, service, 'v1', restartable(kind));
    cleanup.push(() => served.close());
    const workerConnections: Array<LayerEvents['connection']['state']> = [];
    served.worker.events.on('connection', (event) => void workerConnections.push(event.state));
    const replayed: string[] = [];
    served.worker.events.on('broker-session', (event) => void (event.state === 'replayed' && replayed.push(event.sessionId)));

    // A session of each SDK's Client (the 2025 era), each on a transport of its own.
    const sessions: Session[] = [];
    for (const sdk of ['v1', 'v2'] as const) {
      const transport = kind.client({ servers: url, service, quickReconnect: true });
      const session: Session = { sdk, client: createClient(sdk), events: transport.events, sessionId: undefined, connections: [] };
      transport.events.on('connection', (event) => void session.connections.push(event.state));
      await session.client.connect(wrap(transport, [], { events: transport.events }));
      cleanup.push(() => session.client.close());
      session.sessionId = transport.sessionId;
      expect(textOf(await session.client.callTool('echo', { text: `${sdk} before` }))).toBe(`${sdk} before`);
      sessions.push(session);
    }
    expect(new Set(sessions.map((s) => s.sessionId)).size).toBe(2);
    expect(served.worker.sessions).toBe(2);

    const [first] = sessions as [Session];
    const inFlight = captureOutcome(() => first.client.callTool('slow', {}));
    await within(served.ledger.whenRan('slow'), 'the slow call reached the worker');
    const lost = sessions.map((s) => nextEvent(s.events, 'connection', (e) => e.state === 'closed'));
    await broker.kill();
    await within(Promise.all(lost), 'every client saw its connection drop');
    expect(await within(inFlight, 'the call in flight ended')).toMatchObject({ error: { code: -32000, data: { reason: 'connection-lost' } } });

    // Back on the same port: each client library reconnects on its own, and so does the worker's.
    const reconnected = sessions.map((s) => nextEvent(s.events, 'reconnect', (e) => e.outcome === 'connected'));
    const workerBack = nextEvent(served.worker.events, 'connection', (e) => e.state === 'open');
    await broker.restart();
    await within(Promise.all([...reconnected, workerBack]), 'the clients and the worker reconnected');

    // The application does nothing: its next calls succeed, on the same sessions.
    for (const session of sessions) {
      expect(textOf(await within(session.client.callTool('echo', { text: `${session.sdk} after` }), `${session.sdk}'s call after the restart`))).toBe(`${session.sdk} after`);
    }
    expect(sessions.map((s) => s.connections)).toEqual(sessions.map(() => ['open', 'closed', 'open']));
    expect(workerConnections).toEqual(['closed', 'open']);
    // The worker still holds both sessions with their servers, unless a probe that met the
    // worker still away made a client replay its handshake (a new server under the same id).
    expect(served.instances).toBe(2 + replayed.length);
    expect(replayed.every((id) => sessions.some((s) => s.sessionId === id))).toBe(true);

    // The worker's view: it takes a new session, and an old one can still be joined by id
    // (its handshake is on the broker: kept by NATS, written back to Redis by the worker).
    const newcomer = kind.client({ servers: url, service });
    const fresh = createClient('v1');
    await within(fresh.connect(wrap(newcomer, [], { events: newcomer.events })), 'a new session opened');
    cleanup.push(() => fresh.close());
    expect(newcomer.sessionId).not.toBe(first.sessionId);
    expect(textOf(await fresh.callTool('echo', { text: 'new session' }))).toBe('new session');
    expect(served.worker.sessions).toBe(3);
    const joiner = kind.client({ servers: url, service, join: first.sessionId as string, heartbeat: false });
    await within(joiner.start(), 'a client joined the first session');
    expect(joiner.sessionId).toBe(first.sessionId);
    await joiner.leave();
    expect(served.serverErrors).toEqual([]);
  });
});
