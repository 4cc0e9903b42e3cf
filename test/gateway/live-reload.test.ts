/**
 * Live reload with real sessions (docs/gateway.md, "Live reload"): a checked config is
 * applied without dropping a session — the open ones keep the stacks and the upstream they
 * opened with, new ones get the new config, tokens apply from the next request — and a
 * config with a problem changes nothing. The CLI's SIGHUP and --watch are at the end.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { afterEach, describe, expect, it } from 'vitest';
import type { GatewayConfig } from '#gateway/config/gateway.ts';
import { validateConfig } from '#gateway/config/load.ts';
import { WebSocketClientTransport } from '#transports/ws/client.ts';
import { CLI, closeAll, fixtureUpstream, startTestGateway, type TestGateway } from '../support/gateway.ts';
import { within } from '../support/events.ts';
import { parseExposition, value } from '../support/prom-text.ts';

type Config = Omit<GatewayConfig, 'downstream'> & { downstream?: GatewayConfig['downstream'] };

const clients: Client[] = [];
let gw: TestGateway | undefined;
afterEach(async () => {
  await closeAll(clients, gw);
  gw = undefined;
});

/** The config as the test gateway runs it (port 0), checked: what a reload of that file would read. */
const loaded = (config: Config) => validateConfig({ ...config, downstream: { port: 0, ...config.downstream } }, 'test config');

async function connect(url: string, token?: string): Promise<Client> {
  const client = new Client({ name: 'reload-test', version: '1.0.0' });
  const headers = token === undefined ? undefined : { authorization: `Bearer ${token}` };
  await client.connect(
    url.startsWith('ws')
      ? new WebSocketClientTransport(url, { reconnect: false, ...(headers === undefined ? {} : { headers }) })
      : new StreamableHTTPClientTransport(new URL(url), headers === undefined ? {} : { requestInit: { headers } }),
  );
  clients.push(client);
  return client;
}

const echoOf = async (client: Client, name: string, text: string) => ((await client.callTool({ name, arguments: { text } })) as { content: Array<{ text: string }> }).content[0]?.text;
const echo = async (client: Client, text: string) => ((await client.callTool({ name: 'echo', arguments: { text } })) as { content: Array<{ text: string }> }).content[0]?.text;

async function scrape(): Promise<ReturnType<typeof parseExposition>> {
  return parseExposition(await (await fetch(`${gw?.base}/metrics`)).text());
}

