/**
 * Policies as data: the config's option shapes (src/gateway/config/layers.ts) agree with the
 * layer factories' own validation, and a config's mistakes are reported by path,
 * expectation, value and line.
 */
import { Registry } from 'prom-client';
import winston from 'winston';
import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { LAYER_NAMES, LAYER_OPTIONS, type LayerName } from '#gateway/config/layers.ts';
import { configJsonSchema } from '#gateway/config/gateway.ts';
import { ConfigError, parseConfigText, validateConfig } from '#gateway/config/load.ts';
import { buildStack, StackProblemsError } from '#gateway/stack.ts';

const logger = winston.createLogger({ silent: true });

/** Builds one layer from options through the factory; the error message, or 'ok'. */
function factory(name: LayerName, options: unknown): string {
  try {
    buildStack([{ [name]: options } as never], { side: 'upstream', logger, registry: new Registry(), baseDir: process.cwd() });
    return 'ok';
  } catch (error) {
    return error instanceof StackProblemsError ? error.problems.join('; ') : String(error);
  }
}

function schema(name: LayerName, options: unknown): string {
  const result = (LAYER_OPTIONS[name] as z.ZodType).safeParse(options);
  return result.success ? 'ok' : result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
}

const ok = (text: string) => text === 'ok';

/**
 * Boundary values for every option the config can set, valid and not. The schema and the
 * factory must agree on each: what the file accepts, the layer accepts, and the reverse.
 */
