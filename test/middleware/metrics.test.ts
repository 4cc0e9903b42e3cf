/**
 * metrics(): families, labels and buckets as a Prometheus scrape sees them (the
 * registry's exposition text), the cardinality cap, exemplars, every published event
 * counted, and metricsHandler() serving it all over node:http.
 */
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import { Gauge, type OpenMetricsContentType, Registry, type RegistryContentType } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { METRIC_FAMILIES, metrics, metricsHandler, OTHER_LABEL_VALUE } from '#middleware/observability/metrics.ts';
import { tracing } from '#middleware/observability/tracing.ts';
import { EventBus } from '#core/events.ts';
import type { JSONRPCMessage, JSONRPCRequest } from '#core/jsonrpc.ts';
import type { Middleware } from '#core/layer.ts';
import { DURATION_BUCKETS } from '#middleware/observability/telemetry.ts';
import { wrap } from '#core/wrap.ts';
import { emitEveryEvent } from '../support/events.ts';
import { connectPair, type Pair } from '../support/apps.ts';
import { startOtel } from '../support/otel.ts';
import { parseExposition, select, value } from '../support/prom-text.ts';

let pair: Pair | undefined;
afterEach(async () => {
  await pair?.close();
  pair = undefined;
});

const scrape = async (registry: Registry<RegistryContentType>) => parseExposition(await registry.metrics());

function openMetricsRegistry(): Registry<OpenMetricsContentType> {
  const registry = new Registry<OpenMetricsContentType>();
  registry.setContentType(Registry.OPENMETRICS_CONTENT_TYPE);
  return registry;
}

/** A peer that answers every request with an empty result. */
async function answeringPeer(layers: Parameters<typeof wrap>[1], options: Parameters<typeof wrap>[2] = {}) {
  const [a, b] = InMemoryTransport.createLinkedPair();
  b.onmessage = (message) => {
    if ('id' in message && 'method' in message) void b.send({ jsonrpc: '2.0', id: message.id, result: {} } as JSONRPCMessage);
  };
  await b.start();
  const transport = wrap(a, layers, { name: 'client', ...options });
  transport.onmessage = () => {};
  await transport.start();
  return transport;
}

describe('metrics: families', () => {
  it('registers exactly METRIC_FAMILIES, with their types and labels, and nothing in the global registry', async () => {
    const registry = new Registry();
    metrics({ registry });
    const registered = (await registry.getMetricsAsJSON()).map((m) => ({
      name: m.name,
      type: m.type,
      labels: [...((registry.getSingleMetric(m.name) as unknown as { labelNames: string[] }).labelNames ?? [])],
    }));
    expect(registered).toEqual(METRIC_FAMILIES.map((f) => ({ name: f.name, type: f.type, labels: [...f.labels] })));
    const { register } = await import('prom-client');
    expect(await register.getMetricsAsJSON()).toEqual([]);
  });

  it('docs/metrics.md documents exactly METRIC_FAMILIES (name, type, labels)', () => {
    const doc = readFileSync(new URL('../../docs/metrics.md', import.meta.url), 'utf8');
    const rows = [...doc.matchAll(/^\| `([a-z_]+)` \| (histogram|counter|gauge) \| ([^|]*) \|/gm)].map((m) => ({
      name: m[1],
      type: m[2],
      labels: [...(m[3] as string).matchAll(/`([a-z_]+)`/g)].map((l) => l[1]),
    }));
    expect(rows).toEqual(METRIC_FAMILIES.map((f) => ({ name: f.name, type: f.type, labels: [...f.labels] })));
  });

  it('prefixes names when asked, and shares families between metrics() layers on one registry', async () => {
    const registry = new Registry();
    metrics({ registry, prefix: 'app_' });
    expect(() => metrics({ registry, prefix: 'app_' })).not.toThrow();
    const names = (await registry.getMetricsAsJSON()).map((m) => m.name);
    expect(names).toContain('app_mcp_client_operation_duration_seconds');
    expect(names).toHaveLength(METRIC_FAMILIES.length);
  });

  it('refuses a registry holding a same-named metric with other labels', async () => {
    const registry = new Registry();
    const { Counter } = await import('prom-client');
    new Counter({ name: 'mcp_layers_retries_total', help: 'theirs', labelNames: ['x'], registers: [registry] }).inc({ x: '1' });
    expect(() => metrics({ registry })).toThrow(/already holds a metric named "mcp_layers_retries_total"/);
  });

  it('rejects invalid options naming the option', () => {
    expect(() => metrics({} as never)).toThrow("metrics.registry: expected a prom-client Registry (pass prom-client's `register` to use the global default), got undefined");
    expect(() => metrics({ registry: new Registry(), prefix: '9x' })).toThrow('metrics.prefix');
    expect(() => metrics({ registry: new Registry(), buckets: [1, 0.5] })).toThrow('metrics.buckets');
    expect(() => metrics({ registry: new Registry(), maxLabelValues: 0 })).toThrow('metrics.maxLabelValues');
    expect(() => metrics({ registry: new Registry(), exemplars: true })).toThrow('metrics.exemplars');
    expect(() => metrics({ registry: new Registry(), bucket: [1] } as never)).toThrow('metrics.bucket: expected one of the known options');
  });
});

