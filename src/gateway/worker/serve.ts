/**
 * Runs a worker the way `mcp-layers worker` does — logger, trace export, banner, signals
 * — with the gateway's parts (src/gateway/serve.ts): the same logger rules, the same
 * trace export, the same handling of SIGTERM / SIGINT (a graceful drain; a second signal
 * more than half a second later ends the process at once, code 1).
 */
import type { LoadedConfig } from '../config/load.ts';
import type { GatewayLogger } from '../logger.ts';
import type { TraceExport } from '../otel.ts';
import { type ServeOptions, serveLogger, startTraces, stopOnSignals, stopper } from '../serve.ts';
import { StdioWorker } from './worker.ts';

export interface ServedWorker {
  readonly worker: StdioWorker;
  readonly logger: GatewayLogger;
  readonly traces: TraceExport | undefined;
  /** Resolves once the worker has shut down (a signal, or stop()). */
  readonly stopped: Promise<void>;
  /** Graceful shutdown, as on SIGTERM. */
  stop(): Promise<void>;
}

export async function serveWorker(loaded: LoadedConfig, options: ServeOptions = {}): Promise<ServedWorker> {
  const logger = serveLogger(loaded, options);
  const traces = await startTraces(loaded, options.env ?? process.env);
  let worker: StdioWorker;
  try {
    worker = await StdioWorker.start(loaded, { logger });
  } catch (error) {
    await traces?.shutdown().catch(() => {});
    throw error;
  }
  const { stopped, stop } = stopper(logger, traces, () => worker.shutdown());
  if (options.signals !== false) stopOnSignals(logger, stop, () => worker.stopped);
  const { address } = worker.settings;
  // Only now say we are up: a supervisor that signals as soon as it reads this gets a drain, not a kill.
  logger.info('worker serving', { event: 'listening', broker: address.description, worker: worker.id, ...worker.urls, upstream: `${worker.upstream.kind}: ${worker.upstream.description}`, traces: traces?.description ?? 'off' });
  if (options.banner !== false) (options.banner ?? process.stdout).write(workerBanner(worker, traces));
  return { worker, logger, traces, stopped, stop };
}

/** What a person needs: where the worker serves, where to look at it, how a client connects. */
export function workerBanner(worker: StdioWorker, traces: TraceExport | undefined): string {
  const { address, drainTimeoutMs } = worker.settings;
  const urls = worker.urls;
  const module = address.broker === 'nats' ? 'NatsClientTransport' : 'RedisClientTransport';
  return [
    'mcp-layers worker — serving',
    `  broker     ${address.description}   (worker ${worker.id})`,
    `  upstream   ${worker.upstream.kind}: ${worker.upstream.description} (a process per session)`,
    `  metrics    ${urls.metrics}`,
    `  health     ${urls.health}, ${urls.ready}`,
    `  traces     ${traces?.description ?? 'off (set OTEL_EXPORTER_OTLP_ENDPOINT or observability.tracing)'}`,
    '',
    `Connect with the MCP TypeScript SDK and mcp-layers/${address.broker}:`,
    `  await new Client({ name: 'my-app', version: '1.0.0' }).connect(new ${module}({ servers: '${address.description.slice(0, address.description.lastIndexOf('/'))}', service: '${address.service}' }));`,
    '',
    `SIGTERM or Ctrl-C drains the worker (requests in hand get up to ${drainTimeoutMs % 1000 === 0 ? `${drainTimeoutMs / 1000} s` : `${drainTimeoutMs} ms`} to finish).`,
    '',
  ].join('\n');
}
