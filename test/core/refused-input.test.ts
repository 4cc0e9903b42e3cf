/**
 * Whatever the core refuses from the peer, nobody is left waiting: a refused response to
 * one of our pending requests ends that request at once with one error saying what was
 * refused and why; a refused request is answered -32600 with the same reason. Legitimate
 * depth (the 62-level payloads real servers send) passes through, with the real SDK.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { retry } from '#middleware/retry/retry.ts';
import { ErrorCode, InvalidMessageError, InvalidOptionError } from '#core/errors.ts';
import type { JSONRPCErrorResponse } from '#core/jsonrpc.ts';
import type { LayerLike } from '#core/layer.ts';
import { DEFAULT_MAX_DEPTH } from '#core/validate.ts';
import { wrap, type WrapOptions } from '#core/wrap.ts';
import { RecordingApp, ScriptedPeer, turn } from '../support/scripted-peer.ts';

/** An object exactly `levels` levels deep: `{ a: { a: … { leaf: 1 } } }`. */
function nest(levels: number): Record<string, unknown> {
  let value: Record<string, unknown> = { leaf: 1 };
  for (let i = 1; i < levels; i++) value = { a: value };
  return value;
}

/** How many levels deep a JSON value is (a scalar is 0). */
function depthOf(value: unknown): number {
  let deepest = 0;
  const stack: Array<[unknown, number]> = [[value, 1]];
  while (stack.length > 0) {
    const [item, level] = stack.pop() as [unknown, number];
    if (typeof item !== 'object' || item === null) continue;
    deepest = Math.max(deepest, level);
    for (const child of Object.values(item)) stack.push([child, level + 1]);
  }
  return deepest;
}

async function setup(layers: LayerLike[] = [], options: WrapOptions = {}) {
  const peer = new ScriptedPeer();
  const transport = wrap(peer, layers, { name: 'upstream', ...options });
  const app = new RecordingApp(transport);
  await transport.start();
  return { peer, transport, app };
}

/** The application sends tools/call `id`; returns the wire id it went out under. */
async function call({ peer, transport }: Awaited<ReturnType<typeof setup>>, id: number): Promise<number> {
  await transport.send({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'deep', arguments: {} } });
  return peer.requests().at(-1)?.id as number;
}

