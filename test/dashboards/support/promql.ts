/**
 * Reads PromQL the way the dashboards' tests need: the vector selectors a query makes
 * (metric name and label matchers), its grouping labels and range durations — parsed
 * with the Prometheus project's own grammar (@prometheus-io/lezer-promql, the parser
 * behind the Prometheus UI), and resolved against the families the code registers
 * (`METRIC_FAMILIES`, `GATEWAY_METRIC_FAMILIES`).
 *
 * Grafana's variables are not PromQL: `$__rate_interval` and friends are replaced by a
 * duration before parsing; `$job` inside a label matcher's string is left as it is.
 */
import { parser } from '@prometheus-io/lezer-promql';
import { type MetricFamily } from '#middleware/observability/metrics.ts';
import { ALL_FAMILIES } from '../../../dashboards/src/query.ts';

type SyntaxNode = ReturnType<typeof parser.parse>['topNode'];

export interface Matcher {
  label: string;
  op: '=' | '!=' | '=~' | '!~';
  value: string;
}

export interface Selector {
  /** The metric name, or undefined for `{__name__=~"..."}`-only selectors. */
  name: string | undefined;
  matchers: Matcher[];
  /** The selector as written. */
  text: string;
}

export interface Analysis {
  selectors: Selector[];
  /** Labels of `by (...)`, `without (...)`, `on (...)`, `ignoring (...)`, `group_left (...)`. */
  groupingLabels: string[];
  /** Range durations as written (`$__rate_interval`, `5m`, and subquery ranges). */
  ranges: string[];
  /** Parse errors, with the text around them. */
  errors: string[];
}

const GRAFANA_DURATIONS = /\$__(rate_interval|interval|range)\b|\$\{__(rate_interval|interval|range)\}/g;

export function analyze(expr: string): Analysis {
  const ranges = [...expr.matchAll(/\[([^\]]*)\]/g)].map((m) => m[1] as string);
  // Same length as the original, so node offsets could map back; 1m is a valid duration anywhere a range is.
  const source = expr.replace(GRAFANA_DURATIONS, '1m');
  const tree = parser.parse(source);
  const selectors: Selector[] = [];
  const groupingLabels: string[] = [];
  const errors: string[] = [];
  const text = (node: SyntaxNode) => source.slice(node.from, node.to);
  tree.iterate({
    enter(ref) {
      const node = ref.node;
      if (ref.type.isError) {
        errors.push(`syntax error at ${ref.from}: …${source.slice(Math.max(0, ref.from - 20), ref.from + 20)}…`);
        return;
      }
      if (ref.name === 'VectorSelector') {
        selectors.push(selectorOf(node, text));
        return false;
      }
      if (ref.name === 'GroupingLabels') {
        for (let child = node.firstChild; child !== null; child = child.nextSibling) {
          if (child.name === 'LabelName') groupingLabels.push(text(child));
          if (child.name === 'QuotedLabelName') groupingLabels.push(JSON.parse(text(child)) as string);
        }
        return false;
      }
      return undefined;
    },
  });
  return { selectors, groupingLabels, ranges, errors };
}

function selectorOf(node: SyntaxNode, text: (node: SyntaxNode) => string): Selector {
  let name: string | undefined;
  const matchers: Matcher[] = [];
  for (let child = node.firstChild; child !== null; child = child.nextSibling) {
    if (child.name === 'Identifier') name = text(child);
    if (child.name !== 'LabelMatchers') continue;
    for (let m = child.firstChild; m !== null; m = m.nextSibling) {
      if (m.name !== 'UnquotedLabelMatcher' && m.name !== 'QuotedLabelMatcher' && m.name !== 'QuotedLabelName') continue;
      if (m.name === 'QuotedLabelName') {
        // {"metric.name"} (UTF-8 names): a metric name in quotes.
        name = JSON.parse(text(m)) as string;
        continue;
      }
      const label = m.getChild('LabelName') ?? m.getChild('QuotedLabelName');
      const op = m.getChild('MatchOp');
      const value = m.getChild('StringLiteral');
      if (label === null || op === null || value === null) continue;
      const labelText = label.name === 'QuotedLabelName' ? (JSON.parse(text(label)) as string) : text(label);
      matchers.push({ label: labelText, op: text(op) as Matcher['op'], value: unquote(text(value)) });
    }
  }
  const nameMatcher = matchers.find((m) => m.label === '__name__' && m.op === '=');
  return { name: name ?? nameMatcher?.value, matchers: matchers.filter((m) => m.label !== '__name__' || m.op !== '='), text: text(node) };
}

/** A PromQL string literal's value: "…" and '…' with Go escapes, or `…` raw. */
function unquote(literal: string): string {
  if (literal.startsWith('`')) return literal.slice(1, -1);
  const body = literal.slice(1, -1);
  return body.replace(/\\(.)/g, (_, c: string) => ({ n: '\n', t: '\t', '\\': '\\', '"': '"', "'": "'" })[c] ?? c);
}

/** Whether a matcher accepts a series whose label has `value` ('' when the label is absent). */
export function accepts(matcher: Matcher, value: string): boolean {
  switch (matcher.op) {
    case '=':
      return value === matcher.value;
    case '!=':
      return value !== matcher.value;
    case '=~':
      return new RegExp(`^(?:${matcher.value})$`).test(value);
    case '!~':
      return !new RegExp(`^(?:${matcher.value})$`).test(value);
  }
}

export type Resolution =
  | { ok: true; family: MetricFamily; series: string; suffix: '' | '_bucket' | '_sum' | '_count' }
  | { ok: false; problem: string };

/** Labels Prometheus adds to every scraped series. */
export const TARGET_LABELS = ['job', 'instance'];

/**
 * Which family a series name belongs to: counters and gauges by their exact name
 * (counters end in `_total`), histograms only through `_bucket`, `_sum` or `_count` —
 * a histogram's bare name selects nothing in Prometheus.
 */
export function resolve(series: string, families: readonly MetricFamily[] = ALL_FAMILIES): Resolution {
  const exact = families.find((f) => f.name === series);
  if (exact !== undefined) {
    if (exact.type === 'histogram') return { ok: false, problem: `${series} is a histogram: Prometheus has only its _bucket, _sum and _count series` };
    return { ok: true, family: exact, series, suffix: '' };
  }
  const suffix = /_(bucket|sum|count)$/.exec(series)?.[0] as '_bucket' | '_sum' | '_count' | undefined;
  if (suffix !== undefined) {
    const base = families.find((f) => f.name === series.slice(0, -suffix.length));
    if (base?.type === 'histogram') return { ok: true, family: base, series, suffix };
    if (base !== undefined) return { ok: false, problem: `${series}: ${base.name} is a ${base.type}, it has no ${suffix} series` };
  }
  const close = families.find((f) => f.name === `${series}_total`);
  return { ok: false, problem: `${series}: no such metric family in METRIC_FAMILIES or GATEWAY_METRIC_FAMILIES${close === undefined ? '' : ` (did you mean ${close.name}?)`}` };
}

/** The labels a selector of `resolution` may match on. */
export function labelsOf(resolution: Extract<Resolution, { ok: true }>): string[] {
  return [...resolution.family.labels, ...TARGET_LABELS, ...(resolution.suffix === '_bucket' ? ['le'] : [])];
}
