/**
 * A stdio child of `mcp-layers worker` that exits says why, as behind the gateway
 * (docs/gateway.md "Errors"), on each broker: one that fails as it starts answers
 * `initialize` with -32054 upstream-unavailable and its exit code and last stderr line;
 * one killed under a call in flight answers that call with -32000 and how it ended — and
 * the session is released on the broker, so the client's next probe replays its handshake
 * on a new child and its next call succeeds.
 */
import { execFileSync } from 'node:child_process';
import { expect, it } from 'vitest';
import { describeEachBroker, uniqueService } from '../support/brokers.ts';
import { createV1Client, textOf } from '../support/clients.ts';
import { DEMO_SERVER } from '../support/gateway.ts';
import { captureOutcome } from '../support/scenarios.ts';
import { brokerForWorkers, startWorkerCli } from '../support/worker-cli.ts';

const childrenOf = (pid: number): number[] =>
  execFileSync('ps', ['-o', 'pid=', '--ppid', String(pid)], { encoding: 'utf8' }).split('\n').map((s) => Number(s.trim())).filter((n) => n > 0);

/** A server that fails at once: two stderr lines, exit code 3. */
const FAILING = `process.stderr.write('loading config\\nboom: no such table\\n'); process.exit(3);`;

describeEachBroker('test/gateway/worker-child-exit.test.ts', (b) => `mcp-layers worker over ${b.title}: a child that exits`, (kind) => {
  const broker = brokerForWorkers(kind);

  it('as it starts: initialize is answered with -32054 upstream-unavailable, its exit code and last stderr line', async () => {
    const service = uniqueService('child-fails');
    const cli = await startWorkerCli(['--upstream', `${broker.url}/${service}`, '--', process.execPath, '-e', FAILING]);
    const client = createV1Client();
    const outcome = await captureOutcome(() => client.connect(kind.client({ servers: broker.url, service, recover: false })));
    expect(outcome).toMatchObject({
      error: { code: -32054, message: expect.stringContaining('The upstream server exited with code 3 before it answered initialize; its last stderr line: boom: no such table'), data: { reason: 'upstream-unavailable', exitCode: 3 } },
    });
    await client.close().catch(() => {});
    expect(await cli.kill('SIGTERM')).toBe(0);
  });

  it('under a call in flight: the call gets -32000 with how the child ended, and the session goes on on a new child', async () => {
    const service = uniqueService('child-killed');
    const cli = await startWorkerCli(['--upstream', `${broker.url}/${service}`, '--', process.execPath, DEMO_SERVER]);
    const transport = kind.client({ servers: broker.url, service, heartbeat: { intervalMs: 100, timeoutMs: 500 } });
    const client = createV1Client();
    await client.connect(transport);
    const sessionId = transport.sessionId;
    try {
      expect(textOf(await client.callTool('echo', { text: 'first child' }))).toBe('first child');
      const [child] = childrenOf(cli.process.pid as number);
      let started!: () => void;
      const working = new Promise<void>((resolve) => (started = resolve));
      const call = captureOutcome(() => client.callTool('slow_report', { steps: 50, stepMs: 200 }, { onprogress: () => started() }));
      await working;
      // The worker will release the session; the client's probe learns so and replays the handshake: a new child.
      const replayed = new Promise<void>((resolve) => {
        const off = transport.events.on('reconnect', (event) => {
          if (event.outcome !== 'connected') return;
          off();
          resolve();
        });
      });
      process.kill(child as number, 'SIGKILL');
      expect(await call).toMatchObject({ error: { code: -32000, message: expect.stringContaining('The upstream server was killed by SIGKILL while tools/call was in flight; it may or may not have completed'), data: { reason: 'upstream-exited', signal: 'SIGKILL' } } });
      await replayed;
      expect(textOf(await client.callTool('echo', { text: 'second child' }))).toBe('second child');
      expect(transport.sessionId).toBe(sessionId);
      expect(childrenOf(cli.process.pid as number)).not.toContain(child);
    } finally {
      await client.close();
    }
    expect(await cli.kill('SIGTERM')).toBe(0);
  });
});
