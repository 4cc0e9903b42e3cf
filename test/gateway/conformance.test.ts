/**
 * The MCP conformance suite (@modelcontextprotocol/conformance, `conformance server`)
 * against the reference server, @modelcontextprotocol/server-everything, twice:
 *
 *   direct    `server-everything streamableHttp` on a port
 *   gateway   `mcp-layers gateway -- server-everything stdio` (the real CLI, a child per session)
 *
 * Every check must end the same both ways, with one documented exception
 * (docs/gateway.md, "Conformance"): server-everything does not validate Host/Origin, so it
 * fails `localhost-host-rebinding-rejected`; the gateway refuses foreign origins on its
 * loopback listener and passes it.
 *
 * server-everything implements only part of what the suite asks for (its tools are not the
 * suite's `test_*` tools), so many checks fail — the same ones — in both runs; the point is
 * that the gateway changes nothing.
 *
 * Offline and bounded: `conformance server` only talks to the URL it is given (its GitHub
 * commands are not used), every program here runs with a preload that refuses any
 * connection beyond loopback and binds servers to 127.0.0.1, and each run has a deadline.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, it } from 'vitest';
import { CLI } from '../support/gateway.ts';
import { freePort } from '../support/local.ts';

const require = createRequire(import.meta.url);
const CONFORMANCE = join(dirname(require.resolve('@modelcontextprotocol/conformance/package.json')), 'dist', 'index.js');
const EVERYTHING = join(dirname(require.resolve('@modelcontextprotocol/server-everything/package.json')), 'dist', 'index.js');
const LOOPBACK_ONLY = fileURLToPath(new URL('../support/loopback-only.ts', import.meta.url));
/** What each run may take at most (the gateway run starts a child per scenario: ~30). */
const RUN_DEADLINE_MS = 90_000;

type Results = Map<string, string>;

const children: ChildProcess[] = [];
const dirs: string[] = [];
afterAll(async () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

function start(args: string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
  const child = spawn(process.execPath, ['--import', LOOPBACK_ONLY, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  children.push(child);
  return child;
}

/** Resolves with the first match of `pattern` in the child's output. */
function waitForOutput(child: ChildProcess, pattern: RegExp): Promise<RegExpMatchArray> {
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (chunk: Buffer) => {
      text += chunk.toString();
      const match = pattern.exec(text);
      if (match !== null) {
        child.stdout?.off('data', onData);
        child.stderr?.off('data', onData);
        resolve(match);
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code) => reject(new Error(`exited (${code}) before printing ${pattern}:\n${text}`)));
  });
}

/** Runs the active suite against `url`; returns `scenario/check → status`. */
async function conformance(url: string): Promise<Results> {
  const dir = await mkdtemp(join(tmpdir(), 'mcp-layers-conformance-'));
  dirs.push(dir);
  const run = start([CONFORMANCE, 'server', '--url', url, '--suite', 'active', '-o', dir]);
  run.stdout?.resume();
  run.stderr?.resume();
  const timer = setTimeout(() => run.kill('SIGKILL'), RUN_DEADLINE_MS);
  const [, signal] = (await once(run, 'exit')) as [number | null, string | null];
  clearTimeout(timer);
  expect(signal, `the conformance run outlived its ${RUN_DEADLINE_MS} ms deadline`).toBeNull();
  const results: Results = new Map();
  for (const entry of await readdir(dir)) {
    const scenario = entry.replace(/^server-/, '').replace(/-\d{4}-\d{2}-\d{2}T.*$/, '');
    const checks = JSON.parse(await readFile(join(dir, entry, 'checks.json'), 'utf8')) as Array<{ id: string; status: string }>;
    for (const check of checks) results.set(`${scenario}/${check.id}`, check.status);
  }
  return results;
}

it('passes the same conformance scenarios through the gateway as against server-everything served directly', { timeout: 2 * RUN_DEADLINE_MS + 30_000 }, async () => {
  const port = await freePort();
  const direct = start([EVERYTHING, 'streamableHttp'], { PORT: String(port) });
  direct.stdout?.resume();
  await waitForOutput(direct, /listening on port \d+/);
  const directResults = await conformance(`http://127.0.0.1:${port}/mcp`);
  direct.kill('SIGKILL');

  const gateway = start([CLI, 'gateway', '--listen', '127.0.0.1:0', '--log-level', 'error', '--', process.execPath, EVERYTHING, 'stdio']);
  const [, url] = await waitForOutput(gateway, /MCP +(http:\/\/127\.0\.0\.1:\d+\/mcp)/);
  gateway.stderr?.resume();
  const gatewayResults = await conformance(url as string);
  gateway.kill('SIGTERM');
  const [code] = (await once(gateway, 'exit')) as [number | null];
  expect(code).toBe(0);

  expect(directResults.size).toBeGreaterThan(25);
  expect([...gatewayResults.keys()].toSorted()).toEqual([...directResults.keys()].toSorted());
  const differences = [...directResults].filter(([check, status]) => gatewayResults.get(check) !== status).map(([check, status]) => `${check}: ${status} → ${gatewayResults.get(check)}`);
  expect(differences).toEqual(['dns-rebinding-protection/localhost-host-rebinding-rejected: FAILURE → SUCCESS']);
  // The checks that pass directly are the ones that matter most: all of them pass through the gateway.
  expect([...directResults].filter(([, status]) => status === 'SUCCESS').length).toBeGreaterThan(10);
});
