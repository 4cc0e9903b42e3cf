/**
 * `npm start`: the gateway on its embedded default config, in front of the bundled
 * example server (examples/demo-server.ts, a child process per session). It prints where
 * it listens and how to connect, and runs until Ctrl-C (SIGINT) or SIGTERM.
 *
 *   npm start                 # http://127.0.0.1:8787/mcp and ws://127.0.0.1:8787/mcp
 *   PORT=9000 npm start
 *
 * The same config as a file: examples/gateway/stdio.yaml. In your own code import from
 * 'mcp-layers/gateway': here `#mcp-layers/gateway` (package.json imports) names it.
 */
import { fileURLToPath } from 'node:url';
import { ConfigError, serve, validateConfig } from '#mcp-layers/gateway';

const demoServer = fileURLToPath(new URL('./demo-server.ts', import.meta.url));

const config = {
  upstream: {
    command: process.execPath, // the example server runs on the same Node as the gateway
    args: [demoServer],
    idempotentTools: ['lookup', 'add'],
    layers: [
      { tracing: {} },
      { metrics: {} },
      { logging: {} },
      { retry: { maxAttempts: 3 } },
      { circuitBreaker: { breaker: 'sampling', failureRatio: 0.5, windowMs: 30_000, minSamples: 10, halfOpenAfterMs: 5_000 } },
      // slow_* tools get 120 s (progress extends it), everything else 30 s.
      { when: { method: 'tools/call', tool: 'slow_*' }, layers: [{ timeout: { attemptMs: 120_000, resetOnProgress: true, maxAttemptMs: 600_000 } }] },
      { unless: { method: 'tools/call', tool: 'slow_*' }, layers: [{ timeout: { attemptMs: 30_000 } }] },
    ],
  },
  downstream: {
    port: Number(process.env['PORT'] ?? 8787),
    layers: [{ tracing: {} }, { metrics: {} }, { concurrency: { maxInFlight: 64, direction: 'inbound' } }],
  },
  observability: { logs: { level: 'info' } },
};

try {
  // validateConfig checks it exactly as a config file would be checked (mcp-layers check).
  await serve(validateConfig(config, 'the default config of npm start'));
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  console.error(`npm start: ${error.message}`); // e.g. the port is taken: PORT=9000 npm start
  process.exitCode = 2;
}
