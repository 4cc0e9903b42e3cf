/**
 * 10 000 requests through standard() with 5 % injected faults (errors, lost responses,
 * dropped connections) against a real SDK server, 200 in flight at a time, on real
 * timers. Every request must get exactly one response, no non-idempotent call may run
 * twice, and afterwards nothing may remain: no pending exchange, no listener, no timer
 * keeping the process alive, and the heap back near where it started.
 *
 * The application side is raw JSON-RPC rather than an SDK Client on purpose: a Client
 * would hide a duplicate response, and this test exists to count them.
 */
import v8 from 'node:v8';
import vm from 'node:vm';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { chaos } from '#middleware/chaos.ts';
import { standard } from '#middleware/standard.ts';
import type { JSONRPCMessage, JSONRPCResponse } from '#core/jsonrpc.ts';
import { wrap } from '#core/wrap.ts';
import { FaultyLink } from '../support/faulty-link.ts';

// global.gc without a command-line flag: V8 exposes it to contexts created after the flag is set.
v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

const TOTAL = 10_000;
const WINDOW = 200;

function heapAfterGc(): number {
  for (let i = 0; i < 3; i++) gc();
  return process.memoryUsage().heapUsed;
}

describe('chaos: 10 000 requests, 5 % faults', () => {
  it('answers every request exactly once, never runs a non-idempotent call twice, and leaves nothing behind', async () => {
    const executions = new Int32Array(TOTAL + 1);
    const server = new McpServer({ name: 'chaos-target', version: '1.0.0' });
    for (const [name, annotations] of [['charge', {}], ['lookup', { readOnlyHint: true }]] as const) {
      server.registerTool(name, { inputSchema: { n: z.number() }, annotations }, ({ n }) => {
        executions[n] = (executions[n] ?? 0) + 1;
        return { content: [{ type: 'text', text: String(n) }] };
      });
    }
    const link = new FaultyLink();
    link.record = false;
    await server.connect(link.server);

    const faults = chaos({ seed: 20_260_728, errorRate: 0.02, dropRate: 0.015, disconnectRate: 0.015 });
    const transport = wrap(link.client, [
      standard({ attemptTimeout: 250, totalTimeout: 5_000, retry: { maxAttempts: 4, backoff: { initialDelayMs: 5, maxDelayMs: 50 } } }),
      faults,
    ]);
    const responses = new Int32Array(TOTAL + 1);
    const waiting = new Map<number, () => void>();
    let injected = 0;
    transport.events.on('chaos', () => injected++);
    transport.onmessage = (message: JSONRPCMessage) => {
      const id = (message as JSONRPCResponse).id;
      if (typeof id !== 'number') return;
      responses[id] = (responses[id] ?? 0) + 1;
      waiting.get(id)?.();
      waiting.delete(id);
    };
    await transport.start();
    const request = (id: number, method: string, params: Record<string, unknown>) =>
      new Promise<void>((resolve) => {
        waiting.set(id, resolve);
        transport.send({ jsonrpc: '2.0', id, method, params }).catch(() => {});
      });

    // Handshake and tool annotations, without faults.
    faults.enabled = false;
    await request(0, 'initialize', { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'chaos', version: '1' } });
    await transport.send({ jsonrpc: '2.0', method: 'notifications/initialized' });
    responses[0] = 0;
    await request(0, 'tools/list', {});
    faults.enabled = true;
    const listenersBefore = transport.events.listenerCount;

    const run = async (from: number, to: number) => {
      let next = from;
      const worker = async () => {
        while (next < to) {
          const id = next++;
          await request(id, 'tools/call', { name: id % 2 === 0 ? 'lookup' : 'charge', arguments: { n: id } });
        }
      };
      await Promise.all(Array.from({ length: WINDOW }, worker));
    };

    await run(1, 1_001); // warm-up: code paths compiled, pools filled
    const baseline = heapAfterGc();
    await run(1_001, TOTAL + 1);
    const after = heapAfterGc();

    const counts = { lost: 0, duplicated: 0 };
    for (let id = 1; id <= TOTAL; id++) {
      if (responses[id] === 0) counts.lost++;
      if ((responses[id] as number) > 1) counts.duplicated++;
    }
    expect(counts).toEqual({ lost: 0, duplicated: 0 });
    // Roughly 5 % of the attempts had a fault injected.
    expect(injected).toBeGreaterThan(0.04 * TOTAL);
    expect(injected).toBeLessThan(0.07 * TOTAL);
    // Invariant 3: no charge ran twice (lookups may, they are read-only).
    let charged = 0;
    for (let n = 1; n <= TOTAL; n += 2) {
      expect(executions[n]).toBeLessThanOrEqual(1);
      charged += executions[n] as number;
    }
    expect(charged).toBeGreaterThan(0.9 * (TOTAL / 2));

    expect(transport.stats()).toEqual({ outbound: 0, attempts: 0, progressTokens: 0, inbound: 0, queued: 0 });
    expect(transport.events.listenerCount).toBe(listenersBefore);
    expect(waiting.size).toBe(0);
    // Nothing retained per exchange: 9 000 leaked exchanges would be tens of megabytes.
    expect(after - baseline).toBeLessThan(4 * 1024 * 1024);
    await transport.close();
  });
});
