/**
 * examples/observability.ts runs as documented — `node examples/observability.ts` — and
 * exits by itself, having printed spans, log records and its own /metrics.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const example = fileURLToPath(new URL('../../examples/observability.ts', import.meta.url));
const root = fileURLToPath(new URL('../..', import.meta.url));

interface ConsoleSpan {
  parent: string | undefined;
  name: string;
  id: string;
  kind: number;
}

/** Reads the spans ConsoleSpanExporter printed (util.inspect of each span). */
function consoleSpans(output: string): ConsoleSpan[] {
  const span = /parentSpanContext: (?:undefined|\{[^}]*?spanId: '([0-9a-f]{16})'[^}]*\}),\s*traceState: [^\n]*\n\s*name: '([^']+)',\s*id: '([0-9a-f]{16})',\s*kind: (\d)/g;
  return [...output.matchAll(span)].map((m) => ({ parent: m[1], name: m[2] as string, id: m[3] as string, kind: Number(m[4]) }));
}

describe('examples/observability.ts', () => {
  it('runs with plain node, prints spans, logs and metrics, and exits 0', async () => {
    const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('OTEL_')));
    const child = spawn(process.execPath, [example], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(stderr).toBe('');
    expect(code).toBe(0);

    expect(stdout).toMatch(/^metrics served on http:\/\/127\.0\.0\.1:\d+\/metrics$/m);
    expect(stdout).toMatch(/^mcp_client_operation_duration_seconds_count\{transport="weather-client",mcp_method_name="tools\/call",gen_ai_tool_name="forecast",error_type="tool_error",[^}]*\} 1$/m);
    expect(stdout).toMatch(/^mcp_client_operation_duration_seconds_count\{transport="weather-client",mcp_method_name="tools\/call",gen_ai_tool_name="forecast",mcp_protocol_version="[^"]+"\} 2$/m);

    // Every tool call's server span is the child of its client span.
    const spans = consoleSpans(stdout);
    const clients = spans.filter((s) => s.name === 'tools/call forecast' && s.kind === 2);
    const servers = spans.filter((s) => s.name === 'tools/call forecast' && s.kind === 1);
    expect(clients).toHaveLength(3);
    expect(servers.map((s) => s.parent).toSorted()).toEqual(clients.map((s) => s.id).toSorted());

    // Log records are JSON lines carrying the trace ids of those spans.
    const records = stdout
      .split('\n')
      .filter((line) => line.startsWith('{"'))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    const calls = records.filter((r) => r['event'] === 'exchange' && r['tool'] === 'forecast' && r['direction'] === 'outbound');
    expect(calls.map((r) => r['outcome'])).toEqual(['ok', 'ok', 'tool_error']);
    expect(calls.map((r) => r['span_id']).toSorted()).toEqual(clients.map((s) => s.id).toSorted());
  });
});