describe('live reload', () => {
  it('keeps every open session on the stacks it opened with; sessions opened after the reload get the new ones', async () => {
    const before: Config = { upstream: { ...fixtureUpstream(), layers: [] }, downstream: { layers: [] } };
    gw = await startTestGateway(before);
    const closed: string[] = [];
    gw.gateway.on('session-close', ({ id }) => closed.push(id));
    const old = await connect(gw.http);
    expect(await echo(old, 'one')).toBe('one');

    // The new upstream stack counts every call it carries: which stack carried a call is on /metrics.
    const outcome = await gw.gateway.reload('api', loaded({ ...before, upstream: { ...fixtureUpstream(), layers: [{ metrics: {} }] } }));
    expect(outcome).toMatchObject({ outcome: 'applied', generation: 2, changes: ['upstream'] });
    expect(gw.gateway.generation).toBe(2);

    expect(await echo(old, 'two')).toBe('two');
    const calls = async () => value(await scrape(), 'mcp_client_operation_duration_seconds_count', { mcp_method_name: 'tools/call' });
    expect(await calls()).toBe(0);
    const fresh = await connect(gw.ws);
    expect(await echo(fresh, 'three')).toBe('three');
    expect(await calls()).toBe(1);
    expect(await echo(old, 'four')).toBe('four');
    expect(await calls()).toBe(1);
    expect(closed).toEqual([]);
    expect(gw.gateway.sessions.size).toBe(2);

    const samples = await scrape();
    expect(value(samples, 'mcp_layers_gateway_config_generation')).toBe(2);
    expect(value(samples, 'mcp_layers_gateway_config_last_reload_success')).toBe(1);
    expect(value(samples, 'mcp_layers_gateway_config_reloads_total', { trigger: 'api', outcome: 'applied' })).toBe(1);
  });

  it('serves new sessions from a changed upstream while the open ones stay on the one they started on', async () => {
    gw = await startTestGateway({ upstream: fixtureUpstream('v1') });
    const old = await connect(gw.http);
    // The v2 fixture has a tool the v1 one lacks: which server a session reached is in its list.
    const names = async (client: Client) => (await client.listTools()).tools.map((t) => t.name);
    expect(await names(old)).not.toContain('ask');
    expect(await gw.gateway.reload('api', loaded({ upstream: fixtureUpstream('v2') }))).toMatchObject({ outcome: 'applied', changes: ['upstream'] });
    const fresh = await connect(gw.http);
    expect(await names(fresh)).toContain('ask');
    expect(await names(old)).not.toContain('ask');
    expect(await echo(old, 'still here')).toBe('still here');
  });

  it('a config with a problem changes nothing: the running generation keeps serving, and the outcome names the problem', async () => {
    gw = await startTestGateway({ upstream: fixtureUpstream() });
    const client = await connect(gw.http);
    const outcome = await gw.gateway.reload('api', loaded({ upstream: { command: 'mcp-layers-no-such-command' } }));
    expect(outcome.outcome).toBe('rejected');
    expect(outcome.generation).toBe(1);
    expect(outcome.problems).toEqual([expect.stringMatching(/^upstream\.command: .*mcp-layers-no-such-command/)]);
    expect(await echo(client, 'unchanged')).toBe('unchanged');
    const fresh = await connect(gw.ws);
    expect(await echo(fresh, 'new session, old config')).toBe('new session, old config');
    const samples = await scrape();
    expect(value(samples, 'mcp_layers_gateway_config_last_reload_success')).toBe(0);
    expect(value(samples, 'mcp_layers_gateway_config_generation')).toBe(1);
  });

  it('new bearer tokens apply from the next request, on open sessions too; a token that was removed is refused', async () => {
    const config = (token: string): Config => ({ upstream: fixtureUpstream(), downstream: { bearerTokens: [token] } });
    gw = await startTestGateway(config('token-one'));
    const client = await connect(gw.http, 'token-one');
    expect(await echo(client, 'before')).toBe('before');
    expect(await gw.gateway.reload('api', loaded(config('token-two')))).toMatchObject({ outcome: 'applied', changes: ['downstream.bearerTokens'] });
    await expect(echo(client, 'after')).rejects.toThrow(/401|Unauthorized/);
    const fresh = await connect(gw.http, 'token-two');
    expect(await echo(fresh, 'with the new token')).toBe('with the new token');
  });

  it("a client's new policy applies to its open sessions from the next request", async () => {
    const config = (tools: string[]): Config => ({ upstream: fixtureUpstream(), downstream: { clients: [{ name: 'ide', token: 'ide-token', tools }] } });
    gw = await startTestGateway(config(['*']));
    const client = await connect(gw.ws, 'ide-token');
    expect(await echo(client, 'allowed')).toBe('allowed');
    expect(await gw.gateway.reload('api', loaded(config(['add'])))).toMatchObject({ outcome: 'applied', changes: ['downstream.clients'] });
    await expect(echo(client, 'no longer allowed')).rejects.toThrow(/echo/);
    expect((await client.listTools()).tools.map((t) => t.name)).toEqual(['add']);
  });

  it('several upstreams: an open session gets the new set at once — one added, one removed, the others untouched — and hears list_changed', async () => {
    const fixture = (sdk: 'v1' | 'v2') => ({ ...fixtureUpstream(sdk), stderr: 'ignore' as const });
    const before: Config = { upstreams: { kept: fixture('v1'), removed: fixture('v1') } };
    gw = await startTestGateway(before);
    const client = await connect(gw.http);
    let changed = Promise.withResolvers<void>();
    client.setNotificationHandler(ToolListChangedNotificationSchema, () => changed.resolve());
    const names = async () => (await client.listTools()).tools.map((t) => t.name);
    expect(await names()).toEqual(expect.arrayContaining(['kept__echo', 'removed__echo']));
    const keptBefore = await client.callTool({ name: 'kept__append', arguments: { item: 'before the reload' } });
    expect(keptBefore.isError).not.toBe(true);

    const outcome = await gw.gateway.reload('api', loaded({ upstreams: { kept: fixture('v1'), added: fixture('v2') } }));
    expect(outcome).toMatchObject({ outcome: 'applied', changes: ['upstreams'] });
    await within(changed.promise, 'notifications/tools/list_changed after the reload');
    changed = Promise.withResolvers<void>();
    const after = await names();
    expect(after).toEqual(expect.arrayContaining(['kept__echo', 'added__echo', 'added__ask']));
    expect(after.filter((name) => name.startsWith('removed__'))).toEqual([]);
    // The kept upstream is the same server process as before the reload: it remembers the call it ran then.
    const ledger = JSON.parse(((await client.callTool({ name: 'kept__ledger', arguments: {} })) as { content: Array<{ text: string }> }).content[0]?.text as string) as unknown;
    expect(ledger).toMatchObject({ runs: { append: 1 } });
    await expect(client.callTool({ name: 'removed__echo', arguments: { text: 'gone' } })).rejects.toThrow(/removed__echo/);
    expect(await echoOf(client, 'added__echo', 'new')).toBe('new');
    expect(gw.gateway.sessions.size).toBe(1);
  });

  it('a new session limit applies to the next session', async () => {
    const config = (maxSessions: number): Config => ({ upstream: fixtureUpstream(), downstream: { maxSessions, evictIdleSessions: false } });
    gw = await startTestGateway(config(1));
    await connect(gw.ws);
    await expect(connect(gw.ws)).rejects.toThrow(/503/);
    expect(await gw.gateway.reload('api', loaded(config(2)))).toMatchObject({ outcome: 'applied', changes: ['downstream.maxSessions'] });
    expect(await echo(await connect(gw.ws), 'admitted')).toBe('admitted');
  });

  it('names what only a restart changes, and keeps its running value', async () => {
    gw = await startTestGateway({ upstream: fixtureUpstream() }, 'info');
    const port = gw.gateway.address.port;
    const outcome = await gw.gateway.reload('api', validateConfig({ upstream: fixtureUpstream(), downstream: { port: port + 1, maxSessions: 3 } }, 'test config'));
    expect(outcome).toMatchObject({ outcome: 'applied', changes: ['downstream.maxSessions'] });
    expect(gw.gateway.settings).toMatchObject({ port: 0, maxSessions: 3 });
    expect(gw.gateway.address.port).toBe(port);
    expect(gw.logs.find((r) => r['event'] === 'config-reload-restart-needed')).toMatchObject({ setting: 'downstream.port' });
  });
});

