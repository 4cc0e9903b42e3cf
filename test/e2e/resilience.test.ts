/**
 * The resilience layers against real SDK servers (v1 McpServer, and v2 for invariant 3)
 * and real SDK clients, with a fault-injecting link between them. Fake timers drive
 * every timeout, backoff and breaker.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { circuitBreaker } from '#middleware/circuit-breaker.ts';
import { concurrency } from '#middleware/concurrency.ts';
import { hedging } from '#middleware/hedging/hedging.ts';
import { retry } from '#middleware/retry/retry.ts';
import { standard } from '#middleware/standard.ts';
import { timeout } from '#middleware/timeout.ts';
import { ErrorCode } from '#core/errors.ts';
import type { LayerEvents } from '#core/events.ts';
import { wrap } from '#core/wrap.ts';
import { FaultyLink, nextRequests, nextResponses } from '../support/faulty-link.ts';
import { advance, settle } from '../support/time.ts';
import { connectV1, connectV2, serverV1 } from '../support/apps.ts';
import { Ledger } from '../support/ledger.ts';
import { Client as ClientV1 } from '@modelcontextprotocol/sdk/client/index.js';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.restoreAllMocks();
  vi.useRealTimers();
});

const isCall = (tool: string) => (request: { method: string; params?: Record<string, unknown> | undefined }) =>
  request.method === 'tools/call' && request.params?.['name'] === tool;

/** Settles a promise that fake time must move forward for: returns its value or error. */
async function outcome<T>(promise: Promise<T>, ms = 60_000): Promise<{ value?: T; error?: { code?: number; message: string; data?: unknown } }> {
  let result: { value?: T; error?: { code?: number; message: string; data?: unknown } } | undefined;
  promise.then(
    (value) => (result = { value }),
    (error: { code?: number; message: string; data?: unknown }) => (result = { error }),
  );
  for (let waited = 0; result === undefined && waited < ms; waited += 100) await advance(100);
  if (result === undefined) throw new Error(`still pending after ${ms} ms`);
  return result;
}

const resilient = () => standard({ attemptTimeout: 1_000, totalTimeout: 20_000, retry: { maxAttempts: 5, budget: false }, circuitBreaker: false });

describe('invariant 3 against a real server: a non-idempotent tool never runs twice', () => {
  it('v1: not after its response was lost, nor after the connection reset once it was delivered', async () => {
    const { ledger, link, client, transport } = await connectV1([resilient()]);
    await client.listTools();

    link.rule = nextResponses(1, 'drop');
    const lost = await outcome(client.callTool({ name: 'charge', arguments: {} }));
    expect(lost.error).toMatchObject({ code: ErrorCode.RequestTimeout });
    expect(ledger.count('charge')).toBe(1);
    expect(link.requests('tools/call')).toHaveLength(1);
    // The abandoned attempt was cancelled on the wire.
    expect(link.notifications('notifications/cancelled')).toHaveLength(1);

    link.rule = nextRequests(1, 'reset', isCall('charge'));
    const reset = await outcome(client.callTool({ name: 'charge', arguments: {} }));
    expect(reset.error?.message).toContain('ECONNRESET');
    expect(ledger.count('charge')).toBe(2);
    expect(link.requests('tools/call')).toHaveLength(2);
    expect(transport.stats()).toEqual({ outbound: 0, attempts: 0, progressTokens: 0, inbound: 0, queued: 0 });
  });

  it('v1: but it is re-sent when the connection was refused (the request never left)', async () => {
    const { ledger, link, client } = await connectV1([resilient()]);
    link.rule = nextRequests(2, 'refuse', isCall('charge'));
    const result = await outcome(client.callTool({ name: 'charge', arguments: {} }));
    expect(result.value).toMatchObject({ content: [{ type: 'text', text: 'charge #1' }] });
    expect(link.counts.refused).toBe(2);
    expect(ledger.count('charge')).toBe(1);
  });

  it('v2: not after its response was lost', async () => {
    const { ledger, link, client, transport } = await connectV2([resilient()]);
    await client.listTools();
    link.rule = nextResponses(1, 'drop');
    const lost = await outcome(client.callTool({ name: 'charge', arguments: {} }));
    expect(lost.error).toBeDefined();
    expect(ledger.count('charge')).toBe(1);
    expect(link.requests('tools/call')).toHaveLength(1);
    expect(transport.stats().outbound).toBe(0);
  });
});

describe('an idempotent tool succeeds through injected failures', () => {
  it('v1: read-only (learned from tools/list) survives two lost responses', async () => {
    const { ledger, link, client } = await connectV1([resilient()]);
    await client.listTools();
    link.rule = nextResponses(2, 'drop');
    const result = await outcome(client.callTool({ name: 'lookup', arguments: {} }));
    expect(result.value).toMatchObject({ content: [{ type: 'text', text: 'lookup #3' }] });
    expect(ledger.count('lookup')).toBe(3);
    expect(link.notifications('notifications/cancelled')).toHaveLength(2);
  });

  it('v2: idempotentHint survives a reset and a refused connection', async () => {
    const { ledger, link, client } = await connectV2([resilient()]);
    await client.listTools();
    const reset = nextRequests(1, 'reset', isCall('upsert'));
    const refuse = nextRequests(1, 'refuse', isCall('upsert'));
    link.rule = (message, from) => reset(message, from) ?? refuse(message, from);
    const result = await outcome(client.callTool({ name: 'upsert', arguments: {} }));
    expect(result.value).toMatchObject({ content: [{ type: 'text', text: 'upsert #2' }] });
    expect(ledger.count('upsert')).toBe(2);
  });
});

