/**
 * Runs a gateway the way the CLI does — logger, trace export, banner, signals — for
 * `mcp-layers gateway`, `npm start` and the demo alike. The parts are exported for
 * `mcp-layers worker` (src/gateway/worker/serve.ts), which runs the same way.
 *
 * SIGTERM / SIGINT: graceful shutdown (stop accepting, drain up to the deadline, close
 * sessions and children, flush traces); `stopped` resolves and the process may end with
 * code 0. Another signal more than half a second later ends the process at once (code 1).
 * SIGHUP, and `reload.watch` on every change of the file, reload the config (reload/).
 */
import type { Writable } from 'node:stream';
import type { LoadedConfig } from './config/load.ts';
import { ConfigError } from './config/load.ts';
import { Gateway } from './gateway.ts';
import { createGatewayLogger, type GatewayLogger, type LogFormat, type LogLevel } from './logger.ts';
import { startTraceExport, type TraceExport, TraceExportUnavailableError } from './otel.ts';
import { watchConfigFile } from './reload/watch.ts';

export interface ServeOptions {
  /** Overrides the config's observability.logs.level (LOG_LEVEL otherwise). */
  logLevel?: LogLevel;
  logFormat?: LogFormat;
  /** Where the logger writes (default stderr). */
  logStream?: Writable;
  /** Where the banner goes (default stdout); false prints none. */
  banner?: Writable | false;
  /** Install SIGTERM/SIGINT handlers (default true). */
  signals?: boolean;
  env?: NodeJS.ProcessEnv;
  /** How to read the config again (SIGHUP), and the file to watch for changes (`--watch`). Default: the running config cannot be reloaded. */
  reload?: { load: () => LoadedConfig; watch?: string | undefined };
}

export interface Served {
  readonly gateway: Gateway;
  readonly logger: GatewayLogger;
  readonly traces: TraceExport | undefined;
  /** Resolves once the gateway has shut down (a signal, or stop()). */
  readonly stopped: Promise<void>;
  /** Graceful shutdown, as on SIGTERM. */
  stop(): Promise<void>;
}

/** Signals closer together than this are one request to stop (see onSignal). */
const DUPLICATE_SIGNAL_MS = 500;

const LEVELS: readonly LogLevel[] = ['error', 'warn', 'info', 'http', 'verbose', 'debug', 'silly'];

export async function serve(loaded: LoadedConfig, options: ServeOptions = {}): Promise<Served> {
  const env = options.env ?? process.env;
  const logger = serveLogger(loaded, options);
  // The SDK is registered before any traffic, so the first spans are exported.
  const traces = await startTraces(loaded, env);
  let gateway: Gateway;
  try {
    gateway = await Gateway.start(loaded, { logger, ...(options.reload === undefined ? {} : { load: options.reload.load }) });
  } catch (error) {
    await traces?.shutdown().catch(() => {});
    throw error;
  }
  const file = options.reload?.watch;
  const watch =
    file === undefined
      ? undefined
      : watchConfigFile(file, () => void gateway.reload('watch'), {
          onerror: (error) => logger.error(`--watch: ${file} can no longer be watched (${error.message}); SIGHUP still reloads it`, { event: 'config-watch-failed' }),
        });
  const { stopped, stop } = stopper(logger, traces, () => {
    watch?.close();
    return gateway.shutdown();
  });
  if (options.signals !== false) {
    stopOnSignals(logger, stop, () => gateway.stopped);
    process.on('SIGHUP', () => void gateway.reload('signal'));
  }
  // Only now say we are up: a supervisor that signals as soon as it reads this gets a drain, not a kill.
  logger.info('gateway listening', { event: 'listening', ...gateway.urls, upstream: `${gateway.upstream.kind}: ${gateway.upstream.description}`, traces: traces?.description ?? 'off' });
  if (options.banner !== false) (options.banner ?? process.stdout).write(banner(gateway, traces));
  return { gateway, logger, traces, stopped, stop };
}

/** The logger of a served process: the options, else the config's observability.logs, else LOG_LEVEL; JSON unless stderr is a terminal. */
export function serveLogger(loaded: LoadedConfig, options: Pick<ServeOptions, 'logLevel' | 'logFormat' | 'logStream' | 'env'>): GatewayLogger {
  const env = options.env ?? process.env;
  const logs = loaded.config.observability?.logs;
  const envLevel = env['LOG_LEVEL']?.toLowerCase() as LogLevel | undefined;
  const level = options.logLevel ?? logs?.level ?? (envLevel !== undefined && LEVELS.includes(envLevel) ? envLevel : 'info');
  const stream = options.logStream ?? process.stderr;
  const format = options.logFormat ?? logs?.format ?? ((stream as { isTTY?: boolean }).isTTY === true ? 'pretty' : 'json');
  return createGatewayLogger({ level, format, stream });
}

