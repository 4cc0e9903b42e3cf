/**
 * The gateway's observability wiring: OTLP traces through @opentelemetry/sdk-node when the
 * standard OTEL_* variables or the config ask for it (the downstream SERVER span is the
 * parent of the upstream CLIENT span: one trace through the proxy), /metrics from the
 * metrics layers' registry (both sides, plus the gateway's own families), and logs as
 * JSON or readable lines at a level.
 */
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { start } from '../examples/run.ts';
import { CLI, DEMO_SERVER, startTestGateway, type TestGateway } from '../support/gateway.ts';

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
}

const SPAN_KIND_SERVER = 2;
const SPAN_KIND_CLIENT = 3;

/** An OTLP/HTTP JSON receiver on 127.0.0.1: what an OpenTelemetry collector would get. */
async function collector(): Promise<{ url: string; spans: OtlpSpan[]; services: Set<string>; contentTypes: string[]; close(): Promise<void> }> {
  const spans: OtlpSpan[] = [];
  const services = new Set<string>();
  const contentTypes: string[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      contentTypes.push(`${req.method} ${req.url} ${req.headers['content-type']}`);
      const parsed = JSON.parse(body) as {
        resourceSpans: Array<{ resource: { attributes: Array<{ key: string; value: { stringValue?: string } }> }; scopeSpans: Array<{ spans: OtlpSpan[] }> }>;
      };
      for (const resource of parsed.resourceSpans) {
        for (const attribute of resource.resource.attributes) if (attribute.key === 'service.name') services.add(attribute.value.stringValue ?? '');
        for (const scope of resource.scopeSpans) spans.push(...scope.spans);
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}`, spans, services, contentTypes, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

const dir = mkdtempSync(join(tmpdir(), 'mcp-layers-otel-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function callThroughCli(args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  const gateway = start([CLI, 'gateway', '--listen', '127.0.0.1:0', '--log-level', 'warn', ...args], env);
  const [, url] = await gateway.line(/^ {2}MCP +(http:\/\/127\.0\.0\.1:\d+\/mcp)/);
  expect(gateway.stdout.join('\n')).toMatch(/traces +otlp → http:\/\/127\.0\.0\.1:\d+\/v1\/traces/);
  const client = new Client({ name: 'otel-test', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(url as string)));
  await client.callTool({ name: 'echo', arguments: { text: 'traced' } });
  await client.close();
  gateway.process.kill('SIGTERM'); // shutdown flushes the spans still batched
  expect(await gateway.exited).toBe(0);
}

function expectOneTraceThroughTheProxy(spans: OtlpSpan[]): void {
  const server = spans.find((s) => s.name === 'tools/call echo' && s.kind === SPAN_KIND_SERVER);
  const client = spans.find((s) => s.name === 'tools/call echo' && s.kind === SPAN_KIND_CLIENT);
  expect(server, JSON.stringify(spans.map((s) => [s.name, s.kind]))).toBeDefined();
  expect(client).toBeDefined();
  expect(client?.traceId).toBe(server?.traceId);
  expect(client?.parentSpanId).toBe(server?.spanId);
}

describe('OTLP traces', () => {
  it('from the standard OTEL_* variables', async () => {
    const otlp = await collector();
    try {
      await callThroughCli(['--', process.execPath, DEMO_SERVER], {
        OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url,
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
        OTEL_SERVICE_NAME: 'gateway-under-test',
      });
      expect(otlp.contentTypes[0]).toBe('POST /v1/traces application/json');
      expect([...otlp.services]).toEqual(['gateway-under-test']);
      expectOneTraceThroughTheProxy(otlp.spans);
    } finally {
      await otlp.close();
    }
  });

  it('from the config file (which wins over the environment)', async () => {
    const otlp = await collector();
    const config = join(dir, 'traced.yaml');
    writeFileSync(config, `upstream:\n  command: ${process.execPath}\n  args: [${DEMO_SERVER}]\nobservability:\n  tracing:\n    exporter: otlp\n    endpoint: ${otlp.url}/v1/traces\n    serviceName: configured-gateway\n`);
    try {
      await callThroughCli(['--config', config], { OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_TRACES_EXPORTER: 'none', OTEL_SERVICE_NAME: 'from-env' });
      expect([...otlp.services]).toEqual(['configured-gateway']);
      expectOneTraceThroughTheProxy(otlp.spans);
    } finally {
      await otlp.close();
    }
  });
});

describe('/metrics and logs', () => {
  let gw: TestGateway | undefined;
  afterEach(async () => {
    await gw?.stop(0);
    gw = undefined;
  });

  it('serves both sides of every exchange, the gateway families and process metrics, in Prometheus text', async () => {
    gw = await startTestGateway({ upstream: { command: process.execPath, args: [DEMO_SERVER] } }, 'debug');
    const client = new Client({ name: 'metrics-test', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(gw.http)));
    await client.callTool({ name: 'add', arguments: { a: 1, b: 2 } });
    const response = await fetch(`${gw.base}/metrics`);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await response.text();
    expect(text).toMatch(/^mcp_server_operation_duration_seconds_count\{transport="downstream",mcp_method_name="tools\/call",gen_ai_tool_name="add",[^}]*network_transport="tcp"\} 1$/m);
    expect(text).toMatch(/^mcp_client_operation_duration_seconds_count\{transport="upstream",mcp_method_name="tools\/call",gen_ai_tool_name="add",[^}]*network_transport="pipe"\} 1$/m);
    expect(text).toMatch(/^mcp_layers_gateway_sessions\{listener="http"\} 1$/m);
    expect(text).toMatch(/^mcp_layers_sessions_active\{transport="upstream"\} 1$/m);
    expect(text).toMatch(/^process_cpu_user_seconds_total /m);
    await client.close();

    // Logs: JSON lines (the logging layer's records and the gateway's own), nothing else.
    expect(gw.logs.some((r) => r['event'] === 'exchange' && r['transport'] === 'upstream' && r['tool'] === 'add' && r['outcome'] === 'ok')).toBe(true);
    expect(gw.logs.some((r) => r['event'] === 'session-open')).toBe(true);
    expect(gw.logs.every((r) => typeof r['timestamp'] === 'string' && typeof r['level'] === 'string')).toBe(true);
  });

  it('readable log lines with --log-format pretty, at the level asked for', async () => {
    const gateway = start([CLI, 'gateway', '--listen', '127.0.0.1:0', '--log-format', 'pretty', '--log-level', 'debug', '--', process.execPath, DEMO_SERVER]);
    await gateway.line(/^Ctrl-C/);
    gateway.process.kill('SIGTERM');
    expect(await gateway.exited).toBe(0);
    expect(gateway.stderr.find((l) => l.includes('gateway listening'))).toMatch(/^\d\d:\d\d:\d\d\.\d{3} info {2}gateway listening {2}event=listening http=http:\/\/127\.0\.0\.1:\d+\/mcp /);
    expect(gateway.stderr.some((l) => / debug /.test(l) || / info  shutting down/.test(l))).toBe(true);
  });
});
