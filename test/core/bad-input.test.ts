/**
 * Item 6: a message that is not valid JSON-RPC 2.0 goes to onerror as a clear error
 * saying what is wrong; it is never thrown into the inner transport's callback; the
 * wrapped transport stays usable.
 */
import { describe, expect, it } from 'vitest';
import { InvalidMessageError, StrayResponseError } from '#core/errors.ts';
import { wrap } from '#core/wrap.ts';
import { RecordingApp, ScriptedPeer, turn } from '../support/scripted-peer.ts';

async function setup() {
  const peer = new ScriptedPeer();
  const transport = wrap(peer, [async (_ctx, next) => next()], { name: 'upstream' });
  const app = new RecordingApp(transport);
  await transport.start();
  return { peer, transport, app };
}

/** The transport still carries a request to the peer and its response back. */
async function stillWorks({ peer, transport, app }: Awaited<ReturnType<typeof setup>>, id: number) {
  await transport.send({ jsonrpc: '2.0', id, method: 'ping' });
  const wire = peer.requests().at(-1);
  peer.deliver({ jsonrpc: '2.0', id: wire?.id as number, result: {} });
  await turn();
  expect(app.responsesFor(id)).toEqual([{ jsonrpc: '2.0', id, result: {} }]);
}

describe('bad inbound input', () => {
  const cases: Array<[string, unknown, RegExp]> = [
    ['a string', 'hello', /received an invalid JSON-RPC message: expected a JSON-RPC 2.0 message object, got a string/],
    ['a number', 42, /got a number/],
    ['null', null, /got null/],
    ['wrong jsonrpc', { jsonrpc: '1.0', method: 'ping' }, /"jsonrpc" must be "2.0", got "1.0"/],
    ['missing method and id', { jsonrpc: '2.0' }, /missing "method" and "id"/],
    ['an empty batch', [], /an empty JSON-RPC batch/],
    ['a __proto__ key', JSON.parse('{"jsonrpc":"2.0","method":"notifications/message","params":{"data":{"__proto__":{"admin":true}}}}'), /forbidden "__proto__" key at \$\.params\.data/],
    ['a non-object result', { jsonrpc: '2.0', id: 1, result: 'yes' }, /"result" must be an object/],
    ['an object id', { jsonrpc: '2.0', id: { a: 1 }, method: 'ping' }, /"id" must be a string or a finite number/],
  ];

  it.each(cases)('%s goes to onerror, names the problem, and the transport keeps working', async (_name, message, problem) => {
    const s = await setup();
    expect(() => s.peer.deliver(message)).not.toThrow();
    await turn();
    expect(s.app.errors).toHaveLength(1);
    const [error] = s.app.errors;
    expect(error).toBeInstanceOf(InvalidMessageError);
    expect(error?.message).toMatch(problem);
    expect(error?.message).toMatch(/^upstream: /);
    expect(s.app.received).toEqual([]);
    await stillWorks(s, 100);
  });

  it('answers a readable but invalid request with -32600 so the peer is not left waiting', async () => {
    const s = await setup();
    s.peer.deliver({ jsonrpc: '1.0', id: 'q1', method: 'tools/call' });
    await turn();
    expect(s.peer.responses()).toEqual([
      { jsonrpc: '2.0', id: 'q1', error: { code: -32600, message: 'Invalid Request: "jsonrpc" must be "2.0", got "1.0"' } },
    ]);
  });

  it('splits a batch and reports only its bad items', async () => {
    const s = await setup();
    s.peer.deliver([{ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: 'ok' } }, 'junk']);
    await turn();
    expect(s.app.received).toEqual([{ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: 'ok' } }]);
    expect(s.app.errors.map((e) => e.message)).toEqual([expect.stringMatching(/got a string/)]);
  });

  it('drops a response for an id that was never sent and says so', async () => {
    const s = await setup();
    s.peer.deliver({ jsonrpc: '2.0', id: 'nobody', result: {} });
    await turn();
    expect(s.app.received).toEqual([]);
    expect(s.app.errors[0]).toBeInstanceOf(StrayResponseError);
    expect(s.app.errors[0]?.message).toBe('Dropped a response for id "nobody": no request with that id is pending');
    await stillWorks(s, 1);
  });

  it('drops a late or duplicate response quietly (an event, not an error)', async () => {
    const s = await setup();
    const strays: unknown[] = [];
    s.transport.events.on('stray-response', (e) => strays.push(e));
    await stillWorks(s, 1);
    const wireId = s.peer.requests()[0]?.id as number;
    s.peer.deliver({ jsonrpc: '2.0', id: wireId, result: { again: true } });
    await turn();
    expect(s.app.responsesFor(1)).toHaveLength(1);
    expect(s.app.errors).toEqual([]);
    expect(strays).toEqual([{ wireId, reason: 'late' }]);
  });

  it('reports an error response without an id (the peer could not read something)', async () => {
    const s = await setup();
    s.peer.deliver({ jsonrpc: '2.0', id: null, error: { code: -32700, message: 'Parse error' } });
    await turn();
    expect(s.app.errors[0]?.message).toMatch(/error response without an id .*-32700 Parse error/);
  });

  it('drops a peer request that reuses an id still pending', async () => {
    const s = await setup();
    s.peer.deliver({ jsonrpc: '2.0', id: 7, method: 'ping' });
    s.peer.deliver({ jsonrpc: '2.0', id: 7, method: 'ping' });
    await turn();
    expect(s.app.inboundRequests()).toHaveLength(1);
    expect(s.app.errors[0]?.message).toMatch(/reused request id 7 while that request was still pending/);
  });

  it('survives an onmessage handler that throws, and reports it', async () => {
    const s = await setup();
    s.transport.onmessage = () => {
      throw new Error('application bug');
    };
    expect(() => s.peer.deliver({ jsonrpc: '2.0', method: 'notifications/message', params: {} })).not.toThrow();
    await turn();
    expect(s.app.errors.map((e) => e.message)).toEqual(['application bug']);
  });

  it('survives an event listener that throws, and reports it', async () => {
    const s = await setup();
    s.transport.events.on('attempt', () => {
      throw new Error('listener bug');
    });
    await stillWorks(s, 3);
    expect(s.app.errors.map((e) => e.message)).toEqual(['An event listener for "attempt" threw: listener bug']);
  });
});