const CASES: Array<[LayerName, unknown]> = [
  ['retry', { maxAttempts: 1 }], ['retry', { maxAttempts: 0 }], ['retry', { maxAttempts: 1.5 }], ['retry', { maxAttempts: 'three' }],
  ['retry', { backoff: { initialDelayMs: 0, maxDelayMs: 0, exponent: 1 } }], ['retry', { backoff: { exponent: 0.5 } }], ['retry', { backoff: { initialDelayMs: -1 } }],
  ['retry', { budget: false }], ['retry', { budget: { percent: 0, ttlMs: 10, minPerSecond: 0 } }], ['retry', { budget: { percent: 101 } }], ['retry', { budget: { ttlMs: 9 } }], ['retry', { budget: true }],
  ['retry', { idempotent: true }], ['retry', { idempotent: 'yes' }], ['retry', { maxRetryAfterMs: 0 }], ['retry', { maxRetryAfterMs: -5 }], ['retry', { retries: 3 }],
  ['timeout', { attemptMs: 1 }], ['timeout', { attemptMs: 0 }], ['timeout', { totalMs: 1 }], ['timeout', { totalMs: 0 }], ['timeout', { perMethod: { 'tools/*': 100, ping: false } }], ['timeout', { perMethod: { ping: 0 } }],
  ['timeout', { perMethod: { ping: true } }], ['timeout', { attemptMs: 100, resetOnProgress: true, maxAttemptMs: 100 }], ['timeout', { attemptMs: 100, resetOnProgress: true, maxAttemptMs: 50 }], ['timeout', { maxAttemptMs: 100 }], ['timeout', { resetOnProgress: 'yes' }],
  ['retry', { backoff: { initialDelayMs: 500, maxDelayMs: 100 } }], ['circuitBreaker', { breaker: 'consecutive', failureRatio: 0.5 }], ['circuitBreaker', { breaker: 'sampling', windowCalls: 10 }],
  ['hedging', { delayMs: 100, minSamples: 5 }], ['chaos', { errorRate: 0.6, dropRate: 0.6 }], ['metrics', { buckets: [2, 1] }], ['logging', { level: 'loud' }], ['oauth', {}],
  ['circuitBreaker', { breaker: 'consecutive', consecutiveFailures: 1 }], ['circuitBreaker', { breaker: 'sampling', failureRatio: 0.5, windowMs: 1000, minSamples: 1 }], ['circuitBreaker', { breaker: 'count', windowCalls: 1, minSamples: 1, failureRatio: 0.5 }],
  ['circuitBreaker', { breaker: 'sampling', windowMs: 999 }], ['circuitBreaker', { breaker: 'fancy' }], ['circuitBreaker', { halfOpenAfterMs: 1 }], ['circuitBreaker', { halfOpenAfterMs: 0 }], ['circuitBreaker', { scope: 'tool', maxKeys: 1 }],
  ['circuitBreaker', { scope: 'session' }], ['circuitBreaker', { maxKeys: 0 }], ['circuitBreaker', { consecutiveFailures: -1 }],
  ['circuitBreaker', { breaker: 'count', failureRatio: 0 }], ['circuitBreaker', { breaker: 'count', failureRatio: 1 }], ['circuitBreaker', { breaker: 'sampling', failureRatio: 0.99 }],
  ['concurrency', { maxInFlight: 1, maxQueued: 0, direction: 'inbound', retryAfterMs: 0 }], ['concurrency', { maxInFlight: 0 }], ['concurrency', { maxQueued: -1 }], ['concurrency', { direction: 'up' }], ['concurrency', { retryAfterMs: -1 }],
  ['hedging', { delayMs: 0, maxHedges: 10, budget: false }], ['hedging', { percentile: 1, minSamples: 1000 }], ['hedging', { percentile: 99.99 }], ['hedging', { percentile: 100 }], ['hedging', { maxHedges: 11 }], ['hedging', { minSamples: 0 }],
  ['chaos', { seed: -0x8000_0000, errorRate: 1 }], ['chaos', { seed: 0x8000_0000 }], ['chaos', { latency: 5 }], ['chaos', { latency: { delayMs: 5 } }], ['chaos', { latency: { delayMs: [1, 2], rate: 0.5 } }], ['chaos', { latency: { delayMs: [1] } }], ['chaos', { latency: { rate: 0.5 } }],
  ['chaos', { dropRate: 1.5 }], ['chaos', { direction: 'both', enabled: false }],
  ['standard', {}], ['standard', { concurrency: false, totalTimeout: false, retry: false, circuitBreaker: false, attemptTimeout: false }], ['standard', { totalTimeout: 0 }], ['standard', { attemptTimeout: { attemptMs: 100, perMethod: { ping: false } } }],
  ['standard', { retry: { maxAttempts: 0 } }], ['standard', { concurrency: { maxInFlight: 'many' } }], ['standard', { attemptTimeout: true }],
  ['batching', { maxMessages: 1, maxDelayMs: 0 }], ['batching', { maxMessages: 0 }], ['batching', { maxDelayMs: -1 }],
  ['compression', { encodings: ['gzip'], minBytes: 0 }], ['compression', { encodings: ['lz4'] }], ['compression', { minBytes: -1 }],
  ['tracing', { captureArguments: true, captureResults: false, maxCaptureLength: 16, resourceUriInSpanName: true, redact: ['ssn', 'params.arguments.card'] }], ['tracing', { maxCaptureLength: 15 }], ['tracing', { redact: [1] }],
  ['metrics', { prefix: 'gw_', buckets: [0.1, 1], maxLabelValues: 1 }], ['metrics', { prefix: '9x' }], ['metrics', { buckets: [0] }], ['metrics', { buckets: [] }], ['metrics', { maxLabelValues: 0 }],
  ['logging', { level: 'debug', levels: { failure: 'error', retry: false }, payloads: { maxLength: 16 }, redact: ['token'] }], ['logging', { payloads: { maxLength: 15 } }], ['logging', { payloads: 'yes' }],
  ['oauth', { tokenEndpoint: 'https://id.example.com/token', clientId: 'gw', clientAuth: { method: 'client_secret_basic', clientSecret: 's' }, grant: 'client_credentials', scopes: ['mcp'], resource: 'https://mcp.example.com/mcp' }],
  ['oauth', { clientAuth: { method: 'client_secret_basic' } }], ['oauth', { grant: 'password' }], ['oauth', { refreshSkewMs: -1 }],
];

