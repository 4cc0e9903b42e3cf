/**
 * Grafana's template variable interpolation for Prometheus queries, as far as the
 * dashboards use it: `$var` / `${var}` for the query variables (multi-value and "All"
 * variables are regex-escaped inside `=~` matchers, as Grafana's Prometheus datasource
 * does), and the built-in `$__rate_interval`, `$__interval`, `$__range`.
 */

export interface Interpolation {
  /** Query variables: one value, or Grafana's "All" (the variable's allValue, `.*`). */
  variables: Record<string, string | { all: string }>;
  /** Seconds. */
  scrapeInterval: number;
  /** Seconds between points of the range query ($__interval). */
  step: number;
  /** Seconds the dashboard shows ($__range). */
  range: number;
}

/** Regex-escapes a value the way Grafana does for Prometheus (backslashes doubled: it lands in a PromQL string). */
function regexEscape(value: string): string {
  return value.replace(/[\\^$*+?.()|[\]{}]/g, '\\\\$&');
}

/** Grafana's $__rate_interval: max($__interval + scrape interval, 4 × scrape interval). */
export function rateInterval(scrapeInterval: number, step: number): number {
  return Math.max(step + scrapeInterval, 4 * scrapeInterval);
}

export function interpolate(expr: string, options: Interpolation): string {
  const builtins: Record<string, string> = {
    __rate_interval: `${rateInterval(options.scrapeInterval, options.step)}s`,
    __interval: `${options.step}s`,
    __range: `${options.range}s`,
  };
  return expr.replace(/\$\{(\w+)\}|\$(\w+)/g, (whole, braced: string | undefined, bare: string | undefined) => {
    const name = (braced ?? bare) as string;
    if (name in builtins) return builtins[name] as string;
    const value = options.variables[name];
    if (value === undefined) throw new Error(`unknown variable ${whole} in ${expr}`);
    return typeof value === 'string' ? regexEscape(value) : value.all;
  });
}
