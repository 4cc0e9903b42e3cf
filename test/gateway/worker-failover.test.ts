/**
 * Two `mcp-layers worker` processes of one service, on each broker, and a `kill -9` of
 * one of them under load (200 calls over four sessions, every one of them on the victim):
 * the clients notice (their probes meet "no responders"), replay their handshakes on the
 * survivor — a new child each — and the broker redelivers what the victim held.
 * Idempotent calls run again there and succeed; the others end with one typed error and
 * never run twice; what the victim had not taken yet runs once on the survivor. Every
 * request ends with exactly one response: none lost, none duplicated.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { wrap } from '#core/wrap.ts';
import { type BrokerClientTransport, type BrokerServer, describeEachBroker, uniqueService } from '../support/brokers.ts';
import { createV1Client, type TestClient } from '../support/clients.ts';
import { captureOutcome } from '../support/scenarios.ts';
import { tap, type TapLog } from '../support/tap.ts';
import { killWorkers, startWorkerCli } from '../support/worker-cli.ts';

const SERVER = fileURLToPath(new URL('../support/failover-stdio-server.ts', import.meta.url));
const SESSIONS = 4;
const CALLS = 200;

describeEachBroker('test/gateway/worker-failover.test.ts', (b) => `mcp-layers worker over ${b.title}: one of two killed under load`, (kind) => {
  let broker: BrokerServer | undefined;
  let dir = '';
  beforeAll(async () => {
    broker = await kind.start();
    dir = mkdtempSync(join(tmpdir(), `mcp-layers-worker-${kind.name}-failover-`));
  });
  afterAll(async () => {
    await killWorkers();
    await broker?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it(`${CALLS} calls: 0 lost, 0 duplicated, the non-idempotent never run twice, the idempotent all succeed`, async () => {
    const service = uniqueService('worker-failover');
    const runs = join(dir, `${service}.log`);
    // Short, so that the victim's requests move within a test's patience (--config, with the server after --).
    const config = join(dir, `${service}.yaml`);
    writeFileSync(config, `upstream:\n  command: ${process.execPath}\nworker:\n  broker: ${broker!.url}/${service}\n  ackWaitMs: 1000\n`);
    const worker = (id: string, hold: '0' | '1') => startWorkerCli(['--config', config, '--id', id, '--log-level', 'warn', '--', process.execPath, SERVER, id, hold, runs]);

    const victim = await worker('victim', '1');
    const sessions: Array<{ client: TestClient; transport: BrokerClientTransport; log: TapLog }> = [];
    for (let i = 0; i < SESSIONS; i++) {
      const transport = kind.client({ servers: broker!.url, service, heartbeat: { intervalMs: 100, timeoutMs: 500 } });
      const wrapped = wrap(transport, [], { events: transport.events });
      const log = tap(wrapped);
      const client = createV1Client();
      await client.connect(wrapped);
      // tools/list teaches the client which tools are idempotent (readOnlyHint): its requests say so.
      await client.listTools();
      sessions.push({ client, transport, log });
    }
    expect(sessions.map((s) => s.transport.worker)).toEqual(Array(SESSIONS).fill('victim'));
    const survivor = await worker('survivor', '0');

    const calls = Array.from({ length: CALLS }, (_, i) => {
      const tool = i % 2 === 0 ? 'write' : 'read';
      const key = `k${i}`;
      return { tool, key, outcome: captureOutcome(() => (sessions[i % SESSIONS] as (typeof sessions)[number]).client.callTool(tool, { key })) };
    });
    // Every session has requests in the victim's hands (its children are running them) when it dies.
    await Promise.all(calls.slice(0, SESSIONS).map(({ tool, key }) => victim.waitForStderr(`RAN ${tool} ${key}`)));
    await victim.kill('SIGKILL');
    const outcomes = await Promise.all(calls.map(async (call) => ({ ...call, outcome: await call.outcome })));

    const lines = readFileSync(runs, 'utf8').trim().split('\n');
    const ranOn = (tool: string, key: string) => lines.filter((l) => l.endsWith(` ${tool} ${key}`)).map((l) => l.split(' ')[0]);
    for (const { tool, key, outcome } of outcomes) {
      if (tool === 'read') {
        // Idempotent: whatever the victim held ran again on the survivor, and succeeded.
        expect(outcome, key).toEqual({ ok: expect.objectContaining({ content: [{ type: 'text', text: `read ${key} on survivor` }] }) });
        expect(ranOn(tool, key).filter((w) => w === 'survivor'), key).toEqual(['survivor']);
      } else if ('ok' in (outcome as object)) {
        // Not yet taken by the victim: it ran once, on the survivor.
        expect(outcome, key).toEqual({ ok: expect.objectContaining({ content: [{ type: 'text', text: `wrote ${key} on survivor` }] }) });
        expect(ranOn(tool, key), key).toEqual(['survivor']);
      } else {
        // In the victim's hands: one clear error, and never run again.
        expect(outcome, key).toMatchObject({ error: { code: -32054, data: { layer: kind.name, reason: 'worker-lost' }, message: expect.stringContaining('it was not run again') } });
        expect(ranOn(tool, key).filter((w) => w === 'survivor'), key).toEqual([]);
        expect(ranOn(tool, key).length, key).toBeLessThanOrEqual(1);
      }
    }
    // The victim really held some of each when it died.
    expect(outcomes.filter((o) => o.tool === 'write' && 'error' in (o.outcome as object)).length).toBeGreaterThan(0);
    expect(outcomes.filter((o) => o.tool === 'read' && ranOn('read', o.key).includes('victim')).length).toBeGreaterThan(0);

    for (const { log, transport } of sessions) {
      // Exactly one response to every request the application sent: none lost, none twice.
      const asked = log.sent.filter((m) => 'method' in m && 'id' in m).map((m) => (m as { id: number }).id);
      const answered = log.received.filter((m) => !('method' in m)).map((m) => (m as { id: number }).id);
      expect(answered.toSorted()).toEqual(asked.toSorted());
      // The session lives on, on the survivor.
      expect(transport.worker).toBe('survivor');
    }
    await Promise.all(sessions.map((s) => s.client.close()));
    expect(await survivor.kill('SIGTERM')).toBe(0);
  });
});
