/**
 * mcp-layers/redis checks its options at construction, with the option named where the
 * user wrote it (src/core/options.ts), before any connection is made — with the same
 * rules and messages as mcp-layers/nats, since both read them with the same code. No
 * broker needed.
 */
import { describe, expect, it } from 'vitest';
import { InvalidOptionError } from '#core/errors.ts';
import { RedisClientTransport, serveRedis } from '#mcp-layers/redis';

describe('mcp-layers/redis options', () => {
  it.each([
    [{ service: 'has:colons' }, 'RedisClientTransport.service: expected a name of 1 to 64 letters, digits, "_" or "-", got "has:colons"'],
    [{ service: 'ok', prefix: 'a b' }, 'RedisClientTransport.prefix: expected a name of 1 to 64 letters, digits, "_" or "-", got "a b"'],
    [{ service: 'ok', heartbeat: { intervalMs: 0 } }, 'RedisClientTransport.heartbeat.intervalMs: expected a duration in milliseconds >= 1, got 0'],
    [{ service: 'ok', recover: { maxRetries: 0 } }, 'RedisClientTransport.recover.maxRetries: expected an integer >= 1, got 0'],
    [{ service: 'ok', servers: 'nats://127.0.0.1:4222' }, 'RedisClientTransport.servers: expected a redis:// or rediss:// URL, got "nats://127.0.0.1:4222"'],
    [{ service: 'ok', redisEvents: {} }, 'RedisClientTransport.redisEvents: expected one of the known options'],
  ])('RedisClientTransport(%j) throws at construction', (options, message) => {
    const make = () => new RedisClientTransport(options as never);
    expect(make).toThrow(InvalidOptionError);
    expect(make).toThrow(message);
  });

  it.each([
    [{ service: 'ok' }, 'serveRedis.onsession: expected a function (transport) => void, got undefined'],
    [{ service: 'ok', onsession: () => {}, maxInFlight: 0 }, 'serveRedis.maxInFlight: expected an integer >= 1, got 0'],
    [{ service: 'ok', onsession: () => {}, maxPayload: 10 }, 'serveRedis.maxPayload: expected an integer >= 1024, got 10'],
    [{ service: 'ok', onsession: () => {}, ackWaitMs: 10 }, 'serveRedis.ackWaitMs: expected a duration in milliseconds >= 100, got 10'],
    [{ service: 'ok', onsession: () => {}, id: 'a.b' }, 'serveRedis.id: expected a name of 1 to 64 letters, digits, "_" or "-", got "a.b"'],
    [{ service: 'ok', onsession: () => {}, storage: 'file' }, 'serveRedis.storage: expected one of the known options'],
  ])('serveRedis(%j) rejects before connecting', async (options, message) => {
    await expect(serveRedis(options as never)).rejects.toThrow(message);
  });

  it('sends nothing before start(), saying why', async () => {
    const transport = new RedisClientTransport({ service: 'idle' });
    await expect(transport.send({ jsonrpc: '2.0', id: 1, method: 'ping' })).rejects.toMatchObject({ code: -32000, neverSent: true, message: expect.stringContaining('start() has not finished') });
    await transport.close();
  });

  it('fails start() with a typed error when no server listens, instead of waiting for one', async () => {
    const transport = new RedisClientTransport({ service: 'nowhere', servers: 'redis://127.0.0.1:9' });
    await expect(transport.start()).rejects.toMatchObject({ code: -32054, neverSent: true, layer: 'redis', reason: 'connect-failed', message: expect.stringContaining('could not connect to redis://127.0.0.1:9') });
    await transport.close();
  });
});
