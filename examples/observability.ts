/**
 * Traces, metrics and logs for MCP traffic, both sides of the wire.
 *
 *   node examples/observability.ts
 *
 * An MCP client and server (the official SDK) talk over an in-process transport, each
 * wrapped with logging(), tracing() and metrics(). Spans go to the console — or to an
 * OTLP collector when OTEL_EXPORTER_OTLP_ENDPOINT is set — log records are JSON lines,
 * and the Prometheus metrics are served on http://127.0.0.1:<port>/metrics. After a few
 * exchanges the program prints part of its own /metrics and exits.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { ConsoleSpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace';
import { Registry } from 'prom-client';
import winston from 'winston';
import { z } from 'zod';
import { logging, metrics, metricsHandler, tracing, wrap } from '#mcp-layers';

// 1. OpenTelemetry: the application owns the SDK; mcp-layers only uses @opentelemetry/api.
const otlp = process.env['OTEL_EXPORTER_OTLP_ENDPOINT'] !== undefined || process.env['OTEL_TRACES_EXPORTER'] !== undefined;
const sdk = new NodeSDK({
  serviceName: 'mcp-layers-example',
  autoDetectResources: false, // keeps the console output short
  // With OTLP configured, the SDK builds its exporter from the OTEL_* variables.
  ...(otlp ? {} : { spanProcessors: [new SimpleSpanProcessor({ exporter: new ConsoleSpanExporter() })] }),
  metricReaders: [], // metrics go to Prometheus through prom-client below
  logRecordProcessors: [], // logs go through winston below
});
sdk.start();

// 2. Your registry and your logger: mcp-layers never touches the global ones.
const registry = new Registry();
const logger = winston.createLogger({ level: 'info', format: winston.format.json(), transports: [new winston.transports.Console()] });
const observe = () => [logging({ logger }), tracing(), metrics({ registry })];

// 3. A server and a client, each transport wrapped.
const server = new McpServer({ name: 'weather', version: '1.0.0' });
server.registerTool('forecast', { inputSchema: { city: z.string() }, annotations: { readOnlyHint: true } }, async ({ city }) =>
  city === 'Atlantis'
    ? { content: [{ type: 'text', text: `No forecast for ${city}` }], isError: true }
    : { content: [{ type: 'text', text: `Sunny in ${city}` }] },
);
const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
await server.connect(wrap(serverSide, observe(), { name: 'weather-server' }));
const client = new Client({ name: 'example-client', version: '1.0.0' });
await client.connect(wrap(clientSide, observe(), { name: 'weather-client' }));

// 4. /metrics on loopback, for Prometheus to scrape.
const http = createServer(metricsHandler(registry)).listen(0, '127.0.0.1');
await new Promise((resolve) => http.once('listening', resolve));
const url = `http://127.0.0.1:${(http.address() as AddressInfo).port}/metrics`;
console.log(`metrics served on ${url}`);

// 5. A few exchanges: successes, a tool error, a protocol error.
await client.listTools();
for (const city of ['Lisbon', 'Oslo', 'Atlantis']) await client.callTool({ name: 'forecast', arguments: { city } });
await client.callTool({ name: 'no-such-tool', arguments: {} }).catch(() => {});

// 6. Scrape ourselves, print the tool-call latency counts, and shut down.
const scrape = await (await fetch(url)).text();
console.log(scrape.split('\n').filter((line) => line.startsWith('mcp_client_operation_duration_seconds_count')).join('\n'));
await client.close();
await server.close();
http.close();
await sdk.shutdown();
