/**
 * The official SDKs through NATS see what they see in process (docs/architecture.md#invariant-6):
 * each pairing of the interop suite runs the whole scenario script (tools, resources,
 * prompts, progress, sampling, elicitation, cancellation, ping) once over
 * InMemoryTransport, unwrapped, and once through a real nats-server — a
 * NatsClientTransport and a worker whose every session (or 2026-07-28 request) gets its
 * own SDK server instance, both sides wrapped. Results, errors, what the client
 * application sent and received, what the server asked, and how often each tool really
 * ran must be equal.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createV1Client, createV2Client } from '../../support/clients.ts';
import { NATS_SERVER, NATS_SKIP_MESSAGE, type NatsServer, startNatsServer } from '../../support/nats-server.ts';
import { runPairingOverNats } from '../../support/nats.ts';
import { MODES, type Pairing, type RunRecord, runPairing } from '../../support/run.ts';
import { normalizePeerIds } from '../../support/tap.ts';

if (NATS_SERVER === undefined) console.warn(`test/transports/nats/transcript.test.ts: ${NATS_SKIP_MESSAGE}`);

const pairings: Pairing[] = [
  { name: 'SDK v1 Client ↔ SDK v1 McpServer', client: createV1Client, server: 'v1', era: 'legacy', link: 'v1' },
  { name: 'SDK v2 Client ↔ SDK v2 McpServer, 2025 era (connect)', client: () => createV2Client(), server: 'v2', era: 'legacy', link: 'v2' },
  {
    name: 'SDK v2 Client ↔ SDK v2 McpServer, 2026-07-28 era (server/discover, serveStdio entry): every request to any worker',
    client: () => createV2Client({ negotiation: 'auto' }),
    server: 'v2-entry',
    era: 'modern',
    link: 'v2',
  },
  { name: 'SDK v1 Client ↔ SDK v2 McpServer (serveStdio entry)', client: createV1Client, server: 'v2-entry', era: 'legacy', link: 'v1' },
  {
    name: 'SDK v2 Client (auto negotiation) ↔ SDK v1 McpServer: the probe falls back to initialize',
    client: () => createV2Client({ negotiation: 'auto' }),
    server: 'v1',
    era: 'legacy',
    link: 'v2',
  },
];

function comparable(record: RunRecord) {
  return { era: record.era, steps: record.steps, sdkErrors: record.sdkErrors, client: normalizePeerIds(record.client), ledger: record.ledger };
}

describe.skipIf(NATS_SERVER === undefined)('the SDKs through NATS give the in-memory transcript', () => {
  let broker: NatsServer | undefined;
  beforeAll(async () => {
    broker = await startNatsServer();
  });
  afterAll(async () => {
    await broker?.stop();
  });

  it.each(pairings)('$name', async (pairing) => {
    const baseline = await runPairing(pairing, MODES[0]!);
    const overNats = await runPairingOverNats(pairing, broker!.url);

    expect(baseline.era).toBe(pairing.era);
    expect(baseline.steps.find((s) => s.step === 'tools/call echo (readOnlyHint)')?.value).toEqual({ ok: expect.objectContaining({ content: [{ type: 'text', text: 'hello' }] }) });
    expect(comparable(overNats)).toEqual(comparable(baseline));
    // One server instance per session in the 2025 era; one per request in the 2026-07-28 era.
    if (pairing.era === 'legacy') expect(overNats.instances).toBeLessThanOrEqual(2);
    else expect(overNats.instances).toBeGreaterThan(10);
  });
});
