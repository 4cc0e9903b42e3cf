/**
 * Invariants 1, 2 and 5 under random interleavings of everything that can go wrong:
 * late, duplicate and stray responses, responses the core refuses (too deep, a
 * `__proto__` key), garbage, transport errors, failing writes,
 * closes, layers that fail before or after next(), a layer that answers by itself,
 * a retry layer that re-invokes next(), attempts abandoned mid-flight, and
 * cancellations from both sides.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type Context } from '#core/context.ts';
import { LayerFaultError, TimeoutError, McpLayersError } from '#core/errors.ts';
import type { JSONRPCRequest, RequestId } from '#core/jsonrpc.ts';
import type { Middleware } from '#core/layer.ts';
import { wrap } from '#core/wrap.ts';
import { RecordingApp, ScriptedPeer, turn } from '../support/scripted-peer.ts';

type Action =
  | { t: 'appRequest'; method: string }
  | { t: 'appNotify' }
  | { t: 'appCancel'; k: number }
  | { t: 'appAnswer'; k: number; twice: boolean }
  | { t: 'peerRespond'; k: number; error: boolean }
  | { t: 'peerStray' }
  | { t: 'peerRefused'; k: number; proto: boolean }
  | { t: 'peerGarbage'; n: number }
  | { t: 'peerNotify' }
  | { t: 'peerRequest'; method: string }
  | { t: 'peerCancel'; k: number }
  | { t: 'peerError' }
  | { t: 'sendFail'; n: number }
  | { t: 'abandonAttempts' }
  | { t: 'close' }
  | { t: 'turn' };

const action: fc.Arbitrary<Action> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ t: fc.constant('appRequest' as const), method: fc.constantFrom('tools/call', 'ping', 'resources/read', 'tools/list') }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('appNotify' as const) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('appCancel' as const), k: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('appAnswer' as const), k: fc.nat(), twice: fc.boolean() }) },
  { weight: 4, arbitrary: fc.record({ t: fc.constant('peerRespond' as const), k: fc.nat(), error: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('peerStray' as const) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('peerRefused' as const), k: fc.nat(), proto: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('peerGarbage' as const), n: fc.nat(6) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('peerNotify' as const) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('peerRequest' as const), method: fc.constantFrom('sampling/createMessage', 'roots/list', 'ping') }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('peerCancel' as const), k: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('peerError' as const) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('sendFail' as const), n: fc.integer({ min: 1, max: 3 }) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('abandonAttempts' as const) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('close' as const) }) },
  { weight: 3, arbitrary: fc.record({ t: fc.constant('turn' as const) }) },
);

const garbage: unknown[] = [
  'not json-rpc',
  null,
  [],
  { jsonrpc: '1.0', id: 77, method: 'ping' },
  { jsonrpc: '2.0' },
  JSON.parse('{"jsonrpc":"2.0","id":78,"method":"tools/call","params":{"__proto__":{"x":1}}}'),
  { jsonrpc: '2.0', id: 5, result: {}, error: { code: 1, message: 'both' } },
];

/** A result nested deeper than the default limit of 1000 levels. */
const tooDeep = (() => {
  let value: Record<string, unknown> = {};
  for (let i = 0; i < 1_100; i++) value = { a: value };
  return value;
})();

type LayerKind = 'pass' | 'retry' | 'abandonable' | 'failBefore' | 'failAfter' | 'answerer';
const layerKind = fc.constantFrom<LayerKind>('pass', 'retry', 'abandonable', 'failBefore', 'failAfter', 'answerer');
// Half the runs wrap with no layers at all: the core then takes its direct path (no
// promise per hop, src/core/wrap.ts), which must keep every invariant just the same.
const stackKinds = fc.oneof(fc.constant<LayerKind[]>([]), fc.array(layerKind, { minLength: 1, maxLength: 5 }));

