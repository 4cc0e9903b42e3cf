/**
 * The official SDKs through Redis see what they see in process (docs/architecture.md#invariant-6):
 * each pairing of the interop suite runs the whole scenario script (tools, resources,
 * prompts, progress, sampling, elicitation, cancellation, ping) once over
 * InMemoryTransport, unwrapped, and once through a real redis-server — a
 * RedisClientTransport and a worker whose every session (or 2026-07-28 request) gets its
 * own SDK server instance, both sides wrapped. Results, errors, what the client
 * application sent and received, what the server asked, and how often each tool really
 * ran must be equal.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createV1Client, createV2Client } from '../../support/clients.ts';
import { REDIS_SERVER, REDIS_SKIP_MESSAGE, type RedisServer, startRedisServer } from '../../support/redis-server.ts';
import { runPairingOverRedis } from '../../support/redis.ts';
import { MODES, type Pairing, type RunRecord, runPairing } from '../../support/run.ts';
import { normalizePeerIds } from '../../support/tap.ts';

if (REDIS_SERVER === undefined) console.warn(`test/transports/redis/transcript.test.ts: ${REDIS_SKIP_MESSAGE}`);

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

describe.skipIf(REDIS_SERVER === undefined)('the SDKs through Redis give the in-memory transcript', () => {
  let broker: RedisServer | undefined;
  beforeAll(async () => {
    broker = await startRedisServer();
  });
  afterAll(async () => {
    await broker?.stop();
  });

  it.each(pairings)('$name', async (pairing) => {
    const baseline = await runPairing(pairing, MODES[0]!);
    const overRedis = await runPairingOverRedis(pairing, broker!.url);

    expect(baseline.era).toBe(pairing.era);
    expect(baseline.steps.find((s) => s.step === 'tools/call echo (readOnlyHint)')?.value).toEqual({ ok: expect.objectContaining({ content: [{ type: 'text', text: 'hello' }] }) });
    expect(comparable(overRedis)).toEqual(comparable(baseline));
    // One server instance per session in the 2025 era; one per request in the 2026-07-28 era.
    if (pairing.era === 'legacy') expect(overRedis.instances).toBeLessThanOrEqual(2);
    else expect(overRedis.instances).toBeGreaterThan(10);
  });
});
