/**
 * Invariant 3 under random failure schedules: whatever resilience layers are stacked
 * in whatever order and with whatever options, and whatever the network does to each
 * message (lose it, refuse it, reset after delivering it, delay it), a tool call that
 * is not idempotent reaches the server's handler at most once, every call settles, and
 * the wrapped transport ends with nothing pending.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { circuitBreaker } from '#middleware/circuit-breaker.ts';
import { hedging } from '#middleware/hedging/hedging.ts';
import { retry } from '#middleware/retry/retry.ts';
import { timeout } from '#middleware/timeout.ts';
import type { Layer } from '#core/layer.ts';
import { wrap } from '#core/wrap.ts';
import { type Fault, FaultyLink } from '../support/faulty-link.ts';
import { advance, settle } from '../support/time.ts';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

type LayerSpec =
  | { kind: 'retry'; maxAttempts: number; idempotent: 'default' | 'never' }
  | { kind: 'timeout'; ms: number }
  | { kind: 'total'; ms: number }
  | { kind: 'hedging'; delayMs: number }
  | { kind: 'breaker'; threshold: number };

const layerSpec: fc.Arbitrary<LayerSpec> = fc.oneof(
  fc.record({ kind: fc.constant('retry' as const), maxAttempts: fc.integer({ min: 1, max: 5 }), idempotent: fc.constantFrom('default' as const, 'never' as const) }),
  fc.record({ kind: fc.constant('timeout' as const), ms: fc.integer({ min: 50, max: 2_000 }) }),
  fc.record({ kind: fc.constant('total' as const), ms: fc.integer({ min: 500, max: 5_000 }) }),
  fc.record({ kind: fc.constant('hedging' as const), delayMs: fc.integer({ min: 10, max: 500 }) }),
  fc.record({ kind: fc.constant('breaker' as const), threshold: fc.integer({ min: 1, max: 4 }) }),
);

function build(spec: LayerSpec): Layer {
  switch (spec.kind) {
    case 'retry':
      return retry({ maxAttempts: spec.maxAttempts, budget: false, backoff: { initialDelayMs: 20, maxDelayMs: 200 }, idempotent: spec.idempotent === 'never' ? false : undefined });
    case 'timeout':
      return timeout({ attemptMs: spec.ms });
    case 'total':
      return timeout({ totalMs: spec.ms });
    case 'hedging':
      return hedging({ delayMs: spec.delayMs, budget: false });
    case 'breaker':
      return circuitBreaker({ consecutiveFailures: spec.threshold, halfOpenAfterMs: 1_000 });
  }
}

const fault: fc.Arbitrary<Fault> = fc.oneof(
  { weight: 5, arbitrary: fc.constant('deliver' as const) },
  { weight: 1, arbitrary: fc.constant('drop' as const) },
  { weight: 1, arbitrary: fc.constant('refuse' as const) },
  { weight: 1, arbitrary: fc.constant('reset' as const) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 3_000 }).map((delayMs) => ({ delayMs })) },
);

const call = fc.record({ tool: fc.constantFrom('charge', 'transfer', 'lookup', 'upsert'), concurrent: fc.boolean() });

describe('invariant 3 (property)', () => {
  it('never runs a non-idempotent tool call twice, whatever the layers and the faults', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(layerSpec, { minLength: 1, maxLength: 5 }),
        fc.array(fault, { minLength: 1, maxLength: 40 }),
        fc.array(call, { minLength: 1, maxLength: 8 }),
        async (specs, schedule, calls) => {
          const executions = new Map<number, number>();
          const server = new McpServer({ name: 'property', version: '1.0.0' });
          const tools = { charge: {}, transfer: { destructiveHint: true }, lookup: { readOnlyHint: true }, upsert: { idempotentHint: true } };
          for (const [name, annotations] of Object.entries(tools)) {
            server.registerTool(name, { inputSchema: { n: z.number() }, annotations }, ({ n }) => {
              executions.set(n, (executions.get(n) ?? 0) + 1);
              return { content: [{ type: 'text', text: `${name} ${n}` }] };
            });
          }
          const link = new FaultyLink();
          await server.connect(link.server);
          const transport = wrap(link.client, specs.map(build));
          const client = new Client({ name: 'property', version: '1.0.0' });
          await client.connect(transport);
          await client.listTools();

          // From here on every message meets the next fault of the schedule (then the network heals).
          let next = 0;
          link.rule = () => schedule[next++];
          let settled = 0;
          const pending: Array<Promise<unknown>> = [];
          for (const [n, { tool, concurrent }] of calls.entries()) {
            const done = client.callTool({ name: tool, arguments: { n } }, undefined, { timeout: 10_000 }).then(
              () => settled++,
              () => settled++,
            );
            pending.push(done);
            if (!concurrent) {
              for (let waited = 0; waited < 30_000 && settled <= n; waited += 500) await advance(500);
            }
          }
          for (let waited = 0; waited < 60_000 && settled < calls.length; waited += 500) await advance(500);
          await settle();

          expect(settled).toBe(calls.length);
          const ranTwice = calls.filter(({ tool }, n) => (tool === 'charge' || tool === 'transfer') && (executions.get(n) ?? 0) > 1);
          expect(ranTwice).toEqual([]);
          expect(transport.stats()).toMatchObject({ outbound: 0, attempts: 0, inbound: 0 });
          await client.close();
        },
      ),
      { numRuns: 150 },
    );
  });
});
