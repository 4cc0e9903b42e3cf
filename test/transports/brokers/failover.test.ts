/**
 * On each broker, a worker killed under load (SIGKILL of its process, with requests in hand): the
 * client notices (its probes meet "no responders"), re-establishes the session on the
 * other worker by replaying its handshake under the same session id, and the broker
 * redelivers what the dead worker held. Idempotent requests run again there and succeed;
 * the others are answered with one typed error and never run twice. Every request ends
 * with exactly one response: none lost, none duplicated.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { wrap } from '#core/wrap.ts';
import { LineChild } from '../../support/child.ts';
import { BROKER_WORKER_CHILD, type BrokerServer, describeEachBroker, uniqueService } from '../../support/brokers.ts';
import { createV1Client, textOf } from '../../support/clients.ts';
import { captureOutcome } from '../../support/scenarios.ts';
import { tap } from '../../support/tap.ts';

const KEYS = 6;

describeEachBroker('test/transports/brokers/failover.test.ts', (b) => `mcp-layers/${b.name}: a worker killed with requests in hand`, (kind) => {
  let broker: BrokerServer | undefined;
  let dir = '';
  const children: LineChild[] = [];
  beforeAll(async () => {
    broker = await kind.start();
    dir = mkdtempSync(join(tmpdir(), `mcp-layers-${kind.name}-failover-`));
  });
  afterAll(async () => {
    await Promise.all(children.map((c) => c.kill()));
    await broker?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('redelivers the idempotent ones to the other worker, answers the others with one error, and keeps the session', async () => {
    const service = uniqueService('failover');
    const runs = join(dir, 'runs.log');
    const victim = new LineChild(BROKER_WORKER_CHILD, [kind.name, broker!.url, service, 'victim', '1', runs]);
    children.push(victim);
    await victim.waitFor('READY');

    const transport = kind.client({ servers: broker!.url, service, heartbeat: { intervalMs: 100, timeoutMs: 500 } });
    const wrapped = wrap(transport, [], { events: transport.events });
    const log = tap(wrapped);
    const client = createV1Client();
    await client.connect(wrapped);
    const sessionId = transport.sessionId;
    expect(transport.worker).toBe('victim');
    // tools/list teaches the client which tools are idempotent (readOnlyHint): its requests say so.
    await client.listTools();

    const survivor = new LineChild(BROKER_WORKER_CHILD, [kind.name, broker!.url, service, 'survivor', '0', runs]);
    children.push(survivor);
    await survivor.waitFor('READY');

    const keys = Array.from({ length: KEYS }, (_, i) => `k${i}`);
    const writes = keys.map((key) => captureOutcome(() => client.callTool('write', { key })));
    const reads = keys.map((key) => captureOutcome(() => client.callTool('read', { key })));
    await Promise.all(keys.flatMap((key) => [victim.waitFor(`RAN write ${key}`), victim.waitFor(`RAN read ${key}`)]));
    const replayed = new Promise<void>((resolve) => {
      const off = transport.events.on('reconnect', (event) => {
        if (event.outcome !== 'connected') return;
        off();
        resolve();
      });
    });
    await victim.kill('SIGKILL');

    const [wrote, read] = [await Promise.all(writes), await Promise.all(reads)];
    await replayed;
    expect(read).toEqual(keys.map((key) => ({ ok: expect.objectContaining({ content: [{ type: 'text', text: `read ${key} on survivor` }] }) })));
    for (const outcome of wrote) {
      expect(outcome).toMatchObject({ error: { code: -32054, data: { layer: kind.name, reason: 'worker-lost' }, message: expect.stringContaining('it was not run again') } });
    }

    // What really ran, where: each write once (on the dead worker), each read twice.
    const lines = readFileSync(runs, 'utf8').trim().split('\n');
    for (const key of keys) {
      expect(lines.filter((l) => l === `victim write ${key}` || l === `survivor write ${key}`)).toEqual([`victim write ${key}`]);
      expect(lines.filter((l) => l.endsWith(` read ${key}`)).toSorted()).toEqual([`survivor read ${key}`, `victim read ${key}`]);
    }
    // Exactly one response to every request the application sent: none lost, none twice.
    const asked = log.sent.filter((m) => 'method' in m && 'id' in m).map((m) => (m as { id: number }).id);
    const answered = log.received.filter((m) => !('method' in m)).map((m) => (m as { id: number }).id);
    expect(answered.toSorted()).toEqual(asked.toSorted());

    // The session lives on, on the survivor, under its id.
    expect(transport.sessionId).toBe(sessionId);
    expect(transport.worker).toBe('survivor');
    expect(textOf(await client.callTool('write', { key: 'after' }))).toBe('wrote after on survivor');
    await client.close();
  });
});
