/**
 * The exchange model: wire ids, mapping back, cancellation translation, protocol-era
 * pass-through, and what the core learns from traffic.
 */
import { describe, expect, it } from 'vitest';
import { TimeoutError, TransportError } from '#core/errors.ts';
import type { JSONRPCRequest } from '#core/jsonrpc.ts';
import type { Middleware } from '#core/layer.ts';
import { wrap } from '#core/wrap.ts';
import { RecordingApp, ScriptedPeer, turn } from '../support/scripted-peer.ts';

async function setup(layers: Middleware[] = [], options = {}) {
  const peer = new ScriptedPeer();
  const transport = wrap(peer, layers, options);
  const app = new RecordingApp(transport);
  await transport.start();
  return { peer, transport, app };
}

const retryOnce: Middleware = async (ctx, next) => {
  if (ctx.kind !== 'request' || ctx.direction !== 'outbound') return next();
  try {
    await next();
  } catch {
    await next();
  }
};

describe('wire ids', () => {
  it('every attempt gets a fresh wire id; the application sees its own id exactly once', async () => {
    let abort!: AbortController;
    const abandonFirst: Middleware = async (ctx, next) => {
      if (ctx.kind !== 'request' || ctx.direction !== 'outbound') return next();
      abort = new AbortController();
      const child = ctx.fork({ signal: abort.signal });
      await next(child);
      ctx.response = child.response;
    };
    const s = await setup([retryOnce, abandonFirst]);
    await s.transport.send({ jsonrpc: '2.0', id: 'app-1', method: 'tools/list' });
    await turn();
    abort.abort(new TimeoutError('attempt timed out', { reason: 'attempt-timeout' }));
    await turn();
    const [first, second] = s.peer.requests();
    expect(first?.id).not.toBe(second?.id);
    expect([first?.id, second?.id]).not.toContain('app-1');
    // The first attempt was cancelled on the wire by its own id (invariant 4).
    expect(s.peer.wire).toContainEqual({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: first?.id, reason: 'attempt timed out' } });
    // A late answer to the first attempt is dropped; the second attempt's answer is delivered once.
    s.peer.deliver({ jsonrpc: '2.0', id: first?.id as number, result: { from: 'first' } });
    s.peer.deliver({ jsonrpc: '2.0', id: second?.id as number, result: { from: 'second' } });
    await turn();
    expect(s.app.received).toEqual([{ jsonrpc: '2.0', id: 'app-1', result: { from: 'second' } }]);
  });

  it('keeps everything but the id as the application wrote it', async () => {
    const s = await setup();
    const request: JSONRPCRequest = { jsonrpc: '2.0', id: 5, method: 'tools/call', params: { name: 'x', arguments: { a: 1 }, _meta: { progressToken: 5 } } };
    await s.transport.send(request);
    const [wire] = s.peer.requests();
    expect({ ...wire, id: 5 }).toEqual(request);
    expect(request.id).toBe(5);
  });
});

describe('layers change what goes on the wire by replacing, never mutating', () => {
  it('a replaced message and options reach the wire; the application keeps its objects', async () => {
    const stamp: Middleware = async (ctx, next) => {
      if (ctx.direction === 'outbound') {
        ctx.message = { ...ctx.message, params: { ...ctx.params, _meta: { ...ctx.params?._meta, traceparent: '00-abc-def-01' } } };
        ctx.options = { ...ctx.options, headers: { authorization: 'Bearer t' } };
      }
      await next();
    };
    const s = await setup([stamp]);
    const request: JSONRPCRequest = { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'x' } };
    const appOptions = { relatedRequestId: 'r' };
    await s.transport.send(request, appOptions);
    await s.transport.send({ jsonrpc: '2.0', method: 'notifications/roots/list_changed' });
    expect(s.peer.wire[0]).toMatchObject({ method: 'tools/call', params: { name: 'x', _meta: { traceparent: '00-abc-def-01' } } });
    expect(s.peer.wire[1]).toMatchObject({ method: 'notifications/roots/list_changed', params: { _meta: { traceparent: '00-abc-def-01' } } });
    expect(s.peer.sendOptions[0]).toEqual({ relatedRequestId: 'r', headers: { authorization: 'Bearer t' } });
    expect(request).toEqual({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'x' } });
    expect(appOptions).toEqual({ relatedRequestId: 'r' });
  });
});

