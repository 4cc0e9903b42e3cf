/**
 * Layers change what goes on the wire by replacing `ctx.message` (never mutating it):
 * trace context travels in `params._meta` this way (SEP-414), via `withMeta()`.
 */
import { describe, expect, it } from 'vitest';
import { type JSONRPCNotification, type JSONRPCRequest, withMeta } from '#core/jsonrpc.ts';
import type { Middleware } from '#core/layer.ts';
import { wrap } from '#core/wrap.ts';
import { RecordingApp, ScriptedPeer, turn } from '../support/scripted-peer.ts';

const TRACEPARENT = `00-${'a'.repeat(32)}-${'b'.repeat(16)}-01`;
const stamp: Middleware = async (ctx, next) => {
  if (ctx.direction === 'outbound') ctx.message = withMeta(ctx.message, { traceparent: TRACEPARENT });
  await next();
};

/** Calls next() twice: two attempts, as a retry layer would. */
const twice: Middleware = async (_ctx, next) => {
  await next().catch(() => {});
  await next();
};

describe('withMeta and ctx.message replacement', () => {
  it('reaches every attempt of a request, keeping the application message and its own _meta intact', async () => {
    const peer = new ScriptedPeer();
    const transport = wrap(peer, [stamp, twice]);
    const app = new RecordingApp(transport);
    await transport.start();
    const request: JSONRPCRequest = { jsonrpc: '2.0', id: 7, method: 'tools/list', params: { cursor: 'c', _meta: { progressToken: 'p1' } } };
    const snapshot = structuredClone(request);
    peer.failSends = 1;
    await transport.send(request);
    await turn();
    const wire = peer.requests();
    expect(peer.failedWrites[0]).toMatchObject({ params: { _meta: { traceparent: TRACEPARENT } } });
    expect(wire).toHaveLength(1);
    expect(wire[0]?.params).toEqual({ cursor: 'c', _meta: { progressToken: 'p1', traceparent: TRACEPARENT } });
    expect(request).toEqual(snapshot);
    peer.deliver({ jsonrpc: '2.0', id: wire[0]?.id as number, result: { tools: [] } });
    await turn();
    expect(app.responsesFor(7)).toEqual([{ jsonrpc: '2.0', id: 7, result: { tools: [] } }]);
  });

  it('reaches notifications, creating params and _meta when the message has none', async () => {
    const peer = new ScriptedPeer();
    const transport = wrap(peer, [stamp]);
    const _app = new RecordingApp(transport);
    await transport.start();
    const note: JSONRPCNotification = { jsonrpc: '2.0', method: 'notifications/initialized' };
    await transport.send(note);
    expect(peer.wire).toEqual([{ jsonrpc: '2.0', method: 'notifications/initialized', params: { _meta: { traceparent: TRACEPARENT } } }]);
    expect(note).toEqual({ jsonrpc: '2.0', method: 'notifications/initialized' });
  });

  it('is inherited by forks made after it, and a fork may add its own', async () => {
    const peer = new ScriptedPeer();
    const forking: Middleware = async (ctx, next) => {
      const child = ctx.fork();
      child.message = withMeta(child.message, { baggage: 'k=v' });
      await next(child);
      ctx.response = child.response;
    };
    const transport = wrap(peer, [stamp, forking]);
    const _app = new RecordingApp(transport);
    await transport.start();
    await transport.send({ jsonrpc: '2.0', id: 1, method: 'ping' });
    const [sent] = peer.requests();
    expect(sent?.params?._meta).toEqual({ traceparent: TRACEPARENT, baggage: 'k=v' });
  });

  it('writes the application message itself (same object) when no layer replaces it', async () => {
    const peer = new ScriptedPeer();
    const transport = wrap(peer, []);
    const _app = new RecordingApp(transport);
    await transport.start();
    const note: JSONRPCNotification = { jsonrpc: '2.0', method: 'notifications/x', params: { a: 1 } };
    await transport.send(note);
    expect(peer.wire[0]).toBe(note);
  });
});
