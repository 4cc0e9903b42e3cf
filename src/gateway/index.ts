/**
 * mcp-layers/gateway: the gateway behind `mcp-layers gateway`, for code that embeds it.
 *
 *   const { gateway, stop } = await serve(loadConfigFile('mcp-layers.yaml'));      // banner, signals, logs
 *   const gateway = await Gateway.start(validateConfig({ upstream: { command: 'my-server' } }), { logger });
 *
 * docs/gateway.md describes the config, the process model and the endpoints.
 */
export { ConfigError, type LoadedConfig, loadConfigFile, parseConfigText, validateConfig } from './config/load.ts';
export type { DownstreamConfig, GatewayConfig, UpstreamConfig } from './config/gateway.ts';
export type { LayerEntry, LayerName } from './config/layers.ts';
export { Gateway, GATEWAY_METRIC_FAMILIES, type GatewayEvents, type GatewayRuntime, type GatewaySettings, type GatewayUrls } from './gateway.ts';
export { createGatewayLogger, type GatewayLogger, type LogFormat, type LogLevel } from './logger.ts';
export type { CloseReason, ProxySession } from './proxy.ts';
export { type ServeOptions, serve, type Served } from './serve.ts';
