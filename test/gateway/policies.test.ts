/**
 * Policies as data, end to end: what a config's stacks say is what the gateway's clients
 * get — per-tool deadlines (`when` / `unless`), retries of faults that provably never
 * left, a breaker that opens, load shed on the server side.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { CreateMessageRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { afterEach, describe, expect, it } from 'vitest';
import type { LayerEntry } from '#gateway/config/layers.ts';
import { WebSocketClientTransport } from '#transports/ws/index.ts';
import { closeAll, DEMO_SERVER, startTestGateway, type TestGateway } from '../support/gateway.ts';

let gw: TestGateway | undefined;
const clients: Client[] = [];
afterEach(() => closeAll(clients, gw).then(() => (gw = undefined)));

async function withStacks(upstream: LayerEntry[], downstream: LayerEntry[] = []): Promise<TestGateway> {
  gw = await startTestGateway({ upstream: { command: process.execPath, args: [DEMO_SERVER], layers: upstream }, downstream: { layers: downstream } });
  return gw;
}

async function connect(url: string, configure?: (client: Client) => void): Promise<Client> {
  const client = new Client({ name: 'policies-test', version: '1.0.0' }, { capabilities: { sampling: {} } });
  configure?.(client);
  clients.push(client);
  await client.connect(url.startsWith('ws') ? new WebSocketClientTransport(url, { reconnect: false }) : new StreamableHTTPClientTransport(new URL(url)));
  return client;
}

const text = (value: string) => ({ content: [{ type: 'text', text: value }] });

describe('when / unless: slow_* tools get 2 s, everything else 150 ms', () => {
  it('a slow tool outlives the short deadline; any other call is cut at it and cancelled upstream', async () => {
    const gateway = await withStacks([
      { when: { method: 'tools/call', tool: 'slow_*' }, layers: [{ timeout: { attemptMs: 2_000 } }] },
      { unless: { method: 'tools/call', tool: 'slow_*' }, layers: [{ timeout: { attemptMs: 150 } }] },
    ]);
    // The client's model "answers" only once the gateway has given up on the call that asked.
    const timedOut = new Promise<void>((resolve) => gateway.gateway.upstreamEvents.on('timeout', () => resolve()));
    const cancelled = new Promise<string>((resolve) => gateway.gateway.upstreamEvents.on('cancel-sent', (e) => resolve(e.ctx.target ?? '')));
    const client = await connect(gateway.ws, (c) =>
      c.setRequestHandler(CreateMessageRequestSchema, async () => {
        await timedOut;
        return { role: 'assistant', model: 'm', content: { type: 'text', text: 'too late' } };
      }),
    );
    expect(await client.callTool({ name: 'slow_report', arguments: { steps: 1, stepMs: 400 } })).toEqual(text('report ready after 1 steps'));
    await expect(client.callTool({ name: 'summarize', arguments: { text: 'x' } })).rejects.toThrow('MCP error -32001: tools/call summarize timed out after 150 ms');
    expect(await cancelled).toBe('summarize');
  });
});

describe('retry of faults that never left (chaos errors), below a retry layer', () => {
  it('every call succeeds, even a non-idempotent one, and the retries are counted', async () => {
    const gateway = await withStacks([{ metrics: {} }, { retry: { maxAttempts: 8, backoff: { initialDelayMs: 1, maxDelayMs: 5 }, budget: false } }, { chaos: { seed: 3, errorRate: 0.5 } }]);
    let retries = 0;
    gateway.gateway.upstreamEvents.on('retry', () => void retries++);
    const client = await connect(gateway.http);
    for (let i = 0; i < 10; i++) expect(await client.callTool({ name: 'echo', arguments: { text: `${i}` } })).toEqual(text(`${i}`));
    expect((await client.callTool({ name: 'create_note', arguments: { title: 't', body: 'b' } })).isError).toBeUndefined();
    expect(retries).toBeGreaterThan(3);
    expect(await (await fetch(`${gateway.base}/metrics`)).text()).toMatch(new RegExp(`^mcp_layers_retries_total\\{[^}]*transport="upstream"[^}]*\\} \\d+`, 'm'));
  });
});

describe('a circuit breaker in the upstream stack', () => {
  it('opens after three failures in a row: the fourth call fails fast with -32050, nothing sent', async () => {
    const gateway = await withStacks([
      { when: { method: 'tools/call' }, layers: [{ circuitBreaker: { breaker: 'consecutive', consecutiveFailures: 3, halfOpenAfterMs: 60_000 } }, { chaos: { errorRate: 1 } }] },
    ]);
    const states: string[] = [];
    gateway.gateway.upstreamEvents.on('breaker-state', (e) => void states.push(e.to));
    const client = await connect(gateway.http);
    const outcomes: string[] = [];
    for (let i = 0; i < 4; i++) outcomes.push(await client.callTool({ name: 'echo', arguments: { text: 'x' } }).then(() => 'ok', (e: Error) => e.message.slice(0, 16)));
    expect(outcomes).toEqual(['MCP error -32055', 'MCP error -32055', 'MCP error -32055', 'MCP error -32050']);
    expect(states).toContain('open');
  });
});

describe('the downstream (server-side) stack', () => {
  it('sheds what exceeds its concurrency limit with -32051 before it reaches the upstream', async () => {
    const gateway = await withStacks([], [{ concurrency: { maxInFlight: 1, direction: 'inbound', retryAfterMs: 250 } }]);
    const client = await connect(gateway.ws);
    const first = client.callTool({ name: 'slow_report', arguments: { steps: 1, stepMs: 300 } });
    const second = client.callTool({ name: 'echo', arguments: { text: 'x' } });
    await expect(second).rejects.toThrow(/MCP error -32051/);
    expect(await first).toEqual(text('report ready after 1 steps'));
  });
});