/**
 * Rules that span options or depend on another option's value: only the factory can
 * check them. The schema accepts these; the stack build refuses them, with the path.
 */
const FACTORY_ONLY = new Set([
  JSON.stringify(['timeout', { attemptMs: 100, resetOnProgress: true, maxAttemptMs: 50 }]),
  JSON.stringify(['timeout', { maxAttemptMs: 100 }]),
  JSON.stringify(['retry', { backoff: { initialDelayMs: 500, maxDelayMs: 100 } }]),
  JSON.stringify(['circuitBreaker', { breaker: 'consecutive', failureRatio: 0.5 }]),
  JSON.stringify(['circuitBreaker', { breaker: 'sampling', windowCalls: 10 }]),
  JSON.stringify(['hedging', { delayMs: 100, minSamples: 5 }]),
  JSON.stringify(['chaos', { errorRate: 0.6, dropRate: 0.6 }]),
  JSON.stringify(['metrics', { buckets: [2, 1] }]),
  JSON.stringify(['logging', { level: 'loud' }]),
  JSON.stringify(['oauth', {}]),
]);

describe('the config schema and the layer factories agree', () => {
  it.each(CASES)('%s %j', (name, options) => {
    const inSchema = schema(name, options);
    const inFactory = factory(name, options);
    if (FACTORY_ONLY.has(JSON.stringify([name, options]))) {
      expect({ inSchema, inFactory: ok(inFactory) }).toEqual({ inSchema: 'ok', inFactory: false });
    } else {
      expect({ schemaAccepts: ok(inSchema), factoryAccepts: ok(inFactory), inSchema, inFactory }).toMatchObject({ schemaAccepts: ok(inFactory), factoryAccepts: ok(inSchema) });
    }
  });

  it('covers every layer a config can name', () => {
    expect(new Set(CASES.map(([name]) => name))).toEqual(new Set(LAYER_NAMES));
  });

  it('every option the schema offers is one the factory knows (no key refused as unknown)', () => {
    for (const name of LAYER_NAMES) {
      const shape = (LAYER_OPTIONS[name] as unknown as { shape: Record<string, unknown> }).shape;
      for (const key of Object.keys(shape)) {
        expect(factory(name, { [key]: undefined }), `${name}.${key}`).not.toMatch(/unknown option|known options/);
      }
    }
  });
});