describe('metrics: the semconv operation and session histograms', () => {
  it('observes client and server operations with semconv labels and bucket advice', async () => {
    const clientRegistry = new Registry();
    const serverRegistry = new Registry();
    pair = await connectPair([metrics({ registry: clientRegistry })], [metrics({ registry: serverRegistry })]);
    await pair.client.callTool({ name: 'echo', arguments: { text: 'hi' } });
    await pair.client.callTool({ name: 'fail', arguments: { why: 'x' } });
    await expect(pair.client.getPrompt({ name: 'missing' })).rejects.toThrow(/missing/);
    const version = pair.clientTransport.protocolVersion as string;
    const client = await scrape(clientRegistry);
    const name = 'mcp_client_operation_duration_seconds';
    const echo = { transport: 'client', mcp_method_name: 'tools/call', gen_ai_tool_name: 'echo', mcp_protocol_version: version };
    expect(value(client, `${name}_count`, echo)).toBe(1);
    expect(select(client, `${name}_count`, echo)[0]?.labels).toEqual(echo);
    const buckets = select(client, `${name}_bucket`, echo).map((s) => s.labels['le']);
    expect(buckets).toEqual([...DURATION_BUCKETS.map(String), '+Inf']);
    expect(value(client, `${name}_count`, { gen_ai_tool_name: 'fail', error_type: 'tool_error' })).toBe(1);
    expect(select(client, `${name}_count`, { mcp_method_name: 'prompts/get' })[0]?.labels).toEqual({
      transport: 'client',
      mcp_method_name: 'prompts/get',
      gen_ai_prompt_name: 'missing',
      error_type: '-32602',
      rpc_response_status_code: '-32602',
      mcp_protocol_version: version,
    });
    // The notification the client sent after initialize is an operation too.
    expect(value(client, `${name}_count`, { mcp_method_name: 'notifications/initialized' })).toBe(1);
    expect(value(client, 'mcp_layers_requests_in_flight', { mcp_method_name: 'tools/call', direction: 'outbound' })).toBe(0);
    expect(value(client, 'mcp_layers_attempts_total', { mcp_method_name: 'tools/call', gen_ai_tool_name: 'echo' })).toBe(1);

    const server = await scrape(serverRegistry);
    expect(value(server, 'mcp_server_operation_duration_seconds_count', { transport: 'server', mcp_method_name: 'tools/call', gen_ai_tool_name: 'echo' })).toBe(1);
    expect(value(server, 'mcp_server_operation_duration_seconds_count', { mcp_method_name: 'prompts/get', error_type: '-32602' })).toBe(1);
    expect(select(server, 'mcp_client_operation_duration_seconds_count')).toEqual([]);
  });

  it('counts requests in flight while they are', async () => {
    const registry = new Registry();
    let release!: () => void;
    const hold: Middleware = async (ctx, next) => {
      if (ctx.method === 'ping') await new Promise<void>((resolve) => (release = resolve));
      await next();
    };
    const transport = await answeringPeer([metrics({ registry }), hold]);
    void transport.send({ jsonrpc: '2.0', id: 1, method: 'ping' });
    await new Promise((resolve) => setImmediate(resolve));
    expect(value(await scrape(registry), 'mcp_layers_requests_in_flight', { transport: 'client', direction: 'outbound', mcp_method_name: 'ping' })).toBe(1);
    release();
    await new Promise((resolve) => setImmediate(resolve));
    expect(value(await scrape(registry), 'mcp_layers_requests_in_flight', { mcp_method_name: 'ping' })).toBe(0);
    await transport.close();
  });

  it('observes one session per side when the transports close, and tracks active sessions', async () => {
    const registry = new Registry();
    pair = await connectPair([metrics({ registry })], [metrics({ registry })]);
    expect(value(await scrape(registry), 'mcp_layers_sessions_active', { transport: 'client' })).toBe(1);
    const version = pair.clientTransport.protocolVersion as string;
    await pair.close();
    pair = undefined;
    const samples = await scrape(registry);
    expect(value(samples, 'mcp_client_session_duration_seconds_count', { transport: 'client', mcp_protocol_version: version })).toBe(1);
    expect(value(samples, 'mcp_server_session_duration_seconds_count', { transport: 'server', mcp_protocol_version: version })).toBe(1);
    expect(value(samples, 'mcp_layers_sessions_active', { transport: 'client' })).toBe(0);
  });
});

