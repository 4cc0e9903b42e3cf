/**
 * Drives one wrapped transport for the layers' state-machine tests: the application's
 * requests go in as raw JSON-RPC, the peer is the ScriptedPeer of scripted-peer.ts (a
 * real server cannot answer at an exact fake-timer instant, fail a write on cue, or
 * answer a wire id twice), and every event the layers publish is recorded.
 */
import type { LayerEvents } from '#core/events.ts';
import type { JSONRPCMessage, JSONRPCParams, JSONRPCRequest, JSONRPCResponse, RequestId } from '#core/jsonrpc.ts';
import type { LayerLike } from '#core/layer.ts';
import { wrap, type WrapOptions } from '#core/wrap.ts';
import { RecordingApp, ScriptedPeer } from './scripted-peer.ts';

// The fake-timer helpers every layer suite drives its stack with.
export { advance, realTurn, settle } from './time.ts';

export type Recorded = { [K in keyof LayerEvents]?: Array<LayerEvents[K]> };

export async function stack(layers: LayerLike[], options?: WrapOptions) {
  const peer = new ScriptedPeer();
  const transport = wrap(peer, layers, options);
  const app = new RecordingApp(transport);
  await transport.start();
  let nextId = 1;
  const events: Recorded = {};
  const names: Array<keyof LayerEvents> = [
    'attempt',
    'cancel-sent',
    'retry',
    'retry-budget-exhausted',
    'give-up',
    'timeout',
    'breaker-state',
    'breaker-rejected',
    'shed',
    'queued',
    'hedge',
    'hedge-outcome',
    'chaos',
  ];
  for (const name of names) {
    const list: unknown[] = [];
    (events as Record<string, unknown[]>)[name] = list;
    transport.events.on(name, (event) => list.push(event));
  }
  const requests = (method?: string): JSONRPCRequest[] => peer.requests().filter((r) => method === undefined || r.method === method);
  return {
    peer,
    transport,
    app,
    events,
    /** The application sends a request; returns its (application) id. */
    request(method: string, params?: JSONRPCParams): RequestId {
      const id = nextId++;
      transport.send({ jsonrpc: '2.0', id, method, params }).catch(() => {});
      return id;
    },
    /** The application cancels its request. */
    cancel(id: RequestId): void {
      transport.send({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: id, reason: 'test' } }).catch(() => {});
    },
    /** Requests that reached the wire (attempts), optionally of one method. */
    requests,
    /** The newest attempt on the wire. */
    last(): JSONRPCRequest {
      const all = requests();
      const request = all[all.length - 1];
      if (request === undefined) throw new Error('nothing on the wire');
      return request;
    },
    /** The peer answers a wire request. */
    answer(request: JSONRPCRequest, result: Record<string, unknown> = { ok: true }): void {
      peer.deliver({ jsonrpc: '2.0', id: request.id, result });
    },
    fail(request: JSONRPCRequest, error: { code: number; message: string; data?: unknown }): void {
      peer.deliver({ jsonrpc: '2.0', id: request.id, error });
    },
    /** Wire ids the stack cancelled with notifications/cancelled. */
    cancelled(): RequestId[] {
      return peer.wire
        .filter((m): m is JSONRPCMessage & { params: { requestId: RequestId } } => 'method' in m && m.method === 'notifications/cancelled')
        .map((m) => m.params.requestId);
    },
    /** Responses the application received for `id`. */
    responses(id: RequestId): JSONRPCResponse[] {
      return app.responsesFor(id);
    },
  };
}

export type Stack = Awaited<ReturnType<typeof stack>>;
