/**
 * The `mcp-layers` command as a user meets it: --help with examples for every command,
 * `schema` (JSON Schema for editors, the one shipped in docs/), `check`, and exit code 2
 * with a message naming path and expectation for every kind of mistake — before anything
 * starts. Also the published entry point: the build output runs from package.json's `bin`.
 */
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';

const CLI = 'src/gateway/cli/main.ts';
const dir = mkdtempSync(join(tmpdir(), 'mcp-layers-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

async function cli(args: string[], env: NodeJS.ProcessEnv = {}, entry = CLI): Promise<Outcome> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [entry, ...args], { env: { ...process.env, ...env }, timeout: 20_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const { code, stdout, stderr } = error as { code: number; stdout: string; stderr: string };
    return { code, stdout, stderr };
  }
}

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

describe('--help', () => {
  it.each([[['--help']], [['help']], [['gateway', '--help']], [['check', '--help']], [['schema', '--help']], [['help', 'gateway']], [['gateway', '-h']]])('mcp-layers %j', async (args) => {
    const { code, stdout, stderr } = await cli(args);
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    expect(stdout).toMatch(/^Usage:$/m);
    expect(stdout).toMatch(/^Examples:$/m);
    expect(stdout).toMatch(/ {2}mcp-layers (gateway|check|schema)/);
  });

  it('no command, an unknown command, an unknown option: exit 2 and a pointer to --help', async () => {
    expect(await cli([])).toMatchObject({ code: 2, stdout: '', stderr: expect.stringContaining('Usage:') });
    expect(await cli(['serve'])).toMatchObject({ code: 2, stderr: 'mcp-layers: unknown command "serve"; expected gateway, worker, check, schema or help\nRun `mcp-layers --help` for usage.\n' });
    expect(await cli(['gateway', '--port', '80'])).toMatchObject({ code: 2, stderr: expect.stringMatching(/^mcp-layers gateway: Unknown option '--port'\nRun `mcp-layers gateway --help` for usage\.\n$/) });
    expect(await cli(['check'])).toMatchObject({ code: 2, stderr: expect.stringContaining('expected a config file: mcp-layers check --config FILE') });
  });

  it('--version prints the package version', async () => {
    const { version } = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
    expect(await cli(['--version'])).toEqual({ code: 0, stdout: `${version}\n`, stderr: '' });
  });
});

describe('schema', () => {
  it('prints a JSON Schema that editors can use: the examples validate, mistakes do not; docs/ ships the same', async () => {
    const { code, stdout } = await cli(['schema']);
    expect(code).toBe(0);
    expect(stdout).toBe(readFileSync('docs/mcp-layers.schema.json', 'utf8'));
    const schema = JSON.parse(stdout) as Record<string, unknown>;
    expect(schema['$schema']).toBe('https://json-schema.org/draft/2020-12/schema');
    const validate = new Ajv2020({ strict: false, allErrors: true }).compile(schema);
    for (const example of ['examples/gateway/stdio.yaml', 'examples/gateway/remote-oauth.yaml']) {
      expect(validate(parse(readFileSync(example, 'utf8'))), `${example}: ${JSON.stringify(validate.errors)}`).toBe(true);
    }
    expect(validate({ upstream: { command: 'x', layers: [{ retry: { maxAttempts: 'three' } }] } })).toBe(false);
    expect(validate({ upstream: { command: 'x', layers: [{ retyr: {} }] } })).toBe(false);
    expect(validate({ upstream: { command: 'x' }, downstream: { port: 70_000 } })).toBe(false);
  });
});

describe('check and gateway refuse a bad config with exit code 2, before anything starts', () => {
  const valid = `upstream:\n  command: ${process.execPath}\n  args: [examples/demo-server.ts]\n  layers:\n    - retry: { maxAttempts: 3 }\n`;

  it('a valid config', async () => {
    const path = file('valid.yaml', valid);
    expect(await cli(['check', '--config', path])).toEqual({ code: 0, stdout: `${path}: valid — upstream stdio (${process.execPath})\n`, stderr: '' });
    expect(await cli(['check', path, '--quiet'])).toEqual({ code: 0, stdout: '', stderr: '' });
  });

  const mistakes: Array<[string, string, string]> = [
    ['a wrong type', valid.replace('maxAttempts: 3', 'maxAttempts: three'), 'upstream.layers[0].retry.maxAttempts: expected an integer >= 1, got "three" (line 5)'],
    ['an unknown layer', valid.replace('- retry:', '- retries:'), 'upstream.layers[0]: unknown layer "retries"; did you mean "retry"?'],
    ['a bad URL', 'upstream:\n  url: localhost:3000/mcp\n', 'upstream.url: expected an absolute upstream URL (http://, https://, ws://, wss://; or a broker URL, nats://, tls://, redis://, rediss:// HOST:PORT/SERVICE), got "localhost:3000/mcp" (line 2)'],
    ['no upstream command or URL', 'upstream:\n  args: [server.js]\n', 'upstream: expected exactly one of command (a stdio server to start) or url (http(s)://, ws(s)://, or a broker URL nats:// or redis(s)://), got neither (line 2)'],
    ['a command that does not exist', 'upstream:\n  command: mcp-server-that-is-not-installed\n', 'upstream.command: "mcp-server-that-is-not-installed" was not found on PATH'],
    ['an option in the wrong place', `${valid}listen: 8080\n`, 'listen: unknown option (expected one of upstream, upstreams, federation, downstream, shutdown, observability, worker)'],
    ['a rule only the layer knows', valid.replace('maxAttempts: 3', 'backoff: { initialDelayMs: 500, maxDelayMs: 100 }'), 'upstream.layers[0].retry.backoff.maxDelayMs: expected at least retry.backoff.initialDelayMs (500), got 100'],
    ['a layer the transport cannot carry', valid.replace('- retry: { maxAttempts: 3 }', '- batching: {}'), 'upstream.layers: batching: StdioClientTransport cannot carry JSON-RPC batches'],
    ['YAML that does not parse', 'upstream:\n  command: node\n   args: [x\n', 'line 2, column 12: '],
    ['a missing environment variable', 'upstream:\n  url: ${UPSTREAM_URL}\n', 'upstream.url: the environment variable UPSTREAM_URL is not set'],
  ];

  it.each(mistakes)('%s', async (_kind, text, message) => {
    const path = file('bad.yaml', text);
    const checked = await cli(['check', '--config', path], { UPSTREAM_URL: '' });
    expect(checked.code).toBe(2);
    expect(checked.stdout).toBe('');
    expect(checked.stderr).toContain(`mcp-layers: invalid configuration in ${path}:\n`);
    expect(checked.stderr).toContain(message);
    // The gateway refuses it the same way, and prints no banner: it never listened.
    const started = await cli(['gateway', '--config', path, '--listen', '127.0.0.1:0'], { UPSTREAM_URL: '' });
    expect(started).toMatchObject({ code: 2, stdout: '' });
    expect(started.stderr).toContain(message);
  });

  it('an option with a bad value names the option', async () => {
    const listen = await cli(['gateway', '--listen', '127.0.0.1:http', '--', 'node', 'x.js']);
    expect(listen).toMatchObject({ code: 2, stderr: expect.stringContaining('--listen: expected an integer from 0 to 65535, got "http"') });
    const transports = await cli(['gateway', '--transports', 'http,grpc', '--', 'node', 'x.js']);
    expect(transports).toMatchObject({ code: 2, stderr: expect.stringContaining('--transports[1]: expected one of "http", "websocket", got "grpc"') });
    const upstream = await cli(['gateway', '--upstream', 'mcp.example.com']);
    expect(upstream).toMatchObject({ code: 2, stderr: expect.stringContaining('--upstream: expected an absolute upstream URL') });
    expect(await cli(['gateway', '--upstream', 'https://mcp.example.com/mcp', '--', 'node'])).toMatchObject({ code: 2, stderr: expect.stringContaining('expected either --upstream URL or a command after --, not both') });
  });
});

describe('the published entry point (package.json bin)', () => {
  it('builds to the path bin names, starts with a shebang, and runs the gateway', async () => {
    const { bin } = JSON.parse(readFileSync('package.json', 'utf8')) as { bin: Record<string, string> };
    expect(bin['mcp-layers']).toBe('./dist/src/gateway/cli/main.js');
    // Built beside node_modules (so packages resolve), not over the repository's dist/.
    const out = join('node_modules', '.cache', 'mcp-layers-bin-test');
    rmSync(out, { recursive: true, force: true });
    await promisify(execFile)(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json', '--outDir', out], { timeout: 60_000 });
    const entry = join(out, (bin['mcp-layers'] as string).replace('./dist/', ''));
    expect(readFileSync(entry, 'utf8').split('\n')[0]).toBe('#!/usr/bin/env node');
    expect(await cli(['check', '--help'], {}, entry)).toMatchObject({ code: 0, stdout: expect.stringContaining('mcp-layers check') });

    const gateway = spawn(process.execPath, [entry, 'gateway', '--listen', '127.0.0.1:0', '--', process.execPath, 'examples/demo-server.ts'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    const listening = new Promise<string>((resolve) =>
      gateway.stdout.on('data', (chunk: Buffer) => {
        stdout += chunk.toString();
        const match = /health +(http:\/\/127\.0\.0\.1:\d+\/healthz)/.exec(stdout);
        if (match !== null) resolve(match[1] as string);
      }),
    );
    gateway.stderr.resume();
    const health = await fetch(await listening);
    expect(await health.json()).toEqual({ status: 'ok' });
    gateway.kill('SIGTERM');
    const [code] = (await once(gateway, 'exit')) as [number | null];
    expect(code).toBe(0);
    rmSync(out, { recursive: true, force: true });
  });
});
