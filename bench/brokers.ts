/**
 * The brokers the scale-out bench runs on, started here and stopped by the caller (also on
 * failure): `nats-server -js` and `redis-server`, each on a free 127.0.0.1 port with a
 * temporary directory of its own, ready once it logs that it is. The same settings as the
 * test suites' brokers (test/support/nats-server.ts, redis-server.ts — the bench imports
 * nothing from test/), plus the pid, for the CPU profile.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Child, findBinary, startChild } from './children.ts';
import { freePort } from './peers.ts';

export interface BenchBroker {
  readonly name: 'NATS' | 'Redis';
  readonly url: string;
  readonly pid: number;
  stop(): Promise<void>;
}

async function withDir(prefix: string, start: (dir: string) => Promise<Child>): Promise<{ child: Child; stop(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  try {
    const child = await start(dir);
    return { child, stop: async () => (await child.stop(), rmSync(dir, { recursive: true, force: true })) };
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}

export async function startNats(): Promise<BenchBroker> {
  const port = await freePort();
  const { child, stop } = await withDir('mcp-layers-bench-nats-', (dir) =>
    startChild('nats-server', findBinary('nats-server'), ['-js', '-a', '127.0.0.1', '-p', String(port), '-sd', join(dir, 'store')], /Server is ready/),
  );
  return { name: 'NATS', url: `nats://127.0.0.1:${port}`, pid: child.pid, stop };
}

export async function startRedis(): Promise<BenchBroker> {
  const port = await freePort();
  const { child, stop } = await withDir('mcp-layers-bench-redis-', (dir) =>
    startChild(
      'redis-server',
      findBinary('redis-server'),
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--logfile', ''],
      /Ready to accept connections/,
    ),
  );
  return { name: 'Redis', url: `redis://127.0.0.1:${port}`, pid: child.pid, stop };
}
