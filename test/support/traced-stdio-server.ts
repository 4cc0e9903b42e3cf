/**
 * A stdio MCP server in its own process, its transport wrapped with tracing(), running
 * the real OpenTelemetry Node SDK. Every span it ends is appended as one JSON line to
 * the file named by MCP_LAYERS_SPAN_FILE, synchronously — so a span is on disk before
 * the response it belongs to is written to stdout.
 *
 * Tools: `echo` (read-only) and `flaky` (read-only; reports a tool error on its first call).
 */
import { appendFileSync } from 'node:fs';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { type ReadableSpan, SimpleSpanProcessor, type SpanExporter } from '@opentelemetry/sdk-trace';
import { z } from 'zod';
import { tracing } from '#middleware/observability/tracing.ts';
import { wrap } from '#core/wrap.ts';

const spanFile = process.env['MCP_LAYERS_SPAN_FILE'];
if (spanFile === undefined) throw new Error('MCP_LAYERS_SPAN_FILE is not set');

/** The parts of a span the tests compare. */
export interface SpanRecord {
  name: string;
  kind: number;
  traceId: string;
  spanId: string;
  parentSpanId: string | undefined;
  attributes: Record<string, unknown>;
  events: string[];
}

const fileExporter: SpanExporter = {
  export(spans: ReadableSpan[], done) {
    const lines = spans.map((span) =>
      JSON.stringify({
        name: span.name,
        kind: span.kind,
        traceId: span.spanContext().traceId,
        spanId: span.spanContext().spanId,
        parentSpanId: span.parentSpanContext?.spanId,
        attributes: span.attributes,
        events: span.events.map((e) => e.name),
      } satisfies SpanRecord),
    );
    appendFileSync(spanFile, `${lines.join('\n')}\n`);
    done({ code: 0 });
  },
  shutdown: async () => {},
};

process.env['OTEL_LOGS_EXPORTER'] ??= 'none';
process.env['OTEL_METRICS_EXPORTER'] ??= 'none';
const sdk = new NodeSDK({ spanProcessors: [new SimpleSpanProcessor({ exporter: fileExporter })], autoDetectResources: false });
sdk.start();

const server = new McpServer({ name: 'traced-stdio-server', version: '1.0.0' });
server.registerTool('echo', { inputSchema: { text: z.string() }, annotations: { readOnlyHint: true } }, async ({ text }) => ({
  content: [{ type: 'text', text }],
}));
let flakyCalls = 0;
server.registerTool('flaky', { inputSchema: {}, annotations: { readOnlyHint: true } }, async () => {
  flakyCalls++;
  return flakyCalls === 1 ? { content: [{ type: 'text', text: 'try again' }], isError: true } : { content: [{ type: 'text', text: `ok after ${flakyCalls}` }] };
});

const transport = wrap(new StdioServerTransport(), [tracing()], { name: 'stdio-server' });
await server.connect(transport);
// The parent closing stdin ends the session; nothing else keeps the process alive.
process.stdin.once('end', () => {
  void sdk.shutdown().finally(() => process.exit(0));
});