/** Builds the layers; `abandon()` aborts every attempt running under an `abandonable` layer. */
function makeLayers(kinds: LayerKind[]) {
  const live = new Set<AbortController>();
  const idNumber = (ctx: Context) => (typeof ctx.id === 'number' ? ctx.id : String(ctx.id).length);
  const layerOf = (kind: LayerKind): Middleware => {
    switch (kind) {
      case 'pass':
        return async (_ctx, next) => {
          await next();
        };
      case 'retry':
        return async (ctx, next) => {
          if (ctx.direction !== 'outbound' || ctx.kind !== 'request') return next();
          for (let attempt = 1; ; attempt++) {
            try {
              await next();
              return;
            } catch (error) {
              if (attempt >= 3 || ctx.signal.aborted || !(error instanceof McpLayersError) || !error.retryable) throw error;
            }
          }
        };
      case 'abandonable':
        return async (ctx, next) => {
          if (ctx.direction !== 'outbound' || ctx.kind !== 'request') return next();
          const controller = new AbortController();
          live.add(controller);
          const child = ctx.fork({ signal: controller.signal });
          try {
            await next(child);
            ctx.response = child.response;
          } finally {
            live.delete(controller);
          }
        };
      case 'failBefore':
        return async (ctx, next) => {
          if (ctx.kind === 'request' && idNumber(ctx) % 5 === 3) throw new LayerFaultError('failing before next() on purpose');
          await next();
        };
      case 'failAfter':
        return async (ctx, next) => {
          await next();
          if (ctx.kind === 'request' && idNumber(ctx) % 7 === 4) throw new Error('failing after next() on purpose');
        };
      case 'answerer':
        return async (ctx, next) => {
          if (ctx.kind === 'request' && (ctx.method === 'ping' || ctx.method === 'roots/list')) {
            ctx.response = { jsonrpc: '2.0', id: ctx.id as RequestId, result: { answeredBy: 'layer' } };
            return;
          }
          await next();
        };
    }
  };
  return {
    layers: kinds.map(layerOf),
    abandon: () => {
      for (const controller of live) controller.abort(new TimeoutError('attempt abandoned by the test', { reason: 'attempt-timeout', layer: 'test' }));
    },
  };
}

async function run(script: Action[], kinds: LayerKind[]) {
  const peer = new ScriptedPeer();
  const { layers, abandon } = makeLayers(kinds);
  const transport = wrap(peer, layers);
  const app = new RecordingApp(transport);
  await transport.start();
  const accepted = new Set<RequestId>();
  const cancelledByApp = new Set<RequestId>();
  const peerRequests: RequestId[] = [];
  const cancelledByPeer = new Set<RequestId>();
  const answeredByPeer = new Set<RequestId>();
  const answeredByApp = new Set<RequestId>();
  let nextId = 0;
  let nextPeerId = 0;
  const appAnswer = (req: JSONRPCRequest) => {
    answeredByApp.add(req.id);
    transport.send({ jsonrpc: '2.0', id: req.id, result: { ok: true } }).catch(() => {});
  };

  for (const a of script) {
    switch (a.t) {
      case 'appRequest': {
        const id = nextId++;
        // A send() that rejects (closed transport) never started an exchange.
        accepted.add(id);
        transport.send({ jsonrpc: '2.0', id, method: a.method, params: { name: 'tool' } }).catch(() => accepted.delete(id));
        break;
      }
      case 'appNotify':
        transport.send({ jsonrpc: '2.0', method: 'notifications/roots/list_changed' }).catch(() => {});
        break;
      case 'appCancel': {
        const open = [...accepted].filter((id) => app.responsesFor(id).length === 0 && !cancelledByApp.has(id));
        const id = open[a.k % Math.max(open.length, 1)];
        if (id === undefined) break;
        cancelledByApp.add(id);
        transport.send({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: id, reason: 'test' } }).catch(() => {});
        break;
      }
      case 'appAnswer': {
        const open = app.inboundRequests().filter((r) => !answeredByApp.has(r.id));
        const req = open[a.k % Math.max(open.length, 1)];
        if (req === undefined) break;
        appAnswer(req);
        if (a.twice) transport.send({ jsonrpc: '2.0', id: req.id, result: { again: true } }).catch(() => {});
        break;
      }
      case 'peerRespond': {
        // Any request ever received, answered or not: late and duplicate responses included.
        const all = peer.requests();
        const req = all[a.k % Math.max(all.length, 1)];
        if (req === undefined) break;
        answeredByPeer.add(req.id);
        peer.deliver(a.error ? { jsonrpc: '2.0', id: req.id, error: { code: -32002, message: 'nope' } } : { jsonrpc: '2.0', id: req.id, result: {} });
        break;
      }
      case 'peerRefused': {
        // An answer whose body the core refuses: it must still end the request it answers.
        const all = peer.requests();
        const req = all[a.k % Math.max(all.length, 1)];
        if (req === undefined) break;
        answeredByPeer.add(req.id);
        peer.deliver(a.proto ? JSON.parse(`{"jsonrpc":"2.0","id":${JSON.stringify(req.id)},"result":{"__proto__":{"x":1}}}`) : { jsonrpc: '2.0', id: req.id, result: tooDeep });
        break;
      }
      case 'peerStray':
        peer.deliver({ jsonrpc: '2.0', id: 'never-sent', result: {} });
        break;
      case 'peerGarbage':
        peer.deliver(garbage[a.n % garbage.length]);
        break;
      case 'peerNotify':
        peer.deliver({ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: 1 } });
        break;
      case 'peerRequest': {
        const id = `p${nextPeerId++}`;
        if (!peer.closed) peerRequests.push(id);
        peer.deliver({ jsonrpc: '2.0', id, method: a.method, params: {} });
        break;
      }
      case 'peerCancel': {
        const id = peerRequests[a.k % Math.max(peerRequests.length, 1)];
        if (id === undefined) break;
        cancelledByPeer.add(id);
        peer.deliver({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: id } });
        break;
      }
      case 'peerError':
        peer.onerror?.(new Error('transport hiccup'));
        break;
      case 'sendFail':
        peer.failSends += a.n;
        break;
      case 'abandonAttempts':
        abandon();
        break;
      case 'close':
        await peer.close();
        break;
      case 'turn':
        await turn();
        break;
    }
  }

  // Let everything in flight finish; then both sides answer whatever is still open.
  for (let round = 0; round < 8 && !peer.closed; round++) {
    await turn();
    peer.failSends = 0;
    for (const req of peer.requests()) {
      if (!answeredByPeer.has(req.id)) {
        answeredByPeer.add(req.id);
        peer.deliver({ jsonrpc: '2.0', id: req.id, result: { late: true } });
      }
    }
    for (const req of app.inboundRequests()) if (!answeredByApp.has(req.id)) appAnswer(req);
  }
  await turn();
  const beforeClose = { closed: peer.closed, stats: transport.stats() };
  await transport.close();
  await turn();
  return { peer, app, transport, accepted, cancelledByApp, peerRequests, cancelledByPeer, beforeClose };
}

