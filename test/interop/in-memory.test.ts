/**
 * wrap() is transparent for the official SDKs (docs/architecture.md#invariant-6), in process.
 *
 * Each pairing of an SDK Client and an SDK McpServer runs the whole scenario script
 * (tools, resources, prompts, progress, server→client requests, cancellation, ping)
 * three times over InMemoryTransport: unwrapped, with `wrap(t, [])` on both sides, and
 * with a stack of observing pass-through layers on both sides. Everything either
 * application observed must be equal across the three runs — results, errors, the
 * messages each application sent and received, what each handler was asked, and how
 * many times each tool really ran — except the peer's request ids, which are wire ids
 * by design (see normalizePeerIds). After each wrapped run both transports' `stats()`
 * are all zero (invariant 5).
 */
import { describe, expect, it } from 'vitest';
import { FAIL_MESSAGE } from '../support/fixture.ts';
import { SDK_PAIRINGS } from '../support/pairings.ts';
import { MODES, type RunRecord, runPairing, ZERO_STATS } from '../support/run.ts';
import { normalizePeerIds } from '../support/tap.ts';

/** What must be identical between runs. */
function comparable(record: RunRecord) {
  return {
    era: record.era,
    steps: record.steps,
    sdkErrors: record.sdkErrors,
    client: normalizePeerIds(record.client),
    server: normalizePeerIds(record.server),
    ledger: record.ledger,
  };
}

function step(record: RunRecord, name: string): unknown {
  const found = record.steps.find((s) => s.step === name);
  if (found === undefined) throw new Error(`no step "${name}" in ${record.steps.map((s) => s.step).join(', ')}`);
  return found.value;
}

describe.each(SDK_PAIRINGS)('$name', (pairing) => {
  it('sees the same results unwrapped, with zero layers and with observing layers, and leaves nothing pending', async () => {
    const [baseline, zero, observed] = [await runPairing(pairing, MODES[0]!), await runPairing(pairing, MODES[1]!), await runPairing(pairing, MODES[2]!)];

    // The baseline itself did what the script asks, so equality below means something.
    expect(baseline.era).toBe(pairing.era);
    expect(step(baseline, 'tools/call echo (readOnlyHint)')).toEqual({ ok: expect.objectContaining({ content: [{ type: 'text', text: 'hello' }] }) });
    expect(step(baseline, 'tools/call fail (tool error)')).toEqual({
      ok: expect.objectContaining({ isError: true, content: [{ type: 'text', text: FAIL_MESSAGE }] }),
    });
    expect(step(baseline, 'tools/call progress')).toMatchObject({ ok: { progress: [{ progress: 1 }, { progress: 2 }, { progress: 3 }] } });
    expect(step(baseline, 'cancellation')).toMatchObject({ ok: { error: { message: expect.stringContaining('the test cancelled the call') } } });
    expect(baseline.ledger.aborted).toEqual([expect.stringMatching(/^slow: /)]);
    // Push-style server→client requests and ping exist in the 2025 era only; the v2
    // server's multi-round-trip `ask` runs twice (re-entered with the client's answer).
    const legacy = pairing.era === 'legacy';
    expect(baseline.ledger.runs).toEqual({
      echo: 1,
      add: 1,
      append: 1,
      fail: 1,
      progress: 1,
      slow: 1,
      ...(legacy ? { sample: 1, elicit: 1 } : {}),
      ...(pairing.server === 'v1' ? {} : { ask: 2 }),
    });
    expect(baseline.steps.find((s) => s.step === 'ping')?.value).toEqual(legacy ? { ok: {} } : undefined);
    expect(baseline.client.errors).toEqual([]);
    expect(baseline.server.errors).toEqual([]);
    expect(baseline.sdkErrors).toEqual({ client: [], server: [] });

    expect(comparable(zero)).toEqual(comparable(baseline));
    expect(comparable(observed)).toEqual(comparable(baseline));

    // Invariant 5: once the script is done, both wrapped transports hold nothing.
    for (const run of [zero, observed]) {
      expect(run.wrapped?.statsAfterRun).toEqual({ client: ZERO_STATS, server: ZERO_STATS });
    }

    // The observing layers really were in the path, on both sides.
    const seen = observed.wrapped!;
    const clientRequests = baseline.client.sent.filter((m) => 'method' in m && 'id' in m).length;
    const serverRequests = baseline.server.sent.filter((m) => 'method' in m && 'id' in m).length;
    expect(seen.clientSeen.exchanges.filter((e) => e.startsWith('outbound request'))).toHaveLength(clientRequests);
    expect(seen.clientSeen.attempts).toBe(clientRequests);
    expect(seen.serverSeen.exchanges.filter((e) => e.startsWith('inbound request'))).toHaveLength(clientRequests);
    expect(seen.serverSeen.attempts).toBe(serverRequests);
    expect(seen.clientSeen.progress).toBe(4); // three steps of `progress`, one "started" of `slow`
    expect(seen.clientSeen.writes).toBe(baseline.client.sent.length);
    expect(seen.serverSeen.writes).toBe(baseline.server.sent.length);
    // Tool annotations in the tools/list result were learned on the way through (invariant 3).
    expect(seen.clientSeen.toolIdempotency).toMatchObject({ echo: true, add: true, progress: true, ledger: true, append: false, fail: false, slow: false });
    expect([seen.clientSeen.attached, seen.clientSeen.detached, seen.serverSeen.attached, seen.serverSeen.detached]).toEqual([1, 1, 1, 1]);
  });
});
