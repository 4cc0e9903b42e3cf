/**
 * PromQL builders for the dashboards, bound to the families the code registers —
 * `METRIC_FAMILIES` (the metrics layer) and `GATEWAY_METRIC_FAMILIES` (the gateway's
 * own): a selector names one of them (a histogram through its `_bucket`, `_sum` or
 * `_count` series), so a renamed or removed family fails the build instead of leaving a
 * panel that silently shows "No data".
 *
 * Every selector carries the dashboard's filters: `job` and `instance`, and `transport`
 * when the family has that label (the breaker families do not: one breaker may serve
 * several transports).
 */
import { METRIC_FAMILIES } from '#middleware/observability/metrics.ts';
import { GATEWAY_METRIC_FAMILIES } from '#gateway/gateway.ts';

/** Every metric family the code can emit. */
export const ALL_FAMILIES = [...METRIC_FAMILIES, ...GATEWAY_METRIC_FAMILIES] as const;
type Family = (typeof ALL_FAMILIES)[number];
type HistogramName = Extract<Family, { type: 'histogram' }>['name'];
type PlainName = Exclude<Family['name'], HistogramName>;
/** A series name a query may select: a counter or gauge family, or a histogram's series. */
export type SeriesName = PlainName | `${HistogramName}_${'bucket' | 'sum' | 'count'}`;

/** The range of every rate: Grafana sizes it from the scrape interval and the panel's resolution. */
export const RATE_INTERVAL = '$__rate_interval';

/** Requests only: notifications have a duration (their write) but no response, and cannot fail the same way. */
export const REQUESTS = 'mcp_method_name!~"notifications/.*"';
/** Failed exchanges, cancellations excluded: a cancelled request is the application's choice, not a failure. */
export const FAILED = 'error_type!~"|cancelled"';
/** The whole an error ratio divides by: cancelled requests ended neither well nor badly, so they are left out. */
export const NOT_CANCELLED = 'error_type!="cancelled"';

function familyOf(series: SeriesName): Family {
  const exact = ALL_FAMILIES.find((f) => f.name === series);
  if (exact !== undefined) {
    if (exact.type === 'histogram') throw new Error(`${series} is a histogram: select its _bucket, _sum or _count series`);
    return exact;
  }
  const base = series.replace(/_(bucket|sum|count)$/, '');
  const histogram = ALL_FAMILIES.find((f) => f.name === base && f.type === 'histogram');
  if (histogram === undefined) throw new Error(`${series}: no such metric family in METRIC_FAMILIES or GATEWAY_METRIC_FAMILIES`);
  return histogram;
}

/** `name{job=~"$job", instance=~"$instance", transport=~"$transport", ...matchers}`. */
export function sel(series: SeriesName, ...matchers: string[]): string {
  const family = familyOf(series);
  const filters = ['job=~"$job"', 'instance=~"$instance"'];
  if ((family.labels as readonly string[]).includes('transport')) filters.push('transport=~"$transport"');
  return `${series}{${[...filters, ...matchers].join(', ')}}`;
}

export function rate(series: SeriesName, ...matchers: string[]): string {
  return `rate(${sel(series, ...matchers)}[${RATE_INTERVAL}])`;
}

/** `sum by (labels) (expr)`, or `sum(expr)` without labels. */
export function sum(by: readonly string[], expr: string): string {
  return by.length === 0 ? `sum(${expr})` : `sum by (${by.join(', ')}) (${expr})`;
}

/** The q-quantile of a histogram family's rate, per `by`. */
export function quantile(q: number, histogram: HistogramName, by: readonly string[], ...matchers: string[]): string {
  return `histogram_quantile(${q}, ${sum(['le', ...by], rate(`${histogram}_bucket`, ...matchers))})`;
}

/**
 * part / whole per `by`, reading 0 (not "No data") while `part` has no series yet — a
 * service that never failed has an error ratio of 0.
 */
export function ratio(by: readonly string[], part: string, whole: string): string {
  const zero = by.length === 0 ? 'vector(0)' : `${sum(by, whole)} * 0`;
  return `(${sum(by, part)} or ${zero}) / ${sum(by, whole)}`;
}
