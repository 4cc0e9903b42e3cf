/**
 * The real OpenTelemetry Node SDK, recording into memory: W3C trace context and
 * baggage propagators, the AsyncLocalStorage context manager, every span sampled.
 */
import { NodeSDK } from '@opentelemetry/sdk-node';
import { InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from '@opentelemetry/sdk-trace';

export interface OtelHarness {
  readonly exporter: InMemorySpanExporter;
  spans(): ReadableSpan[];
  reset(): void;
  shutdown(): Promise<void>;
}

export function startOtel(): OtelHarness {
  // Nothing leaves the process: no OTLP exporters for logs or metrics either.
  process.env['OTEL_LOGS_EXPORTER'] ??= 'none';
  process.env['OTEL_METRICS_EXPORTER'] ??= 'none';
  const exporter = new InMemorySpanExporter();
  const sdk = new NodeSDK({ spanProcessors: [new SimpleSpanProcessor({ exporter })], autoDetectResources: false });
  sdk.start();
  return {
    exporter,
    spans: () => exporter.getFinishedSpans(),
    reset: () => exporter.reset(),
    shutdown: () => sdk.shutdown(),
  };
}
