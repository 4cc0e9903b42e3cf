/**
 * The package installs as users install it: the repository is built and packed (in a
 * temporary copy, so nothing is written here), the tarball is installed into an empty
 * project with npm, and a TypeScript consumer of every subpath compiles with tsc, runs
 * with plain node, and finds the `mcp-layers` bin. Needs the npm registry (or a warm npm
 * cache) for the package's dependencies.
 */
import { execFile } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const tsc = join(repo, 'node_modules', '.bin', 'tsc');
const { version } = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { version: string };
/** What the repository holds that is not its source (installed, built, run): never copied. */
const NOT_SOURCE = /^(node_modules|dist|\.git|coverage|\.ci\/out)(\/|$)|\/node_modules(\/|$)/;
/** npm may fetch the dependencies; bounded so a dead registry fails the test instead of hanging it. */
const NPM_TIMEOUT_MS = 150_000;

/**
 * The environment of a user's shell: no variables npm sets for the script running this test
 * (a prefix would point npm back at this repository), no NODE_OPTIONS from the runner.
 */
function userEnvironment(): NodeJS.ProcessEnv {
  const keep = new Set(['npm_config_cache', 'npm_config_registry', 'npm_config_userconfig']);
  return Object.fromEntries(Object.entries(process.env).filter(([key]) => keep.has(key.toLowerCase()) || !/^(npm_|node_options$|init_cwd$)/i.test(key)));
}

interface Ran {
  /** Why it ended badly (`exit 2`, `killed after 60000 ms`), or undefined when it succeeded. */
  failure: string | undefined;
  output: string;
}

/** Runs a command to its end; the result carries everything it printed, for the failure message. */
function run(command: string, args: readonly string[], cwd: string, timeoutMs = 60_000): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(command, args, { cwd, env: userEnvironment(), timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      const failure = error === null ? undefined : error.killed === true ? `killed after ${timeoutMs} ms` : `exit ${String(error.code)}`;
      resolve({ failure, output: `${stdout}${stderr}` });
    });
  });
}

async function mustRun(command: string, args: readonly string[], cwd: string, timeoutMs?: number): Promise<string> {
  const ran = await run(command, args, cwd, timeoutMs);
  if (ran.failure !== undefined) throw new Error(`\`${[command, ...args].join(' ')}\` failed (${ran.failure}) in ${cwd}:\n${ran.output}`);
  return ran.output;
}

/** Uses a value of every subpath; prints what it saw, which the test reads back. */
const CONSUMER = `\
import { circuitBreaker, ErrorCode, type JSONRPCMessage, retry, timeout, type Transport, wrap } from 'mcp-layers';
import { createFetch, type McpFetch } from 'mcp-layers/http';
import { WebSocketClientTransport, type WebSocketClientTransportOptions } from 'mcp-layers/ws';
import { NatsClientTransport, type NatsClientTransportOptions } from 'mcp-layers/nats';
import { RedisClientTransport, type RedisClientTransportOptions } from 'mcp-layers/redis';
import { type GatewayConfig, validateConfig } from 'mcp-layers/gateway';

// A peer that answers every request with the method it was asked for.
const peer: Transport = {
  async start() {},
  async send(message) {
    if ('method' in message && 'id' in message) {
      const { id, method } = message;
      queueMicrotask(() => peer.onmessage?.({ jsonrpc: '2.0', id, result: { method } }));
    }
  },
  async close() {
    peer.onclose?.();
  },
};

const transport = wrap(peer, [timeout({ attemptMs: 5000 }), retry({ maxAttempts: 2 }), circuitBreaker()]);
const answered = new Promise<JSONRPCMessage>((resolve) => {
  transport.onmessage = resolve;
});
await transport.start();
await transport.send({ jsonrpc: '2.0', id: 1, method: 'ping' });
const response = await answered;
await transport.close();

const options: WebSocketClientTransportOptions = { reconnect: false };
const ws = new WebSocketClientTransport('ws://127.0.0.1:9/mcp', options);
const natsOptions: NatsClientTransportOptions = { service: 'tools', heartbeat: false };
const nats = new NatsClientTransport(natsOptions);
const redisOptions: RedisClientTransportOptions = { service: 'tools', heartbeat: false };
const redis = new RedisClientTransport(redisOptions);
const fetch: McpFetch = createFetch();
await fetch.close();
const config: GatewayConfig = validateConfig({ upstream: { url: 'http://127.0.0.1:9/mcp' } }).config;

console.log(JSON.stringify({ response, circuitOpen: ErrorCode.CircuitOpen, ws: typeof ws.start, nats: nats.service, redis: redis.service, upstream: config.upstream }));
`;

