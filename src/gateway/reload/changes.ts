/**
 * What a reload changes, section by section: what takes effect now, and what only a
 * restart can change (the listening socket, the trace exporter, the kind of upstream the
 * HTTP listener was built for). One table, so the gateway and docs/gateway.md ("Live
 * reload") say the same thing.
 */
import { isDeepStrictEqual } from 'node:util';
import type { GatewayConfig } from '../config/gateway.ts';

/** Settings read when the process starts: a reload names them and leaves them. */
const RESTART_ONLY: ReadonlyArray<readonly [string, (config: GatewayConfig) => unknown]> = [
  ['downstream.host', (c) => c.downstream?.host],
  ['downstream.port', (c) => c.downstream?.port],
  ['downstream.path', (c) => c.downstream?.path],
  ['downstream.transports', (c) => c.downstream?.transports],
  ['downstream.allowedOrigins', (c) => c.downstream?.allowedOrigins],
  ['downstream.allowedHosts', (c) => c.downstream?.allowedHosts],
  ['downstream.maxBodyBytes', (c) => c.downstream?.maxBodyBytes],
  ['observability.metrics', (c) => c.observability?.metrics],
  ['observability.tracing', (c) => c.observability?.tracing],
  ['observability.logs.format', (c) => c.observability?.logs?.format],
  ['worker', (c) => c.worker],
];

/** Settings that take effect at once: for sessions opened from now on, or (clients, limits) for every session. */
const LIVE: ReadonlyArray<readonly [string, (config: GatewayConfig) => unknown]> = [
  ['upstream', (c) => c.upstream],
  ['upstreams', (c) => c.upstreams],
  ['federation', (c) => c.federation],
  ['downstream.layers', (c) => c.downstream?.layers],
  ['downstream.bearerTokens', (c) => c.downstream?.bearerTokens],
  ['downstream.clients', (c) => c.downstream?.clients],
  ['downstream.clientHeader', (c) => c.downstream?.clientHeader],
  ['downstream.unknownClients', (c) => c.downstream?.unknownClients],
  ['downstream.maxSessions', (c) => c.downstream?.maxSessions],
  ['downstream.idleTimeoutMs', (c) => c.downstream?.idleTimeoutMs],
  ['downstream.detachedTimeoutMs', (c) => c.downstream?.detachedTimeoutMs],
  ['downstream.handshakeTimeoutMs', (c) => c.downstream?.handshakeTimeoutMs],
  ['downstream.heldMessageTimeoutMs', (c) => c.downstream?.heldMessageTimeoutMs],
  ['downstream.evictIdleSessions', (c) => c.downstream?.evictIdleSessions],
  ['downstream.jsonResponses', (c) => c.downstream?.jsonResponses],
  ['downstream.maxDepth', (c) => c.downstream?.maxDepth],
  ['observability.logs.level', (c) => c.observability?.logs?.level],
  ['shutdown.drainTimeoutMs', (c) => c.shutdown?.drainTimeoutMs],
];

/** Every path a reload looks at (a config section missing here would be ignored by reloads: a test keeps the two lists whole). */
export const RELOADED_PATHS: readonly string[] = [...LIVE, ...RESTART_ONLY].map(([path]) => path);

export interface ConfigChanges {
  /** Paths whose new value applies now. */
  readonly live: readonly string[];
  /** Paths whose new value waits for a restart. */
  readonly needsRestart: readonly string[];
}

export function configChanges(before: GatewayConfig, after: GatewayConfig): ConfigChanges {
  const differs = ([, read]: readonly [string, (config: GatewayConfig) => unknown]) => !isDeepStrictEqual(read(before), read(after));
  return {
    live: LIVE.filter(differs).map(([path]) => path),
    needsRestart: RESTART_ONLY.filter(differs).map(([path]) => path),
  };
}

/** Whether two values of one config section are the same (a stack built from equal entries is kept, with its breakers' state). */
export function sameSection(before: unknown, after: unknown): boolean {
  return isDeepStrictEqual(before, after);
}
