/**
 * Trace export for the gateway, through @opentelemetry/sdk-node — started when the
 * config asks for it (`observability.tracing.exporter: otlp`) or the standard
 * environment does (OTEL_TRACES_EXPORTER, OTEL_EXPORTER_OTLP_ENDPOINT,
 * OTEL_EXPORTER_OTLP_TRACES_ENDPOINT), and never when OTEL_SDK_DISABLED=true.
 *
 * The SDK reads its settings from the standard variables; what the config file says
 * (exporter, endpoint, headers) is handed to it the same way, and wins over the
 * environment (the file is the more specific of the two). The SDK's metrics and log
 * exporters stay off: metrics are served at /metrics, logs go to the gateway's logger.
 * The `tracing` layers in the stacks find the SDK through @opentelemetry/api.
 *
 * @opentelemetry/sdk-node is loaded only then; without it installed, asking for export
 * is a configuration error that says what to install.
 */
import type * as SdkNode from '@opentelemetry/sdk-node';
import { brand } from '../core/brand.ts';
import { McpLayersError, SetupErrorCode, type SetupErrorCodeValue } from '../core/errors.ts';
import type { GatewayConfig } from './config/gateway.ts';

type TracingConfig = NonNullable<NonNullable<GatewayConfig['observability']>['tracing']>;

export interface TraceExport {
  /** `otlp → http://…/v1/traces`, for the banner and logs. */
  readonly description: string;
  /** Flushes spans still buffered and stops the SDK. */
  shutdown(): Promise<void>;
}

/** The config asks for trace export and the OpenTelemetry SDK is not installed (the gateway reports it as a ConfigError). */
export class TraceExportUnavailableError extends McpLayersError<SetupErrorCodeValue> {
  static {
    brand(this, 'error.TraceExportUnavailableError');
  }

  constructor(message: string) {
    super(SetupErrorCode.TraceExportUnavailable, message, { layer: 'gateway', reason: 'trace-export-unavailable' });
  }
}

const DEFAULT_SERVICE_NAME = 'mcp-layers-gateway';

/** What the config and the environment ask for: an exporter name, or undefined for none. */
export function requestedExporter(config: TracingConfig | undefined, env: NodeJS.ProcessEnv): string | undefined {
  if (env['OTEL_SDK_DISABLED']?.trim().toLowerCase() === 'true') return undefined;
  if (config?.exporter !== undefined) return config.exporter === 'none' ? undefined : config.exporter;
  const fromEnv = env['OTEL_TRACES_EXPORTER']?.trim();
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv === 'none' ? undefined : fromEnv;
  if (nonEmpty(env['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT']) || nonEmpty(env['OTEL_EXPORTER_OTLP_ENDPOINT'])) return 'otlp';
  return undefined;
}

export async function startTraceExport(config: TracingConfig | undefined, env: NodeJS.ProcessEnv = process.env): Promise<TraceExport | undefined> {
  const exporter = requestedExporter(config, env);
  if (exporter === undefined) return undefined;
  let sdkModule: typeof SdkNode;
  try {
    sdkModule = await import('@opentelemetry/sdk-node');
  } catch (error) {
    throw new TraceExportUnavailableError(
      `trace export (${exporter}) needs @opentelemetry/sdk-node, which is not installed: npm install @opentelemetry/sdk-node (${(error as Error).message})`,
    );
  }
  // The SDK configures itself from these; the file's values win.
  if (config?.exporter !== undefined) env['OTEL_TRACES_EXPORTER'] = exporter;
  if (config?.endpoint !== undefined) env['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'] = config.endpoint;
  if (config?.headers !== undefined) {
    env['OTEL_EXPORTER_OTLP_TRACES_HEADERS'] = Object.entries(config.headers)
      .map(([name, value]) => `${encodeURIComponent(name)}=${encodeURIComponent(value)}`)
      .join(',');
  }
  const serviceName = config?.serviceName ?? (nonEmpty(env['OTEL_SERVICE_NAME']) ? undefined : DEFAULT_SERVICE_NAME);
  const sdk = new sdkModule.NodeSDK({
    ...(serviceName === undefined ? {} : { serviceName }),
    instrumentations: [],
    metricReaders: [],
    logRecordProcessors: [],
  });
  sdk.start();
  const endpoint = env['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'] ?? (nonEmpty(env['OTEL_EXPORTER_OTLP_ENDPOINT']) ? `${env['OTEL_EXPORTER_OTLP_ENDPOINT']}/v1/traces` : 'http://localhost:4318/v1/traces');
  return {
    description: exporter === 'otlp' ? `otlp → ${endpoint}` : exporter,
    shutdown: () => sdk.shutdown(),
  };
}

function nonEmpty(value: string | undefined): boolean {
  return value !== undefined && value.trim() !== '';
}
