/**
 * The broker itself goes away (its process killed under a call in flight): the request
 * settles at once with a typed, retryable ConnectionClosed error instead of waiting for an
 * answer that cannot come, sends fail at once while the client library reconnects, and
 * both sides still close without hanging.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { LayerEvents } from '#core/events.ts';
import { wrap } from '#core/wrap.ts';
import { RedisClientTransport } from '#mcp-layers/redis';
import { createV1Client } from '../../support/clients.ts';
import { REDIS_SERVER, REDIS_SKIP_MESSAGE, type RedisServer, startRedisServer } from '../../support/redis-server.ts';
import { fixtureWorker, uniqueService } from '../../support/redis.ts';
import { captureOutcome } from '../../support/scenarios.ts';

if (REDIS_SERVER === undefined) console.warn(`test/transports/redis/broker.test.ts: ${REDIS_SKIP_MESSAGE}`);

describe.skipIf(REDIS_SERVER === undefined)('mcp-layers/redis: the broker stopped', () => {
  let broker: RedisServer | undefined;
  afterEach(async () => {
    await broker?.stop();
  });

  it('settles the requests in flight with a typed retryable error, refuses sends meanwhile, and closes without hanging', async () => {
    broker = await startRedisServer();
    const service = uniqueService('broker');
    const served = await fixtureWorker(broker.url, service, 'v1', { drainTimeoutMs: 100 });
    const transport = new RedisClientTransport({ servers: broker.url, service, connectOptions: { socket: { reconnectStrategy: 50 } } });
    const connections: Array<LayerEvents['connection']> = [];
    transport.events.on('connection', (event) => void connections.push(event));
    const client = createV1Client();
    await client.connect(wrap(transport, [], { events: transport.events }));

    const inFlight = captureOutcome(() => client.callTool('slow', {}));
    await served.ledger.whenRan('slow');
    await broker.kill();

    expect(await inFlight).toMatchObject({
      // The core's retryable connection-lost error (what `retry` re-sends idempotent requests on), carrying ours.
      error: { code: -32000, data: { reason: 'connection-lost' }, message: expect.stringContaining('the connection to the Redis server was lost; requests in flight may or may not have been executed') },
    });
    expect(connections.map((c) => c.state)).toEqual(['open', 'closed']);
    expect(await captureOutcome(() => client.callTool('echo', { text: 'nobody hears this' }))).toMatchObject({
      error: { code: -32000, message: expect.stringContaining('the Redis server is unreachable') },
    });

    await client.close();
    await served.close();
    expect(served.worker.inFlight).toBe(0);
  });
});
