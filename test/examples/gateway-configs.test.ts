/**
 * The gateway configs in examples/gateway/ are valid (`mcp-layers check`) and do what
 * they say when the real CLI runs them: the stdio one in front of the example server, the
 * remote one in front of an OAuth-protected MCP server with a real authorization server
 * (oidc-provider) — the client of the gateway holds no credentials, the gateway gets and
 * sends the tokens, and no secret reaches its logs. The Prometheus scrape config points
 * where the demo serves /metrics.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { WebSocketClientTransport } from '#transports/ws/index.ts';
import { startIdentityProvider } from '../support/identity-provider.ts';
import { serveHttp } from '../support/protected-mcp.ts';
import { start, type Started } from './run.ts';

const CLI = 'src/gateway/cli/main.ts';
const run = promisify(execFile);
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function startGateway(config: string, env: NodeJS.ProcessEnv = {}): Started {
  const gateway = start([CLI, 'gateway', '--config', config, '--listen', '127.0.0.1:0', '--log-format', 'json'], env);
  cleanups.push(() => {
    if (gateway.process.exitCode === null) gateway.process.kill('SIGKILL');
  });
  return gateway;
}

describe('examples/gateway/stdio.yaml', () => {
  it('is valid, and serves the example server with its per-tool policies', async () => {
    const { stdout } = await run(process.execPath, [CLI, 'check', '--config', 'examples/gateway/stdio.yaml']);
    expect(stdout).toBe('examples/gateway/stdio.yaml: valid — upstream stdio (node)\n');

    const gateway = startGateway('examples/gateway/stdio.yaml');
    const [, ws] = await gateway.line(/(ws:\/\/127\.0\.0\.1:\d+\/mcp)/);
    const client = new Client({ name: 'config-test', version: '1.0.0' });
    await client.connect(new WebSocketClientTransport(ws as string, { reconnect: false }));
    const progress: number[] = [];
    const report = await client.callTool({ name: 'slow_report', arguments: { steps: 2, stepMs: 100 } }, undefined, { onprogress: (p) => void progress.push(p.progress) });
    expect(report).toEqual({ content: [{ type: 'text', text: 'report ready after 2 steps' }] });
    // The last progress may arrive in the same read as the response, and the SDK then drops it
    // (test/interop/stdio.test.ts explains the race); the first one is 100 ms ahead.
    expect(progress[0]).toBe(1);
    await client.close();
    gateway.process.kill('SIGTERM');
    expect(await gateway.exited).toBe(0);
    const records = gateway.stderr.flatMap((line) => (line.startsWith('{') ? [JSON.parse(line) as Record<string, unknown>] : []));
    // stderr: log turns the child's stderr into records; the logging layer records every exchange.
    expect(records.some((r) => r['event'] === 'exchange' && r['tool'] === 'slow_report' && r['outcome'] === 'ok')).toBe(true);
  });
});

describe('examples/gateway/remote-oauth.yaml', () => {
  it('is valid, and authorizes every upstream request itself (client_credentials), keeping secrets out of its logs', async () => {
    const idp = await startIdentityProvider({ accessTokenTtl: 300 });
    cleanups.push(() => idp.close());
    const upstream = await serveHttp(idp);
    cleanups.push(() => upstream.close());
    const env = { MCP_URL: upstream.url, ISSUER: idp.issuer, CLIENT_ID: idp.clientId, CLIENT_SECRET: idp.clientSecret };

    await run(process.execPath, [CLI, 'check', '--config', 'examples/gateway/remote-oauth.yaml'], { env: { ...process.env, ...env } });
    const missing = await run(process.execPath, [CLI, 'check', '--config', 'examples/gateway/remote-oauth.yaml'], { env: { ...process.env, MCP_URL: '', CLIENT_SECRET: '' } }).catch((error: { code: number; stderr: string }) => error);
    expect(missing).toMatchObject({ code: 2, stderr: expect.stringContaining('upstream.url: the environment variable MCP_URL is not set') });

    const gateway = startGateway('examples/gateway/remote-oauth.yaml', env);
    const [, http] = await gateway.line(/^ {2}MCP +(http:\/\/127\.0\.0\.1:\d+\/mcp)/);
    const client = new Client({ name: 'config-test', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(http as string))); // no credentials here
    expect(await client.callTool({ name: 'work', arguments: { ms: 0 } })).toEqual({ content: [{ type: 'text', text: 'done 1' }] });
    await client.close();
    gateway.process.kill('SIGTERM');
    expect(await gateway.exited).toBe(0);

    expect(upstream.rejected).toBe(0);
    expect(upstream.presented.length).toBeGreaterThan(0);
    expect(idp.tokenRequests).toBe(1);
    const output = [...gateway.stdout, ...gateway.stderr].join('\n');
    expect(output).toMatch(/"event":"token-refresh"/);
    for (const secret of [idp.clientSecret, ...idp.issued]) expect(output).not.toContain(secret);
  });
});

describe('examples/gateway/prometheus.yml', () => {
  it('scrapes /metrics where the demo and a default gateway listen', () => {
    const config = parse(readFileSync('examples/gateway/prometheus.yml', 'utf8')) as {
      scrape_configs: Array<{ job_name: string; metrics_path: string; static_configs: Array<{ targets: string[] }> }>;
    };
    const [job] = config.scrape_configs;
    expect(job?.metrics_path).toBe('/metrics');
    expect(job?.static_configs.flatMap((c) => c.targets)).toEqual(['127.0.0.1:8787', '127.0.0.1:8080']);
  });
});
