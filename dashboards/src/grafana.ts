/**
 * A small builder for Grafana 11 dashboard JSON: the four dashboards share their
 * variables, datasource, layout and panel defaults through it, so each dashboard file
 * reads as a list of panels — title, description, unit, queries.
 *
 * Every panel queries the `${datasource}` variable (a Prometheus datasource chosen at
 * import or on the dashboard), and every query is filtered by the `job`, `instance` and
 * `transport` variables (see query.ts).
 *
 * The output is typed with Grafana's own dashboard model (@grafana/schema, generated from
 * the schema Grafana 11 validates dashboards against), so a misspelt field or a value
 * out of an enum fails the type check.
 */
import {
  type Dashboard,
  DashboardCursorSync,
  type DataSourceRef,
  type FieldConfigSource,
  FieldColorModeId,
  MappingType,
  type Panel,
  type RowPanel,
  type ThresholdsConfig,
  ThresholdsMode,
  type ValueMapping,
  type VariableModel,
  VariableRefresh,
  VariableSort,
} from '@grafana/schema';

export const DATASOURCE = { type: 'prometheus', uid: '${datasource}' } as const satisfies DataSourceRef;

/** Grafana 11.0 writes schema 39; later versions migrate it on load. */
const SCHEMA_VERSION = 39;
/** The metric whose labels fill the variables: every wrapped transport with metrics() has it from its start. */
const VARIABLE_SOURCE = 'mcp_layers_sessions_active';
export const TAG = 'mcp-layers';

export interface Query {
  expr: string;
  /** Grafana legend template, e.g. `{{mcp_method_name}}`. */
  legend?: string;
}

export type Color = 'green' | 'yellow' | 'orange' | 'red' | 'purple' | 'blue' | 'text';

export interface PanelSpec {
  title: string;
  /** What the panel shows, and what to do when it turns red (shown in the panel's tooltip). */
  description: string;
  /** A Grafana unit id: `reqps`, `percentunit`, `s`, `binBps`, `short`... */
  unit: string;
  queries: Query[];
  kind?: 'timeseries' | 'stat' | 'state-timeline';
  /** Grid columns out of 24 (default 12). */
  width?: number;
  height?: number;
  /** Thresholds as [from, color] steps; the first step starts at -Infinity. Colors lines (timeseries) or values (stat). */
  thresholds?: Array<[number | null, Color]>;
  /** Value → text and color (state-timeline, stat). */
  mappings?: Array<{ value: number; text: string; color: Color }>;
  /** Stack the series (shares of a whole). */
  stack?: boolean;
  /** Series whose name matches get this color (e.g. `/missed|failed/` in red). */
  colorSeries?: Array<{ match: string; color: Color }>;
  min?: number;
  max?: number;
  decimals?: number;
}

export interface RowSpec {
  title: string;
  panels: PanelSpec[];
}

export interface DashboardSpec {
  uid: string;
  title: string;
  description: string;
  rows: RowSpec[];
}

type Json = Record<string, unknown>;

const REF_IDS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';

function target(query: Query, index: number, instant: boolean): Json {
  return {
    datasource: DATASOURCE,
    editorMode: 'code',
    expr: query.expr,
    instant,
    legendFormat: query.legend ?? '__auto',
    range: !instant,
    refId: REF_IDS[index],
  };
}

function thresholds(steps: PanelSpec['thresholds']): ThresholdsConfig {
  const list = steps ?? [[null, 'green']];
  // Grafana's JSON has `null` for the first step (from -Infinity); its type says number.
  return { mode: ThresholdsMode.Absolute, steps: list.map(([value, color]) => ({ color, value: value as number })) };
}

function mappings(spec: PanelSpec): ValueMapping[] {
  if (spec.mappings === undefined) return [];
  const options: Record<string, { color: string; index: number; text: string }> = {};
  spec.mappings.forEach((m, index) => {
    options[String(m.value)] = { color: m.color, index, text: m.text };
  });
  return [{ options, type: MappingType.ValueToText }];
}

function overrides(spec: PanelSpec): FieldConfigSource['overrides'] {
  return (spec.colorSeries ?? []).map((c) => ({
    matcher: { id: 'byRegexp', options: c.match },
    properties: [{ id: 'color', value: { fixedColor: c.color, mode: 'fixed' } }],
  }));
}

function defaults(spec: PanelSpec): FieldConfigSource['defaults'] {
  const base: FieldConfigSource['defaults'] = {
    mappings: mappings(spec),
    thresholds: thresholds(spec.thresholds),
    unit: spec.unit,
  };
  if (spec.min !== undefined) base.min = spec.min;
  if (spec.max !== undefined) base.max = spec.max;
  if (spec.decimals !== undefined) base.decimals = spec.decimals;
  return base;
}