describe('the packed package, installed into an empty project', () => {
  let scratch = '';
  let consumer = '';
  let packed: string[] = [];

  beforeAll(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'mcp-layers-package-'));
    // Build and pack a copy of the sources: what a fresh clone packs, and this repository stays untouched.
    const copy = join(scratch, 'repo');
    cpSync(repo, copy, { recursive: true, filter: (path) => !NOT_SOURCE.test(relative(repo, path).split(sep).join('/')) });
    symlinkSync(realpathSync(join(repo, 'node_modules')), join(copy, 'node_modules'), 'dir');
    await mustRun('npm', ['run', '--silent', 'build'], copy);
    const [pack] = JSON.parse(await mustRun('npm', ['pack', '--json', '--pack-destination', scratch], copy)) as Array<{ filename: string; files: Array<{ path: string }> }>;
    if (pack === undefined) throw new Error('npm pack described no tarball');
    packed = pack.files.map((file) => file.path);

    consumer = join(scratch, 'consumer');
    mkdirSync(consumer);
    writeFileSync(join(consumer, 'package.json'), `${JSON.stringify({ name: 'consumer', private: true, type: 'module' }, null, 2)}\n`);
    // --loglevel=http: when the registry cannot be reached, the failure shows each request npm tried.
    await mustRun('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=http', '--prefix', consumer, join(scratch, pack.filename)], consumer, NPM_TIMEOUT_MS);
  }, NPM_TIMEOUT_MS + 60_000);

  afterAll(() => {
    if (scratch !== '') rmSync(scratch, { recursive: true, force: true });
  });

  it('ships the build, the docs and the dashboards the README links to, and nothing of test/ or the sources', () => {
    expect(packed).toEqual(expect.arrayContaining(['package.json', 'README.md', 'dist/index.js', 'dist/index.d.ts', 'dist/src/gateway/cli/main.js', 'docs/gateway.md', 'docs/mcp-layers.schema.json', 'dashboards/alerts.yaml', 'dashboards/mcp-overview.json']));
    expect(packed.filter((path) => !/^(dist\/|docs\/[\w.-]+\.(md|json)$|dashboards\/[\w-]+\.(json|yaml)$|package\.json$|README\.md$)/.test(path))).toEqual([]);
    expect(packed.filter((path) => path.startsWith('dist/test/') || path.startsWith('dist/bench/') || path.startsWith('dist/examples/'))).toEqual([]);
    expect(packed.filter((path) => path.endsWith('.ts') && !path.endsWith('.d.ts'))).toEqual([]);
  });

  it('compiles a consumer of every subpath with tsc, with the declarations checked too, without one error', async () => {
    await mustRun(tsc, ['--init'], consumer);
    // `tsc --init` as it comes (module nodenext, strict, exactOptionalPropertyTypes...), except
    // that the package's declarations are checked too: skipLibCheck would hide their errors.
    const init = readFileSync(join(consumer, 'tsconfig.json'), 'utf8');
    expect(init).toMatch(/"module": "nodenext"/);
    expect(init).toMatch(/"skipLibCheck": true/);
    writeFileSync(join(consumer, 'tsconfig.json'), init.replace(/"skipLibCheck": true/, '"skipLibCheck": false'));
    writeFileSync(join(consumer, 'consumer.ts'), CONSUMER);
    const compiled = await run(tsc, ['-p', '.'], consumer);
    expect(compiled.output).toBe('');
    expect(compiled.failure).toBeUndefined();
  });

  it('runs the compiled consumer with plain node', async () => {
    const printed = JSON.parse(await mustRun(process.execPath, ['consumer.js'], consumer)) as unknown;
    expect(printed).toEqual({
      response: { jsonrpc: '2.0', id: 1, result: { method: 'ping' } },
      circuitOpen: -32050,
      ws: 'function',
      nats: 'tools',
      redis: 'tools',
      upstream: expect.objectContaining({ url: 'http://127.0.0.1:9/mcp' }),
    });
  });

  it('installs the mcp-layers bin, which runs', async () => {
    const bin = join(consumer, 'node_modules', '.bin', 'mcp-layers');
    expect(await mustRun(bin, ['--help'], consumer)).toMatch(/^Usage:\n {2}mcp-layers <command>/m);
    expect(await mustRun(bin, ['--version'], consumer)).toBe(`${version}\n`);
  });
});