describe('cancellation', () => {
  it("translates the application's notifications/cancelled to the live wire id", async () => {
    const s = await setup();
    await s.transport.send({ jsonrpc: '2.0', id: 9, method: 'tools/call', params: { name: 'slow' } });
    const wireId = s.peer.requests()[0]?.id;
    await s.transport.send({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 9, reason: 'user gave up' } });
    expect(s.peer.wire.at(-1)).toEqual({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: wireId, reason: 'user gave up' } });
    // No response is delivered for a request the application cancelled, even if one comes.
    s.peer.deliver({ jsonrpc: '2.0', id: wireId as number, result: {} });
    await turn();
    expect(s.app.received).toEqual([]);
    expect(s.transport.stats().outbound).toBe(0);
  });

  it('sends nothing for a cancel of a request that already ended', async () => {
    const s = await setup();
    await s.transport.send({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 404 } });
    expect(s.peer.wire).toEqual([]);
  });

  it('never cancels initialize on the wire', async () => {
    let abort!: AbortController;
    const s = await setup([
      async (ctx, next) => {
        abort = new AbortController();
        const child = ctx.fork({ signal: abort.signal });
        await next(child);
      },
    ]);
    await s.transport.send({ jsonrpc: '2.0', id: 0, method: 'initialize', params: {} });
    abort.abort(new TimeoutError('too slow'));
    await turn();
    expect(s.peer.wire.map((m) => ('method' in m ? m.method : 'response'))).toEqual(['initialize']);
    expect(s.app.responsesFor(0)[0]).toMatchObject({ error: { code: -32001, message: 'too slow' } });
  });

  it('cancels a per-request stream by aborting its own signal in the 2026-07-28 era', async () => {
    const s = await setup();
    Object.defineProperty(s.peer, 'hasPerRequestStream', { value: true });
    s.transport.setProtocolVersion('2026-07-28');
    const appSignal = new AbortController();
    await s.transport.send({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'x' } }, { requestSignal: appSignal.signal });
    const attemptSignal = s.peer.sendOptions[0]?.requestSignal as AbortSignal;
    expect(attemptSignal).toBeInstanceOf(AbortSignal);
    expect(attemptSignal).not.toBe(appSignal.signal);
    appSignal.abort();
    await turn();
    expect(attemptSignal.aborted).toBe(true);
    // Closing the stream is the cancellation: no notifications/cancelled is posted.
    expect(s.peer.wire).toHaveLength(1);
    expect(s.app.received).toEqual([]);
  });

  it("translates the peer's cancel of one of our requests (subscription teardown) back to the application's id", async () => {
    const s = await setup();
    await s.transport.send({ jsonrpc: '2.0', id: 'listen:0', method: 'subscriptions/listen', params: { notifications: {} } });
    const wireId = s.peer.requests()[0]?.id;
    s.peer.deliver({ jsonrpc: '2.0', method: 'notifications/tools/list_changed', params: { _meta: { 'io.modelcontextprotocol/subscriptionId': wireId } } });
    s.peer.deliver({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: wireId } });
    await turn();
    expect(s.app.received).toEqual([
      { jsonrpc: '2.0', method: 'notifications/tools/list_changed', params: { _meta: { 'io.modelcontextprotocol/subscriptionId': 'listen:0' } } },
      { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 'listen:0' } },
    ]);
    expect(s.transport.stats().outbound).toBe(0);
  });

  it("aborts an inbound request's context when the peer cancels it, and drops the application's late answer", async () => {
    let seen: AbortSignal | undefined;
    const s = await setup([
      async (ctx, next) => {
        if (ctx.direction === 'inbound' && ctx.kind === 'request') seen = ctx.signal;
        await next();
      },
    ]);
    s.peer.deliver({ jsonrpc: '2.0', id: 'r1', method: 'sampling/createMessage', params: {} });
    await turn();
    s.peer.deliver({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 'r1', reason: 'nevermind' } });
    await turn();
    expect(seen?.aborted).toBe(true);
    await expect(s.transport.send({ jsonrpc: '2.0', id: 'r1', result: {} })).resolves.toBeUndefined();
    expect(s.peer.responses()).toEqual([]);
    // The application is told too, so the SDK aborts its handler.
    expect(s.app.received.at(-1)).toEqual({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 'r1', reason: 'nevermind' } });
  });
});

describe('connection lost (reconnecting transports)', () => {
  it('fails attempts in flight with a retryable ConnectionClosed so a retry layer re-sends', async () => {
    const s = await setup([retryOnce]);
    await s.transport.send({ jsonrpc: '2.0', id: 1, method: 'tools/list' });
    s.peer.onconnectionlost?.(new Error('socket hang up'));
    await turn();
    const [first, second] = s.peer.requests();
    expect(second?.id).not.toBe(first?.id);
    s.peer.deliver({ jsonrpc: '2.0', id: second?.id as number, result: { tools: [] } });
    await turn();
    expect(s.app.received).toEqual([{ jsonrpc: '2.0', id: 1, result: { tools: [] } }]);
    expect(s.app.closes).toBe(0);
  });
});

describe('send failures', () => {
  it('classifies a refused connection as never sent and an HTTP 503 by status', async () => {
    const errors: unknown[] = [];
    const capture: Middleware = async (_ctx, next) => {
      try {
        await next();
      } catch (error) {
        errors.push(error);
        throw error;
      }
    };
    const s = await setup([capture]);
    s.peer.failSends = 1;
    await s.transport.send({ jsonrpc: '2.0', id: 1, method: 'ping' });
    s.peer.send = async () => {
      throw Object.assign(new Error('Error POSTing to endpoint (HTTP 503)'), { code: 503 });
    };
    await s.transport.send({ jsonrpc: '2.0', id: 2, method: 'ping' });
    await turn();
    expect(errors[0]).toBeInstanceOf(TransportError);
    expect(errors[0]).toMatchObject({ neverSent: true, reason: 'not-sent', retryable: true });
    expect(errors[1]).toMatchObject({ neverSent: false, status: 503, reason: 'http-503', retryable: true });
    expect(s.app.responsesFor(2)[0]).toMatchObject({ error: { code: -32054, data: { reason: 'http-503', attempts: 1 } } });
  });
});