describe('metrics: bounded cardinality', () => {
  it('keeps at most maxLabelValues tool names and custom methods, then reports _other', async () => {
    const registry = new Registry();
    const transport = await answeringPeer([metrics({ registry, maxLabelValues: 3 })]);
    for (let i = 0; i < 10; i++) await transport.send({ jsonrpc: '2.0', id: `t${i}`, method: 'tools/call', params: { name: `tool_${i}` } });
    for (let i = 0; i < 10; i++) await transport.send({ jsonrpc: '2.0', id: `m${i}`, method: `vendor/method_${i}` });
    await transport.send({ jsonrpc: '2.0', id: 'p', method: 'ping' });
    await new Promise((resolve) => setImmediate(resolve));
    const counts = select(await scrape(registry), 'mcp_client_operation_duration_seconds_count');
    const tools = new Map(counts.filter((s) => s.labels['mcp_method_name'] === 'tools/call').map((s) => [s.labels['gen_ai_tool_name'], s.value]));
    expect(tools).toEqual(new Map([['tool_0', 1], ['tool_1', 1], ['tool_2', 1], [OTHER_LABEL_VALUE, 7]]));
    const methods = new Map(counts.filter((s) => s.labels['mcp_method_name'] !== 'tools/call').map((s) => [s.labels['mcp_method_name'], s.value]));
    // Methods from the MCP spec never count against the cap.
    expect(methods).toEqual(new Map([['vendor/method_0', 1], ['vendor/method_1', 1], ['vendor/method_2', 1], [OTHER_LABEL_VALUE, 7], ['ping', 1]]));
    await transport.close();
  });

  it('a peer advertising thousands of tool names creates a bounded number of series', async () => {
    const registry = new Registry();
    const transport = await answeringPeer([metrics({ registry })]);
    for (let i = 0; i < 2000; i++) void transport.send({ jsonrpc: '2.0', id: i, method: 'tools/call', params: { name: `tool_${i}` } });
    await new Promise((resolve) => setImmediate(resolve));
    const counts = select(await scrape(registry), 'mcp_client_operation_duration_seconds_count');
    expect(counts).toHaveLength(101);
    expect(counts.reduce((sum, s) => sum + s.value, 0)).toBe(2000);
    await transport.close();
  });
});

describe('metrics: exemplars', () => {
  it('attaches the exchange span’s trace id to the operation histogram on an OpenMetrics registry', async () => {
    const otel = startOtel();
    try {
      const registry = openMetricsRegistry();
      const transport = await answeringPeer([tracing(), metrics({ registry })]);
      await transport.send({ jsonrpc: '2.0', id: 1, method: 'ping' });
      await new Promise((resolve) => setImmediate(resolve));
      const span = otel.spans().find((s) => s.name === 'ping');
      const samples = await scrape(registry);
      const withExemplar = select(samples, 'mcp_client_operation_duration_seconds_bucket', { mcp_method_name: 'ping' }).filter((s) => s.exemplar !== undefined);
      expect(withExemplar).toHaveLength(1);
      expect(withExemplar[0]?.exemplar).toEqual({ trace_id: span?.spanContext().traceId, span_id: span?.spanContext().spanId });
      await transport.close();
    } finally {
      await otel.shutdown();
    }
  });

  it('writes no exemplars on a Prometheus-format registry', async () => {
    const registry = new Registry();
    const transport = await answeringPeer([metrics({ registry })]);
    await transport.send({ jsonrpc: '2.0', id: 1, method: 'ping' });
    await new Promise((resolve) => setImmediate(resolve));
    expect((await scrape(registry)).filter((s) => s.exemplar !== undefined)).toEqual([]);
    await transport.close();
  });
});

