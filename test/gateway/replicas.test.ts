/**
 * Gateway replicas as a stateless front over a broker (docs/gateway.md, "Replicas"): two
 * gateways with the same `nats://…/SERVICE` or `redis://…/SERVICE` upstream, two workers,
 * and SDK v1 and v2 clients whose every HTTP request goes to the other replica (what a
 * round-robin balancer without session affinity does). The whole scenario script —
 * tools, progress, sampling, elicitation, lists, cancellation — gives what a direct
 * connection gives; DELETE through either replica ends the session for both; a replica
 * that goes away does not end the session for a client that goes on through the other;
 * a session the broker does not know is 404, so the client initializes again; over
 * WebSocket, a client whose replica closes reconnects to the other one and goes on.
 */
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { WebSocketClientTransport } from '#transports/ws/index.ts';
import type { Transport } from '#core/transport.ts';
import { type BrokerServer, describeEachBroker, fixtureWorker, type FixtureWorker, uniqueService } from '../support/brokers.ts';
import { createV1Client, createV2Client, type TestClient } from '../support/clients.ts';
import { makeClientTransport } from '../support/http.ts';
import { startTestGateway, type TestGateway } from '../support/gateway.ts';
import { comparable, directRun, scriptRun, type Sdk } from '../support/gateway-transcripts.ts';
import { roundRobinFetch, roundRobinProxy } from '../support/round-robin.ts';

