/**
 * What mcp-layers/redis leaves on the broker, read back with a client of our own: answered
 * entries are acknowledged and deleted (nothing grows with traffic), a session's stream
 * has a time to live, a second publish of one client and wire id within the window is
 * refused, and entries a dead consumer left pending are claimed once idle — run again
 * when idempotent, answered with one `worker-lost` error otherwise.
 */
import { createClient } from '@redis/client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { JSONRPCMessage } from '#core/jsonrpc.ts';
import { wrap } from '#core/wrap.ts';
import type { LayerEvents } from '#core/events.ts';
import { RedisClientTransport } from '#mcp-layers/redis';
import { createV1Client, textOf } from '../../support/clients.ts';
import { REDIS_SERVER, REDIS_SKIP_MESSAGE, type RedisServer, startRedisServer } from '../../support/redis-server.ts';
import { fixtureWorker, REDIS, uniqueService } from '../../support/brokers.ts';

if (REDIS_SERVER === undefined) console.warn(`test/transports/redis/streams.test.ts: ${REDIS_SKIP_MESSAGE}`);

describe.skipIf(REDIS_SERVER === undefined)('mcp-layers/redis: what stays on the broker', () => {
  let broker: RedisServer | undefined;
  let redis: ReturnType<typeof createClient> | undefined;
  const cleanup: Array<() => Promise<unknown>> = [];
  beforeAll(async () => {
    broker = await startRedisServer();
    redis = createClient({ url: broker.url });
    await redis.connect();
  });
  afterEach(async () => {
    for (const close of cleanup.splice(0).reverse()) await close();
  });
  afterAll(async () => {
    await redis?.close();
    await broker?.stop();
  });

  it('deletes what it answered, gives a session stream a time to live, and refuses a second publish of one wire id', async () => {
    const service = uniqueService('streams');
    const served = await fixtureWorker(REDIS, broker!.url, service, 'v1', { sessionIdleMs: 60_000 });
    cleanup.push(() => served.close());
    const transport = new RedisClientTransport({ servers: broker!.url, service });
    const client = createV1Client();
    await client.connect(wrap(transport, [], { events: transport.events }));
    cleanup.push(() => client.close());
    const texts = await Promise.all(Array.from({ length: 10 }, (_, i) => client.callTool('echo', { text: `call ${i}` }).then(textOf)));
    expect(texts).toHaveLength(10);

    const session = `mcp:{${service}}:s:${transport.sessionId}`;
    expect(await redis!.sendCommand(['XLEN', `mcp:{${service}}:req`])).toBe(0);
    expect(await redis!.sendCommand(['XLEN', session])).toBe(0);
    const ttl = Number(await redis!.sendCommand(['PTTL', session]));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(60_000);

    // The same wire id again, from a bare transport: the broker's window refuses it; the tool runs once.
    const bare = new RedisClientTransport({ servers: broker!.url, service, heartbeat: false });
    const answers: JSONRPCMessage[] = [];
    const answered = Promise.withResolvers<void>();
    bare.onmessage = (message) => {
      answers.push(message);
      answered.resolve();
    };
    const dropped: Array<LayerEvents['broker-deduplicated']> = [];
    bare.events.on('broker-deduplicated', (event) => void dropped.push(event));
    await bare.start();
    cleanup.push(() => bare.close());
    const call: JSONRPCMessage = { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', arguments: { text: 'once' } } };
    await bare.send(call);
    await bare.send(call);
    await answered.promise;
    expect(dropped).toEqual([{ where: 'stream', id: 1 }]);
    expect(Number(await redis!.sendCommand(['PTTL', `mcp:{${service}}:d:${bare.clientId}.1`]))).toBeGreaterThan(0);
    expect(served.ledger.runs('echo')).toBe(11);
    expect(answers).toHaveLength(1);
  });

  it('claims what a dead consumer left pending once idle: an idempotent request runs, another is answered with one worker-lost error', async () => {
    const service = uniqueService('claim');
    const requests = `mcp:{${service}}:req`;
    const inbox = `mcp:{${service}}:c:ghost-client`;
    const listener = redis!.duplicate();
    await listener.connect();
    cleanup.push(() => listener.close());
    const answers = new Map<number, unknown>();
    const both = Promise.withResolvers<void>();
    await listener.subscribe(inbox, (payload) => {
      const message = JSON.parse(payload.slice(payload.indexOf('\n') + 1)) as { id: number };
      answers.set(message.id, message);
      if (answers.size === 2) both.resolve();
    });
    // A worker that took two requests and died before answering them: they stay pending under its name.
    await redis!.sendCommand(['XGROUP', 'CREATE', requests, 'workers', '0', 'MKSTREAM']);
    const headers = ['Mcp-Client', 'ghost-client', 'Mcp-Reply', inbox];
    await redis!.sendCommand(['XADD', requests, '*', 'm', JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }), ...headers]);
    await redis!.sendCommand(['XADD', requests, '*', 'm', JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'append', arguments: { text: 'x' } } }), ...headers]);
    await redis!.sendCommand(['XREADGROUP', 'GROUP', 'workers', 'dead-worker', 'COUNT', '10', 'STREAMS', requests, '>']);
    expect(((await redis!.sendCommand(['XPENDING', requests, 'workers'])) as unknown[])[0]).toBe(2);

    const served = await fixtureWorker(REDIS, broker!.url, service, 'v1', { ackWaitMs: 200 });
    cleanup.push(() => served.close());
    const redelivered: Array<LayerEvents['broker-redelivered']> = [];
    served.worker.events.on('broker-redelivered', (event) => void redelivered.push(event));
    await both.promise;

    expect(answers.get(1)).toMatchObject({ id: 1, result: {} });
    expect(answers.get(2)).toMatchObject({ id: 2, error: { code: -32054, message: expect.stringContaining('it was not run again'), data: { layer: 'redis', reason: 'worker-lost' } } });
    expect(served.ledger.runs('append')).toBe(0);
    expect(redelivered.map((e) => [e.id, e.outcome, e.deliveryCount]).toSorted()).toEqual([
      [1, 'delivered', 2],
      [2, 'refused', 2],
    ]);
    await expect.poll(async () => redis!.sendCommand(['XLEN', requests]), { timeout: 2_000 }).toBe(0);
  });
});
