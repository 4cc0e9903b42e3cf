/**
 * Invariant 6: with no failures the stack is transparent. The same script of traffic
 * runs once against the bare transport and once wrapped in random pass-through
 * layers; the application must see exactly the same messages in the same order, and
 * the peer the same messages up to the renaming of request ids.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { JSONRPCMessage, JSONRPCRequest } from '#core/jsonrpc.ts';
import type { Middleware } from '#core/layer.ts';
import type { Transport } from '#core/transport.ts';
import { when } from '#core/when.ts';
import { wrap } from '#core/wrap.ts';
import { RecordingApp, ScriptedPeer, turn } from '../support/scripted-peer.ts';

type Action =
  | { t: 'appRequest'; method: string; progress: boolean }
  | { t: 'appNotify' }
  | { t: 'appAnswer'; k: number; error: boolean }
  | { t: 'peerRespond'; k: number; error: boolean }
  | { t: 'peerProgress'; k: number }
  | { t: 'peerNotify' }
  | { t: 'peerRequest' }
  | { t: 'peerBatch' };

const action: fc.Arbitrary<Action> = fc.oneof(
  fc.record({ t: fc.constant('appRequest' as const), method: fc.constantFrom('tools/call', 'tools/list', 'ping', 'resources/read'), progress: fc.boolean() }),
  fc.record({ t: fc.constant('appNotify' as const) }),
  fc.record({ t: fc.constant('appAnswer' as const), k: fc.nat(), error: fc.boolean() }),
  fc.record({ t: fc.constant('peerRespond' as const), k: fc.nat(), error: fc.boolean() }),
  fc.record({ t: fc.constant('peerProgress' as const), k: fc.nat() }),
  fc.record({ t: fc.constant('peerNotify' as const) }),
  fc.record({ t: fc.constant('peerRequest' as const) }),
  fc.record({ t: fc.constant('peerBatch' as const) }),
);

type LayerKind = 'asyncPass' | 'syncPass' | 'observe' | 'forkPass' | 'whenPass';
const layerKind = fc.constantFrom<LayerKind>('asyncPass', 'syncPass', 'observe', 'forkPass', 'whenPass');
// Half the runs wrap with no layers at all: the core then takes its direct path (no
// promise per hop, src/core/wrap.ts), which must keep every invariant just the same.
const stackKinds = fc.oneof(fc.constant<LayerKind[]>([]), fc.array(layerKind, { minLength: 1, maxLength: 5 }));

function layerOf(kind: LayerKind): Middleware | ReturnType<typeof when> {
  switch (kind) {
    case 'asyncPass':
      return async (_ctx, next) => {
        await next();
      };
    case 'syncPass':
      return (_ctx, next) => next();
    case 'observe':
      return async (ctx, next) => {
        await next();
        if (ctx.kind === 'request' && ctx.response === undefined) throw new Error('no response after next()');
      };
    case 'forkPass':
      return async (ctx, next) => {
        const child = ctx.fork();
        await next(child);
        ctx.response = child.response;
      };
    case 'whenPass':
      return when({ method: 'tools/*' }, async (_ctx, next) => {
        await next();
      });
  }
}

const isReactive = (a: Action) => a.t === 'appAnswer' || a.t === 'peerRespond' || a.t === 'peerProgress';
const side = (a: Action) => (a.t.startsWith('app') ? 'app' : 'peer');

/** Runs the script; returns what the application and the peer saw. */
async function run(script: Action[], layers: LayerKind[] | undefined) {
  const peer = new ScriptedPeer();
  const transport: Transport = layers === undefined ? peer : wrap(peer, layers.map(layerOf));
  const app = new RecordingApp(transport);
  await transport.start();
  let nextAppId = 0;
  let nextPeerId = 0;
  const answeredByPeer = new Set<unknown>();
  const answeredByApp = new Set<unknown>();
  let previous: Action | undefined;
  for (const a of script) {
    // Reactions need what the other side sent to have arrived: let it arrive first.
    if (isReactive(a) && (previous === undefined || !isReactive(previous) || side(previous) !== side(a))) await turn();
    previous = a;
    switch (a.t) {
      case 'appRequest': {
        const id = nextAppId++;
        const params = a.progress ? { name: 'x', _meta: { progressToken: id } } : { name: 'x' };
        void transport.send({ jsonrpc: '2.0', id, method: a.method, params });
        break;
      }
      case 'appNotify':
        void transport.send({ jsonrpc: '2.0', method: 'notifications/roots/list_changed' });
        break;
      case 'appAnswer': {
        const open = app.inboundRequests().filter((r) => !answeredByApp.has(r.id));
        const req = open[a.k % Math.max(open.length, 1)];
        if (req === undefined) break;
        answeredByApp.add(req.id);
        void transport.send(a.error ? { jsonrpc: '2.0', id: req.id, error: { code: -1, message: 'no' } } : { jsonrpc: '2.0', id: req.id, result: { ok: true } });
        break;
      }
      case 'peerRespond': {
        const open = peer.requests().filter((r) => !answeredByPeer.has(r.id));
        const req = open[a.k % Math.max(open.length, 1)];
        if (req === undefined) break;
        answeredByPeer.add(req.id);
        peer.deliver(a.error ? { jsonrpc: '2.0', id: req.id, error: { code: -32002, message: 'nope' } } : { jsonrpc: '2.0', id: req.id, result: { n: open.length } });
        break;
      }
      case 'peerProgress': {
        const open = peer.requests().filter((r) => !answeredByPeer.has(r.id) && r.params?._meta?.['progressToken'] !== undefined);
        const req = open[a.k % Math.max(open.length, 1)];
        if (req === undefined) break;
        peer.deliver({ jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: req.params?._meta?.['progressToken'], progress: 1 } });
        break;
      }
      case 'peerNotify':
        peer.deliver({ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: 'hello' } });
        break;
      case 'peerRequest':
        peer.deliver({ jsonrpc: '2.0', id: `p${nextPeerId++}`, method: 'sampling/createMessage', params: {} });
        break;
      case 'peerBatch': {
        const batch = [
          { jsonrpc: '2.0', method: 'notifications/message', params: { level: 'debug', data: 'batched' } },
          { jsonrpc: '2.0', id: `p${nextPeerId++}`, method: 'roots/list' },
        ];
        // The stack splits arrays (the SDKs read single messages); the bare baseline gets the items one by one.
        if (layers === undefined) for (const item of batch) peer.deliver(item);
        else peer.deliver(batch);
        break;
      }
    }
  }
  await turn();
  await turn();
  const stats = 'stats' in transport ? (transport as ReturnType<typeof wrap>).stats() : undefined;
  await transport.close();
  return { app, peer, stats };
}