/** The config's trace export, started (undefined when off); a missing SDK is a ConfigError. */
export async function startTraces(loaded: LoadedConfig, env: NodeJS.ProcessEnv): Promise<TraceExport | undefined> {
  try {
    return await startTraceExport(loaded.config.observability?.tracing, env);
  } catch (error) {
    throw error instanceof TraceExportUnavailableError ? new ConfigError(loaded.source, [`observability.tracing: ${error.message}`]) : error;
  }
}

/** stop() runs `shutdown` once, then flushes the traces; `stopped` resolves after both. */
export function stopper(logger: GatewayLogger, traces: TraceExport | undefined, shutdown: () => Promise<void>): { stopped: Promise<void>; stop: () => Promise<void> } {
  let stopping: Promise<void> | undefined;
  const { promise: stopped, resolve: resolveStopped } = Promise.withResolvers<void>();
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      try {
        await shutdown();
      } finally {
        await traces?.shutdown().catch((error: unknown) => logger.warn(`trace export did not flush: ${(error as Error).message}`));
        resolveStopped();
      }
    })();
    return stopping;
  };
  return { stopped, stop };
}

/**
 * SIGTERM / SIGINT call `stop` (a graceful shutdown); another signal more than
 * DUPLICATE_SIGNAL_MS later, before `isStopped()`, ends the process at once (code 1).
 * The handlers stay installed: a signal that arrives as the process ends must not kill it with 130.
 */
export function stopOnSignals(logger: GatewayLogger, stop: () => Promise<void>, isStopped: () => boolean): void {
  let signalledAt: number | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    const now = performance.now();
    if (signalledAt === undefined) {
      signalledAt = now;
      logger.info(`${signal}: shutting down`, { event: 'signal', signal });
      void stop();
      return;
    }
    // The terminal and a supervisor (npm start forwards Ctrl-C) deliver one Ctrl-C twice, at
    // once: a repeat within the window is the same request. After the shutdown, ignore them all.
    if (now - signalledAt < DUPLICATE_SIGNAL_MS || isStopped()) return;
    logger.warn(`${signal} again: stopping now`, { event: 'forced-exit' });
    process.exit(1);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

/** What a person needs to use the gateway: where it listens and how to connect. */
export function banner(gateway: Gateway, traces: TraceExport | undefined): string {
  const urls = gateway.urls;
  const { upstream, settings } = gateway;
  const lines = [
    'mcp-layers gateway — listening',
    `  upstream   ${upstream.kind === 'stdio' ? `stdio: ${upstream.description} (a process per session)` : `${upstream.kind}: ${upstream.description}`}`,
  ];
  if (urls.http !== undefined) lines.push(`  MCP        ${urls.http}   (Streamable HTTP)`);
  if (urls.websocket !== undefined) lines.push(`  ${urls.http === undefined ? 'MCP       ' : '          '} ${urls.websocket}   (WebSocket)`);
  lines.push(`  metrics    ${urls.metrics}`, `  health     ${urls.health}, ${urls.ready}`, `  traces     ${traces?.description ?? 'off (set OTEL_EXPORTER_OTLP_ENDPOINT or observability.tracing)'}`, '');
  if (urls.http !== undefined) {
    lines.push(
      'Connect with the MCP TypeScript SDK:',
      `  await new Client({ name: 'my-app', version: '1.0.0' }).connect(new StreamableHTTPClientTransport(new URL('${urls.http}')));`,
      `Or try it in the MCP Inspector: npx @modelcontextprotocol/inspector (transport "Streamable HTTP", URL ${urls.http})`,
    );
  } else if (urls.websocket !== undefined) {
    lines.push('Connect with the MCP TypeScript SDK and mcp-layers/ws:', `  await new Client({ name: 'my-app', version: '1.0.0' }).connect(new WebSocketClientTransport('${urls.websocket}'));`);
  }
  lines.push('', `Ctrl-C stops the gateway (requests in flight get up to ${formatMs(settings.drainTimeoutMs)} to finish).`, '');
  return lines.join('\n');
}

function formatMs(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
}
