/** Every layer, one file each. Layers depend on the core (src/), never the reverse. */
export { tracing, type TracingOptions } from './tracing.ts';
export { METRIC_FAMILIES, type MetricFamily, metrics, metricsHandler, type MetricsHandlerOptions, type MetricsOptions, type MetricsRegistry, OTHER_LABEL_VALUE } from './metrics.ts';
export { type LoggingOptions, type LogRecord, type LogSink, logging } from './logging.ts';
