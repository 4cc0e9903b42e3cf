/**
 * Connections are counted on both sides: a WebSocket server transport opens before the
 * application can wrap it, and its wrapped bus still learns about that open.
 */
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { metrics } from '#middleware/observability/metrics.ts';
import { wrap } from '#core/wrap.ts';
import { listenWebSocket, WebSocketClientTransport } from '#transports/ws/index.ts';
import { parseExposition, value } from '../support/prom-text.ts';

const cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

describe('mcp_layers_connections_open', () => {
  it('counts every client a server has, and each that leaves', async () => {
    const registry = new Registry();
    const layer = metrics({ registry });
    const closed: Array<Promise<unknown>> = [];
    const bothStarted = Promise.withResolvers<void>();
    const server = await listenWebSocket({
      port: 0,
      onconnection: async (transport) => {
        const wrapped = wrap(transport, [layer], { name: 'server' });
        closed.push(new Promise((resolve) => (wrapped.onclose = () => resolve(undefined))));
        await wrapped.start();
        if (closed.length === 2) bothStarted.resolve();
      },
    });
    cleanup.push(() => server.close());
    const open = async () => value(parseExposition(await registry.metrics()), 'mcp_layers_connections_open', { transport: 'server' });
    const clients = [new WebSocketClientTransport(server.url, { reconnect: false }), new WebSocketClientTransport(server.url, { reconnect: false })];
    for (const client of clients) {
      cleanup.push(() => client.close());
      await client.start();
    }
    await bothStarted.promise;
    expect(await open()).toBe(2);
    await clients[0]?.close();
    await closed[0];
    expect(await open()).toBe(1);
  });
});
