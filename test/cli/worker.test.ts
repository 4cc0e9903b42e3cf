/**
 * `mcp-layers worker` as a user meets it before anything runs: --help with examples, and
 * exit code 2 with a message naming the option or the config path (and its line) for
 * every kind of mistake — a broker URL without a service, the wrong scheme, a stdio-only
 * command missing, worker options out of range or on the wrong broker, a layer on the
 * wrong side — before anything connects; `check` and `schema` cover the worker section.
 * A broker nobody answers on is exit code 1, in one line; a port in use, exit code 2.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../support/local.ts';

const CLI = 'src/gateway/cli/main.ts';
const dir = mkdtempSync(join(tmpdir(), 'mcp-layers-worker-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

async function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Outcome> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, timeout: 20_000 });
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

const SERVER = ['--', process.execPath, 'examples/demo-server.ts'];

describe('mcp-layers worker --help', () => {
  it.each([[['worker', '--help']], [['help', 'worker']], [['worker', '-h']]])('mcp-layers %j', async (args) => {
    const { code, stdout, stderr } = await cli(args);
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    expect(stdout).toMatch(/^Usage:$/m);
    expect(stdout).toMatch(/^Examples:$/m);
    expect(stdout).toContain('mcp-layers worker --upstream nats://127.0.0.1:4222/tools -- node ./my-server.js');
  });

  it('the main help lists it', async () => {
    expect((await cli(['--help'])).stdout).toMatch(/^ {2}worker {4}serve a stdio MCP server to the clients of a broker/m);
  });
});

describe('mcp-layers worker refuses what cannot work with exit code 2, before anything connects', () => {
  it('no broker, or no server: a usage error', async () => {
    expect(await cli(['worker', '--', 'node', 'x.js'])).toMatchObject({ code: 2, stderr: expect.stringContaining('mcp-layers worker: expected a broker and a stdio server') });
    expect(await cli(['worker', '--upstream', 'nats://127.0.0.1:4222/tools'])).toMatchObject({ code: 2, stderr: expect.stringContaining('expected a broker and a stdio server') });
    const noSection = file('no-worker.yaml', `upstream:\n  command: ${process.execPath}\n`);
    expect(await cli(['worker', '--config', noSection])).toMatchObject({ code: 2, stderr: expect.stringContaining(`${noSection} has no worker section: give the broker with --upstream`) });
  });

  const badUrls: Array<[string, string, string]> = [
    ['a NATS URL without the service', 'nats://127.0.0.1:4222', '--upstream: the service is missing from "nats://127.0.0.1:4222": expected a broker URL naming the service: nats://HOST:PORT/SERVICE or redis://[USER:PASSWORD@]HOST:PORT/SERVICE'],
    ['a Redis URL without the service', 'redis://127.0.0.1:6379/', '--upstream: the service is missing from "redis://127.0.0.1:6379/"'],
    ['another scheme', 'http://127.0.0.1:4222/tools', '--upstream: expected a broker URL naming the service: nats://HOST:PORT/SERVICE or redis://[USER:PASSWORD@]HOST:PORT/SERVICE (tls:// and rediss:// for TLS), got the scheme "http:" ("http://127.0.0.1:4222/tools")'],
    ['not a URL', '127.0.0.1:4222/tools', '--upstream: expected a broker URL naming the service'],
    ['a service that is not a name', 'nats://127.0.0.1:4222/my.tools', '--upstream: the service "my.tools" is not a valid name (a name of 1 to 64 letters, digits, "_" or "-")'],
  ];

  it.each(badUrls)('%s', async (_what, url, message) => {
    const outcome = await cli(['worker', '--upstream', url, ...SERVER]);
    expect(outcome).toMatchObject({ code: 2, stdout: '' });
    expect(outcome.stderr).toContain('mcp-layers: invalid configuration in the command-line options:\n');
    expect(outcome.stderr).toContain(message);
  });

  it('credentials in a broker URL are never printed', async () => {
    const outcome = await cli(['worker', '--upstream', 'redis://default:s3cret-pass@127.0.0.1:6379', ...SERVER]);
    expect(outcome).toMatchObject({ code: 2, stderr: expect.stringContaining('--upstream: the service is missing from "redis://127.0.0.1:6379"') });
    expect(outcome.stderr).not.toContain('s3cret');
  });

  const valid = `upstream:\n  command: ${process.execPath}\n  args: [examples/demo-server.ts]\nworker:\n  broker: nats://127.0.0.1:4222/tools\n  maxInFlight: 8\n`;
  const mistakes: Array<[string, string, string]> = [
    ['the broker URL in the file', valid.replace('/tools', ''), 'worker.broker: the service is missing from "nats://127.0.0.1:4222": expected a broker URL naming the service'],
    ['an option out of range', valid.replace('maxInFlight: 8', 'maxInFlight: 0'), 'worker.maxInFlight: expected an integer >= 1, got 0 (line 6)'],
    ['an unknown worker option', valid.replace('maxInFlight: 8', 'maxInflight: 8'), 'worker.maxInflight: unknown option; did you mean "maxInFlight"?'],
    ['an option of the other broker', valid.replace('maxInFlight: 8', 'maxPayload: 4096'), 'worker.maxPayload: applies only to a Redis broker'],
    ['a client-side layer in the worker\'s stack', `${valid}  layers: [ { oauth: { clientId: x } } ]\n`, "worker.layers[0]: the oauth layer belongs in the other side's stack"],
    ['a rule only the layer knows', `${valid}  layers: [ { retry: { backoff: { initialDelayMs: 500, maxDelayMs: 100 } } } ]\n`, 'worker.layers[0].retry.backoff.maxDelayMs: expected at least retry.backoff.initialDelayMs (500), got 100'],
    ['a layer the broker transport cannot carry', `${valid}  layers: [ { batching: {} } ]\n`, 'worker.layers: batching: NatsServerTransport cannot carry JSON-RPC batches'],
    ['a rule only the library knows', valid.replace('maxInFlight: 8', 'id: "not a name"'), 'worker.id: expected a name of 1 to 64 letters, digits, "_" or "-", got "not a name"'],
    ['a URL upstream', valid.replace(`command: ${process.execPath}\n  args: [examples/demo-server.ts]`, 'url: https://mcp.example.com/mcp'), 'upstream.command: missing; the worker serves a stdio server'],
    ['a command that does not exist', valid.replace(`command: ${process.execPath}`, 'command: mcp-server-that-is-not-installed'), 'upstream.command: "mcp-server-that-is-not-installed" was not found on PATH'],
  ];

  it.each(mistakes)('%s', async (_what, text, message) => {
    const path = file('bad-worker.yaml', text);
    const checked = await cli(['check', '--config', path]);
    expect(checked).toMatchObject({ code: 2, stdout: '' });
    expect(checked.stderr).toContain(`mcp-layers: invalid configuration in ${path}:\n`);
    expect(checked.stderr).toContain(message);
    // The worker refuses it the same way, and prints no banner: it never started.
    const started = await cli(['worker', '--config', path]);
    expect(started).toMatchObject({ code: 2, stdout: '' });
    expect(started.stderr).toContain(message);
  });

  it('an option with a bad value names the option', async () => {
    const inFlight = await cli(['worker', '--upstream', 'nats://127.0.0.1:4222/tools', '--max-in-flight', 'lots', ...SERVER]);
    expect(inFlight).toMatchObject({ code: 2, stderr: expect.stringContaining('--max-in-flight: expected an integer >= 1, got "lots"') });
    const listen = await cli(['worker', '--upstream', 'nats://127.0.0.1:4222/tools', '--listen', '127.0.0.1:metrics', ...SERVER]);
    expect(listen).toMatchObject({ code: 2, stderr: expect.stringContaining('--listen: expected an integer from 0 to 65535, got "metrics"') });
  });

  it('check says what a valid worker config serves', async () => {
    const path = file('worker.yaml', valid);
    expect(await cli(['check', path])).toEqual({ code: 0, stdout: `${path}: valid — upstream stdio (${process.execPath}), worker nats://127.0.0.1:4222/tools\n`, stderr: '' });
  });

  it('the schema covers the worker section', async () => {
    const { code, stdout } = await cli(['schema']);
    expect(code).toBe(0);
    const validate = new Ajv2020({ strict: false, allErrors: true }).compile(JSON.parse(stdout) as object);
    const config = { upstream: { command: 'node' }, worker: { broker: 'redis://127.0.0.1:6379/tools', maxInFlight: 8, layers: [{ concurrency: { maxInFlight: 4 } }], port: 0 } };
    expect(validate(config), JSON.stringify(validate.errors)).toBe(true);
    expect(validate({ ...config, worker: { ...config.worker, maxInFlight: 0 } })).toBe(false);
    expect(validate({ ...config, worker: { ...config.worker, layers: [{ oauth: {} }] } })).toBe(false);
    expect(validate({ ...config, worker: { maxInFlight: 8 } })).toBe(false);
  });

  it('the metrics port in use: exit code 2, naming it', async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    try {
      const outcome = await cli(['worker', '--upstream', 'nats://127.0.0.1:4222/tools', '--listen', `127.0.0.1:${port}`, ...SERVER]);
      expect(outcome).toMatchObject({ code: 2, stdout: '', stderr: expect.stringContaining(`worker.port: 127.0.0.1:${port} is already in use`) });
    } finally {
      server.close();
    }
  });
});

describe('a broker nobody answers on', () => {
  it.each([['nats'], ['redis']])('%s: exit code 1, one line that says where it tried', async (scheme) => {
    const port = await freePort();
    const outcome = await cli(['worker', '--upstream', `${scheme}://127.0.0.1:${port}/tools`, '--listen', '127.0.0.1:0', ...SERVER]);
    expect(outcome.code).toBe(1);
    expect(outcome.stdout).toBe('');
    expect(outcome.stderr).toMatch(new RegExp(`^mcp-layers worker: mcp-layers/${scheme} worker: could not connect to ${scheme}://127\\.0\\.0\\.1:${port}`));
    expect(outcome.stderr).not.toMatch(/\n\s+at /);
  });
});
