/**
 * The official SDKs through each broker see what they see in process (docs/architecture.md#invariant-6):
 * each pairing of the interop suite runs the whole scenario script (tools, resources,
 * prompts, progress, sampling, elicitation, cancellation, ping) once over
 * InMemoryTransport, unwrapped, and once through a real nats-server or redis-server — a
 * NatsClientTransport or RedisClientTransport and a worker whose every session (or 2026-07-28 request) gets its
 * own SDK server instance, both sides wrapped. Results, errors, what the client
 * application sent and received, what the server asked, and how often each tool really
 * ran must be equal.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type BrokerServer, describeEachBroker, runPairingOverBroker } from '../../support/brokers.ts';
import { SDK_PAIRINGS } from '../../support/pairings.ts';
import { MODES, type RunRecord, runPairing } from '../../support/run.ts';
import { normalizePeerIds } from '../../support/tap.ts';

/** The interop suite's pairings; over a broker, a 2026-07-28-era request may go to any worker. */
const pairings = SDK_PAIRINGS.map((pairing) => (pairing.era === 'modern' ? { ...pairing, name: `${pairing.name}: every request to any worker` } : pairing));

function comparable(record: RunRecord) {
  return { era: record.era, steps: record.steps, sdkErrors: record.sdkErrors, client: normalizePeerIds(record.client), ledger: record.ledger };
}

describeEachBroker('test/transports/brokers/transcript.test.ts', (b) => `the SDKs through ${b.title} give the in-memory transcript`, (kind) => {
  let broker: BrokerServer | undefined;
  beforeAll(async () => {
    broker = await kind.start();
  });
  afterAll(async () => {
    await broker?.stop();
  });

  it.each(pairings)('$name', async (pairing) => {
    const baseline = await runPairing(pairing, MODES[0]!);
    const overBroker = await runPairingOverBroker(kind, pairing, broker!.url);

    expect(baseline.era).toBe(pairing.era);
    expect(baseline.steps.find((s) => s.step === 'tools/call echo (readOnlyHint)')?.value).toEqual({ ok: expect.objectContaining({ content: [{ type: 'text', text: 'hello' }] }) });
    expect(comparable(overBroker)).toEqual(comparable(baseline));
    // One server instance per session in the 2025 era; one per request in the 2026-07-28 era.
    if (pairing.era === 'legacy') expect(overBroker.instances).toBeLessThanOrEqual(2);
    else expect(overBroker.instances).toBeGreaterThan(10);
  });
});