describe('metrics: every event the layers publish', () => {
  it('shows up in a metric family', async () => {
    const registry = new Registry();
    const publisher: Middleware = async (ctx, next) => {
      if (ctx.method === 'tools/call') emitEveryEvent(ctx);
      await next();
    };
    const transport = await answeringPeer([metrics({ registry }), publisher]);
    await transport.send({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'search' } });
    await new Promise((resolve) => setImmediate(resolve));
    const s = await scrape(registry);
    const call = { transport: 'client', mcp_method_name: 'tools/call' };
    // The exchange's own attempt (1) plus the published one.
    expect(value(s, 'mcp_layers_attempts_total', { ...call, gen_ai_tool_name: 'search' })).toBe(2);
    expect(value(s, 'mcp_layers_cancels_sent_total', call)).toBe(1);
    expect(value(s, 'mcp_layers_cancellations_total', { ...call, direction: 'outbound', by: 'application' })).toBe(1);
    expect(value(s, 'mcp_layers_stray_responses_total', { transport: 'client', reason: 'late' })).toBe(1);
    expect(value(s, 'mcp_layers_invalid_messages_total', { transport: 'client' })).toBe(1);
    expect(value(s, 'mcp_layers_protocol_versions_total', { transport: 'client', mcp_protocol_version: '2025-11-25' })).toBe(1);
    expect(value(s, 'mcp_layers_retries_total', { ...call, gen_ai_tool_name: 'search', reason: 'http-503' })).toBe(1);
    expect(value(s, 'mcp_layers_retry_budget_exhausted_total', call)).toBe(1);
    expect(value(s, 'mcp_layers_give_ups_total', { ...call, reason: 'retries-exhausted' })).toBe(1);
    expect(value(s, 'mcp_layers_timeouts_total', { ...call, scope: 'attempt' })).toBe(1);
    expect(value(s, 'mcp_layers_breaker_transitions_total', { breaker: 'upstream', from: 'closed', to: 'open' })).toBe(1);
    expect(value(s, 'mcp_layers_breaker_state', { breaker: 'upstream', state: 'open' })).toBe(1);
    expect(value(s, 'mcp_layers_breaker_state', { breaker: 'upstream', state: 'closed' })).toBe(0);
    expect(value(s, 'mcp_layers_breaker_rejections_total', { ...call, breaker: 'upstream' })).toBe(1);
    expect(value(s, 'mcp_layers_shed_total', { ...call, direction: 'outbound', reason: 'queue-full' })).toBe(1);
    expect(value(s, 'mcp_layers_queued_total', { ...call, direction: 'outbound' })).toBe(1);
    expect(value(s, 'mcp_layers_hedges_total', call)).toBe(1);
    expect(value(s, 'mcp_layers_hedge_wins_total', { ...call, winner: 'hedge' })).toBe(1);
    expect(value(s, 'mcp_layers_chaos_injections_total', { ...call, fault: 'latency' })).toBe(1);
    expect(value(s, 'mcp_layers_reconnects_total', { transport: 'client', outcome: 'scheduled' })).toBe(1);
    expect(value(s, 'mcp_layers_connections_open', { transport: 'client' })).toBe(1);
    expect(value(s, 'mcp_layers_connections_total', { transport: 'client', state: 'open' })).toBe(1);
    expect(value(s, 'mcp_layers_token_store_failures_total', { transport: 'client', operation: 'save' })).toBe(1);
    expect(value(s, 'mcp_layers_heartbeats_total', { transport: 'client', outcome: 'ok' })).toBe(1);
    expect(value(s, 'mcp_layers_heartbeat_rtt_seconds_sum', { transport: 'client' })).toBeCloseTo(0.012);
    expect(value(s, 'mcp_layers_token_refreshes_total', { transport: 'client', outcome: 'ok' })).toBe(1);
    expect(value(s, 'mcp_layers_token_refresh_duration_seconds_count', { transport: 'client', outcome: 'ok' })).toBe(1);
    expect(value(s, 'mcp_layers_batch_size_sum', { transport: 'client' })).toBe(4);
    expect(value(s, 'mcp_layers_compression_bytes_total', { transport: 'client', direction: 'outbound', encoding: 'gzip', stage: 'before' })).toBe(1000);
    expect(value(s, 'mcp_layers_compression_bytes_total', { transport: 'client', direction: 'outbound', encoding: 'gzip', stage: 'after' })).toBe(300);
    expect(value(s, 'mcp_layers_wire_bytes_total', { transport: 'client', direction: 'outbound', encoding: 'gzip' })).toBe(300);
    await transport.close();
  });

  it('counts an event once when transports share an event bus', async () => {
    const registry = new Registry();
    const layer = metrics({ registry });
    const events = new EventBus();
    const a = await answeringPeer([layer], { events, name: 'a' });
    const b = await answeringPeer([layer], { events, name: 'b' });
    events.emit('reconnect', { attempt: 1, delayMs: 10, outcome: 'failed' });
    expect(value(await scrape(registry), 'mcp_layers_reconnects_total', { outcome: 'failed' })).toBe(1);
    await a.close();
    events.emit('reconnect', { attempt: 2, delayMs: 10, outcome: 'failed' });
    expect(value(await scrape(registry), 'mcp_layers_reconnects_total', { outcome: 'failed' })).toBe(2);
    await b.close();
    expect(events.listenerCount).toBe(0);
  });
});

