/**
 * The public surface is what the entry points name on purpose: each subpath of the
 * package's `exports` publishes exactly these values. Something new that leaks, or
 * something documented that vanishes, fails here; changing a list is a decision for the
 * CHANGELOG. (Types are erased at run time; test/package/install.test.ts compiles a
 * consumer against the published declarations.)
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

/** Each subpath's values, grouped as the docs present them (compared as sorted lists). */
const SURFACE: Record<string, string[]> = {
  '.': [
    // the exchange engine (src/core/)
    'wrap', 'when', 'compose', 'withMeta', 'isTransient', 'parseRetryAfter', 'Context', 'EventBus',
    // errors and their stable codes (docs/errors.md)
    'ErrorCode', 'SetupErrorCode', 'McpLayersError', 'CancelledError', 'ChaosFaultError', 'CircuitOpenError', 'ConnectionClosedError',
    'InvalidMessageError', 'InvalidOptionError', 'LayerFaultError', 'LoadShedError', 'RetriesExhaustedError',
    'StrayResponseError', 'TimeoutError', 'TransportError', 'UnauthorizedError',
    // the layers (docs/layers.md) and what they share on purpose
    'batching', 'chaos', 'circuitBreaker', 'compression', 'concurrency', 'hedging', 'logging', 'metrics',
    'metricsHandler', 'oauth', 'retry', 'standard', 'timeout', 'tracing',
    'FileTokenStore', 'MemoryTokenStore', 'METRIC_FAMILIES', 'RetryBudget', 'SemConv', 'STANDARD_DEFAULTS',
  ],
  './ws': ['AuthenticationError', 'listenWebSocket', 'McpWebSocketServer', 'WebSocketClientTransport', 'WebSocketServerTransport'],
  './http': ['AuthenticationError', 'createFetch', 'listenHttp', 'McpHttpServer'],
  './nats': ['NatsClientTransport', 'NatsServerTransport', 'NatsWorker', 'serveNats'],
  './redis': ['RedisClientTransport', 'RedisServerTransport', 'RedisWorker', 'serveRedis'],
  './gateway': ['ConfigError', 'createGatewayLogger', 'Gateway', 'GATEWAY_METRIC_FAMILIES', 'loadConfigFile', 'parseConfigText', 'serve', 'serveWorker', 'StdioWorker', 'validateConfig', 'WORKER_METRIC_FAMILIES'],
};

const root = new URL('../../', import.meta.url);
const { exports } = JSON.parse(readFileSync(new URL('package.json', root), 'utf8')) as { exports: Record<string, { default: string } | string> };
const sorted = (names: readonly string[]) => names.toSorted();

/** The source the build turns into a subpath's `default` file (dist/x.js comes from x.ts). */
function sourceOf(subpath: string): URL {
  const target = exports[subpath];
  if (typeof target !== 'object') throw new Error(`exports["${subpath}"] has no default condition`);
  return new URL(target.default.replace(/^\.\/dist\//, '').replace(/\.js$/, '.ts'), root);
}

describe('public surface', () => {
  it('lists every subpath the package exports, and nothing else', () => {
    expect(sorted(Object.keys(exports).filter((path) => path !== './package.json'))).toEqual(sorted(Object.keys(SURFACE)));
  });

  for (const [subpath, values] of Object.entries(SURFACE)) {
    it(`${subpath} publishes exactly its documented values`, async () => {
      expect(sorted(Object.keys(await import(sourceOf(subpath).href)))).toEqual(sorted(values));
    });
  }

  it('publishes the same AuthenticationError from ./ws and ./http', async () => {
    const ws = (await import(sourceOf('./ws').href)) as { AuthenticationError: unknown };
    const http = (await import(sourceOf('./http').href)) as { AuthenticationError: unknown };
    expect(ws.AuthenticationError).toBe(http.AuthenticationError);
  });
});
