/** Parses Prometheus / OpenMetrics exposition text into samples, the way a scraper reads it. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
  /** The exemplar's labels, when the line carries one (OpenMetrics). */
  exemplar: Record<string, string> | undefined;
}

const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

function parseLabels(text: string | undefined): Record<string, string> {
  const labels: Record<string, string> = {};
  if (text === undefined) return labels;
  for (const match of text.matchAll(LABEL)) labels[match[1] as string] = (match[2] as string).replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
  return labels;
}

export function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*?)\})?\s+(\S+)(?:\s+#\s+\{(.*?)\}.*)?$/.exec(line);
    if (match === null) throw new Error(`unparseable exposition line: ${line}`);
    samples.push({ name: match[1] as string, labels: parseLabels(match[2]), value: Number(match[3]), exemplar: match[4] === undefined ? undefined : parseLabels(match[4]) });
  }
  return samples;
}

/** Samples of `name` whose labels include every pair in `where`. */
export function select(samples: Sample[], name: string, where: Record<string, string> = {}): Sample[] {
  return samples.filter((s) => s.name === name && Object.entries(where).every(([k, v]) => s.labels[k] === v));
}

/** The single value of `name` matching `where` (0 when there is no such series). */
export function value(samples: Sample[], name: string, where: Record<string, string> = {}): number {
  const found = select(samples, name, where);
  if (found.length > 1) throw new Error(`${found.length} series of ${name} match ${JSON.stringify(where)}`);
  return found[0]?.value ?? 0;
}
