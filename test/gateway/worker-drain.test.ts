/**
 * `mcp-layers worker` on SIGTERM, on each broker: it takes no new work (/readyz turns
 * 503), the call in flight finishes and is answered — published, then acknowledged —
 * every child process exits, and so does the worker, with code 0.
 */
import { execFileSync } from 'node:child_process';
import { expect, it } from 'vitest';
import { describeEachBroker, uniqueService } from '../support/brokers.ts';
import { createV1Client, textOf } from '../support/clients.ts';
import { DEMO_SERVER, isAlive } from '../support/gateway.ts';
import { brokerForWorkers, startWorkerCli } from '../support/worker-cli.ts';

const childrenOf = (pid: number): number[] =>
  execFileSync('ps', ['-o', 'pid=', '--ppid', String(pid)], { encoding: 'utf8' }).split('\n').map((s) => Number(s.trim())).filter((n) => n > 0);

describeEachBroker('test/gateway/worker-drain.test.ts', (b) => `mcp-layers worker over ${b.title}: SIGTERM`, (kind) => {
  const broker = brokerForWorkers(kind);

  it('with a call in flight: /readyz turns 503, the call completes, the children exit, exit code 0', async () => {
    const service = uniqueService('drain');
    const cli = await startWorkerCli(['--upstream', `${broker.url}/${service}`, '--drain-timeout', '20000', '--', process.execPath, DEMO_SERVER]);
    const client = createV1Client();
    await client.connect(kind.client({ servers: broker.url, service }));
    try {
      expect(textOf(await client.callTool('echo', { text: 'up' }))).toBe('up');
      const children = childrenOf(cli.process.pid as number);
      expect(children).toHaveLength(1);

      let started!: () => void;
      const working = new Promise<void>((resolve) => (started = resolve));
      const progress: number[] = [];
      const call = client.callTool('slow_report', { steps: 20, stepMs: 150 }, { onprogress: (p) => (progress.push((p as { progress: number }).progress), started()) });
      await working;
      cli.process.kill('SIGTERM');
      await cli.log((r) => r['event'] === 'shutdown');
      const ready = await fetch(`${cli.base}/readyz`);
      expect(ready.status).toBe(503);
      expect(await ready.json()).toMatchObject({ status: 'shutting-down', inFlight: 1 });
      expect((await fetch(`${cli.base}/healthz`)).status).toBe(200);

      expect(await call).toMatchObject({ content: [{ type: 'text', text: 'report ready after 20 steps' }] });
      expect(await cli.exited).toBe(0);
      expect(children.filter(isAlive)).toEqual([]);
      expect(cli.logs.map((r) => r['event'])).toEqual(expect.arrayContaining(['signal', 'shutdown', 'session-close', 'stopped']));
      expect(cli.logs.filter((r) => r['level'] === 'error')).toEqual([]);
    } finally {
      await client.close().catch(() => {});
    }
  });
});
