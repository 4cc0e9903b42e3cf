/**
 * A client's 10 000-message batch through the gateway to a stdio server: every message is
 * answered, and the gateway's process prints no MaxListenersExceededWarning (in plain text,
 * among its JSON logs) — the stdio upstream writes one message at a time (child.ts).
 */
import { afterEach, expect, it } from 'vitest';
import { INITIALIZE, rawClient, request } from '../support/ws.ts';
import { DEMO_SERVER, startTestGateway, type TestGateway } from '../support/gateway.ts';

let gw: TestGateway | undefined;
afterEach(async () => {
  await gw?.stop(0);
  gw = undefined;
});

it('answers every message of a 10 000-message batch over WebSocket, with no MaxListenersExceededWarning', async () => {
  const warnings: Error[] = [];
  const onWarning = (warning: Error) => void warnings.push(warning);
  process.on('warning', onWarning);
  try {
    gw = await startTestGateway({ upstream: { command: process.execPath, args: [DEMO_SERVER], stderr: 'ignore' } });
    const ws = await rawClient(gw.ws);
    expect((await request(ws, INITIALIZE))['result']).toBeDefined();
    ws.send(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }));
    const count = 10_000;
    const answered = new Set<number>();
    const all = new Promise<void>((resolve) => {
      ws.on('message', (data) => {
        const parsed = JSON.parse(String(data)) as Array<{ id: number }> | { id: number };
        for (const message of Array.isArray(parsed) ? parsed : [parsed]) answered.add(message.id);
        if (answered.size === count) resolve();
      });
    });
    ws.send(JSON.stringify(Array.from({ length: count }, (_, i) => ({ jsonrpc: '2.0', id: 100 + i, method: 'ping' }))));
    await all;
    expect(answered.size).toBe(count);
    ws.close();
    expect(warnings.filter((w) => w.name === 'MaxListenersExceededWarning').map((w) => w.message)).toEqual([]);
  } finally {
    process.off('warning', onWarning);
  }
}, 60_000);
