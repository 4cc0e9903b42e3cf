/**
 * mcp-layers/nats checks its options at construction, with the option named where the
 * user wrote it (src/core/options.ts), before any connection is made. No broker needed.
 */
import { describe, expect, it } from 'vitest';
import { InvalidOptionError } from '#core/errors.ts';
import { NatsClientTransport, serveNats } from '#mcp-layers/nats';

describe('mcp-layers/nats options', () => {
  it.each([
    [{ service: 'has.dots' }, 'NatsClientTransport.service: expected a name of 1 to 64 letters, digits, "_" or "-", got "has.dots"'],
    [{ service: 'ok', prefix: 'a b' }, 'NatsClientTransport.prefix: expected a name of 1 to 64 letters, digits, "_" or "-", got "a b"'],
    [{ service: 'ok', heartbeat: { intervalMs: 0 } }, 'NatsClientTransport.heartbeat.intervalMs: expected a duration in milliseconds >= 1, got 0'],
    [{ service: 'ok', recover: { maxRetries: 0 } }, 'NatsClientTransport.recover.maxRetries: expected an integer >= 1, got 0'],
    [{ service: 'ok', servers: [] }, 'NatsClientTransport.servers: expected a NATS URL or a non-empty array of them, got an array of 0'],
    [{ service: 'ok', retries: 3 }, 'NatsClientTransport.retries: expected one of the known options'],
  ])('NatsClientTransport(%j) throws at construction', (options, message) => {
    const make = () => new NatsClientTransport(options as never);
    expect(make).toThrow(InvalidOptionError);
    expect(make).toThrow(message);
  });

  it.each([
    [{ service: 'ok' }, 'serveNats.onsession: expected a function (transport) => void, got undefined'],
    [{ service: 'ok', onsession: () => {}, maxInFlight: 0 }, 'serveNats.maxInFlight: expected an integer >= 1, got 0'],
    [{ service: 'ok', onsession: () => {}, storage: 'disk' }, 'serveNats.storage: expected one of "file", "memory", got "disk"'],
    [{ service: 'ok', onsession: () => {}, ackWaitMs: 10 }, 'serveNats.ackWaitMs: expected a duration in milliseconds >= 100, got 10'],
    [{ service: 'ok', onsession: () => {}, id: 'a.b' }, 'serveNats.id: expected a name of 1 to 64 letters, digits, "_" or "-", got "a.b"'],
  ])('serveNats(%j) rejects before connecting', async (options, message) => {
    await expect(serveNats(options as never)).rejects.toThrow(message);
  });

  it('sends nothing before start(), saying why', async () => {
    const transport = new NatsClientTransport({ service: 'idle' });
    await expect(transport.send({ jsonrpc: '2.0', id: 1, method: 'ping' })).rejects.toMatchObject({ code: -32000, neverSent: true, message: expect.stringContaining('start() has not finished') });
    await transport.close();
  });
});