describe('circuit breaker against a real server', () => {
  it('opens during a total outage, sends nothing while open, and closes after recovery', async () => {
    const states: string[] = [];
    const { ledger, link, client, transport } = await connectV1([
      retry({ maxAttempts: 2, budget: false }),
      circuitBreaker({ consecutiveFailures: 4, halfOpenAfterMs: 5_000 }),
      timeout({ attemptMs: 500 }),
    ]);
    transport.events.on('breaker-state', (e) => states.push(`${e.from}->${e.to}`));
    await client.listTools();

    link.rule = () => 'drop'; // the server went dark
    const during = [];
    for (let i = 0; i < 2; i++) during.push(await outcome(client.callTool({ name: 'lookup', arguments: {} })));
    expect(during.map((r) => r.error?.code)).toEqual([ErrorCode.RequestTimeout, ErrorCode.RequestTimeout]);
    expect(states).toEqual(['closed->open']);

    const sentWhileOpen = link.counts.sent.client;
    const fast = await outcome(client.callTool({ name: 'lookup', arguments: {} }));
    expect(fast.error).toMatchObject({ code: ErrorCode.CircuitOpen });
    expect(link.counts.sent.client).toBe(sentWhileOpen);

    link.rule = undefined; // the server is back
    await advance(5_000);
    const probe = await outcome(client.callTool({ name: 'lookup', arguments: {} }));
    expect(probe.value).toMatchObject({ content: [{ type: 'text', text: expect.stringMatching(/^lookup #/) }] });
    expect(states).toEqual(['closed->open', 'open->half-open', 'half-open->closed']);
    expect(ledger.count('lookup')).toBeGreaterThan(0);
  });
});

describe('retry budget against a real server', () => {
  it('keeps retries within 20 % of requests plus the floor during a total outage', async () => {
    const exhausted: Array<LayerEvents['retry-budget-exhausted']> = [];
    const { link, client, transport } = await connectV1([retry({ maxAttempts: 10, backoff: { initialDelayMs: 10, maxDelayMs: 50 } })]);
    transport.events.on('retry-budget-exhausted', (e) => exhausted.push(e));
    await client.listTools();
    const before = link.counts.sent.client;
    link.rule = () => 'refuse';
    const requests = 300;
    const calls = Array.from({ length: requests }, () => client.callTool({ name: 'lookup', arguments: {} }).catch((error: unknown) => error));
    await advance(2_000);
    const results = await Promise.all(calls);
    const attempts = link.counts.sent.client - before;
    // Without a budget: 3 000 attempts. With it: 300 + 20 % of 301 requests + 10/s × 10 s.
    expect(attempts).toBeLessThanOrEqual(requests + Math.floor(0.2 * (requests + 1)) + 100);
    expect(attempts).toBeGreaterThan(requests + 100);
    expect(exhausted.length).toBeGreaterThan(0);
    // Every request failed: after retries (RetriesExhausted), or at once when the budget had none left.
    const codes = new Set(results.map((r) => (r as { code?: number }).code));
    expect([...codes].toSorted()).toEqual([ErrorCode.TransportFailure, ErrorCode.RetriesExhausted].toSorted());
  });
});

describe('hedging against a real server', () => {
  it('answers from the hedge and cancels the slow first execution on the server', async () => {
    const { ledger, link, client } = await connectV1([hedging({ delayMs: 100, budget: false })]);
    await client.listTools();
    ledger.hang.set('lookup', 1);
    const result = await outcome(client.callTool({ name: 'lookup', arguments: {} }));
    expect(result.value).toMatchObject({ content: [{ type: 'text', text: 'lookup #2' }] });
    await settle();
    expect(ledger.count('lookup')).toBe(2);
    expect(ledger.aborted.get('lookup')).toBe(1);
    expect(link.notifications('notifications/cancelled')).toHaveLength(1);
  });
});

describe('inbound load shedding on a real server', () => {
  it('answers excess requests itself; the tool never runs for them', async () => {
    const ledger = new Ledger();
    const link = new FaultyLink();
    const server = serverV1(ledger);
    await server.connect(wrap(link.server, [concurrency({ maxInFlight: 1, direction: 'inbound' })]));
    const client = new ClientV1({ name: 'flood', version: '1.0.0' });
    await client.connect(link.client);
    ledger.hang.set('lookup', 1);
    const first = client.callTool({ name: 'lookup', arguments: {} }, undefined, { timeout: 1_000 });
    first.catch(() => {});
    await settle();
    const second = await outcome(client.callTool({ name: 'lookup', arguments: {} }));
    expect(second.error).toMatchObject({ code: ErrorCode.LoadShed, data: { layer: 'concurrency', reason: 'shed' } });
    expect(ledger.count('lookup')).toBe(1);
    await outcome(first);
    const third = await outcome(client.callTool({ name: 'lookup', arguments: {} }));
    expect(third.value).toMatchObject({ content: [{ type: 'text', text: 'lookup #2' }] });
  });
});
