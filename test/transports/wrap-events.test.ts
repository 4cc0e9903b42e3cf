import { afterEach, describe, expect, it } from 'vitest';
import { wrap } from '#core/wrap.ts';
import { listenWebSocket, WebSocketClientTransport } from '#transports/ws/index.ts';

const cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

describe('wrap() observes our transports', () => {
  it("publishes the inner transport's connection events on the wrapped transport's bus, until it closes", async () => {
    const server = await listenWebSocket({ port: 0, onconnection: async (t) => t.start() });
    cleanup.push(() => server.close());
    const wrapped = wrap(new WebSocketClientTransport(server.url, { reconnect: false }), []);
    const seen: string[] = [];
    wrapped.events.on('connection', (e) => seen.push(e.state));
    await wrapped.start();
    expect(seen).toContain('open');
    await wrapped.close();
    expect(seen.at(-1)).toBe('closed');
    const after = seen.length;
    (wrapped.inner as WebSocketClientTransport).events.emit('connection', { state: 'open', transport: 'test' });
    expect(seen).toHaveLength(after);
  });
});
