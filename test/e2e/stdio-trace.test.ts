/**
 * Trace propagation across a real process boundary: an SDK client here, an SDK server in
 * a stdio child process, both transports wrapped with tracing(), each process running
 * its own OpenTelemetry SDK. The only link between the two traces is
 * `params._meta.traceparent` on the pipe.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { SpanKind } from '@opentelemetry/api';
import type { ReadableSpan } from '@opentelemetry/sdk-trace';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tracing } from '#middleware/observability/tracing.ts';
import type { Middleware } from '#core/layer.ts';
import { wrap } from '#core/wrap.ts';
import { publish } from '../support/events.ts';
import { type OtelHarness, startOtel } from '../support/otel.ts';
import type { SpanRecord } from '../support/traced-stdio-server.ts';

const serverEntry = fileURLToPath(new URL('../support/traced-stdio-server.ts', import.meta.url));

/**
 * A minimal retry for a tool that reports a transient tool error: the request is sent
 * again (a new attempt, a new wire id) on the same exchange, as retry() does.
 */
const retryToolErrors: Middleware = async (ctx, next) => {
  await next();
  const response = ctx.response;
  if (ctx.method === 'tools/call' && ctx.idempotent && response !== undefined && 'result' in response && response.result['isError'] === true) {
    publish(ctx, 'retry', { attempt: ctx.attempts + 1, delayMs: 0, reason: 'tool_error' });
    await next();
  }
};

describe('tracing across a stdio process boundary', () => {
  let otel: OtelHarness;
  let dir: string;
  let client: Client;
  let serverSpans: () => SpanRecord[];

  beforeAll(async () => {
    otel = startOtel();
    dir = mkdtempSync(join(tmpdir(), 'mcp-layers-trace-'));
    const spanFile = join(dir, 'server-spans.jsonl');
    serverSpans = () =>
      readFileSync(spanFile, 'utf8')
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => JSON.parse(line) as SpanRecord);
    const inner = new StdioClientTransport({
      command: process.execPath,
      args: [serverEntry],
      env: { ...(process.env as Record<string, string>), MCP_LAYERS_SPAN_FILE: spanFile },
      stderr: 'inherit',
    });
    client = new Client({ name: 'e2e-client', version: '1.0.0' });
    await client.connect(wrap(inner, [tracing(), retryToolErrors], { name: 'stdio-client' }));
  });

  afterAll(async () => {
    await client?.close();
    await otel?.shutdown();
    rmSync(dir, { recursive: true, force: true });
  });

  function clientSpan(name: string): ReadableSpan {
    const spans = otel.spans().filter((s) => s.name === name && s.kind === SpanKind.CLIENT);
    expect(spans).toHaveLength(1);
    return spans[0] as ReadableSpan;
  }

  it('parents the server span on the client span through params._meta.traceparent', async () => {
    await client.callTool({ name: 'echo', arguments: { text: 'across the pipe' } });
    const parent = clientSpan('tools/call echo');
    const children = serverSpans().filter((s) => s.name === 'tools/call echo');
    expect(children).toHaveLength(1);
    const [child] = children as [SpanRecord];
    expect(child.kind).toBe(SpanKind.SERVER);
    expect(child.traceId).toBe(parent.spanContext().traceId);
    expect(child.parentSpanId).toBe(parent.spanContext().spanId);
    expect(child.attributes).toMatchObject({ 'mcp.method.name': 'tools/call', 'gen_ai.tool.name': 'echo', 'network.transport': 'pipe' });
    expect(parent.attributes).toMatchObject({ 'network.transport': 'pipe', 'mcp_layers.attempts': 1 });
    // The handshake is linked the same way.
    const initialize = serverSpans().find((s) => s.name === 'initialize');
    expect(initialize?.parentSpanId).toBe(clientSpan('initialize').spanContext().spanId);
  });

  it('shows a retried request as two attempts under one client span, each server span its child', async () => {
    // tools/list passing through teaches the stack that `flaky` is read-only, so safe to retry.
    await client.listTools();
    const result = await client.callTool({ name: 'flaky', arguments: {} });
    expect(result).toMatchObject({ content: [{ text: 'ok after 2' }] });
    const parent = clientSpan('tools/call flaky');
    expect(parent.attributes['mcp_layers.attempts']).toBe(2);
    expect(parent.attributes['error.type']).toBeUndefined();
    expect(parent.events.map((e) => e.name)).toEqual(['mcp_layers.attempt', 'mcp_layers.retry', 'mcp_layers.attempt']);
    const wireIds = parent.events.filter((e) => e.name === 'mcp_layers.attempt').map((e) => e.attributes?.['jsonrpc.request.id']);
    const children = serverSpans().filter((s) => s.name === 'tools/call flaky');
    expect(children).toHaveLength(2);
    for (const child of children) {
      expect(child.parentSpanId).toBe(parent.spanContext().spanId);
      expect(child.traceId).toBe(parent.spanContext().traceId);
    }
    // Each attempt is one server span: the ids on the wire match one to one.
    expect(children.map((c) => c.attributes['jsonrpc.request.id'])).toEqual(wireIds);
    expect(children.map((c) => c.attributes['error.type'])).toEqual(['tool_error', undefined]);
  });
});
