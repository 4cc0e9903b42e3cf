/**
 * The dashboards and alert rules against the code, without a Prometheus: the committed
 * JSON is what dashboards/build.ts generates; every panel is a well-formed Grafana 11
 * panel with a unit and a description on the `${datasource}` variable; every query
 * parses, filters by job and instance and rates over `$__rate_interval`; and the metric
 * names cross-check both ways — every family the metrics layer can emit is on a panel,
 * and every metric a panel or an alert queries is one it emits (with labels it has).
 * prometheus.test.ts then runs every query against a real Prometheus.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { generate } from '../../dashboards/build.ts';
import { ALL_FAMILIES } from '../../dashboards/src/query.ts';
import { DASHBOARDS_DIR, loadAlertRules, loadDashboards, panelsOf, targetsOf, variableQuery } from './support/artifacts.ts';
import { interpolate, rateInterval } from './support/interpolate.ts';
import { accepts, analyze, labelsOf, resolve, TARGET_LABELS } from './support/promql.ts';

const dashboards = loadDashboards();
const targets = targetsOf(dashboards);
const rules = loadAlertRules();
const OPERATION_HISTOGRAMS = new Set(['mcp_client_operation_duration_seconds', 'mcp_server_operation_duration_seconds']);

describe('dashboards: the committed files', () => {
  it('are exactly what dashboards/build.ts generates (run `npm run dashboards` after changing dashboards/src)', () => {
    const generated = generate();
    expect(dashboards.map((d) => d.file)).toEqual([...generated.keys()].toSorted());
    for (const [file, text] of generated) expect(readFileSync(`${DASHBOARDS_DIR}${file}`, 'utf8'), file).toBe(text);
  });

  it('are the four dashboards the project promises, each with a unique uid', () => {
    expect(dashboards.map((d) => d.file)).toEqual(['mcp-auth.json', 'mcp-overview.json', 'mcp-resilience.json', 'mcp-transport.json']);
    const uids = dashboards.map((d) => d.uid);
    expect(new Set(uids).size).toBe(uids.length);
    for (const uid of uids) expect(uid.length).toBeLessThanOrEqual(40); // Grafana's limit
  });
});

describe('dashboards: the Grafana 11 model', () => {
  it.each(dashboards.map((d) => [d.file, d] as const))('%s: a ${datasource} Prometheus variable, and job and instance variables on it', (_file, dashboard) => {
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(39);
    const byName = new Map(dashboard.templating.list.map((v) => [v.name, v]));
    expect(byName.get('datasource')).toMatchObject({ type: 'datasource', query: 'prometheus' });
    for (const name of ['job', 'instance']) {
      const variable = byName.get(name);
      expect(variable, name).toMatchObject({ type: 'query', datasource: { type: 'prometheus', uid: '${datasource}' }, includeAll: true, multi: true, allValue: '.*' });
      expect(variableQuery(variable!)?.label).toBe(name);
    }
    // instance follows job.
    expect(variableQuery(byName.get('instance')!)?.selector).toContain('job=~"$job"');
  });

  it.each(dashboards.map((d) => [d.file, d] as const))('%s: every panel has a unit, a description and queries on ${datasource}', (_file, dashboard) => {
    const ids = dashboard.panels.flatMap((p) => [p.id, ...(p.panels ?? []).map((c) => c.id)]);
    expect(new Set(ids).size, 'panel ids are unique').toBe(ids.length);
    const panels = panelsOf(dashboard);
    expect(panels.length).toBeGreaterThan(0);
    for (const panel of panels) {
      const where = `${dashboard.file} › ${panel.title}`;
      expect(panel.fieldConfig?.defaults?.unit, `${where}: unit`).toMatch(/\S/);
      expect((panel.description ?? '').trim().length, `${where}: description`).toBeGreaterThan(30);
      expect(panel.datasource, where).toEqual({ type: 'prometheus', uid: '${datasource}' });
      expect(panel.targets?.length, `${where}: queries`).toBeGreaterThan(0);
      const refIds = (panel.targets ?? []).map((t) => t.refId);
      expect(new Set(refIds).size, `${where}: refIds`).toBe(refIds.length);
      for (const target of panel.targets ?? []) expect(target.datasource, where).toEqual({ type: 'prometheus', uid: '${datasource}' });
    }
  });

  it.each(dashboards.map((d) => [d.file, d] as const))('%s: panels lie on the 24-column grid without overlapping', (_file, dashboard) => {
    const placed = dashboard.panels.map((p) => ({ title: p.title, ...p.gridPos }));
    for (const p of placed) {
      expect(p.x >= 0 && p.w > 0 && p.x + p.w <= 24 && p.h > 0, p.title).toBe(true);
    }
    for (const [i, a] of placed.entries()) {
      for (const b of placed.slice(i + 1)) {
        const overlap = a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
        expect(overlap, `${a.title} overlaps ${b.title}`).toBe(false);
      }
    }
  });
});

describe('dashboards: the queries', () => {
  it('parse, filter every selector by job and instance, and rate over $__rate_interval', () => {
    const problems: string[] = [];
    for (const { target, where } of targets) {
      const analysis = analyze(target.expr);
      problems.push(...analysis.errors.map((e) => `${where}: ${e}`));
      for (const selector of analysis.selectors) {
        for (const label of TARGET_LABELS) {
          if (!selector.matchers.some((m) => m.label === label && m.op === '=~' && m.value === `$${label}`)) problems.push(`${where}: ${selector.text} is not filtered by ${label}=~"$${label}"`);
        }
        const resolved = resolve(selector.name ?? '');
        if (resolved.ok && resolved.family.labels.includes('transport') && !selector.matchers.some((m) => m.label === 'transport' && m.value === '$transport')) {
          problems.push(`${where}: ${selector.text} is not filtered by transport`);
        }
      }
      for (const range of analysis.ranges) if (range !== '$__rate_interval') problems.push(`${where}: range [${range}] instead of [$__rate_interval]`);
    }
    expect(problems).toEqual([]);
  });

  it('leave cancellations out of every error rate (dashboards and alerts)', () => {
    const queries = [...targets.map((t) => ({ where: t.where, expr: t.target.expr })), ...rules.map(({ rule }) => ({ where: rule.alert ?? rule.record ?? '?', expr: rule.expr }))];
    const problems: string[] = [];
    let errorSelectors = 0;
    for (const { where, expr } of queries) {
      for (const selector of analyze(expr).selectors) {
        if (!OPERATION_HISTOGRAMS.has((selector.name ?? '').replace(/_(bucket|sum|count)$/, ''))) continue;
        const onErrorType = selector.matchers.filter((m) => m.label === 'error_type');
        const selects = (value: string) => onErrorType.every((m) => accepts(m, value));
        // A selector of failures (no successful exchange in it) must not count cancellations.
        if (!selects('')) {
          errorSelectors++;
          if (selects('cancelled')) problems.push(`${where}: ${selector.text} counts cancelled requests as failures`);
        }
      }
    }
    expect(problems).toEqual([]);
    expect(errorSelectors).toBeGreaterThan(5);
  });

  it('legends name labels the query keeps', () => {
    const problems: string[] = [];
    for (const { target, where } of targets) {
      const grouping = new Set(analyze(target.expr).groupingLabels);
      for (const [, label] of (target.legendFormat ?? '').matchAll(/\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}/g)) {
        if (!grouping.has(label as string)) problems.push(`${where}: legend {{${label}}} but the query keeps only (${[...grouping].join(', ')})`);
      }
    }
    expect(problems).toEqual([]);
  });
});

describe('dashboards ⇄ code: the metric families', () => {
  it('every metric family the code can emit (metrics layer, gateway) is on some panel', () => {
    const shown = new Set<string>();
    for (const { target } of targets) {
      for (const selector of analyze(target.expr).selectors) {
        const resolved = resolve(selector.name ?? '');
        if (resolved.ok) shown.add(resolved.family.name);
      }
    }
    for (const dashboard of dashboards) {
      for (const variable of dashboard.templating.list) {
        const query = variable.type === 'query' ? variableQuery(variable) : undefined;
        if (query !== undefined) expect(resolve(analyze(query.selector).selectors[0]?.name ?? '').ok, `${dashboard.file} variable ${variable.name}`).toBe(true);
      }
    }
    expect(ALL_FAMILIES.map((f) => f.name).filter((name) => !shown.has(name))).toEqual([]);
  });

  it('every metric a panel queries is one the code emits, with labels it has', () => {
    const problems: string[] = [];
    for (const { target, where } of targets) {
      const analysis = analyze(target.expr);
      const known: string[] = [...TARGET_LABELS];
      for (const selector of analysis.selectors) {
        const resolved = resolve(selector.name ?? '');
        if (!resolved.ok) {
          problems.push(`${where}: ${resolved.problem}`);
          continue;
        }
        const labels = labelsOf(resolved);
        known.push(...labels);
        for (const m of selector.matchers) if (!labels.includes(m.label)) problems.push(`${where}: ${selector.name} has no label ${m.label}`);
      }
      for (const label of analysis.groupingLabels) if (!known.includes(label)) problems.push(`${where}: groups by ${label}, which none of its metrics has`);
    }
    expect(problems).toEqual([]);
  });

  it('every metric an alert rule queries is one the code emits (or up, or a recording rule of the file)', () => {
    const recorded = new Set(rules.flatMap(({ rule }) => (rule.record === undefined ? [] : [rule.record])));
    const problems: string[] = [];
    for (const { rule } of rules) {
      const where = rule.alert ?? rule.record ?? '?';
      const analysis = analyze(rule.expr);
      problems.push(...analysis.errors.map((e) => `${where}: ${e}`));
      for (const selector of analysis.selectors) {
        const name = selector.name ?? '';
        if (name === 'up' || recorded.has(name)) continue;
        const resolved = resolve(name);
        if (!resolved.ok) {
          problems.push(`${where}: ${resolved.problem}`);
          continue;
        }
        const labels = labelsOf(resolved);
        for (const m of selector.matchers) if (!labels.includes(m.label)) problems.push(`${where}: ${name} has no label ${m.label}`);
      }
    }
    expect(problems).toEqual([]);
    // Each kind of alert the project promises is there.
    expect(rules.flatMap(({ rule }) => (rule.alert === undefined ? [] : [rule.alert])).toSorted()).toEqual([
      'MCPBrokerGarbage',
      'MCPBrokerRedeliveriesRefused',
      'MCPCircuitBreakerOpen',
      'MCPErrorBudgetBurnFast',
      'MCPErrorBudgetBurnSlow',
      'MCPGatewayConfigReloadFailed',
      'MCPGatewayDown',
      'MCPRequestLatencyHigh',
      'MCPRetryBudgetExhausted',
      'MCPTokenRefreshFailing',
      'MCPTokenStoreFailing',
    ]);
    for (const { rule } of rules.filter((r) => r.rule.alert !== undefined)) {
      expect(rule.labels?.['severity'], rule.alert).toMatch(/^(page|critical|warning|ticket)$/);
      expect(rule.annotations?.['summary'], rule.alert).toMatch(/\S/);
      expect(rule.annotations?.['description'], rule.alert).toMatch(/\S/);
    }
  });
});

describe('the PromQL reader the cross-check relies on', () => {
  it('finds selectors, matchers, grouping labels and ranges, Grafana variables included', () => {
    const a = analyze('histogram_quantile(0.95, sum by (le, gen_ai_tool_name) (rate(mcp_client_operation_duration_seconds_bucket{job=~"$job", error_type!~"|cancelled"}[$__rate_interval]))) / on (job) group_left sum(up)');
    expect(a.errors).toEqual([]);
    expect(a.selectors.map((s) => s.name)).toEqual(['mcp_client_operation_duration_seconds_bucket', 'up']);
    expect(a.selectors[0]?.matchers).toEqual([
      { label: 'job', op: '=~', value: '$job' },
      { label: 'error_type', op: '!~', value: '|cancelled' },
    ]);
    expect(a.groupingLabels).toEqual(['le', 'gen_ai_tool_name', 'job']);
    expect(a.ranges).toEqual(['$__rate_interval']);
    expect(analyze('{__name__="mcp_layers_retries_total", reason="x"}').selectors[0]).toMatchObject({ name: 'mcp_layers_retries_total', matchers: [{ label: 'reason', op: '=', value: 'x' }] });
    expect(analyze('sum(rate(foo[5m]').errors).not.toEqual([]);
  });

  it('resolves histogram series and counters, and refuses what Prometheus would not have', () => {
    expect(resolve('mcp_client_operation_duration_seconds_count')).toMatchObject({ ok: true, suffix: '_count' });
    expect(resolve('mcp_layers_batch_size_bucket')).toMatchObject({ ok: true, suffix: '_bucket' });
    expect(resolve('mcp_layers_retries_total')).toMatchObject({ ok: true, suffix: '' });
    expect(resolve('mcp_client_operation_duration_seconds')).toMatchObject({ ok: false, problem: expect.stringContaining('is a histogram') });
    expect(resolve('mcp_layers_retries')).toMatchObject({ ok: false, problem: expect.stringContaining('did you mean mcp_layers_retries_total') });
    expect(resolve('mcp_layers_retries_total_count')).toMatchObject({ ok: false });
    expect(resolve('mcp_layers_sessions_active_sum')).toMatchObject({ ok: false, problem: expect.stringContaining('is a gauge') });
    expect(accepts({ label: 'error_type', op: '!~', value: '|cancelled' }, 'cancelled')).toBe(false);
    expect(accepts({ label: 'error_type', op: '!~', value: '|cancelled' }, '-32001')).toBe(true);
  });
});

describe('the Grafana interpolation the live test relies on', () => {
  it('substitutes variables as Grafana does for Prometheus: regex-escaped values, All as its allValue, built-in intervals', () => {
    const vars = { variables: { job: 'mcp-layers-gateway', instance: '127.0.0.1:9464', transport: { all: '.*' } }, scrapeInterval: 15, step: 30, range: 3600 };
    expect(interpolate('rate(x{job=~"$job", instance=~"${instance}", transport=~"$transport"}[$__rate_interval]) / $__range', vars)).toBe(
      'rate(x{job=~"mcp-layers-gateway", instance=~"127\\\\.0\\\\.0\\\\.1:9464", transport=~".*"}[60s]) / 3600s',
    );
    expect(rateInterval(15, 30)).toBe(60); // max(interval + scrape, 4 × scrape)
    expect(rateInterval(15, 120)).toBe(135);
    expect(() => interpolate('x{a="$nope"}', vars)).toThrow('unknown variable $nope');
  });
});
