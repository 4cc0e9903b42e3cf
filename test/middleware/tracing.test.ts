/**
 * tracing(): spans named, kinded and attributed as the OpenTelemetry MCP semantic
 * conventions ask, checked with the real Node SDK recording into memory; trace context
 * carried in params._meta; resilience events under the exchange's span.
 */
import { context, propagation, type Span, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import type { ReadableSpan } from '@opentelemetry/sdk-trace';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { tracing } from '#middleware/observability/tracing.ts';
import { InvalidOptionError, TimeoutError } from '#core/errors.ts';
import type { JSONRPCMessage, JSONRPCRequest } from '#core/jsonrpc.ts';
import type { Middleware } from '#core/layer.ts';
import { wrap } from '#core/wrap.ts';
import { publish } from '../support/events.ts';
import { connectPair, type Pair } from '../support/apps.ts';
import { type OtelHarness, startOtel } from '../support/otel.ts';

/** Every attribute the MCP semconv defines for MCP spans (client and server), plus ours. */
const SEMCONV_SPAN_ATTRIBUTES = new Set([
  'mcp.method.name',
  'error.type',
  'gen_ai.prompt.name',
  'gen_ai.tool.name',
  'jsonrpc.request.id',
  'mcp.resource.uri',
  'rpc.response.status_code',
  'gen_ai.operation.name',
  'jsonrpc.protocol.version',
  'mcp.protocol.version',
  'mcp.session.id',
  'network.protocol.name',
  'network.protocol.version',
  'network.transport',
  'server.address',
  'server.port',
  'client.address',
  'client.port',
  'gen_ai.tool.call.arguments',
  'gen_ai.tool.call.result',
]);

let otel: OtelHarness;
let pair: Pair | undefined;

beforeAll(() => {
  otel = startOtel();
});
afterAll(async () => {
  await otel.shutdown();
});
afterEach(async () => {
  await pair?.close();
  pair = undefined;
  otel.reset();
});

function find(name: string, kind: SpanKind): ReadableSpan {
  const matches = otel.spans().filter((s) => s.name === name && s.kind === kind);
  if (matches.length !== 1) {
    throw new Error(`expected one ${name} ${SpanKind[kind]} span, found ${matches.length} among ${otel.spans().map((s) => `${s.name}/${SpanKind[s.kind]}`).join(', ')}`);
  }
  return matches[0] as ReadableSpan;
}

function parentOf(span: ReadableSpan): string | undefined {
  return span.parentSpanContext?.spanId;
}

/** The attributes outside our own `mcp_layers.*` namespace must all come from the semconv list. */
function expectOnlySemconv(span: ReadableSpan): void {
  const foreign = Object.keys(span.attributes).filter((key) => !key.startsWith('mcp_layers.') && !SEMCONV_SPAN_ATTRIBUTES.has(key));
  expect(foreign).toEqual([]);
}

describe('tracing: spans per the MCP semantic conventions', () => {
  it('traces a tool call as a CLIENT span parenting the SERVER span through params._meta.traceparent', async () => {
    pair = await connectPair([tracing()], [tracing()]);
    await pair.client.callTool({ name: 'echo', arguments: { text: 'hi' } });
    const client = find('tools/call echo', SpanKind.CLIENT);
    const server = find('tools/call echo', SpanKind.SERVER);
    expect(server.spanContext().traceId).toBe(client.spanContext().traceId);
    expect(parentOf(server)).toBe(client.spanContext().spanId);
    expect(client.attributes).toMatchObject({
      'mcp.method.name': 'tools/call',
      'gen_ai.tool.name': 'echo',
      'gen_ai.operation.name': 'execute_tool',
      'mcp.protocol.version': expect.any(String),
      'mcp_layers.attempts': 1,
    });
    expect(client.attributes['jsonrpc.request.id']).toMatch(/^\d+$/);
    expect(server.attributes).toMatchObject({ 'mcp.method.name': 'tools/call', 'gen_ai.tool.name': 'echo', 'gen_ai.operation.name': 'execute_tool' });
    // The server span's id is the wire id, which the client span records on its attempt event.
    const attempt = client.events.find((e) => e.name === 'mcp_layers.attempt');
    expect(attempt?.attributes?.['jsonrpc.request.id']).toBe(server.attributes['jsonrpc.request.id']);
    expect(client.status.code).toBe(SpanStatusCode.UNSET);
    expect(server.status.code).toBe(SpanStatusCode.UNSET);
    for (const span of [client, server]) {
      expectOnlySemconv(span);
      expect(span.attributes['error.type']).toBeUndefined();
      expect(span.attributes['gen_ai.tool.call.arguments']).toBeUndefined();
    }
    // The server application received the trace context in _meta (SEP-414), unprefixed.
    const traceparent = pair.seenMeta[0]?.['traceparent'];
    expect(traceparent).toBe(`00-${client.spanContext().traceId}-${client.spanContext().spanId}-01`);
  });

  it('names initialize after its method and records the protocol version it negotiated', async () => {
    pair = await connectPair([tracing()], [tracing()]);
    const client = find('initialize', SpanKind.CLIENT);
    const server = find('initialize', SpanKind.SERVER);
    expect(parentOf(server)).toBe(client.spanContext().spanId);
    expect(client.attributes['mcp.protocol.version']).toBe(pair.clientTransport.protocolVersion);
    expect(pair.clientTransport.protocolVersion).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    expect(server.attributes['mcp.protocol.version']).toBe(pair.clientTransport.protocolVersion);
    // The notification that follows is traced too, CLIENT to SERVER.
    const sent = find('notifications/initialized', SpanKind.CLIENT);
    const received = find('notifications/initialized', SpanKind.SERVER);
    expect(parentOf(received)).toBe(sent.spanContext().spanId);
    expect(sent.attributes['jsonrpc.request.id']).toBeUndefined();
  });

  it('sets error.type to tool_error (status ERROR) when a tools/call result has isError', async () => {
    pair = await connectPair([tracing()], [tracing()]);
    await pair.client.callTool({ name: 'fail', arguments: { why: 'nope' } });
    for (const kind of [SpanKind.CLIENT, SpanKind.SERVER]) {
      const span = find('tools/call fail', kind);
      expect(span.attributes['error.type']).toBe('tool_error');
      expect(span.attributes['rpc.response.status_code']).toBeUndefined();
      expect(span.status.code).toBe(SpanStatusCode.ERROR);
    }
  });

  it('sets error.type and rpc.response.status_code to the JSON-RPC code, status message to the error message', async () => {
    pair = await connectPair([tracing()], [tracing()]);
    await expect(pair.client.getPrompt({ name: 'missing' })).rejects.toThrow(/missing/);
    for (const kind of [SpanKind.CLIENT, SpanKind.SERVER]) {
      const span = find('prompts/get missing', kind);
      expect(span.attributes['error.type']).toBe('-32602');
      expect(span.attributes['rpc.response.status_code']).toBe('-32602');
      expect(span.status).toMatchObject({ code: SpanStatusCode.ERROR, message: expect.stringContaining('missing') });
    }
  });

  it('reports failures the stack raised with the code the application receives', async () => {
    const timeout: Middleware = async (ctx, next) => {
      if (ctx.method !== 'ping') return next();
      throw new TimeoutError('Request timed out after 5 ms', { layer: 'timeout', reason: 'attempt-timeout' });
    };
    pair = await connectPair([tracing(), timeout], []);
    await expect(pair.client.ping()).rejects.toThrow(/timed out/);
    const span = find('ping', SpanKind.CLIENT);
    expect(span.attributes).toMatchObject({
      'error.type': '-32001',
      'rpc.response.status_code': '-32001',
      'mcp_layers.error.layer': 'timeout',
      'mcp_layers.error.reason': 'attempt-timeout',
    });
    expect(span.status).toEqual({ code: SpanStatusCode.ERROR, message: 'Request timed out after 5 ms' });
  });

  it('records prompt names, resource URIs, and keeps URIs out of span names unless asked', async () => {
    pair = await connectPair([tracing()], [tracing({ resourceUriInSpanName: true })]);
    await pair.client.getPrompt({ name: 'greet', arguments: { name: 'Ada' } });
    await pair.client.readResource({ uri: 'file:///readme.md' });
    expect(find('prompts/get greet', SpanKind.CLIENT).attributes['gen_ai.prompt.name']).toBe('greet');
    expect(find('resources/read', SpanKind.CLIENT).attributes['mcp.resource.uri']).toBe('file:///readme.md');
    expect(find('resources/read file:///readme.md', SpanKind.SERVER).attributes['mcp.resource.uri']).toBe('file:///readme.md');
  });

  it('captures tool arguments and results only when asked, with secrets redacted and length bounded', async () => {
    pair = await connectPair([tracing({ captureArguments: true, captureResults: true, maxCaptureLength: 64 })], [tracing()]);
    await pair.client.callTool({ name: 'echo', arguments: { text: 'x'.repeat(10), password: 'hunter2' } });
    const client = find('tools/call echo', SpanKind.CLIENT);
    expect(client.attributes['gen_ai.tool.call.arguments']).toBe('{"text":"xxxxxxxxxx","password":"[REDACTED]"}');
    expect(String(client.attributes['gen_ai.tool.call.result'])).toMatch(/^\{"content":\[\{"type":"text","text":"xxxxxxxxxx"\}\]\}$/);
    expect(find('tools/call echo', SpanKind.SERVER).attributes['gen_ai.tool.call.arguments']).toBeUndefined();
    await pair.client.callTool({ name: 'echo', arguments: { text: 'y'.repeat(200) } });
    const long = otel.spans().filter((s) => s.name === 'tools/call echo' && s.kind === SpanKind.CLIENT)[1];
    expect(long?.attributes['gen_ai.tool.call.arguments']).toBe(`{"text":"${'y'.repeat(55)}…`);
  });

  it('infers network.transport for stdio-like transports and takes configured server.* attributes', async () => {
    class StdioClientTransport extends InMemoryTransport {}
    const [a, b] = InMemoryTransport.createLinkedPair();
    const inner = Object.setPrototypeOf(a, StdioClientTransport.prototype) as InMemoryTransport;
    const client = wrap(inner, [tracing({ network: { serverAddress: 'mcp.example', serverPort: 443 } })]);
    b.onmessage = (message) => {
      const request = message as JSONRPCRequest;
      void b.send({ jsonrpc: '2.0', id: request.id, result: {} });
    };
    await b.start();
    client.onmessage = () => {};
    await client.start();
    await client.send({ jsonrpc: '2.0', id: 1, method: 'ping' });
    await new Promise((resolve) => setImmediate(resolve));
    expect(find('ping', SpanKind.CLIENT).attributes).toMatchObject({ 'network.transport': 'pipe', 'server.address': 'mcp.example', 'server.port': 443 });
    await client.close();
  });
});

describe('tracing: context propagation', () => {
  it('parents the client span on the caller’s active span and injects into params._meta without touching the application message', async () => {
    const [a, b] = InMemoryTransport.createLinkedPair();
    const wire: JSONRPCMessage[] = [];
    b.onmessage = (message) => {
      wire.push(message);
      if ('id' in message) void b.send({ jsonrpc: '2.0', id: message.id, result: {} } as JSONRPCMessage);
    };
    await b.start();
    const transport = wrap(a, [tracing()]);
    transport.onmessage = () => {};
    await transport.start();
    const request: JSONRPCRequest = { jsonrpc: '2.0', id: 'app-1', method: 'tools/list', params: { _meta: { progressToken: 9 } } };
    const snapshot = structuredClone(request);
    const tracer = trace.getTracer('app');
    const appSpan: Span = tracer.startSpan('agent step');
    await context.with(trace.setSpan(context.active(), appSpan), () => transport.send(request));
    await transport.send({ jsonrpc: '2.0', method: 'notifications/roots/list_changed' });
    await new Promise((resolve) => setImmediate(resolve));
    appSpan.end();
    expect(request).toEqual(snapshot);
    const client = find('tools/list', SpanKind.CLIENT);
    expect(parentOf(client)).toBe(appSpan.spanContext().spanId);
    const sent = wire[0] as JSONRPCRequest;
    expect(sent.params?._meta).toEqual({ progressToken: 9, traceparent: `00-${client.spanContext().traceId}-${client.spanContext().spanId}-01` });
    const note = find('notifications/roots/list_changed', SpanKind.CLIENT);
    expect((wire[1] as { params?: { _meta?: unknown } }).params?._meta).toEqual({ traceparent: `00-${note.spanContext().traceId}-${note.spanContext().spanId}-01` });
    await transport.close();
  });

  it('carries baggage and tracestate, and uses context the application put in _meta itself when no span is active', async () => {
    const [a, b] = InMemoryTransport.createLinkedPair();
    const wire: JSONRPCRequest[] = [];
    b.onmessage = (message) => void wire.push(message as JSONRPCRequest);
    await b.start();
    const transport = wrap(a, [tracing()]);
    transport.onmessage = () => {};
    await transport.start();
    const upstream = `00-${'1'.repeat(32)}-${'2'.repeat(16)}-01`;
    const bag = propagation.setBaggage(context.active(), propagation.createBaggage({ tenant: { value: 'acme' } }));
    await context.with(bag, () =>
      transport.send({ jsonrpc: '2.0', id: 1, method: 'ping', params: { _meta: { traceparent: upstream, tracestate: 'vendor=x' } } }),
    );
    const span = otel.spans().length === 0 ? undefined : otel.spans()[0];
    expect(span).toBeUndefined(); // still in flight
    const meta = wire[0]?.params?._meta as Record<string, string>;
    expect(meta['traceparent']).toMatch(new RegExp(`^00-${'1'.repeat(32)}-[0-9a-f]{16}-01$`));
    expect(meta['traceparent']).not.toBe(upstream);
    expect(meta['tracestate']).toBe('vendor=x');
    expect(meta['baggage']).toBe('tenant=acme');
    await transport.close();
    const client = find('ping', SpanKind.CLIENT);
    expect(parentOf(client)).toBe('2'.repeat(16));
    expect(client.attributes['error.type']).toBe('-32000');
  });

  it('starts a root SERVER span when the inbound request carries no trace context', async () => {
    const [a, b] = InMemoryTransport.createLinkedPair();
    const server = wrap(b, [tracing()]);
    server.onmessage = (message) => {
      if ('id' in message) void server.send({ jsonrpc: '2.0', id: (message as JSONRPCRequest).id, result: {} });
    };
    await server.start();
    a.onmessage = () => {};
    await a.start();
    await a.send({ jsonrpc: '2.0', id: 5, method: 'ping' });
    await new Promise((resolve) => setImmediate(resolve));
    const span = find('ping', SpanKind.SERVER);
    expect(span.parentSpanContext).toBeUndefined();
    expect(span.attributes['jsonrpc.request.id']).toBe('5');
    await server.close();
  });
});

describe('tracing: what a peer sends is only read, never trusted', () => {
  it('starts a root span for malformed or non-string trace context, and delivers the message untouched', async () => {
    const [a, b] = InMemoryTransport.createLinkedPair();
    const server = wrap(b, [tracing()]);
    const delivered: JSONRPCMessage[] = [];
    server.onmessage = (message) => {
      delivered.push(message);
      if ('id' in message) void server.send({ jsonrpc: '2.0', id: (message as JSONRPCRequest).id, result: {} });
    };
    await server.start();
    a.onmessage = () => {};
    await a.start();
    const bad = [{ traceparent: 'not-a-traceparent' }, { traceparent: 42 }, { traceparent: `00-${'0'.repeat(32)}-${'0'.repeat(16)}-01` }];
    for (const [i, meta] of bad.entries()) await a.send({ jsonrpc: '2.0', id: i, method: 'ping', params: { _meta: meta } } as JSONRPCMessage);
    await new Promise((resolve) => setImmediate(resolve));
    const spans = otel.spans().filter((s) => s.name === 'ping');
    expect(spans).toHaveLength(3);
    for (const span of spans) expect(span.parentSpanContext).toBeUndefined();
    expect(delivered.map((m) => (m as JSONRPCRequest).params?._meta)).toEqual(bad);
    await server.close();
  });
});

describe('tracing: attempts and resilience events under the exchange span', () => {
  it('shows two attempts of one request as events of one CLIENT span, each server span its child', async () => {
    // A minimal retry: the first attempt's answer is discarded and the request is sent again.
    const again: Middleware = async (ctx, next) => {
      if (ctx.method !== 'tools/call') return next();
      await next();
      publish(ctx, 'retry', { attempt: 2, delayMs: 0, reason: 'test' });
      await next();
    };
    pair = await connectPair([tracing(), again], [tracing()], { client: { idempotentTools: ['echo'] } });
    await pair.client.callTool({ name: 'echo', arguments: { text: 'twice' } });
    const client = find('tools/call echo', SpanKind.CLIENT);
    const servers = otel.spans().filter((s) => s.name === 'tools/call echo' && s.kind === SpanKind.SERVER);
    expect(servers).toHaveLength(2);
    for (const server of servers) expect(parentOf(server)).toBe(client.spanContext().spanId);
    expect(client.attributes['mcp_layers.attempts']).toBe(2);
    const attempts = client.events.filter((e) => e.name === 'mcp_layers.attempt');
    expect(attempts.map((e) => e.attributes?.['mcp_layers.attempt'])).toEqual([1, 2]);
    expect(attempts.map((e) => e.attributes?.['jsonrpc.request.id']).toSorted()).toEqual(servers.map((s) => s.attributes['jsonrpc.request.id']).toSorted());
    expect(client.events.map((e) => e.name)).toEqual(['mcp_layers.attempt', 'mcp_layers.retry', 'mcp_layers.attempt']);
  });

  it('records timeouts, hedges, breaker rejections, shedding and chaos published by other layers', async () => {
    const publisher: Middleware = async (ctx, next) => {
      if (ctx.method === 'ping') {
        publish(ctx, 'timeout', { scope: 'attempt', ms: 50 });
        publish(ctx, 'hedge', { attempt: 2, delayMs: 20 });
        publish(ctx, 'hedge-outcome', { winner: 2, cancelled: 1 });
        publish(ctx, 'breaker-rejected', { key: 'upstream' });
        publish(ctx, 'shed', { reason: 'queue-full', inFlight: 8, queued: 16 });
        publish(ctx, 'chaos', { fault: 'latency' });
        publish(ctx, 'give-up', { attempts: 3, reason: 'retries exhausted: Bearer abc.def' });
        publish(ctx, 'breaker-state', { key: 'upstream', from: 'closed', to: 'open' });
      }
      await next();
    };
    pair = await connectPair([tracing(), publisher], []);
    await pair.client.ping();
    const span = find('ping', SpanKind.CLIENT);
    expect(span.events.map((e) => e.name)).toEqual([
      'mcp_layers.timeout',
      'mcp_layers.hedge',
      'mcp_layers.hedge_outcome',
      'mcp_layers.breaker_rejected',
      'mcp_layers.shed',
      'mcp_layers.chaos',
      'mcp_layers.give_up',
      'mcp_layers.breaker_state',
      'mcp_layers.attempt',
    ]);
    expect(span.events[0]?.attributes).toEqual({ 'mcp_layers.scope': 'attempt', 'mcp_layers.timeout_ms': 50 });
    expect(span.events[6]?.attributes?.['mcp_layers.reason']).toBe('retries exhausted: Bearer [REDACTED]');
  });

  it('leaves an ended span alone when events arrive late, and removes its listeners on close', async () => {
    pair = await connectPair([tracing()], []);
    await pair.client.ping();
    const before = pair.clientTransport.events.listenerCount;
    expect(before).toBeGreaterThan(0);
    const span = find('ping', SpanKind.CLIENT);
    const events = pair.clientTransport.events;
    events.emit('timeout', { ctx: undefined, scope: 'total', ms: 1 } as never);
    await pair.close();
    pair = undefined;
    expect(span.events.map((e) => e.name)).toEqual(['mcp_layers.attempt']);
    expect(events.listenerCount).toBe(0);
  });
});

describe('tracing: options', () => {
  it('rejects invalid options naming the option', () => {
    expect(() => tracing({ tracer: 42 as never })).toThrow(InvalidOptionError);
    expect(() => tracing({ captureArguments: 'yes' as never })).toThrow('tracing.captureArguments: expected true or false, got "yes"');
    expect(() => tracing({ captureArgs: true } as never)).toThrow('tracing.captureArgs: expected one of the known options');
    expect(() => tracing({ maxCaptureLength: 0 })).toThrow('tracing.maxCaptureLength');
    expect(() => tracing({ network: { serverPort: 70000 } })).toThrow('tracing.network.serverPort');
    expect(() => tracing({ network: { proto: 'x' } as never })).toThrow('tracing.network: unknown field "proto"');
    expect(() => tracing({ redact: [''] })).toThrow('tracing.redact[0]');
  });

  it('uses the tracer it is given', async () => {
    const provider = { getTracer: () => trace.getTracer('custom-scope') };
    pair = await connectPair([tracing({ tracer: provider })], []);
    await pair.client.ping();
    expect(find('ping', SpanKind.CLIENT).instrumentationScope.name).toBe('custom-scope');
  });
});
