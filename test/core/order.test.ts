/** The order keeper: what waits for its turn keeps the async context it was delivered in. */
import { AsyncLocalStorage } from 'node:async_hooks';
import { describe, expect, it } from 'vitest';
import type { Middleware } from '#core/layer.ts';
import { wrap } from '#core/wrap.ts';
import { ScriptedPeer, turn } from '../support/scripted-peer.ts';

describe('inbound order and async context', () => {
  it("a message released by an earlier one reaches the application in its own exchange's context", async () => {
    const als = new AsyncLocalStorage<string>();
    // Each inbound notification runs in a context of its own (as tracing's span context would),
    // and the first one takes longer (microtasks only) to reach the application.
    const scoped: Middleware = (ctx, next) =>
      als.run(String(ctx.params?.['data']), async () => {
        if (ctx.params?.['data'] === 'first') for (let i = 0; i < 10; i++) await Promise.resolve();
        await next();
      });
    const peer = new ScriptedPeer();
    const transport = wrap(peer, [scoped]);
    const seen: Array<[unknown, string | undefined]> = [];
    transport.onmessage = (m) => seen.push([(m as { params?: { data?: unknown } }).params?.data, als.getStore()]);
    await transport.start();
    peer.deliver({ jsonrpc: '2.0', method: 'notifications/message', params: { data: 'first' } });
    peer.deliver({ jsonrpc: '2.0', method: 'notifications/message', params: { data: 'second' } });
    await turn();
    expect(seen).toEqual([
      ['first', 'first'],
      ['second', 'second'],
    ]);
  });
});
