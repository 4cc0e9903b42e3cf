/**
 * A real server process killed mid-traffic and started again on the same port, under an
 * unchanged SDK Client on a WebSocketClientTransport wrapped with `retry`:
 *
 *   - the Client keeps working (the transport reconnects and replays the handshake);
 *   - an idempotent request in flight is re-sent by retry and succeeds on the new server;
 *   - a non-idempotent request in flight fails with a clear error and is never executed twice;
 *   - a request sent while disconnected is held, and executed exactly once after reconnecting;
 *   - a request sent in the moment the crash is noticed (the socket ended, the reconnect not
 *     yet scheduled) is held too: without any retry layer it succeeds on the new server,
 *     and a non-idempotent one sent then runs exactly once.
 *
 * The server appends every execution to a file (`<pid> <tool> <arg>`): the counts come
 * from there, not from the client.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { LayerEvents } from '#core/events.ts';
import { wrap } from '#core/index.ts';
import { WebSocketClientTransport } from '#transports/ws/index.ts';
import { LineChild } from '../support/child.ts';
import { transportClient } from '../support/apps.ts';
import { type Sdk, type TestClient, textOf } from '../support/clients.ts';
import { retry } from '#middleware/index.ts';

const SCRIPT = new URL('../support/ws-child.ts', import.meta.url).pathname;

describe.each(['v1', 'v2'] as Sdk[])('SDK %s Client across a server restart', (version) => {
  const children: LineChild[] = [];
  let client: TestClient | undefined;
  let dir: string | undefined;

  afterEach(async () => {
    await client?.close();
    await Promise.all(children.splice(0).map((c) => c.kill()));
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  function executions(): string[] {
    return readFileSync(join(dir as string, 'count'), 'utf8').trim().split('\n').filter(Boolean);
  }

  async function startServer(port: number, hang: boolean): Promise<{ child: LineChild; port: number; pid: number }> {
    const child = new LineChild(SCRIPT, [String(port), join(dir as string, 'count'), hang ? '1' : '0']);
    children.push(child);
    const ready = await child.waitFor('READY ');
    return { child, port: Number(ready.split(' ')[1]), pid: child.process.pid as number };
  }

  it('keeps working: idempotent in-flight requests succeed, non-idempotent ones fail once, queued ones run once', async () => {
    dir = mkdtempSync(join(tmpdir(), 'mcp-layers-restart-'));
    const first = await startServer(0, true);

    const transport = new WebSocketClientTransport(`ws://127.0.0.1:${first.port}/mcp`, {
      reconnect: { initialDelayMs: 20, maxDelayMs: 200, maxRetries: 200 },
      heartbeat: { intervalMs: 1000, timeoutMs: 1000 },
    });
    const reconnects: Array<LayerEvents['reconnect']> = [];
    transport.events.on('reconnect', (e) => reconnects.push(e));
    const retried: string[] = [];
    const gaveUp: string[] = [];
    transport.events.on('retry', (e) => retried.push(`${e.ctx.method} ${e.reason}`));
    transport.events.on('give-up', (e) => gaveUp.push(`${e.ctx.method} ${e.reason}`));
    const sentByApp: string[] = [];
    client = transportClient(version);
    const errors: Error[] = [];
    (client.raw as { onerror?: (e: Error) => void }).onerror = (e) => errors.push(e);
    const countSends = async (ctx: { direction: string; method: string }, next: () => Promise<void>) => {
      if (ctx.direction === 'outbound') sentByApp.push(ctx.method);
      await next();
    };
    await client.connect(wrap(transport, [countSends, retry({ maxAttempts: 3, backoff: { initialDelayMs: 10, maxDelayMs: 50 } })], { events: transport.events }));
    await client.listTools(); // teaches the stack which tools are idempotent (readOnlyHint)

    // Two requests in flight on the first server, both executing when it dies.
    const read = client.callTool({ name: 'slow_read', arguments: { key: 'a' } });
    const write = client.callTool({ name: 'slow_write', arguments: { key: 'b' } });
    write.catch(() => {}); // asserted below
    await first.child.waitFor('EXEC slow_read');
    await first.child.waitFor('EXEC slow_write');

    const dropped = new Promise<void>((resolve) => transport.events.on('connection', (e) => e.state === 'closed' && resolve()));
    await first.child.kill('SIGKILL');
    await dropped;
    expect(transport.state).toBe('reconnecting');

    // Sent while no server exists: held until the new connection is ready.
    const queued = client.callTool({ name: 'write', arguments: { key: 'c' } });

    const second = await startServer(first.port, false);

    await expect(write).rejects.toThrow(/connection was lost while the request was in flight/i);
    expect(textOf(await read)).toBe(`value of a from ${second.pid}`);
    expect(textOf(await queued)).toBe(`wrote c in ${second.pid}`);
    expect(retried).toEqual(['tools/call connection-lost']);
    expect(gaveUp).toEqual(['tools/call not-idempotent']);

    // The session goes on as if nothing happened.
    expect((await client.listTools()).tools.map((t) => t.name).toSorted()).toEqual(['slow_read', 'slow_write', 'write']);
    expect(textOf(await client.callTool({ name: 'write', arguments: { key: 'd' } }))).toBe(`wrote d in ${second.pid}`);

    // Exactly once each, and where: the retried read and the held write may run in either order.
    const runs = executions();
    expect(runs.slice(0, 2)).toEqual([`${first.pid} slow_read a`, `${first.pid} slow_write b`]);
    expect(runs.slice(2, 4).toSorted()).toEqual([`${second.pid} slow_read a`, `${second.pid} write c`]);
    expect(runs.slice(4)).toEqual([`${second.pid} write d`]);
    expect(reconnects.some((e) => e.outcome === 'connected')).toBe(true);
    // The new server was initialized by the replay, and the application never saw it happen.
    await second.child.waitFor(`INITIALIZED test-client-${version}`);
    expect(sentByApp.filter((m) => m === 'initialize')).toHaveLength(1);
    expect(errors.map((e) => e.message)).toEqual([]);
    expect(transport.state).toBe('open');
  });

  it('holds a request sent as the crash is noticed, before the reconnect is scheduled: it runs once on the new server, no retry needed', async () => {
    dir = mkdtempSync(join(tmpdir(), 'mcp-layers-restart-'));
    const first = await startServer(0, false);
    // The client's TCP socket, to act in the exact moment ws has seen the peer go (FIN or reset).
    const sockets: net.Socket[] = [];
    const createConnection = ((options: net.NetConnectOpts) => {
      const socket = net.connect({ ...options, path: undefined } as net.NetConnectOpts);
      sockets.push(socket);
      return socket;
    }) as typeof net.createConnection;
    const transport = new WebSocketClientTransport(`ws://127.0.0.1:${first.port}/mcp`, {
      reconnect: { initialDelayMs: 20, maxDelayMs: 200, maxRetries: Infinity, queueTimeoutMs: 300_000 },
      heartbeat: false,
      wsOptions: { createConnection },
    });
    client = transportClient(version);
    const errors: Error[] = [];
    (client.raw as { onerror?: (e: Error) => void }).onerror = (e) => errors.push(e);
    // No retry layer: whatever succeeds here, succeeds without anyone trying again.
    await client.connect(wrap(transport, [], { events: transport.events }));
    await client.listTools();

    const socket = sockets.at(-1) as net.Socket;
    const inTheWindow = new Promise<{ state: string; read: Promise<unknown>; write: Promise<unknown> }>((resolve) => {
      // Registered after ws's own listeners: they have run, so ws knows the connection is
      // gone, but its close event (which schedules the reconnect) comes a turn later.
      const go = () => {
        socket.off('end', go);
        socket.off('error', go);
        resolve({
          state: transport.state,
          read: (client as TestClient).callTool({ name: 'slow_read', arguments: { key: 'e' } }),
          write: (client as TestClient).callTool({ name: 'write', arguments: { key: 'f' } }),
        });
      };
      socket.on('end', go);
      socket.on('error', go);
    });
    await first.child.kill('SIGKILL');
    const { state, read, write } = await inTheWindow;
    expect(state).toBe('open');
    read.catch(() => {});
    write.catch(() => {});

    const second = await startServer(first.port, false);
    expect(textOf(await read)).toBe(`value of e from ${second.pid}`);
    expect(textOf(await write)).toBe(`wrote f in ${second.pid}`);
    expect(executions().toSorted()).toEqual([`${second.pid} slow_read e`, `${second.pid} write f`]);
    expect(errors.map((e) => e.message)).toEqual([]);
    expect(transport.state).toBe('open');
  });
});
