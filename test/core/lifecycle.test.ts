/** Start, close, onclose exactly once, and every pending exchange settling on close. */
import { describe, expect, it } from 'vitest';
import { ConnectionClosedError } from '#core/errors.ts';
import type { Middleware } from '#core/layer.ts';
import { wrap } from '#core/wrap.ts';
import { RecordingApp, ScriptedPeer, turn } from '../support/scripted-peer.ts';

describe('start', () => {
  it('installs callbacks on start (so queued messages wait for the application) and refuses a second start', async () => {
    const peer = new ScriptedPeer();
    const transport = wrap(peer);
    expect(peer.onmessage).toBeUndefined();
    const _app = new RecordingApp(transport);
    await transport.start();
    expect(peer.started).toBe(true);
    expect(peer.onmessage).toBeTypeOf('function');
    await expect(transport.start()).rejects.toThrow('mcp: the wrapped transport is already started');
  });
});

describe('close', () => {
  it('calls onclose exactly once whoever closes, and close() is idempotent', async () => {
    const peer = new ScriptedPeer();
    const transport = wrap(peer);
    const app = new RecordingApp(transport);
    await transport.start();
    await Promise.all([transport.close(), transport.close()]);
    await peer.close();
    await transport.close();
    expect(app.closes).toBe(1);
  });

  it('calls onclose when the inner transport closes by itself', async () => {
    const peer = new ScriptedPeer();
    const transport = wrap(peer);
    const app = new RecordingApp(transport);
    await transport.start();
    await peer.close();
    expect(app.closes).toBe(1);
    expect(transport.session.closed).toBe(true);
  });

  it('still ends the session once when the inner close() never calls onclose', async () => {
    const peer = new ScriptedPeer();
    peer.close = async () => {
      peer.closed = true;
    };
    const transport = wrap(peer);
    const app = new RecordingApp(transport);
    await transport.start();
    await transport.close();
    expect(app.closes).toBe(1);
  });

  it('settles every pending exchange before onclose: outbound with ConnectionClosed, inbound quietly', async () => {
    const peer = new ScriptedPeer();
    // A layer that would wait forever if the core did not abort the exchange on close.
    const stubborn: Middleware = async (ctx, next) => {
      await next();
      await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve));
    };
    const transport = wrap(peer, [stubborn]);
    const order: string[] = [];
    transport.onmessage = (m) => order.push('id' in m ? `response ${String(m.id)}` : 'message');
    transport.onclose = () => order.push('close');
    await transport.start();
    await transport.send({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'slow' } });
    await transport.send({ jsonrpc: '2.0', id: 2, method: 'ping' });
    peer.deliver({ jsonrpc: '2.0', id: 'in-1', method: 'sampling/createMessage', params: {} });
    await turn();
    const delivered: unknown[] = [];
    transport.onmessage = (m) => {
      delivered.push(m);
      order.push('id' in m ? `response ${String(m.id)}` : 'message');
    };
    await transport.close();
    expect(order.slice(-3)).toEqual(['response 1', 'response 2', 'close']);
    expect(delivered[0]).toMatchObject({ id: 1, error: { code: -32000, message: 'Connection closed', data: { reason: 'connection-closed', layer: 'core' } } });
    expect(transport.stats()).toEqual({ outbound: 0, attempts: 0, progressTokens: 0, inbound: 0, queued: 0 });
    // The application's late answer to the inbound request is refused like any send after close.
    await expect(transport.send({ jsonrpc: '2.0', id: 'in-1', result: {} })).rejects.toBeInstanceOf(ConnectionClosedError);
  });

  it('refuses to send after close, naming the message', async () => {
    const peer = new ScriptedPeer();
    const transport = wrap(peer, [], { name: 'upstream' });
    const _app = new RecordingApp(transport);
    await transport.start();
    await transport.close();
    await expect(transport.send({ jsonrpc: '2.0', id: 1, method: 'tools/list' })).rejects.toThrow('upstream: cannot send tools/list: the transport is closed');
  });

  it('detaches layers on close', async () => {
    let detached = 0;
    const peer = new ScriptedPeer();
    const transport = wrap(peer, [{ name: 'x', handle: (_c, n) => n(), attach: () => () => void detached++ }]);
    await transport.start();
    await transport.close();
    await transport.close();
    expect(detached).toBe(1);
  });

  it('works with `await using`', async () => {
    const peer = new ScriptedPeer();
    {
      await using transport = wrap(peer);
      await transport.start();
    }
    expect(peer.closed).toBe(true);
  });
});

describe('no timer keeps the process alive', () => {
  it('leaves no active handles after traffic and close', async () => {
    const before = process.getActiveResourcesInfo().filter((r) => r === 'Timeout' || r === 'Immediate').length;
    const peer = new ScriptedPeer();
    const transport = wrap(peer, [async (_c, n) => n()]);
    const _app = new RecordingApp(transport);
    await transport.start();
    for (let i = 0; i < 20; i++) void transport.send({ jsonrpc: '2.0', id: i, method: 'ping' });
    await turn();
    for (const r of peer.requests().slice(0, 10)) peer.deliver({ jsonrpc: '2.0', id: r.id, result: {} });
    await transport.close();
    await turn();
    const after = process.getActiveResourcesInfo().filter((r) => r === 'Timeout' || r === 'Immediate').length;
    expect(after).toBeLessThanOrEqual(before);
  });
});

describe('close event', () => {
  it('reaches the layers before they detach', async () => {
    const peer = new ScriptedPeer();
    const order: string[] = [];
    const transport = wrap(peer, [
      {
        name: 'watcher',
        handle: (_c, next) => next(),
        attach: (host) => {
          const off = host.events.on('close', (e) => order.push(`close ${e.name} pending=${e.pending}`));
          return () => {
            off();
            order.push('detach');
          };
        },
      },
    ]);
    await transport.start();
    await transport.close();
    expect(order).toEqual(['close mcp pending=0', 'detach']);
  });
});