describe('invariants under faults', () => {
  it('1: every application request ends with exactly one response (none or one if it cancelled it)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(action, { maxLength: 50 }), stackKinds, async (script, kinds) => {
        const r = await run(script, kinds);
        for (const id of r.accepted) {
          const n = r.app.responsesFor(id).length;
          if (r.cancelledByApp.has(id)) expect(n).toBeLessThanOrEqual(1);
          else expect(n, `responses delivered for request ${id}`).toBe(1);
        }
        // Nothing the application did not ask for.
        const strays = r.app.received.filter((m) => !('method' in m) && !r.accepted.has(m.id as RequestId));
        expect(strays).toEqual([]);
      }),
      { numRuns: Number(process.env.FC_RUNS ?? 250) },
    );
  });

  it('2: every inbound request gets exactly one response on the wire (at most one if cancelled or closed)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(action, { maxLength: 50 }), stackKinds, async (script, kinds) => {
        const r = await run(script, kinds);
        // A response whose write the transport failed still counts: the stack sent one.
        const wireResponses = [...r.peer.responses(), ...r.peer.failedWrites.filter((m) => !('method' in m))];
        for (const id of r.peerRequests) {
          const n = wireResponses.filter((m) => 'id' in m && m.id === id).length;
          if (r.cancelledByPeer.has(id) || r.beforeClose.closed) expect(n).toBeLessThanOrEqual(1);
          else expect(n, `responses on the wire for ${id}`).toBe(1);
        }
        // Responses only for requests the peer made (and the readable invalid ones, answered -32600).
        const known = new Set<unknown>([...r.peerRequests, 77, 78]);
        expect(wireResponses.filter((m) => !known.has('id' in m ? m.id : undefined))).toEqual([]);
      }),
      { numRuns: Number(process.env.FC_RUNS ?? 250) },
    );
  });

  it('5: nothing dangles: bookkeeping empties, onclose runs once, no listener is left', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(action, { maxLength: 50 }), stackKinds, async (script, kinds) => {
        const r = await run(script, kinds);
        expect(r.transport.stats()).toEqual({ outbound: 0, attempts: 0, progressTokens: 0, inbound: 0, queued: 0 });
        expect(r.app.closes).toBe(1);
        expect(r.transport.events.listenerCount).toBe(0);
        if (!r.beforeClose.closed) {
          // Both sides answered everything and the stack let it all through before the close.
          expect(r.beforeClose.stats.outbound).toBe(0);
          expect(r.beforeClose.stats.attempts).toBe(0);
        }
      }),
      { numRuns: Number(process.env.FC_RUNS ?? 250) },
    );
  });

  it('never throws into the inner transport, whatever the peer sends', async () => {
    const peer = new ScriptedPeer();
    const transport = wrap(peer, [async (_c, next) => next()]);
    const app = new RecordingApp(transport);
    await transport.start();
    fc.assert(
      fc.property(fc.anything(), (value) => {
        expect(() => peer.deliver(value)).not.toThrow();
      }),
    );
    await turn();
    expect(app.errors.length).toBeGreaterThan(0);
    await transport.send({ jsonrpc: '2.0', id: 1, method: 'ping' });
    peer.deliver({ jsonrpc: '2.0', id: peer.requests().at(-1)?.id as number, result: {} });
    await turn();
    expect(app.responsesFor(1)).toHaveLength(1);
  });
});
