/**
 * A real Prometheus for the dashboards' live test: the `prometheus` binary (Debian's
 * package in CI) started on 127.0.0.1 with a temporary config and data directory, and a
 * small client for its HTTP API. `stop()` ends the process (SIGTERM, then SIGKILL) and
 * must run in afterAll, even when a test failed.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { findBinary as onPath, freePort } from '../../support/local.ts';
import { join } from 'node:path';
import { stringify } from 'yaml';

export { findBinary as onPath, freePort } from '../../support/local.ts';

/** Calls `check` until it returns a value other than undefined, at most `timeoutMs`; the last failure explains a timeout. */
export async function poll<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined>, intervalMs = 250): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
      last = undefined;
    } catch (error) {
      last = error;
    }
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last === undefined ? '' : `: ${(last as Error).message ?? String(last)}`}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

export interface Series {
  metric: Record<string, string>;
  values?: Array<[number, string]>;
  value?: [number, string];
}

export class PrometheusApiError extends Error {}

export interface Prometheus {
  readonly url: string;
  readonly process: ChildProcess;
  /** An instant query at `time` (seconds; default now). */
  query(expr: string, time?: number): Promise<Series[]>;
  queryRange(expr: string, start: number, end: number, step: number): Promise<Series[]>;
  /** Series matching a selector between start and end (the series API). */
  series(selector: string, start: number, end: number): Promise<Array<Record<string, string>>>;
  /** Values of `label` on series matching `selector` (what Grafana's label_values() asks). */
  labelValues(label: string, selector: string, start: number, end: number): Promise<string[]>;
  get<T>(path: string, params?: Record<string, string | number>): Promise<T>;
  stop(): Promise<void>;
}

/** No Prometheus started here lives longer than this, whatever happens to the test process. */
const MAX_LIFETIME_S = 300;

export interface StartOptions {
  binary: string;
  /** The configuration, as an object (written as YAML). */
  config: Record<string, unknown>;
  /** An empty temporary directory for the config and the TSDB. */
  dir: string;
}

export async function startPrometheus(options: StartOptions): Promise<Prometheus> {
  const configFile = join(options.dir, 'prometheus.yml');
  writeFileSync(configFile, stringify(options.config));
  // A free port can be taken between the probe and Prometheus' bind: try a few.
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    try {
      return await launch(options.binary, configFile, join(options.dir, `data-${attempt}`), port);
    } catch (error) {
      lastError = error;
      if (!/address already in use/i.test(String((error as Error).message))) throw error;
    }
  }
  throw lastError;
}

async function launch(binary: string, configFile: string, dataDir: string, port: number): Promise<Prometheus> {
  const url = `http://127.0.0.1:${port}`;
  const args = [`--config.file=${configFile}`, `--storage.tsdb.path=${dataDir}`, `--web.listen-address=127.0.0.1:${port}`, '--storage.tsdb.retention.time=1h', '--log.level=warn'];
  // Under coreutils' timeout when there is one: even if the test process is killed before
  // its afterAll, Prometheus ends on its own (timeout passes our SIGTERM on to it).
  const watchdog = onPath('timeout');
  const child =
    watchdog === undefined
      ? spawn(binary, args, { stdio: ['ignore', 'ignore', 'pipe'] })
      : spawn(watchdog, ['--kill-after=5', String(MAX_LIFETIME_S), binary, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-8_000);
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let ended = false;
  void exited.then(() => (ended = true));

  const stop = async (): Promise<void> => {
    if (ended || child.exitCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  };

  async function get<T>(path: string, params: Record<string, string | number> = {}): Promise<T> {
    const query = new URLSearchParams(Object.fromEntries(Object.entries(params).map(([k, v]) => [k, String(v)])));
    const response = await fetch(`${url}${path}${query.size > 0 ? `?${query}` : ''}`);
    const body = (await response.json()) as { status: string; data: T; error?: string; errorType?: string };
    if (body.status !== 'success') throw new PrometheusApiError(`${body.errorType ?? response.status}: ${body.error ?? 'unknown error'}`);
    return body.data;
  }

  try {
    await poll('Prometheus to be ready', 30_000, async () => {
      if (ended) throw new Error(`prometheus exited: ${stderr.trim()}`);
      const response = await fetch(`${url}/-/ready`).catch(() => undefined);
      return response?.ok === true ? true : undefined;
    });
  } catch (error) {
    await stop();
    throw new Error(`${(error as Error).message}\n${stderr.trim()}`, { cause: error });
  }

  return {
    url,
    process: child,
    get,
    query: async (expr, time) => (await get<{ result: Series[] }>('/api/v1/query', { query: expr, ...(time === undefined ? {} : { time }) })).result,
    queryRange: async (expr, start, end, step) => (await get<{ result: Series[] }>('/api/v1/query_range', { query: expr, start, end, step })).result,
    series: (selector, start, end) => get<Array<Record<string, string>>>('/api/v1/series', { 'match[]': selector, start, end }),
    labelValues: (label, selector, start, end) => get<string[]>(`/api/v1/label/${encodeURIComponent(label)}/values`, { 'match[]': selector, start, end }),
    stop,
  };
}
