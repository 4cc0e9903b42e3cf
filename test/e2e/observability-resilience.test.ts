/**
 * The observability layers in front of the real resilience layers (standard()), a real
 * SDK client and server, and a fault-injecting link; fake timers drive deadlines and
 * backoff. What retry, timeout and the core do to an exchange must show up in its span,
 * in the metrics and in the logs — all three telling the same story.
 */
import { SpanKind } from '@opentelemetry/api';
import { Registry } from 'prom-client';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { logging } from '#middleware/observability/logging.ts';
import { metrics } from '#middleware/observability/metrics.ts';
import { standard } from '#middleware/standard.ts';
import { tracing } from '#middleware/observability/tracing.ts';
import { nextResponses } from '../support/faulty-link.ts';
import { captureLogger } from '../support/log-capture.ts';
import { type OtelHarness, startOtel } from '../support/otel.ts';
import { parseExposition, value } from '../support/prom-text.ts';
import { advance } from '../support/time.ts';
import { connectV1 } from '../support/apps.ts';

let otel: OtelHarness;
beforeAll(() => {
  otel = startOtel();
});
afterAll(async () => {
  await otel.shutdown();
});
beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
  otel.reset();
});

/** Settles a promise that fake time must move forward for. */
async function outcome<T>(promise: Promise<T>): Promise<{ value?: T; error?: { code?: number } }> {
  let result: { value?: T; error?: { code?: number } } | undefined;
  promise.then(
    (v) => (result = { value: v }),
    (error: { code?: number }) => (result = { error }),
  );
  for (let waited = 0; result === undefined && waited < 60_000; waited += 100) await advance(100);
  if (result === undefined) throw new Error('still pending after 60 s');
  return result;
}

async function observedStack() {
  const registry = new Registry();
  const log = captureLogger('debug');
  const resilient = standard({ attemptTimeout: 1_000, totalTimeout: 20_000, retry: { maxAttempts: 3, budget: false }, circuitBreaker: false });
  const connected = await connectV1([logging({ logger: log.logger }), tracing(), metrics({ registry }), resilient], { name: 'app' });
  await connected.client.listTools();
  return { ...connected, registry, log };
}

describe('observability in front of standard()', () => {
  it('an attempt that timed out and was retried: one span with both attempts, counted and logged', async () => {
    const { client, ledger, registry, log, transport } = await observedStack();
    ledger.hang.set('lookup', 1);
    const result = await outcome(client.callTool({ name: 'lookup', arguments: {} }));
    expect(result.value).toMatchObject({ content: [{ text: 'lookup #2' }] });

    const span = otel.spans().find((s) => s.name === 'tools/call lookup' && s.kind === SpanKind.CLIENT);
    expect(span?.attributes['mcp_layers.attempts']).toBe(2);
    expect(span?.attributes['error.type']).toBeUndefined();
    const names = span?.events.map((e) => e.name) ?? [];
    expect(names.filter((n) => n === 'mcp_layers.attempt')).toHaveLength(2);
    expect(names).toEqual(expect.arrayContaining(['mcp_layers.timeout', 'mcp_layers.cancel_sent', 'mcp_layers.retry']));
    expect(names.indexOf('mcp_layers.timeout')).toBeLessThan(names.indexOf('mcp_layers.retry'));

    const samples = parseExposition(await registry.metrics());
    const lookup = { transport: 'app', mcp_method_name: 'tools/call' };
    expect(value(samples, 'mcp_layers_attempts_total', { ...lookup, gen_ai_tool_name: 'lookup' })).toBe(2);
    expect(value(samples, 'mcp_layers_timeouts_total', { ...lookup, gen_ai_tool_name: 'lookup', scope: 'attempt' })).toBe(1);
    expect(value(samples, 'mcp_layers_retries_total', { ...lookup, gen_ai_tool_name: 'lookup' })).toBe(1);
    expect(value(samples, 'mcp_layers_cancels_sent_total', lookup)).toBe(1);
    expect(value(samples, 'mcp_client_operation_duration_seconds_count', { ...lookup, gen_ai_tool_name: 'lookup' })).toBe(1);

    await vi.advanceTimersByTimeAsync(0);
    const records = log.records().filter((r) => r['tool'] === 'lookup');
    expect(records.map((r) => r['event'])).toEqual(expect.arrayContaining(['attempt', 'timeout', 'cancel-sent', 'retry', 'exchange']));
    const exchange = records.find((r) => r['event'] === 'exchange');
    expect(exchange).toMatchObject({ outcome: 'ok', attempts: 2, trace_id: span?.spanContext().traceId, span_id: span?.spanContext().spanId });
    expect(exchange?.['wire_ids']).toHaveLength(2);
    await transport.close();
  });

  it('a request that is not safe to retry fails with the timeout code in all three', async () => {
    const { client, link, registry, log, transport } = await observedStack();
    link.rule = nextResponses(1, 'drop');
    const result = await outcome(client.callTool({ name: 'charge', arguments: {} }));
    expect(result.error).toMatchObject({ code: -32001 });

    const span = otel.spans().find((s) => s.name === 'tools/call charge' && s.kind === SpanKind.CLIENT);
    expect(span?.attributes).toMatchObject({ 'error.type': '-32001', 'rpc.response.status_code': '-32001', 'mcp_layers.attempts': 1 });
    const samples = parseExposition(await registry.metrics());
    expect(value(samples, 'mcp_client_operation_duration_seconds_count', { gen_ai_tool_name: 'charge', error_type: '-32001' })).toBe(1);
    await vi.advanceTimersByTimeAsync(0);
    const exchange = log.records().find((r) => r['event'] === 'exchange' && r['tool'] === 'charge');
    expect(exchange).toMatchObject({ level: 'warn', outcome: 'error', error: { code: -32001 } });
    await transport.close();
  });
});