describe('metricsHandler', () => {
  let server: Server | undefined;
  afterEach(async () => {
    server?.close();
    if (server !== undefined) await once(server, 'close');
    server = undefined;
  });

  async function serve(handler: ReturnType<typeof metricsHandler>): Promise<string> {
    server = createServer(handler);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  it('serves the registry at /metrics in its own format, and nothing else', async () => {
    const registry = openMetricsRegistry();
    metrics({ registry });
    const base = await serve(metricsHandler(registry));
    const ok = await fetch(`${base}/metrics?x=1`);
    expect(ok.status).toBe(200);
    expect(ok.headers.get('content-type')).toBe(Registry.OPENMETRICS_CONTENT_TYPE);
    expect(await ok.text()).toContain('# TYPE mcp_client_operation_duration_seconds histogram');
    const head = await fetch(`${base}/metrics`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe('');
    expect((await fetch(`${base}/`)).status).toBe(404);
    const post = await fetch(`${base}/metrics`, { method: 'POST' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
  });

  it('answers 500 without details when collection fails', async () => {
    const registry = new Registry();
    const broken = new Gauge({ name: 'broken', help: 'fails', registers: [registry], collect: () => { throw new Error('secret detail'); } });
    expect(registry.getSingleMetric('broken')).toBe(broken);
    const base = await serve(metricsHandler(registry));
    const response = await fetch(`${base}/metrics`);
    expect(response.status).toBe(500);
    expect(await response.text()).toBe('Metrics collection failed\n');
  });

  it('rejects what is not a registry', () => {
    expect(() => metricsHandler({} as never)).toThrow('metricsHandler(registry): expected a prom-client Registry, got an object');
    expect(() => metricsHandler(new Registry(), { path: 'metrics' })).toThrow('metricsHandler.path');
  });
});

// Keeps the helper honest: a request that is never answered is not in the histogram.
describe('metrics: unanswered requests', () => {
  it('observe nothing until they end', async () => {
    const registry = new Registry();
    const [a, b] = InMemoryTransport.createLinkedPair();
    b.onmessage = () => {};
    await b.start();
    const transport = wrap(a, [metrics({ registry })], { name: 'client' });
    transport.onmessage = () => {};
    await transport.start();
    await transport.send({ jsonrpc: '2.0', id: 1, method: 'ping' } as JSONRPCRequest);
    expect(select(await scrape(registry), 'mcp_client_operation_duration_seconds_count', { mcp_method_name: 'ping' })).toEqual([]);
    await transport.close();
    expect(value(await scrape(registry), 'mcp_client_operation_duration_seconds_count', { mcp_method_name: 'ping', error_type: '-32000' })).toBe(1);
  });
});
