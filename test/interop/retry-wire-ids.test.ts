/**
 * A layer that calls `next()` again makes a new attempt, and each attempt goes on the
 * wire with a fresh wire id; the application still sees its own id, on exactly one
 * response (docs/architecture.md#ids, #invariant-1 and #invariant-4).
 *
 * Real SDK Client and McpServer on both ends. Between the wrapped client transport and
 * the server sits a FaultyLink that records what the stack writes and loses the first
 * response to `tools/call add`, as a dropped connection would. The tool
 * really runs twice (the ledger says so); the application never learns.
 */
import { describe, expect, it } from 'vitest';
import { ConnectionClosedError, TimeoutError } from '#core/errors.ts';
import type { JSONRPCMessage, JSONRPCRequest } from '#core/jsonrpc.ts';
import type { Layer } from '#core/layer.ts';
import { wrap } from '#core/wrap.ts';
import { createV1Client, createV2Client, type TestClient } from '../support/clients.ts';
import { retryingLayer } from '../support/layers.ts';
import { FaultyLink, nextResponses, toolCall } from '../support/faulty-link.ts';
import { startServer, ZERO_STATS } from '../support/run.ts';
import { tap } from '../support/tap.ts';

const sdks = [
  { name: 'SDK v1', client: createV1Client, server: 'v1' },
  { name: 'SDK v2', client: () => createV2Client(), server: 'v2' },
] as const;

const isAddCall = (m: JSONRPCMessage): m is JSONRPCRequest => 'method' in m && m.method === 'tools/call' && m.params?.['name'] === 'add';

async function connect(sdk: (typeof sdks)[number], makeLink: () => FaultyLink, layers: (link: FaultyLink) => Layer[]) {
  const link = makeLink();
  const transport = wrap(link.client, layers(link));
  const app = tap(transport);
  const { ledger, close } = await startServer(sdk.server, link.server);
  const client: TestClient = sdk.client();
  await client.connect(transport);
  return { link, transport, app, ledger, client, close: async () => (await client.close(), await close()) };
}

describe.each(sdks)('$name: a retrying layer', (sdk) => {
  it('puts each attempt on the wire with a fresh id; the application sees its own id exactly once', async () => {
    const retried: unknown[] = [];
    const { link, transport, app, ledger, client, close } = await connect(
      sdk,
      () => new FaultyLink(nextResponses(1, 'lose', toolCall('add'))),
      () => [retryingLayer({ match: (ctx) => ctx.tool === 'add', onRetry: (error) => void retried.push(error) })],
    );

    const result = await client.callTool('add', { a: 2, b: 3 });

    expect(result).toMatchObject({ content: [{ type: 'text', text: '5' }] });
    expect(link.dropped).toHaveLength(1);
    expect(retried).toEqual([expect.any(ConnectionClosedError)]);
    expect(retried[0]).toMatchObject({ retryable: true, reason: 'connection-lost' });
    expect(ledger.runs('add')).toBe(2); // the server really ran it twice

    // On the wire: two attempts, two different ids, the second never used before in the session.
    const attempts = link.wire.filter(isAddCall);
    expect(attempts).toHaveLength(2);
    const [first, second] = attempts as [JSONRPCRequest, JSONRPCRequest];
    expect(second.id).not.toBe(first.id);
    expect(link.wire.slice(0, link.wire.indexOf(second)).some((m) => 'id' in m && m.id === second.id)).toBe(false);
    expect({ ...second, id: first.id }).toEqual(first); // the same request otherwise
    expect(link.dropped[0]?.id).toBe(first.id);

    // The application: one request under its own id, one response under that id.
    const [asked] = app.sent.filter(isAddCall);
    const answers = app.received.filter((m) => !('method' in m) && m.id === asked?.id);
    expect(answers).toHaveLength(1);
    expect(answers[0]).toMatchObject({ id: asked?.id, result: { content: [{ text: '5' }] } });

    expect(transport.stats()).toEqual(ZERO_STATS);
    await close();
  });

  it('abandons an attempt on a fork: the peer is told to cancel that wire id, the retry gets a fresh one', async () => {
    // The first attempt runs under its own deadline signal, which fires when the link loses the response.
    const abandoned: unknown[] = [];
    const abandonOnLoss = (link: FaultyLink): Layer => ({
      name: 'abandon-on-loss',
      async handle(ctx, next) {
        if (ctx.tool !== 'add') return next();
        const deadline = new AbortController();
        link.lost.addEventListener('abort', () => deadline.abort(new TimeoutError('attempt deadline (the link lost the response)')), { once: true });
        const attempt = ctx.fork({ signal: deadline.signal });
        try {
          await next(attempt);
          ctx.response = attempt.response;
        } catch (error) {
          abandoned.push(error);
          await next();
        }
      },
    });
    const { link, transport, app, ledger, client, close } = await connect(
      sdk,
      () => new FaultyLink(nextResponses(1, 'drop', toolCall('add'))),
      (l) => [abandonOnLoss(l)],
    );

    const result = await client.callTool('add', { a: 20, b: 22 });

    expect(result).toMatchObject({ content: [{ type: 'text', text: '42' }] });
    expect(abandoned).toEqual([expect.any(TimeoutError)]);
    const [first, second] = link.wire.filter(isAddCall) as [JSONRPCRequest, JSONRPCRequest];
    expect(second.id).not.toBe(first.id);
    // Invariant 4: the abandoned wire id is cancelled on the wire, before the retry is sent.
    const cancelAt = link.wire.findIndex((m) => 'method' in m && m.method === 'notifications/cancelled' && m.params?.['requestId'] === first.id);
    expect(cancelAt).toBeGreaterThan(link.wire.indexOf(first));
    expect(cancelAt).toBeLessThan(link.wire.indexOf(second));
    expect(ledger.runs('add')).toBe(2);

    const [asked] = app.sent.filter(isAddCall);
    expect(app.received.filter((m) => !('method' in m) && m.id === asked?.id)).toHaveLength(1);
    // The SDK never saw the cancel the stack sent for its own attempt.
    expect(app.sent.filter((m) => 'method' in m && m.method === 'notifications/cancelled')).toEqual([]);
    expect(transport.stats()).toEqual(ZERO_STATS);
    await close();
  });
});
