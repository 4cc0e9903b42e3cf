/**
 * The gateway's own metric families (the gateway's, a worker's, the reloader's, the list
 * cache's) in a registry that several of them may share: gateways in one process, a
 * gateway and its reloader, the tests. prom-client refuses a name registered twice, so
 * each family is created by the first to ask and reused by the rest, as the metrics
 * layers reuse theirs.
 */
import { collectDefaultMetrics, Counter, Gauge, type Registry } from 'prom-client';

/** A family as the gateway lists it (docs/gateway.md, docs/metrics.md). */
export interface Family<L extends string = string> {
  readonly name: string;
  readonly help: string;
  readonly labels: readonly L[];
}

/** The registry's counter of this name, created the first time. */
export function counterOf<L extends string>(registry: Registry, family: Family<L>): Counter<L> {
  return (registry.getSingleMetric(family.name) as Counter<L> | undefined) ?? new Counter({ name: family.name, help: family.help, labelNames: [...family.labels], registers: [registry] });
}

/** The registry's gauge of this name, created the first time; `read` sets it when scraped. */
export function gaugeOf<L extends string>(registry: Registry, family: Family<L>, read?: () => number): Gauge<L> {
  const existing = registry.getSingleMetric(family.name) as Gauge<L> | undefined;
  if (existing !== undefined) return existing;
  return new Gauge({
    name: family.name,
    help: family.help,
    labelNames: [...family.labels],
    registers: [registry],
    ...(read === undefined ? {} : { collect(this: Gauge<L>) { this.set(read()); } }),
  });
}

/** Node's process metrics, once per registry. */
export function collectProcessMetrics(registry: Registry): void {
  if (registry.getSingleMetric('process_cpu_user_seconds_total') === undefined) collectDefaultMetrics({ register: registry });
}
