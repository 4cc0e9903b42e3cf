/**
 * The broker events (`broker-*` in LayerEvents) from a real worker and client, on each
 * broker: they reach the transport's own bus (`transport.events`, `worker.events`) and,
 * through the wire control, the bus of every wrapped transport — the client's here is a
 * bus of its own — so metrics() counts them (once each: the worker's sessions share its
 * bus) and logging() writes them at their levels.
 */
import { jetstream } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { createClient } from '@redis/client';
import { Registry } from 'prom-client';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { EventBus, type LayerEvents } from '#core/events.ts';
import { wrap } from '#core/wrap.ts';
import { logging } from '#middleware/observability/logging.ts';
import { metrics } from '#middleware/observability/metrics.ts';
import { type Broker, type BrokerServer, describeEachBroker, type FixtureWorkerOptions, fixtureWorker, uniqueService } from '../../support/brokers.ts';
import { createV1Client, textOf } from '../../support/clients.ts';
import { captureLogger } from '../../support/log-capture.ts';
import { parseExposition, value } from '../../support/prom-text.ts';
import { nextEvent } from '../../support/events.ts';

/** A foreign publisher's bytes on the service's shared subject or stream. */
async function publishGarbage(broker: Broker, url: string, service: string): Promise<string> {
  if (broker.name === 'nats') {
    const foreign = await connect({ servers: url });
    const subject = `mcp.${service}.req`;
    await jetstream(foreign).publish(subject, '{"truncated": ');
    await foreign.close();
    return subject;
  }
  const foreign = createClient({ url });
  await foreign.connect();
  const key = `mcp:{${service}}:req`;
  await foreign.sendCommand(['XADD', key, '*', 'm', '{"truncated": ']);
  await foreign.close();
  return key;
}

describeEachBroker('test/transports/brokers/events.test.ts', (b) => `mcp-layers/${b.name}: the broker events reach the observability layers`, (kind) => {
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

  it('on the wrapped buses of both sides: counted once by metrics, written at their level by logging', async () => {
    const service = uniqueService('events');
    const registry = new Registry();
    const log = captureLogger('debug');
    const layers = [metrics({ registry }), logging({ logger: log.logger })];
    // The worker's own bus, listened to before it starts: it says it joined.
    const workerBus = new EventBus();
    const joined = nextEvent(workerBus, 'broker-worker');
    const options: FixtureWorkerOptions & { events: EventBus } = {
      events: workerBus,
      // Every session on the worker's bus, as docs/scale-out.md shows.
      wrapServer: (transport) => wrap(transport, layers, { name: 'worker', events: transport.events }),
    };
    const served = await fixtureWorker(kind, broker!.url, service, 'v1', options);
    cleanup.push(() => served.close());
    expect(served.worker.events).toBe(workerBus);
    expect(await joined).toEqual({ state: 'joined', worker: served.worker.id });

    const transport = kind.client({ servers: broker!.url, service });
    // The client's wrapped bus is not the transport's: the wire control feeds it.
    const wrapped = wrap(transport, layers, { name: 'client' });
    const onOwnBus: Array<keyof LayerEvents> = [];
    transport.events.on('broker-published', () => void onOwnBus.push('broker-published'));
    const opened = nextEvent(workerBus, 'broker-session', (e) => e.state === 'opened');
    const client = createV1Client();
    await client.connect(wrapped);
    cleanup.push(() => client.close());
    expect(await opened).toEqual({ state: 'opened', sessionId: transport.sessionId });
    expect(textOf(await client.callTool('echo', { text: 'over the broker' }))).toBe('over the broker');

    const garbage = nextEvent(workerBus, 'broker-garbage');
    const subject = await publishGarbage(kind, broker!.url, service);
    expect(await garbage).toMatchObject({ subject, answered: false });

    const closed = nextEvent(workerBus, 'broker-session', (e) => e.state === 'closed');
    await client.close();
    expect(await closed).toEqual({ state: 'closed', sessionId: transport.sessionId, reason: 'the client closed the session' });
    expect(onOwnBus.length).toBeGreaterThanOrEqual(3); // initialize, notifications/initialized, tools/call

    const samples = parseExposition(await registry.metrics());
    const fireAndForget = kind.name === 'nats' ? 'core' : 'pubsub';
    // The client publishes its requests on the stream, once each: as many as its own bus saw.
    expect(value(samples, 'mcp_layers_broker_messages_published_total', { transport: 'client', via: 'stream' })).toBe(onOwnBus.length);
    expect(value(samples, 'mcp_layers_broker_published_bytes_total', { transport: 'client', via: 'stream' })).toBeGreaterThan(0);
    // The worker answers on the client's inbox, by the fire-and-forget path.
    expect(value(samples, 'mcp_layers_broker_messages_published_total', { transport: 'worker', via: fireAndForget })).toBeGreaterThanOrEqual(2);
    expect(value(samples, 'mcp_layers_broker_sessions_total', { transport: 'worker', state: 'opened' })).toBe(1);
    expect(value(samples, 'mcp_layers_broker_sessions_total', { transport: 'worker', state: 'closed' })).toBe(1);
    expect(value(samples, 'mcp_layers_broker_garbage_total', { transport: 'worker' })).toBe(1);

    const records = log.records();
    expect(records.find((r) => r['event'] === 'broker-published' && r['transport'] === 'client' && r['method'] === 'tools/call')).toMatchObject({ level: 'debug', via: 'stream' });
    expect(records.find((r) => r['event'] === 'broker-session' && r['state'] === 'opened')).toMatchObject({ level: 'info', transport: 'worker', session_id: transport.sessionId });
    expect(records.find((r) => r['event'] === 'broker-garbage')).toMatchObject({ level: 'warn', transport: 'worker', subject, answered: false });
    expect(records.filter((r) => r['event'] === 'broker-session' && r['state'] === 'closed')).toHaveLength(1);
  });
});
