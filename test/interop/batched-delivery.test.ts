/**
 * A transport that hands over several messages in one synchronous run (a broker client
 * draining its buffer, a WebSocket batch): progress notifications and the response right
 * behind them. The SDKs handle a notification one microtask after receiving it and a
 * response at once, so a response delivered in the same run would overtake its progress
 * inside the SDK ("Received a progress notification for an unknown token"). The stack
 * keeps them in order for the application with no layers (the core's direct path,
 * docs/architecture.md "With no layers") and with layers.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { JSONRPCMessage } from '#core/jsonrpc.ts';
import type { MessageExtraInfo, Transport, TransportSendOptions } from '#core/transport.ts';
import type { Middleware } from '#core/layer.ts';
import { wrap } from '#core/wrap.ts';

/** The client's end of a link whose server→client messages arrive in batches, one synchronous run per batch. */
class BatchingEnd implements Transport {
  onmessage?: (message: JSONRPCMessage, extra?: MessageExtraInfo) => void;
  onerror?: (error: Error) => void;
  onclose?: () => void;
  readonly #inner: Transport;
  #batch: JSONRPCMessage[] = [];
  batches: number[] = [];

  constructor(inner: Transport) {
    this.#inner = inner;
    inner.onmessage = (message) => {
      if (this.#batch.length === 0) setImmediate(() => this.#flush());
      this.#batch.push(message);
    };
    inner.onclose = () => this.onclose?.();
  }

  #flush(): void {
    const batch = this.#batch;
    this.#batch = [];
    this.batches.push(batch.length);
    for (const message of batch) this.onmessage?.(message);
  }

  start(): Promise<void> {
    return this.#inner.start();
  }

  send(message: JSONRPCMessage, options?: TransportSendOptions): Promise<void> {
    return this.#inner.send(message, options);
  }

  close(): Promise<void> {
    return this.#inner.close();
  }
}

const passThrough: Middleware = async (_ctx, next) => {
  await next();
};

async function callWithProgress(wrapClient: (t: Transport) => Transport) {
  const server = new McpServer({ name: 'progress', version: '1.0.0' });
  server.registerTool('steps', { inputSchema: { count: z.number() } }, async ({ count }, extra) => {
    const token = extra._meta?.progressToken;
    // Not awaited one by one: every progress and the result leave in the same turn.
    if (token !== undefined) for (let i = 1; i <= count; i++) void extra.sendNotification({ method: 'notifications/progress', params: { progressToken: token, progress: i, total: count } });
    return { content: [{ type: 'text', text: `${count} steps` }] };
  });
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  await server.connect(serverSide);
  const end = new BatchingEnd(clientSide);
  const client = new Client({ name: 'batched', version: '1.0.0' });
  const errors: string[] = [];
  client.onerror = (error) => errors.push(error.message);
  await client.connect(wrapClient(end));
  const progress: number[] = [];
  const result = await client.callTool({ name: 'steps', arguments: { count: 3 } }, undefined, { onprogress: (p) => progress.push(p.progress) });
  await client.close();
  return { result, progress, errors, batches: end.batches };
}

describe('progress and its response in one synchronous run', () => {
  it.each([
    ['wrap(t, [])', (t: Transport) => wrap(t, [])],
    ['wrap(t, [a pass-through layer])', (t: Transport) => wrap(t, [passThrough])],
  ])('%s: the SDK sees every progress notification before the response', async (_name, wrapClient) => {
    const r = await callWithProgress(wrapClient);
    // The scenario really batched them: three progress notifications and the result in one run.
    expect(r.batches).toContain(4);
    expect(r.result).toEqual({ content: [{ type: 'text', text: '3 steps' }] });
    expect(r.progress).toEqual([1, 2, 3]);
    expect(r.errors).toEqual([]);
  });
});
