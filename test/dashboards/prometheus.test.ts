/**
 * The dashboards against a real Prometheus: the demo load runs (the gateway's stack with
 * injected faults, see support/load.ts), a Prometheus started here scrapes it every
 * second with examples/gateway/prometheus.yml (targets and interval replaced) and the shipped
 * alert rules, and then every panel query of every dashboard — template variables
 * substituted as Grafana would — is evaluated through Prometheus' HTTP API. A query that
 * errors or returns no series fails the test, and so does any selector in it that
 * matches no series (a wrong label value hidden behind `or vector(0)` would otherwise
 * pass).
 *
 * Needs the `prometheus` binary, and `nats-server` for the broker families (CI installs
 * Debian's packages: .ci/system-packages); without either the suite is skipped, saying so.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ALL_FAMILIES } from '../../dashboards/src/query.ts';
import { ALERTS_FILE, loadAlertRules, loadDashboards, targetsOf, variableQuery } from './support/artifacts.ts';
import { interpolate, type Interpolation } from './support/interpolate.ts';
import { GATEWAY_JOB, type Load, startLoad } from './support/load.ts';
import { analyze, resolve } from './support/promql.ts';
import { onPath, poll, type Prometheus, startPrometheus } from './support/prometheus.ts';
import { NATS_SERVER, NATS_SKIP_MESSAGE } from '../support/nats-server.ts';

const PROMETHEUS = onPath('prometheus');

/** Runs `fn` over `items`, at most `limit` at a time (Prometheus and this machine share two cores). */
async function eachLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) await fn(items[next++] as T);
    }),
  );
}
const EXAMPLE_CONFIG = fileURLToPath(new URL('../../examples/gateway/prometheus.yml', import.meta.url));
/** Seconds: short, so a run of a few seconds yields enough samples for every rate. */
const SCRAPE_INTERVAL = 1;

if (PROMETHEUS === undefined) {
  console.warn('test/dashboards/prometheus.test.ts: SKIPPED — `prometheus` is not on PATH (CI installs it: .ci/system-packages; locally: apt-get install prometheus)');
} else if (NATS_SERVER === undefined) {
  // The load driver's broker scenario feeds the broker families.
  console.warn(`test/dashboards/prometheus.test.ts: ${NATS_SKIP_MESSAGE}`);
}