describe('mcp-layers gateway: SIGHUP and --watch', () => {
  it('reloads on every save and on SIGHUP, keeps the running config when the file is bad, and /metrics says so', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mcp-layers-reload-cli-'));
    const file = join(dir, 'mcp-layers.yaml');
    const [command, script] = [process.execPath, fixtureUpstream()?.args?.[0] as string];
    const yaml = (maxSessions: string) => `upstream:\n  command: ${JSON.stringify(command)}\n  args: [${JSON.stringify(script)}]\ndownstream:\n  port: 0\n  maxSessions: ${maxSessions}\n`;
    writeFileSync(file, yaml('4'));
    const child = spawn(process.execPath, [CLI, 'gateway', '--config', file, '--watch', '--log-format', 'json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const records: Array<Record<string, unknown>> = [];
      const waiters: Array<{ matches: (r: Record<string, unknown>) => boolean; resolve: (r: Record<string, unknown>) => void }> = [];
      let partial = '';
      child.stderr.on('data', (chunk: Buffer) => {
        const lines = (partial + chunk.toString()).split('\n');
        partial = lines.pop() as string;
        for (const line of lines) {
          if (!line.startsWith('{')) continue;
          const record = JSON.parse(line) as Record<string, unknown>;
          records.push(record);
          for (const waiter of waiters.splice(0)) {
            if (waiter.matches(record)) waiter.resolve(record);
            else waiters.push(waiter);
          }
        }
      });
      const next = (matches: (r: Record<string, unknown>) => boolean) => new Promise<Record<string, unknown>>((resolve) => waiters.push({ matches, resolve }));
      const reload = (outcome: string, generation: number) => next((r) => r['event'] === 'config-reload' && r['outcome'] === outcome && r['generation'] === generation);
      let stdout = '';
      const metricsUrl = await new Promise<string>((resolve) =>
        child.stdout.on('data', (chunk: Buffer) => {
          stdout += chunk.toString();
          const match = /metrics +(http:\/\/127\.0\.0\.1:\d+\/metrics)/.exec(stdout);
          if (match !== null) resolve(match[1] as string);
        }),
      );
      const generation = async () => value(parseExposition(await (await fetch(metricsUrl)).text()), 'mcp_layers_gateway_config_generation');

      let waited = reload('applied', 2);
      writeFileSync(file, yaml('5'));
      expect(await waited).toMatchObject({ trigger: 'watch', changes: ['downstream.maxSessions'] });

      waited = reload('rejected', 2);
      writeFileSync(file, yaml('lots'));
      const rejected = await waited;
      expect(rejected['problems']).toEqual(['downstream.maxSessions: expected an integer >= 1, got "lots" (line 6)']);
      expect(await generation()).toBe(2);

      // A save the watch reads, then a SIGHUP: the same file, read again, changes nothing more.
      waited = reload('applied', 3);
      writeFileSync(file, yaml('6'));
      await waited;
      waited = next((r) => r['event'] === 'config-reload' && r['trigger'] === 'signal');
      child.kill('SIGHUP');
      expect(await waited).toMatchObject({ outcome: 'unchanged', generation: 3 });
      expect(await generation()).toBe(3);
    } finally {
      child.kill('SIGTERM');
      if (child.exitCode === null) await once(child, 'exit');
    }
    expect(child.exitCode).toBe(0);
  });
});
