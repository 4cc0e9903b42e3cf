/**
 * What a worker's config decides, with the defaults filled in (docs/gateway.md "Worker"
 * lists them), and the library worker's options made from it.
 */
import type { GatewayConfig } from '../config/gateway.ts';
import { type BrokerAddress, parseBrokerUrl, type WorkerConfig } from '../config/worker.ts';

export const WORKER_DEFAULTS = {
  host: '127.0.0.1',
  /** The OpenTelemetry Prometheus exporter's port: the one a metrics scraper looks at first. */
  port: 9464,
  /** Each session is a child process: the gateway's downstream.maxSessions, not the library's 1 000. */
  maxSessions: 64,
  drainTimeoutMs: 10_000,
  metricsPath: '/metrics',
};

export interface WorkerSettings {
  readonly address: BrokerAddress;
  readonly host: string;
  readonly port: number;
  readonly drainTimeoutMs: number;
  readonly metricsPath: string;
  readonly processMetrics: boolean;
}

/** The settings of a config whose `worker` section was validated (its broker URL reads). */
export function workerSettingsOf(config: GatewayConfig): WorkerSettings {
  const worker = config.worker as WorkerConfig;
  const parsed = parseBrokerUrl(worker.broker);
  if (!parsed.ok) throw new Error(`worker.broker: ${parsed.problem}`);
  return {
    address: parsed.address,
    host: worker.host ?? WORKER_DEFAULTS.host,
    port: worker.port ?? WORKER_DEFAULTS.port,
    drainTimeoutMs: worker.drainTimeoutMs ?? config.shutdown?.drainTimeoutMs ?? WORKER_DEFAULTS.drainTimeoutMs,
    metricsPath: config.observability?.metrics?.path ?? WORKER_DEFAULTS.metricsPath,
    processMetrics: config.observability?.metrics?.processMetrics ?? true,
  };
}

/**
 * serveNats / serveRedis options from the section (without `onsession` and the buses):
 * only what the file says, so the library's defaults stay the library's — but for
 * `maxSessions`, whose default here counts child processes.
 */
export function libraryOptions(worker: WorkerConfig, settings: WorkerSettings): Record<string, unknown> {
  const { address } = settings;
  const given: Record<string, unknown> = {
    servers: address.servers,
    service: address.service,
    ...(address.connectOptions === undefined ? {} : { connectOptions: { ...address.connectOptions } }),
    maxSessions: worker.maxSessions ?? WORKER_DEFAULTS.maxSessions,
    drainTimeoutMs: settings.drainTimeoutMs,
  };
  for (const key of ['prefix', 'maxInFlight', 'maxInFlightPerSession', 'ackWaitMs', 'dedupWindowMs', 'maxAgeMs', 'sessionIdleMs', 'clientCheckMs', 'id', 'idempotentTools', 'nonIdempotentTools', 'storage', 'maxPayload'] as const) {
    if (worker[key] !== undefined) given[key] = worker[key];
  }
  return given;
}
