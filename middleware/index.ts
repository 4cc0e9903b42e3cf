/**
 * Every layer: one file each, or one folder when it has parts. Layers depend on the core
 * (src/core/) and the layer kit (src/layer-kit/), never the reverse (docs/architecture.md).
 * Each layer's factory, its options and what docs/ promise of it, named one by one
 * (test/package/surface.test.ts holds the list).
 */
export { tracing, type TracingOptions } from './observability/tracing.ts';
export { METRIC_FAMILIES, type MetricFamily, metrics, metricsHandler, type MetricsHandlerOptions, type MetricsOptions, type MetricsRegistry } from './observability/metrics.ts';
export { type LoggingOptions, type LogRecord, type LogSink, logging } from './observability/logging.ts';
export { batching, type BatchingOptions } from './batching.ts';
export { type ChaosFault, type ChaosLatency, type ChaosLayer, type ChaosOptions, ChaosFaultError, chaos } from './chaos.ts';
export {
  type BreakerKind,
  type BreakerScope,
  type BreakerSnapshot,
  type BreakerState,
  CircuitOpenError,
  type CircuitBreakerLayer,
  type CircuitBreakerOptions,
  circuitBreaker,
} from './circuit-breaker.ts';
export { compression, type CompressionOptions } from './compression.ts';
export { type ConcurrencyLayer, type ConcurrencyOptions, concurrency, LoadShedError } from './concurrency.ts';
export { type HedgingLayer, type HedgingOptions, hedging } from './hedging/hedging.ts';
export { type BackoffOptions, RetriesExhaustedError, type RetryBackoff, type RetryLayer, type RetryOptions, retry } from './retry/retry.ts';
export { STANDARD_DEFAULTS, type StandardLayer, type StandardOptions, standard } from './standard.ts';
export { type TimeoutOptions, timeout } from './timeout.ts';
export {
  FileTokenStore,
  MemoryTokenStore,
  oauth,
  type AccessToken,
  type ClientAuthentication,
  type OAuthLayer,
  type OAuthOptions,
  type SdkAuthProvider,
  type SdkOAuthClientProvider,
  type StoredTokens,
  type TokenStore,
  UnauthorizedError,
  type UnauthorizedEvent,
} from './oauth/oauth.ts';
export { RetryBudget, type RetryBudgetOptions } from './retry/budget.ts';
export type { RedactRule } from './observability/redact.ts';
export { type NetworkInfo, SemConv } from './observability/telemetry.ts';