describeEachBroker('test/gateway/replicas.test.ts', (b) => `two gateway replicas in front of two workers on ${b.title}`, (kind) => {
  let broker: BrokerServer | undefined;
  beforeAll(async () => {
    broker = await kind.start();
  });
  afterAll(async () => {
    await broker?.stop();
  });

  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => {});
  });

  interface Setup {
    readonly gateways: readonly TestGateway[];
    readonly workers: readonly FixtureWorker[];
    readonly service: string;
  }

  async function setup(serverSdk: Sdk, broker_: Record<string, unknown> = {}): Promise<Setup> {
    const service = uniqueService('replicas');
    const workers: FixtureWorker[] = [];
    for (let i = 0; i < 2; i++) {
      const worker = await fixtureWorker(kind, broker!.url, service, serverSdk);
      cleanups.push(() => worker.close());
      workers.push(worker);
    }
    const gateways: TestGateway[] = [];
    for (let i = 0; i < 2; i++) {
      const gw = await startTestGateway({ upstream: { url: `${broker!.url}/${service}`, ...(Object.keys(broker_).length === 0 ? {} : { broker: broker_ }) } });
      cleanups.push(() => gw.stop(0));
      gateways.push(gw);
    }
    return { gateways, workers, service };
  }

  const origin = (gw: TestGateway) => new URL(gw.http).origin;
  const sessionsHeld = (workers: readonly FixtureWorker[]) => workers.reduce((n, w) => n + w.worker.sessions, 0);

  it.each([
    ['v1', 'v1'],
    ['v2', 'v1'],
    ['v2', 'v2'],
  ] as const)('an SDK %s client of an SDK %s server, every request to the other replica, sees what it sees connected directly', async (sdk, serverSdk) => {
    const { gateways, workers } = await setup(serverSdk);
    const balancer = roundRobinFetch(gateways.map(origin));
    // The SDK posts the cancellation and the next request without waiting: the ledger is read once the cancellation went upstream, on whichever replica holds the call.
    const cancelled = new Promise<void>((resolve) => {
      for (const gw of gateways) {
        const off = gw.gateway.upstreamEvents.on('cancel-sent', () => (off(), resolve()));
      }
    });
    const through = await scriptRun(sdk, makeClientTransport(sdk, gateways[0]!.http, balancer.fetch), serverSdk, () => cancelled);
    const reference = await directRun(sdk, serverSdk, 'http');
    expect(comparable(through)).toEqual(comparable(reference));
    // Both replicas really served it: the requests alternated, and each replica held the session.
    expect(new Set(balancer.sent.map((s) => s.replica))).toEqual(new Set([0, 1]));
    expect(balancer.sent.filter((s, i) => i > 0 && s.replica === balancer.sent[i - 1]!.replica)).toEqual([]);
    const asked = through.steps.find((s) => s.step === 'what the server asked the client')?.value as { sampling: unknown[]; elicitation: unknown[] };
    expect(asked.sampling.length).toBeGreaterThan(0);
    expect(asked.elicitation.length).toBeGreaterThan(0);
    // One session, on one worker, one server instance: no replica opened a second one.
    expect(workers.reduce((n, w) => n + w.instances, 0)).toBe(1);
    for (const gw of gateways) expect(gw.logs.filter((r) => r['level'] === 'error')).toEqual([]);
  });

  it('DELETE through the other replica ends the session for both; the next request is 404, so the client initializes again', async () => {
    const { gateways, workers } = await setup('v1');
    const balancer = roundRobinFetch(gateways.map(origin));
    const transport = makeClientTransport('v1', gateways[0]!.http, balancer.fetch) as Transport & { terminateSession(): Promise<void>; sessionId?: string };
    const c = createV1Client();
    await c.connect(transport);
    cleanups.push(() => c.close());
    for (let i = 0; i < 4; i++) expect(await c.callTool('add', { a: i, b: 1 })).toMatchObject({ content: [{ type: 'text', text: String(i + 1) }] });
    const sessionId = transport.sessionId as string;
    const held = gateways.map((gw) => [...gw.gateway.sessions].filter((s) => s.sessionId === sessionId).length);
    expect(held).toEqual([1, 1]);
    const closed = gateways.map((gw) => new Promise<void>((resolve) => gw.gateway.on('session-close', (e) => void (e.sessionId === sessionId && resolve()))));
    await transport.terminateSession();
    // Both replicas let it go: the one that answered the DELETE, and the other, told by the worker.
    await Promise.all(closed);
    expect(sessionsHeld(workers)).toBe(0);
    for (const gw of gateways) {
      const res = await fetch(gw.http, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-session-id': sessionId, 'mcp-protocol-version': '2025-11-25' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
      });
      expect(res.status).toBe(404);
      await res.body?.cancel();
    }
  });

  it('a replica that goes away does not end the session: the client goes on through the other', async () => {
    const { gateways, workers } = await setup('v1');
    const balancer = roundRobinFetch(gateways.map(origin));
    const transport = makeClientTransport('v1', gateways[0]!.http, balancer.fetch) as Transport & { sessionId?: string };
    const c = createV1Client();
    await c.connect(transport);
    cleanups.push(() => c.close());
    expect(await c.callTool('echo', { text: 'before' })).toMatchObject({ content: [{ type: 'text', text: 'before' }] });
    // Replica 0 stops (its sessions only leave the broker sessions); the balancer sends nothing more there.
    balancer.down(0);
    await gateways[0]!.stop(0);
    for (const text of ['after 1', 'after 2', 'after 3']) expect(await c.callTool('echo', { text })).toMatchObject({ content: [{ type: 'text', text }] });
    expect(await c.callTool('sample', { prompt: 'still there?' })).toMatchObject({ content: [{ type: 'text' }] });
    expect(sessionsHeld(workers)).toBe(1);
    expect(workers.reduce((n, w) => n + w.instances, 0)).toBe(1);
  });

  it('the session\'s worker goes away: both replicas notice, one replays the handshake, and the client goes on through both', async () => {
    const { gateways, workers } = await setup('v1', { heartbeat: { intervalMs: 100, timeoutMs: 500 } });
    const balancer = roundRobinFetch(gateways.map(origin));
    const c = createV1Client();
    await c.connect(makeClientTransport('v1', gateways[0]!.http, balancer.fetch));
    cleanups.push(() => c.close());
    for (let i = 0; i < 2; i++) expect(await c.callTool('echo', { text: `before ${i}` })).toMatchObject({ content: [{ type: 'text', text: `before ${i}` }] });
    const holder = workers.findIndex((w) => w.worker.sessions === 1);
    const other = workers[1 - holder]!;
    const replayed = new Promise<void>((resolve) => {
      const off = other.worker.events.on('broker-session', (e) => void (e.state === 'replayed' && (off(), resolve())));
    });
    await workers[holder]!.close();
    await replayed;
    for (let i = 0; i < 4; i++) expect(await c.callTool('echo', { text: `after ${i}` })).toMatchObject({ content: [{ type: 'text', text: `after ${i}` }] });
    // One replay for the two replicas: one new server instance, on the other worker.
    expect(other.instances).toBe(1);
    expect(other.worker.sessions).toBe(1);
  });

  it('a session id the broker does not know is 404 on every replica, and the client\'s new session works through both', async () => {
    const { gateways } = await setup('v1');
    for (const gw of gateways) {
      const res = await fetch(gw.http, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-session-id': 'no-such-session', 'mcp-protocol-version': '2025-11-25' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
      });
      expect(res.status).toBe(404);
      await res.body?.cancel();
      expect(gw.gateway.sessions.size).toBe(0);
    }
  });

  it('over WebSocket, a client whose replica closes reconnects to the other and its calls keep succeeding', async () => {
    const { gateways, workers } = await setup('v1');
    const proxy = await roundRobinProxy(gateways.map((gw) => Number(new URL(gw.ws).port)));
    cleanups.push(() => proxy.close());
    const c: TestClient = createV2Client();
    await c.connect(new WebSocketClientTransport(`ws://127.0.0.1:${proxy.port}/mcp`, { reconnect: { initialDelayMs: 10, maxDelayMs: 100 } }));
    cleanups.push(() => c.close());
    expect(await c.callTool('add', { a: 2, b: 3 })).toMatchObject({ content: [{ type: 'text', text: '5' }] });
    const first = proxy.connections[0] as number;
    await gateways[first]!.stop(0);
    for (let i = 0; i < 3; i++) expect(await c.callTool('add', { a: i, b: 10 })).toMatchObject({ content: [{ type: 'text', text: String(i + 10) }] });
    expect(proxy.connections.slice(1)).toContain(1 - first);
    // The replayed handshake opened a session through the other replica.
    expect(workers.reduce((n, w) => n + w.instances, 0)).toBe(2);
  });
});
