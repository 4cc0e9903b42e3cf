/**
 * mcp-layers/gateway: the gateway behind `mcp-layers gateway`, for code that embeds it.
 *
 *   const { gateway, stop } = await serve(loadConfigFile('mcp-layers.yaml'));      // banner, signals, logs
 *   const gateway = await Gateway.start(validateConfig({ upstream: { command: 'my-server' } }), { logger });
 *   const { worker, stop } = await serveWorker(loadConfigFile('worker.yaml'));     // mcp-layers worker
 *
 * docs/gateway.md describes the config, the process model and the endpoints, and the worker.
 */
export { ConfigError, type LoadedConfig, loadConfigFile, parseConfigText, validateConfig } from './config/load.ts';
export type { DownstreamConfig, GatewayConfig, UpstreamConfig } from './config/gateway.ts';
export type { LayerEntry, LayerName } from './config/layers.ts';
export { Gateway, GATEWAY_METRIC_FAMILIES, type GatewayEvents, type GatewayRuntime, type GatewaySettings, type GatewayUrls } from './gateway.ts';
export { createGatewayLogger, type GatewayLogger, type LogFormat, type LogLevel } from './logger.ts';
export type { CloseReason, Listener, ProxySession } from './proxy.ts';
export { type ServeOptions, serve, type Served } from './serve.ts';
export type { BrokerAddress, WorkerConfig } from './config/worker.ts';
export { StdioWorker, WORKER_METRIC_FAMILIES, type WorkerRuntime } from './worker/worker.ts';
export type { WorkerSettings } from './worker/settings.ts';
export { type ServedWorker, serveWorker } from './worker/serve.ts';
