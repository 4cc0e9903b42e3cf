/**
 * `npm run demo` (examples/demo.ts) in its plain mode: bounded load through the gateway
 * under injected faults, one summary line per second, a final line, exit 0 — with
 * /metrics reachable while it runs (the dashboards are proven against it).
 */
import { createServer } from 'node:net';
import { expect, it } from 'vitest';
import { start } from './run.ts';

it('runs for the duration it is given, prints a line per second and a summary, with /metrics served meanwhile', async () => {
  const demo = start(['examples/demo.ts', '--duration', '3', '--port', '0', '--plain', '--rate', '30']);
  const [, metricsUrl] = await demo.line(/metrics (http:\/\/127\.0\.0\.1:\d+\/metrics)/);
  await demo.line(/^t=1s /);
  const metrics = await (await fetch(metricsUrl as string)).text();
  expect(metrics).toMatch(/^mcp_client_operation_duration_seconds_count\{transport="upstream",mcp_method_name="tools\/call"/m);
  expect(metrics).toMatch(/^mcp_server_operation_duration_seconds_count\{transport="downstream",mcp_method_name="tools\/call"/m);
  expect(metrics).toMatch(/^mcp_layers_chaos_injections_total\{/m);
  expect(await demo.exited).toBe(0);

  const final = demo.stdout.find((line) => line.startsWith('final '));
  const fields = Object.fromEntries((final ?? '').split(' ').slice(1).map((pair) => pair.split('=') as [string, string]));
  expect(Number(fields['requests'])).toBeGreaterThan(30);
  expect(Number(fields['requests/s'])).toBeGreaterThan(5);
  expect(fields['breaker']).toMatch(/^(closed|open|half-open)$/);
  expect(fields['p95']).toMatch(/^\d+\.\d+ms$/);
  expect(demo.stdout.filter((line) => /^t=\d+s requests\/s=[\d.]+ requests=\d+ errors=\d+ retries=\d+ breaker=\w+ p50=[\d.]+ms p95=[\d.]+ms outage=(on|off)$/.test(line)).length).toBeGreaterThanOrEqual(3);
});

it('runs beside `npm start`: with 8787 taken and no --port, it says so and takes a free port', async () => {
  // Whoever holds 8787 already (a running `npm start`) will do; otherwise this test holds it.
  const holder = createServer();
  await new Promise<void>((resolve) => {
    holder.once('error', () => resolve());
    holder.listen(8787, '127.0.0.1', () => resolve());
  });
  try {
    const demo = start(['examples/demo.ts', '--duration', '1', '--plain', '--rate', '10', '--clients', '2']);
    const [, url] = await demo.line(/^demo: 127\.0\.0\.1:8787 is in use \(npm start\?\); the demo runs its own gateway on (http:\/\/127\.0\.0\.1:\d+\/mcp) instead$/);
    expect(url).not.toContain(':8787/');
    expect(await demo.exited).toBe(0);
    expect(demo.stdout.some((line) => line.startsWith('final '))).toBe(true);
  } finally {
    await new Promise<void>((resolve) => (holder.listening ? holder.close(() => resolve()) : resolve()));
  }
});
