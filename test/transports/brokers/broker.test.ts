/**
 * The broker itself goes away (its process killed under a call in flight), on each broker:
 * the request settles at once with a typed, retryable ConnectionClosed error instead of
 * waiting for an answer that cannot come, sends fail at once while the client library
 * reconnects, and both sides still close without hanging.
 */
import { afterEach, expect, it } from 'vitest';
import type { LayerEvents } from '#core/events.ts';
import { wrap } from '#core/wrap.ts';
import { type BrokerServer, describeEachBroker, fixtureWorker, uniqueService } from '../../support/brokers.ts';
import { createV1Client } from '../../support/clients.ts';
import { captureOutcome } from '../../support/scenarios.ts';

describeEachBroker('test/transports/brokers/broker.test.ts', (b) => `mcp-layers/${b.name}: the broker stopped`, (kind) => {
  let broker: BrokerServer | undefined;
  afterEach(async () => {
    await broker?.stop();
  });

  it('settles the requests in flight with a typed retryable error, refuses sends meanwhile, and closes without hanging', async () => {
    broker = await kind.start();
    const service = uniqueService('broker');
    const served = await fixtureWorker(kind, broker.url, service, 'v1', { drainTimeoutMs: 100 });
    const transport = kind.client({ servers: broker.url, service, quickReconnect: true });
    const connections: Array<LayerEvents['connection']> = [];
    transport.events.on('connection', (event) => void connections.push(event));
    const client = createV1Client();
    await client.connect(wrap(transport, [], { events: transport.events }));

    const inFlight = captureOutcome(() => client.callTool('slow', {}));
    await served.ledger.whenRan('slow');
    await broker.kill();

    expect(await inFlight).toMatchObject({
      // The core's retryable connection-lost error (what `retry` re-sends idempotent requests on), carrying ours.
      error: { code: -32000, data: { reason: 'connection-lost' }, message: expect.stringContaining(`the connection to the ${kind.title} server was lost; requests in flight may or may not have been executed`) },
    });
    expect(connections.map((c) => c.state)).toEqual(['open', 'closed']);
    expect(await captureOutcome(() => client.callTool('echo', { text: 'nobody hears this' }))).toMatchObject({
      error: { code: -32000, message: expect.stringContaining(`the ${kind.title} server is unreachable`) },
    });

    await client.close();
    await served.close();
    expect(served.worker.inFlight).toBe(0);
  });
});