describe('a refused response ends its request at once, with one error', () => {
  it('80 levels deep (limit 64): the error names the limit and the path', async () => {
    const s = await setup([], { maxDepth: 64 });
    const wireId = await call(s, 7);
    s.peer.deliver({ jsonrpc: '2.0', id: wireId, result: { content: [], structuredContent: nest(78) } });
    await turn();

    const responses = s.app.responsesFor(7) as JSONRPCErrorResponse[];
    expect(responses).toHaveLength(1);
    const { error } = responses[0] as JSONRPCErrorResponse;
    expect(error.code).toBe(ErrorCode.InvalidRequest);
    expect(error.message).toMatch(/^The peer's response to tools\/call was refused: too deep \(80 levels, limit 64\) at \$\.result\.structuredContent\.a\.a/);
    expect(error.data).toMatchObject({ layer: 'core', reason: 'invalid-response', attempts: 1 });
    // Still reported, as every refused message is.
    expect(s.app.errors).toEqual([expect.any(InvalidMessageError)]);
    expect(s.transport.stats()).toMatchObject({ outbound: 0, attempts: 0, queued: 0 });

    // A valid answer for the same id afterwards is late: the request already had its one response.
    s.peer.deliver({ jsonrpc: '2.0', id: wireId, result: {} });
    await turn();
    expect(s.app.responsesFor(7)).toHaveLength(1);
  });

  it('one level over the default limit', async () => {
    const s = await setup();
    const wireId = await call(s, 1);
    s.peer.deliver({ jsonrpc: '2.0', id: wireId, result: nest(DEFAULT_MAX_DEPTH) });
    await turn();
    const [response] = s.app.responsesFor(1) as JSONRPCErrorResponse[];
    expect(response?.error.message).toContain(`too deep (${DEFAULT_MAX_DEPTH + 1} levels, limit ${DEFAULT_MAX_DEPTH}) at $.result.a.a`);
  });

  it('exactly at the limit passes, one level more is refused', async () => {
    const s = await setup([], { maxDepth: 64 });
    const first = await call(s, 1);
    const atLimit = { jsonrpc: '2.0' as const, id: first, result: nest(63) };
    expect(depthOf(atLimit)).toBe(64);
    s.peer.deliver(atLimit);
    const second = await call(s, 2);
    s.peer.deliver({ jsonrpc: '2.0', id: second, result: nest(64) });
    await turn();
    expect(s.app.responsesFor(1)).toEqual([{ jsonrpc: '2.0', id: 1, result: nest(63) }]);
    const [refused] = s.app.responsesFor(2) as JSONRPCErrorResponse[];
    expect(refused?.error.message).toMatch(/too deep \(65 levels, limit 64\) at \$\.result(\.a)+…$/);
  });

  it('a __proto__ key: the error says so and where', async () => {
    const s = await setup();
    const wireId = await call(s, 3);
    s.peer.deliver(JSON.parse(`{"jsonrpc":"2.0","id":${wireId},"result":{"structuredContent":{"user":{"__proto__":{"admin":true}}}}}`));
    await turn();
    const responses = s.app.responsesFor(3) as JSONRPCErrorResponse[];
    expect(responses).toHaveLength(1);
    expect(responses[0]?.error).toMatchObject({
      code: ErrorCode.InvalidRequest,
      message: 'The peer\'s response to tools/call was refused: forbidden "__proto__" key at $.result.structuredContent.user',
      data: { reason: 'invalid-response' },
    });
    expect(({} as Record<string, unknown>)['admin']).toBeUndefined();
  });

  it('a response that is not JSON-RPC: the same', async () => {
    const s = await setup();
    const wireId = await call(s, 4);
    s.peer.deliver({ jsonrpc: '2.0', id: wireId, result: 'done' });
    await turn();
    const responses = s.app.responsesFor(4) as JSONRPCErrorResponse[];
    expect(responses.map((r) => r.error.message)).toEqual(['The peer\'s response to tools/call was refused: "result" must be an object, got "done"']);
  });

  it('names the server when we are its client', async () => {
    const s = await setup([], { maxDepth: 64 });
    await s.transport.send({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'c', version: '1' } } });
    const wireId = await call(s, 1);
    s.peer.deliver({ jsonrpc: '2.0', id: wireId, result: nest(70) });
    await turn();
    const [response] = s.app.responsesFor(1) as JSONRPCErrorResponse[];
    expect(response?.error.message).toMatch(/^The server's response to tools\/call was refused: too deep \(71 levels, limit 64\) at \$\.result\.a/);
  });

  it('retry does not send a non-idempotent request again because of it', async () => {
    const s = await setup([retry({ maxAttempts: 3, budget: false })]);
    const wireId = await call(s, 5);
    s.peer.deliver({ jsonrpc: '2.0', id: wireId, result: nest(1100) });
    await turn();
    expect(s.app.responsesFor(5)).toHaveLength(1);
    expect(s.peer.requests()).toHaveLength(1);
  });

  it('nor an idempotent one: the peer would answer the same again', async () => {
    const s = await setup([retry({ maxAttempts: 3, budget: false })]);
    await s.transport.send({ jsonrpc: '2.0', id: 6, method: 'resources/read', params: { uri: 'file:///x' } });
    const wireId = s.peer.requests().at(-1)?.id as number;
    s.peer.deliver(JSON.parse(`{"jsonrpc":"2.0","id":${wireId},"result":{"__proto__":{}}}`));
    await turn();
    expect(s.app.responsesFor(6)).toEqual([
      expect.objectContaining({ error: expect.objectContaining({ message: expect.stringMatching(/^The peer's response to resources\/read was refused: forbidden "__proto__" key at \$\.result$/) }) }),
    ]);
    expect(s.peer.requests()).toHaveLength(1);
  });
});

describe('a refused request is answered with the reason', () => {
  it('too deep: -32600 names the limit and the path', async () => {
    const s = await setup([], { maxDepth: 10 });
    s.peer.deliver({ jsonrpc: '2.0', id: 'r1', method: 'tools/call', params: { name: 't', arguments: nest(20) } });
    await turn();
    expect(s.app.received).toEqual([]);
    expect(s.peer.responses()).toEqual([
      { jsonrpc: '2.0', id: 'r1', error: { code: -32600, message: 'Invalid Request: too deep (22 levels, limit 10) at $.params.arguments.a.a.a.a.a.a.a.a' } },
    ]);
  });
});

describe('wrap options.maxDepth', () => {
  it.each([
    [1, 'wrap options.maxDepth: expected an integer >= 2, got 1'],
    ['64', 'wrap options.maxDepth: expected an integer >= 2, got "64"'],
    [2.5, 'wrap options.maxDepth: expected an integer >= 2, got 2.5'],
  ])('rejects %j', (maxDepth, message) => {
    expect(() => wrap(new ScriptedPeer(), [], { maxDepth: maxDepth as number })).toThrow(new InvalidOptionError('wrap options.maxDepth', 'an integer >= 2', maxDepth));
    expect(() => wrap(new ScriptedPeer(), [], { maxDepth: maxDepth as number })).toThrow(message);
  });
});

describe('legitimate depth passes through wrap() on both sides (SDK v1 Client ↔ McpServer)', () => {
  async function pair() {
    const [a, b] = InMemoryTransport.createLinkedPair();
    const server = new McpServer({ name: 'deep-server', version: '1.0.0' });
    server.registerTool('nested', { description: 'Returns structured content `levels` deep', inputSchema: { levels: z.number() } }, async ({ levels }) => ({
      content: [{ type: 'text', text: 'nested' }],
      structuredContent: { value: nest(levels) },
    }));
    server.registerTool('measure', { description: 'Says how deep its argument is', inputSchema: { value: z.any() } }, async ({ value }) => ({
      content: [{ type: 'text', text: String(depthOf(value)) }],
    }));
    const serverTransport = wrap(b, [], { name: 'server' });
    const clientTransport = wrap(a, [], { name: 'client' });
    const errors: Error[] = [];
    serverTransport.onerror = (error) => errors.push(error);
    await server.connect(serverTransport);
    const client = new Client({ name: 'deep-client', version: '1.0.0' });
    client.onerror = (error) => errors.push(error);
    await client.connect(clientTransport);
    return { client, server, errors, clientTransport, serverTransport };
  }

  it('a 62-level structuredContent result', async () => {
    const p = await pair();
    const result = await p.client.callTool({ name: 'nested', arguments: { levels: 62 } });
    expect(result.structuredContent).toEqual({ value: nest(62) });
    expect(p.errors).toEqual([]);
    await p.client.close();
  });

  it('62-level arguments', async () => {
    const p = await pair();
    const result = await p.client.callTool({ name: 'measure', arguments: { value: nest(62) } });
    expect(result.content).toEqual([{ type: 'text', text: '62' }]);
    expect(p.errors).toEqual([]);
    await p.client.close();
  });
});