describe('config problems are reported by path, expectation, value and line', () => {
  const problems = (text: string, env: NodeJS.ProcessEnv = {}) => {
    try {
      parseConfigText(text, 'mcp-layers.yaml', env);
      return [];
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      return error.problems;
    }
  };

  it('a wrong type', () => {
    expect(problems('upstream:\n  command: node\n  layers:\n    - logging: {}\n    - timeout: { attemptMs: 1000 }\n    - retry: { maxAttempts: three }\n')).toEqual([
      'upstream.layers[2].retry.maxAttempts: expected an integer >= 1, got "three" (line 6)',
    ]);
  });

  it('an unknown layer, with a suggestion', () => {
    expect(problems('upstream:\n  command: node\n  layers:\n    - circuitbreaker: {}\n')).toEqual([
      'upstream.layers[0]: unknown layer "circuitbreaker"; did you mean "circuitBreaker"? (expected one of standard, retry, timeout, circuitBreaker, concurrency, hedging, chaos, batching, compression, tracing, metrics, logging, oauth, or when / unless) (line 4)',
    ]);
  });

  it('an unknown option, with a suggestion', () => {
    expect(problems('upstream:\n  command: node\n  layers:\n    - when: { method: tools/call, tool: "slow_*" }\n      layers:\n        - timeout: { attemptMsec: 120000 }\n')).toEqual([
      'upstream.layers[0].layers[0].timeout.attemptMsec: unknown option; did you mean "attemptMs"? (expected one of attemptMs, perMethod, resetOnProgress, maxAttemptMs, totalMs) (line 6)',
    ]);
  });

  it('an option renamed in 0.2, under its old name: unknown, with the new name suggested where it is close', () => {
    expect(problems('upstream:\n  command: node\n  layers:\n    - timeout: { ms: 1000, total: 5000 }\n    - circuitBreaker: { threshold: 5, halfOpenAfter: 1000 }\n    - concurrency: { queue: 4 }\n    - chaos: { latency: 50 }\n')).toEqual([
      'upstream.layers[0].timeout.ms: unknown option (expected one of attemptMs, perMethod, resetOnProgress, maxAttemptMs, totalMs) (line 4)',
      'upstream.layers[0].timeout.total: unknown option; did you mean "totalMs"? (expected one of attemptMs, perMethod, resetOnProgress, maxAttemptMs, totalMs) (line 4)',
      'upstream.layers[1].circuitBreaker.threshold: unknown option (expected one of breaker, consecutiveFailures, failureRatio, windowMs, minSamples, windowCalls, halfOpenAfterMs, scope, maxKeys) (line 5)',
      'upstream.layers[1].circuitBreaker.halfOpenAfter: unknown option; did you mean "halfOpenAfterMs"? (expected one of breaker, consecutiveFailures, failureRatio, windowMs, minSamples, windowCalls, halfOpenAfterMs, scope, maxKeys) (line 5)',
      'upstream.layers[2].concurrency.queue: unknown option (expected one of maxInFlight, maxQueued, direction, retryAfterMs) (line 6)',
      'upstream.layers[3].chaos.latency: expected an object { delayMs, rate? } (a bare number names no unit), got 50 (line 7)',
    ]);
    expect(problems('upstream:\n  url: https://mcp.example.com/mcp\n  http: { keepAliveTimeout: 1000 }\n')).toEqual([
      'upstream.http.keepAliveTimeout: unknown option; did you mean "keepAliveTimeoutMs"? (expected one of connections, keepAliveTimeoutMs, headersTimeoutMs, allowH2, compression) (line 3)',
    ]);
  });

  it('the WebSocket upstream\'s reconnect.queueTimeoutMs and downstream.jsonResponses: read, and checked', () => {
    const { config } = parseConfigText('upstream:\n  url: wss://mcp.example.com/mcp\n  websocket: { reconnect: { maxRetries: 3, queueTimeoutMs: 5000 } }\ndownstream: { jsonResponses: true }\n', 'mcp-layers.yaml');
    expect(config.upstream?.websocket?.reconnect).toEqual({ maxRetries: 3, queueTimeoutMs: 5000 });
    expect(config.downstream?.jsonResponses).toBe(true);
    expect(problems('upstream:\n  url: wss://mcp.example.com/mcp\n  websocket: { reconnect: { queueTimeoutMs: 0 } }\ndownstream: { jsonResponses: "yes" }\n')).toEqual([
      'upstream.websocket.reconnect.queueTimeoutMs: expected a duration in milliseconds >= 1, got 0 (line 3)',
      'downstream.jsonResponses: expected true or false, got "yes" (line 4)',
    ]);
  });

  it('a bad URL, a missing upstream, misplaced options', () => {
    expect(problems('upstream:\n  url: ftp://mcp.example.com\n')).toEqual(['upstream.url: expected an absolute upstream URL (http://, https://, ws://, wss://; or a broker URL, nats://, tls://, redis://, rediss:// HOST:PORT/SERVICE), got "ftp://mcp.example.com" (line 2)']);
    expect(problems('downstream: { port: 8080 }\n')).toEqual(['upstream: missing; expected an options object (line 1)']);
    expect(problems('upstream: {}\n')).toEqual(['upstream: expected exactly one of command (a stdio server to start) or url (http(s)://, ws(s)://, or a broker URL nats:// or redis(s)://), got neither (line 1)']);
    expect(problems('upstream: { url: "https://x.example/mcp", args: [a] }\n')).toEqual(['upstream.args: applies only to a stdio upstream (command) (line 1)']);
  });

  it('a layer on the wrong side, two layers in one entry', () => {
    expect(problems('upstream: { command: node }\ndownstream:\n  layers:\n    - oauth: {}\n    - { retry: {}, timeout: {} }\n')).toEqual([
      "downstream.layers[0]: the oauth layer belongs in the other side's stack; here the layers are standard, retry, timeout, circuitBreaker, concurrency, hedging, chaos, batching, compression, tracing, metrics, logging (line 4)",
      'downstream.layers[1]: expected one layer per entry ({ <name>: <options> }), got 2 keys (retry, timeout); write each layer as its own list item (line 5)',
    ]);
  });

  it('JSON is read as well (it is YAML), with lines', () => {
    expect(parseConfigText('{ "upstream": { "command": "node", "layers": [ { "timeout": { "attemptMs": 1000 } } ] } }', 'mcp-layers.json').config.upstream?.layers).toEqual([{ timeout: { attemptMs: 1000 } }]);
    expect(problems('{\n  "upstream": {\n    "url": 42\n  }\n}\n')).toEqual(['upstream.url: expected an absolute upstream URL (http://, https://, ws://, wss://; or a broker URL, nats://, tls://, redis://, rediss:// HOST:PORT/SERVICE), got 42 (line 3)']);
  });

  it('YAML syntax, with line and column', () => {
    expect(problems('upstream:\n  command: node\n    args: [x\n')[0]).toMatch(/^line \d+, column \d+: \w/);
  });

  it('environment variables: substituted, required, and never printed', () => {
    expect(validateConfig({ upstream: { command: '${CMD:-node}' } }, 'x', { env: {} }).config.upstream?.command).toBe('node');
    expect(validateConfig({ upstream: { command: '${CMD}' } }, 'x', { env: { CMD: 'uvx' } }).config.upstream?.command).toBe('uvx');
    expect(validateConfig({ upstream: { command: 'a$${b}' } }, 'x', { env: {} }).config.upstream?.command).toBe('a${b}');
    expect(problems('upstream:\n  url: ${MCP_URL}\n')).toEqual(['upstream.url: the environment variable MCP_URL is not set (write ${MCP_URL:-default} for a fallback) (line 2)']);
    expect(problems('upstream:\n  url: ${SECRET_URL}\n', { SECRET_URL: 'not a url at all, and secret' })).toEqual([
      'upstream.url: expected an absolute upstream URL (http://, https://, ws://, wss://; or a broker URL, nats://, tls://, redis://, rediss:// HOST:PORT/SERVICE), got the value of ${SECRET_URL} (line 2)',
    ]);
  });

  it('rules only a factory can check are reported under the entry path', () => {
    expect(() =>
      buildStack([{ logging: {} }, { retry: { backoff: { initialDelayMs: 500, maxDelayMs: 100 } } }], { side: 'upstream', logger, registry: new Registry(), baseDir: '.' }),
    ).toThrow('upstream.layers[1].retry.backoff.maxDelayMs: expected at least retry.backoff.initialDelayMs (500), got 100');
    expect(() => buildStack([{ standard: { totalTimeout: 1000, attemptTimeout: 2000 } }], { side: 'downstream', logger, registry: new Registry(), baseDir: '.' })).toThrow(
      'downstream.layers[0].standard.attemptTimeout: expected at most standard.totalTimeout (1000 ms), got 2000',
    );
  });

  it('the JSON Schema (mcp-layers schema) describes the same config', () => {
    const json = (configJsonSchema() as { $defs: Record<string, { properties: Record<string, { description?: string }> }> }).$defs['retryOptions'] as { properties: Record<string, { description?: string }> };
    expect(Object.keys(json.properties)).toEqual(['maxAttempts', 'backoff', 'budget', 'idempotent', 'maxRetryAfterMs']);
    expect(json.properties['maxAttempts']?.description).toMatch(/Attempts in all/);
  });
});