function isClosedError(m: JSONRPCMessage): boolean {
  return 'error' in m && m.error.code === -32000 && (m.error.data as { reason?: string } | undefined)?.reason === 'connection-closed';
}

/** Replaces the ids of the application's requests with their order on the wire. */
function renameRequestIds(wire: JSONRPCMessage[]): unknown[] {
  const order = new Map<unknown, number>();
  for (const m of wire) if ('method' in m && 'id' in m && m.id !== undefined) order.set(m.id, order.size);
  return wire.map((m) => ('method' in m && 'id' in m && m.id !== undefined ? { ...(m as JSONRPCRequest), id: `#${order.get(m.id)}` } : m));
}

describe('invariant 6: transparent when nothing fails', () => {
  it('the application and the peer see what they would see without the stack', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(action, { minLength: 1, maxLength: 40 }), stackKinds, async (script, layers) => {
        const bare = await run(script, undefined);
        const wrapped = await run(script, layers);
        // Closing with requests still open is the one difference, and it is deliberate
        // (invariant 1): each open request gets a ConnectionClosed error before onclose,
        // where the bare transport leaves it to the application to notice.
        const closedOut = wrapped.app.received.filter(isClosedError);
        const stillOpenInBare = closedOut.every((m) => 'id' in m && !bare.app.received.some((b) => !('method' in b) && b.id === m.id));
        expect(stillOpenInBare).toBe(true);
        expect(wrapped.app.received.filter((m) => !isClosedError(m))).toEqual(bare.app.received);
        expect(wrapped.app.errors).toEqual(bare.app.errors);
        expect(renameRequestIds(wrapped.peer.wire)).toEqual(renameRequestIds(bare.peer.wire));
        expect(wrapped.app.closes).toBe(1);
      }),
      { numRuns: Number(process.env.FC_RUNS ?? 300) },
    );
  });

  it('keeps a progress notification ahead of its response when a layer takes longer on the notification', async () => {
    const peer = new ScriptedPeer();
    const slowNotifications: Middleware = async (ctx, next) => {
      // Many microtasks, no timer: without ordering the response would overtake.
      if (ctx.direction === 'inbound' && ctx.kind === 'notification') for (let i = 0; i < 20; i++) await Promise.resolve();
      await next();
    };
    const transport = wrap(peer, [slowNotifications]);
    const app = new RecordingApp(transport);
    await transport.start();
    void transport.send({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'x', _meta: { progressToken: 1 } } });
    await turn();
    const wireId = peer.requests()[0]?.id as number;
    peer.deliver({ jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 1, progress: 1 } });
    peer.deliver({ jsonrpc: '2.0', id: wireId, result: { done: true } });
    await turn();
    expect(app.received.map((m) => ('method' in m ? m.method : `response ${String(m.id)}`))).toEqual(['notifications/progress', 'response 1']);
    expect(transport.stats()).toEqual({ outbound: 0, attempts: 0, progressTokens: 0, inbound: 0, queued: 0 });
  });

  it('does not let a response held by a slow layer stall later messages beyond one turn', async () => {
    const peer = new ScriptedPeer();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const holdResponses: Middleware = async (ctx, next) => {
      await next();
      if (ctx.direction === 'outbound' && ctx.kind === 'request') await gate;
    };
    const transport = wrap(peer, [holdResponses]);
    const app = new RecordingApp(transport);
    await transport.start();
    void transport.send({ jsonrpc: '2.0', id: 1, method: 'ping' });
    await turn();
    peer.deliver({ jsonrpc: '2.0', id: peer.requests()[0]?.id as number, result: {} });
    peer.deliver({ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: 'after' } });
    await turn();
    await turn();
    expect(app.received.map((m) => ('method' in m ? m.method : 'response'))).toEqual(['notifications/message']);
    release();
    await turn();
    expect(app.received.map((m) => ('method' in m ? m.method : 'response'))).toEqual(['notifications/message', 'response']);
  });
});