describe.skipIf(PROMETHEUS === undefined || NATS_SERVER === undefined)('dashboards against a real Prometheus scraping the demo load', () => {
  let dir: string | undefined;
  let load: Load | undefined;
  let prometheus: Prometheus | undefined;
  let started = 0;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mcp-layers-dashboards-'));
    load = await startLoad();
    const example = parse(readFileSync(EXAMPLE_CONFIG, 'utf8')) as { global?: Record<string, unknown>; scrape_configs: Array<Record<string, unknown>> };
    const config = {
      ...example,
      global: { ...example.global, scrape_interval: `${SCRAPE_INTERVAL}s`, scrape_timeout: `${SCRAPE_INTERVAL}s`, evaluation_interval: `${SCRAPE_INTERVAL}s` },
      rule_files: [ALERTS_FILE],
      scrape_configs: load.targets.map((target) => {
        const base = example.scrape_configs.find((s) => s['job_name'] === target.job) ?? {};
        return { ...base, job_name: target.job, metrics_path: target.metricsPath, static_configs: [{ targets: [target.address] }] };
      }),
    };
    started = Math.floor(Date.now() / 1000);
    prometheus = await startPrometheus({ binary: PROMETHEUS as string, config, dir });
  }, 90_000);

  afterAll(async () => {
    // Whatever happened above: no Prometheus and no load process outlives the suite.
    await Promise.allSettled([prometheus?.stop(), load?.stop()]);
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  }, 30_000);

  const jobs = () => (load as Load).targets.map((t) => t.job);
  const selectJobs = () => `job=~"${jobs().join('|')}"`;
  const variables = (): Interpolation => ({
    variables: {
      job: jobs().length === 1 ? (jobs()[0] as string) : { all: jobs().join('|') },
      instance: (load as Load).targets.length === 1 ? ((load as Load).targets[0] as { address: string }).address : { all: '.*' },
      transport: { all: '.*' },
    },
    scrapeInterval: SCRAPE_INTERVAL,
    step: 1,
    range: Math.max(60, Math.ceil(Date.now() / 1000) - started),
  });

  it('scrapes every metric family the code can emit from the load, the core of them from the gateway itself', async () => {
    const p = prometheus as Prometheus;
    const names = async (jobs: string) => new Set((await p.query(`count by (__name__) ({${jobs}, __name__=~"mcp_.+"})`)).map((s) => s.metric['__name__'] as string));
    // What the gateway's demo itself must feed (the extras job adds what a demo does not do):
    // traffic on both sides, sessions, retries, the breaker its outage opens, chaos, its sessions.
    const core = ['mcp_client_operation_duration_seconds_count', 'mcp_server_operation_duration_seconds_count', 'mcp_layers_sessions_active', 'mcp_layers_retries_total', 'mcp_layers_breaker_state', 'mcp_layers_chaos_injections_total', 'mcp_layers_gateway_sessions'];
    await poll('every metric family in Prometheus', 60_000, async () => {
      const present = await names(selectJobs());
      const missing = ALL_FAMILIES.filter((f) => !present.has(f.type === 'histogram' ? `${f.name}_count` : f.name)).map((f) => f.name);
      if (missing.length > 0) throw new Error(`not yet scraped: ${missing.join(', ')}`);
      const fromGateway = await names(`job="${GATEWAY_JOB}"`);
      const notFromGateway = core.filter((name) => !fromGateway.has(name));
      if (notFromGateway.length > 0) throw new Error(`not yet scraped from the gateway: ${notFromGateway.join(', ')}`);
      return true;
    }).catch((error: unknown) => {
      throw new Error(`${(error as Error).message}\nthe load said:\n${(load as Load).output().trim()}`, { cause: error });
    });
    // And the other way round: the load emits no mcp_ family the dashboards do not know.
    expect([...(await names(selectJobs()))].filter((name) => !resolve(name).ok)).toEqual([]);
    // The job the alert watches is the job scraped.
    expect((await p.query(`up{job="${GATEWAY_JOB}"}`)).map((s) => s.value?.[1])).toEqual(['1']);
  }, 75_000);

  it('every panel query returns series, and so does every selector in it', async () => {
    const p = prometheus as Prometheus;
    const targets = targetsOf(loadDashboards());
    expect(targets.length).toBeGreaterThan(50);
    let report: string[] = [];
    // Rates need two samples after a series first appears: give late families a few scrapes.
    await poll(
      'every panel query to return series',
      45_000,
      async () => {
        report = [];
        const end = Math.floor(Date.now() / 1000);
        const vars = variables();
        await eachLimited(targets, 6, async ({ target, where }) => {
            const expr = interpolate(target.expr, vars);
            try {
              const result = target.instant === true ? await p.query(expr, end) : await p.queryRange(expr, started, end, vars.step);
              if (result.length === 0) return void report.push(`${where}: no series for ${expr}`);
              for (const [, label] of (target.legendFormat ?? '').matchAll(/\{\{\s*(\w+)\s*\}\}/g)) {
                if (!result.some((s) => (label as string) in s.metric)) report.push(`${where}: legend {{${label}}} but no series has that label`);
              }
              for (const selector of analyze(expr).selectors) {
                if ((await p.series(selector.text, started, end)).length === 0) report.push(`${where}: ${selector.text} matches no series`);
              }
            } catch (error) {
              report.push(`${where}: ${(error as Error).message} in ${expr}`);
            }
        });
        if (report.length > 0) throw new Error(`${report.length} failing:\n${report.toSorted().join('\n')}`);
        return true;
      },
      1_000,
    );
    expect(report).toEqual([]);
  }, 60_000);

  it('every template variable lists what was scraped', async () => {
    const p = prometheus as Prometheus;
    const end = Math.floor(Date.now() / 1000);
    const vars = variables();
    // Every transport that published any metric is one the transport variable offers.
    const transports = (await p.query(`count by (transport) ({${selectJobs()}, __name__=~"mcp_.+", transport!=""})`)).map((s) => s.metric['transport'] as string);
    expect(transports.length).toBeGreaterThan(1);
    for (const dashboard of loadDashboards()) {
      for (const variable of dashboard.templating.list.filter((v) => v.type === 'query')) {
        const query = variableQuery(variable);
        if (query === undefined) continue;
        const values = await p.labelValues(query.label, interpolate(query.selector, vars), started, end);
        const expected = { job: jobs(), instance: (load as Load).targets.map((t) => t.address), transport: transports }[variable.name];
        expect(values, `${dashboard.file} › $${variable.name}`).toEqual(expect.arrayContaining(expected ?? ['(a variable the test does not know)']));
      }
    }
  });

  it('loads the alert rules and evaluates every one against the scraped data without error', async () => {
    const p = prometheus as Prometheus;
    const expected = loadAlertRules().map(({ rule }) => rule.alert ?? rule.record);
    const rules = await poll('every rule evaluated', 30_000, async () => {
      const data = await p.get<{ groups: Array<{ rules: Array<{ name: string; health: string; lastError?: string }> }> }>('/api/v1/rules');
      const all = data.groups.flatMap((g) => g.rules);
      return all.length === expected.length && all.every((r) => r.health !== 'unknown') ? all : undefined;
    });
    expect(rules.map((r) => r.name).toSorted()).toEqual(expected.toSorted());
    expect(rules.filter((r) => r.health !== 'ok').map((r) => `${r.name}: ${r.lastError}`)).toEqual([]);
    // The demo fails requests on purpose: the SLO's error ratio has data.
    expect((await p.query('mcp:request_errors:ratio_rate5m')).length).toBeGreaterThan(0);
  }, 45_000);
});