describe('bad outbound input (application bugs)', () => {
  it('rejects an invalid message from the application with the reason', async () => {
    const s = await setup();
    await expect(s.transport.send({ jsonrpc: '2.0' } as never)).rejects.toThrow(/the application tried to send an invalid message: missing "method" and "id"/);
    expect(s.peer.wire).toEqual([]);
  });

  it('rejects a request id that is already in flight', async () => {
    const s = await setup();
    await s.transport.send({ jsonrpc: '2.0', id: 1, method: 'ping' });
    await expect(s.transport.send({ jsonrpc: '2.0', id: 1, method: 'ping' })).rejects.toThrow(/request id 1 is already in flight/);
    expect(s.peer.requests()).toHaveLength(1);
  });

  it('rejects a response for a request that is not pending', async () => {
    const s = await setup();
    await expect(s.transport.send({ jsonrpc: '2.0', id: 'x', result: {} })).rejects.toThrow(/response for request id "x", which is not pending/);
  });
});

describe('invalid construction', () => {
  it('names what is wrong', () => {
    expect(() => wrap({} as never)).toThrow(/transport must be an MCP Transport with start\(\), send\(\) and close\(\)/);
    expect(() => wrap(new ScriptedPeer(), 'retry' as never)).toThrow(/layers must be an array/);
    expect(() => wrap(new ScriptedPeer(), [{ name: 'x' } as never])).toThrow(/layers\[0\] must be a layer/);
    expect(() => wrap(new ScriptedPeer(), [], { idempotentTools: [7 as never] })).toThrow(/idempotentTools\[0\]: expected a non-empty name pattern, got 7/);
    expect(() => wrap(new ScriptedPeer(), [], { name: '' })).toThrow(/options\.name: expected a non-empty string/);
  });
});
