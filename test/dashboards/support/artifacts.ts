/** The shipped dashboards and alert rules, read from disk as a user would import them. */
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

export const DASHBOARDS_DIR = fileURLToPath(new URL('../../../dashboards/', import.meta.url));
export const ALERTS_FILE = `${DASHBOARDS_DIR}alerts.yaml`;
export const ALERT_TESTS_FILE = `${DASHBOARDS_DIR}alerts.test.yaml`;

export interface Target {
  refId: string;
  expr: string;
  legendFormat?: string;
  instant?: boolean;
  range?: boolean;
  datasource?: { type?: string; uid?: string };
}

export interface Panel {
  id: number;
  type: string;
  title: string;
  description?: string;
  datasource?: { type?: string; uid?: string };
  gridPos: { h: number; w: number; x: number; y: number };
  fieldConfig?: { defaults?: { unit?: string } };
  targets?: Target[];
  panels?: Panel[];
}

export interface Variable {
  name: string;
  type: string;
  query: unknown;
  datasource?: { type?: string; uid?: string };
  allValue?: string;
  includeAll?: boolean;
  multi?: boolean;
}

export interface Dashboard {
  file: string;
  uid: string;
  title: string;
  schemaVersion: number;
  panels: Panel[];
  templating: { list: Variable[] };
}

export function loadDashboards(): Dashboard[] {
  return readdirSync(DASHBOARDS_DIR)
    .filter((f) => f.endsWith('.json'))
    .toSorted()
    .map((file) => ({ ...(JSON.parse(readFileSync(`${DASHBOARDS_DIR}${file}`, 'utf8')) as Omit<Dashboard, 'file'>), file }));
}

/** Every panel, those inside collapsed rows included; rows themselves are not panels that query. */
export function panelsOf(dashboard: Dashboard): Panel[] {
  const out: Panel[] = [];
  for (const panel of dashboard.panels) {
    if (panel.type === 'row') {
      out.push(...(panel.panels ?? []));
    } else {
      out.push(panel);
    }
  }
  return out;
}

export interface PanelTarget {
  dashboard: Dashboard;
  panel: Panel;
  target: Target;
  /** "mcp-overview.json › Error ratio (sent) › A" */
  where: string;
}

export function targetsOf(dashboards: readonly Dashboard[]): PanelTarget[] {
  return dashboards.flatMap((dashboard) =>
    panelsOf(dashboard).flatMap((panel) => (panel.targets ?? []).map((target) => ({ dashboard, panel, target, where: `${dashboard.file} › ${panel.title} › ${target.refId}` }))),
  );
}

/** The PromQL of a query variable: `label_values(metric{...}, label)` → the metric selector and the label. */
export function variableQuery(variable: Variable): { selector: string; label: string } | undefined {
  const query = typeof variable.query === 'string' ? variable.query : (variable.query as { query?: string } | undefined)?.query;
  if (query === undefined) return undefined;
  const match = /^label_values\((.+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$/.exec(query.trim());
  if (match === null) throw new Error(`variable ${variable.name}: expected label_values(selector, label), got ${query}`);
  return { selector: match[1] as string, label: match[2] as string };
}

export interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export function loadAlertRules(): Array<{ group: string; rule: Rule }> {
  const file = parse(readFileSync(ALERTS_FILE, 'utf8')) as { groups: Array<{ name: string; rules: Rule[] }> };
  return file.groups.flatMap((g) => g.rules.map((rule) => ({ group: g.name, rule })));
}