describe('what the core learns from traffic', () => {
  it('learns tool annotations from tools/list results and forgets them on list_changed', async () => {
    const s = await setup([], { nonIdempotentTools: ['vetoed'] });
    const idempotent: Array<[string | undefined, boolean]> = [];
    s.transport.events.on('attempt', (e) => idempotent.push([e.ctx.tool ?? e.ctx.method, e.ctx.idempotent]));
    await s.transport.send({ jsonrpc: '2.0', id: 1, method: 'tools/list' });
    s.peer.deliver({
      jsonrpc: '2.0',
      id: s.peer.requests()[0]?.id as number,
      result: {
        tools: [
          { name: 'search', annotations: { readOnlyHint: true } },
          { name: 'upsert', annotations: { idempotentHint: true } },
          { name: 'delete' },
          { name: 'vetoed', annotations: { readOnlyHint: true } },
        ],
      },
    });
    await turn();
    for (const [i, name] of ['search', 'upsert', 'delete', 'vetoed'].entries()) {
      await s.transport.send({ jsonrpc: '2.0', id: 10 + i, method: 'tools/call', params: { name } });
    }
    s.peer.deliver({ jsonrpc: '2.0', method: 'notifications/tools/list_changed' });
    await turn();
    await s.transport.send({ jsonrpc: '2.0', id: 20, method: 'tools/call', params: { name: 'search' } });
    expect(idempotent).toEqual([
      ['tools/list', true],
      ['search', true],
      ['upsert', true],
      ['delete', false],
      ['vetoed', false],
      ['search', false],
    ]);
  });

  it('records the negotiated protocol version and the role', async () => {
    const s = await setup();
    const versions: string[] = [];
    s.transport.events.on('protocol-version', (e) => versions.push(e.version));
    await s.transport.send({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {} } });
    s.peer.deliver({ jsonrpc: '2.0', id: s.peer.requests()[0]?.id as number, result: { protocolVersion: '2025-06-18', capabilities: {}, serverInfo: { name: 's', version: '1' } } });
    await turn();
    expect(s.transport.protocolVersion).toBe('2025-06-18');
    expect(s.transport.session.role).toBe('client');
    expect(versions).toEqual(['2025-06-18']);
  });
});

describe('pass-through of the Transport surface', () => {
  it('forwards sessionId, protocol versions, per-request-stream flag, send options and extra info', async () => {
    const peer = new ScriptedPeer();
    const calls: unknown[] = [];
    Object.assign(peer, {
      sessionId: 'sess-1',
      hasPerRequestStream: false,
      setProtocolVersion: (v: string) => calls.push(['setProtocolVersion', v]),
      setSupportedProtocolVersions: (v: string[]) => calls.push(['setSupportedProtocolVersions', v]),
      handleRequest: function (this: unknown, ...args: unknown[]) {
        calls.push(['handleRequest', this === peer, ...args]);
        return 'handled';
      },
      _private: 'not forwarded',
    });
    const transport = wrap(peer) as unknown as ReturnType<typeof wrap> & { handleRequest(...a: unknown[]): unknown; _private?: string };
    const app = new RecordingApp(transport);
    await transport.start();
    expect(transport.sessionId).toBe('sess-1');
    expect(transport.hasPerRequestStream).toBe(false);
    transport.setProtocolVersion('2025-03-26');
    transport.setSupportedProtocolVersions(['2025-03-26']);
    expect(transport.handleRequest('req', 'res')).toBe('handled');
    expect(transport._private).toBeUndefined();
    const onresumptiontoken = () => {};
    await transport.send({ jsonrpc: '2.0', id: 1, method: 'ping' }, { relatedRequestId: 'r', resumptionToken: 't', onresumptiontoken, headers: { 'mcp-param-x': '1' }, custom: 42 });
    expect(peer.sendOptions[0]).toEqual({ relatedRequestId: 'r', resumptionToken: 't', onresumptiontoken, headers: { 'mcp-param-x': '1' }, custom: 42 });
    const extra = { authInfo: { token: 'redacted' }, requestInfo: { headers: {} }, closeSSEStream: () => {} };
    peer.deliver({ jsonrpc: '2.0', method: 'notifications/message', params: {} }, extra);
    await turn();
    expect(calls).toEqual([
      ['setProtocolVersion', '2025-03-26'],
      ['setSupportedProtocolVersions', ['2025-03-26']],
      ['handleRequest', true, 'req', 'res'],
    ]);
    const delivered: unknown[] = [];
    transport.onmessage = (_m, e) => delivered.push(e);
    peer.deliver({ jsonrpc: '2.0', method: 'notifications/message', params: {} }, extra);
    await turn();
    expect(delivered[0]).toBe(extra);
    expect(app.received).toHaveLength(1);
  });
});