function panel(spec: PanelSpec, id: number, gridPos: Panel['gridPos']): Panel {
  const kind = spec.kind ?? 'timeseries';
  const common = { datasource: DATASOURCE, description: spec.description, gridPos, id, title: spec.title, type: kind };
  const instant = kind === 'stat';
  const targets = spec.queries.map((q, i) => target(q, i, instant));
  switch (kind) {
    case 'timeseries':
      return {
        ...common,
        fieldConfig: {
          defaults: {
            ...defaults(spec),
            color: { mode: FieldColorModeId.PaletteClassic },
            custom: {
              drawStyle: 'line',
              fillOpacity: spec.stack === true ? 30 : 10,
              lineWidth: 1,
              showPoints: 'never',
              spanNulls: false,
              stacking: { group: 'A', mode: spec.stack === true ? 'normal' : 'none' },
              thresholdsStyle: { mode: spec.thresholds === undefined ? 'off' : 'dashed' },
            },
          },
          overrides: overrides(spec),
        },
        options: {
          legend: { calcs: ['mean', 'max'], displayMode: 'table', placement: 'bottom', showLegend: true },
          tooltip: { mode: 'multi', sort: 'desc' },
        },
        targets,
      };
    case 'stat':
      return {
        ...common,
        fieldConfig: { defaults: { ...defaults(spec), color: { mode: FieldColorModeId.Thresholds } }, overrides: [] },
        options: {
          colorMode: 'value',
          graphMode: 'none',
          justifyMode: 'auto',
          orientation: 'auto',
          reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
          textMode: 'auto',
        },
        targets,
      };
    case 'state-timeline':
      return {
        ...common,
        fieldConfig: { defaults: { ...defaults(spec), color: { mode: FieldColorModeId.Thresholds }, custom: { fillOpacity: 80, lineWidth: 0 } }, overrides: [] },
        options: {
          alignValue: 'left',
          legend: { displayMode: 'list', placement: 'bottom', showLegend: true },
          mergeValues: true,
          rowHeight: 0.8,
          showValue: 'auto',
          tooltip: { mode: 'single', sort: 'none' },
        },
        targets,
      };
  }
}

/** Grafana also saves `definition` (the query as the variables list shows it); its schema type lacks it. */
type QueryVariable = VariableModel & { definition: string };

function variable(name: string, label: string, query: string, description: string): QueryVariable {
  return {
    allValue: '.*',
    current: { selected: true, text: ['All'], value: ['$__all'] },
    datasource: DATASOURCE,
    definition: query,
    description,
    includeAll: true,
    label,
    multi: true,
    name,
    options: [],
    query: { qryType: 1, query, refId: 'PrometheusVariableQueryEditor-VariableQuery' },
    refresh: VariableRefresh.onTimeRangeChanged,
    regex: '',
    skipUrlSync: false,
    sort: VariableSort.alphabeticalAsc,
    type: 'query',
  };
}

const VARIABLES: VariableModel[] = [
  {
    description: 'The Prometheus datasource that scrapes your mcp-layers processes.',
    includeAll: false,
    label: 'Data source',
    multi: false,
    name: 'datasource',
    options: [],
    query: 'prometheus',
    refresh: VariableRefresh.onDashboardLoad,
    regex: '',
    skipUrlSync: false,
    type: 'datasource',
  },
  variable('job', 'Job', `label_values(${VARIABLE_SOURCE}, job)`, 'Prometheus jobs scraping mcp-layers metrics (a gateway, your application).'),
  variable('instance', 'Instance', `label_values(${VARIABLE_SOURCE}{job=~"$job"}, instance)`, 'Scraped processes of the selected jobs.'),
  variable('transport', 'Transport', `label_values(${VARIABLE_SOURCE}{job=~"$job", instance=~"$instance"}, transport)`, 'The name given to wrap() (the gateway names its upstream and downstream sides).'),
];

/** Lays the rows out on Grafana's 24-column grid and numbers the panels. */
export function dashboard(spec: DashboardSpec): Dashboard & { __requires: Json[] } {
  const panels: Array<Panel | RowPanel> = [];
  const kinds = new Set<string>();
  let id = 1;
  let y = 0;
  for (const row of spec.rows) {
    panels.push({ collapsed: false, gridPos: { h: 1, w: 24, x: 0, y }, id: id++, panels: [], title: row.title, type: 'row' });
    y += 1;
    let x = 0;
    let lineHeight = 0;
    for (const p of row.panels) {
      const w = p.width ?? 12;
      const h = p.height ?? 8;
      if (x + w > 24) {
        x = 0;
        y += lineHeight;
        lineHeight = 0;
      }
      panels.push(panel(p, id++, { h, w, x, y }));
      kinds.add(p.kind ?? 'timeseries');
      x += w;
      lineHeight = Math.max(lineHeight, h);
    }
    y += lineHeight;
  }
  return {
    __requires: [
      { id: 'grafana', name: 'Grafana', type: 'grafana', version: '11.0.0' },
      { id: 'prometheus', name: 'Prometheus', type: 'datasource', version: '1.0.0' },
      ...[...kinds].toSorted().map((kind) => ({ id: kind, name: kind, type: 'panel', version: '' })),
    ],
    annotations: {
      list: [
        {
          builtIn: 1,
          datasource: { type: 'grafana', uid: '-- Grafana --' },
          enable: true,
          hide: true,
          iconColor: 'rgba(0, 211, 255, 1)',
          name: 'Annotations & Alerts',
          type: 'dashboard',
        },
      ],
    },
    description: spec.description,
    editable: true,
    fiscalYearStartMonth: 0,
    graphTooltip: DashboardCursorSync.Crosshair,
    id: null,
    links: [{ asDropdown: true, icon: 'external link', includeVars: true, keepTime: true, tags: [TAG], targetBlank: false, title: 'mcp-layers', tooltip: '', type: 'dashboards' }],
    panels,
    refresh: '30s',
    schemaVersion: SCHEMA_VERSION,
    tags: [TAG, 'mcp'],
    templating: { list: VARIABLES },
    time: { from: 'now-1h', to: 'now' },
    timepicker: {},
    timezone: '',
    title: spec.title,
    uid: spec.uid,
    version: 1,
    weekStart: '',
  };
}
