/**
 * wrap() is transparent for the official SDKs over stdio, with a real child process.
 *
 * The client wraps the SDK's StdioClientTransport; the child (test/support/stdio-server.ts)
 * wraps its own StdioServerTransport. Each pairing runs the scenario script twice — both
 * sides unwrapped, then both sides wrapped with observing pass-through layers — and what
 * the client application observed must be equal (results, errors, the messages it sent
 * and received, what its handlers were asked, the server's tool-run ledger). After the
 * wrapped run, both sides' `stats()` hold nothing but the one call reading them.
 *
 * Two differences are not the stack's doing and are taken out before comparing, each
 * asserted to be exactly what it is:
 * - The SDKs dispatch notifications in a microtask but responses synchronously, so when
 *   progress notifications and the response arrive in one read from the pipe, the SDK
 *   drops the progress ("unknown token"). Whether they share a read is up to the OS.
 *   The messages the SDK received are compared exactly; only the SDK's progress
 *   callbacks and its "unknown token" errors are left out.
 * - SDK v2's `versionNegotiation: 'auto'` probes `server/discover` on a throw-away sibling
 *   process only when the transport is exactly its own StdioClientTransport class; any
 *   other transport, a wrapped one included, is probed in place, on the session itself.
 */
import { describe, expect, it } from 'vitest';
import type { JSONRPCMessage } from '#core/jsonrpc.ts';
import { wrap } from '#core/wrap.ts';
import { createV1Client, createV2Client, type Era, type TestClient } from '../support/clients.ts';
import { newObservations, observingLayers, type Observations } from '../support/layers.ts';
import { runScenarios, type Step } from '../support/scenarios.ts';
import { collectStderr, withChildStderr, fixtureServerProcess, stdioClientTransport } from '../support/stdio.ts';
import { normalizePeerIds, tap, type TapLog } from '../support/tap.ts';
import { ZERO_STATS } from '../support/run.ts';

interface StdioPairing {
  name: string;
  clientSdk: 'v1' | 'v2';
  client: () => TestClient;
  serverSdk: 'v1' | 'v2';
  era: Era;
}

interface StdioRun {
  steps: Step[];
  client: TapLog;
  /** Errors the SDK Client reported to its onerror. */
  sdkErrors: string[];
  era: Era;
  clientSeen: Observations;
  clientStats: unknown;
  /** What the child's `transport_stats` tool reported. */
  serverStats: { wrapped: boolean; stats?: unknown; seen?: Observations };
  pidForwarded: boolean;
}

async function runOverStdio(pairing: StdioPairing, wrapped: boolean): Promise<StdioRun> {
  const inner = stdioClientTransport(pairing.clientSdk, fixtureServerProcess(pairing.serverSdk, wrapped ? 'observe' : 'none'));
  const stderr = collectStderr(inner);
  const clientSeen = newObservations();
  const transport = wrapped ? wrap(inner, observingLayers(clientSeen), { name: 'stdio-client' }) : inner;
  const log = tap(transport);
  const client = pairing.client();
  const sdkErrors: string[] = [];
  client.onerror = (error) => void sdkErrors.push(error.message);
  await client.connect(transport).catch(async (error: unknown) => {
    await transport.close();
    throw withChildStderr(error, stderr());
  });
  try {
    const era = client.era();
    const steps = await runScenarios(client, { era, serverSdk: pairing.serverSdk });
    const clientStats = wrapped ? (transport as ReturnType<typeof wrap>).stats() : undefined;
    const observed: TapLog = { sent: [...log.sent], received: [...log.received], errors: [...log.errors] };
    const seenBeforeStats = structuredClone(clientSeen);
    const reply = (await client.callTool('transport_stats', {})) as { content: Array<{ text: string }> };
    const serverStats = JSON.parse(reply.content[0]!.text) as StdioRun['serverStats'];
    // The SDK transport's own members (here the child's pid) are forwarded by the wrapper.
    const pidForwarded = typeof inner.pid === 'number' && (transport as { pid?: unknown }).pid === inner.pid;
    return { steps, client: observed, sdkErrors, era, clientSeen: seenBeforeStats, clientStats, serverStats, pidForwarded };
  } catch (error) {
    throw withChildStderr(error, stderr());
  } finally {
    await client.close();
  }
}

const PROGRESS_STEP = 'tools/call progress';
const isRequest = (m: JSONRPCMessage) => 'method' in m && 'id' in m;
const PROBE_ID = 'server-discover-probe-1';

function comparable(run: StdioRun) {
  return {
    era: run.era,
    // The SDK's own progress callbacks race with the response (see the file comment).
    steps: run.steps.map((step) => (step.step === PROGRESS_STEP ? { ...step, value: { ok: { result: (step.value as { ok: { result: unknown } }).ok.result } } } : step)),
    sdkErrors: run.sdkErrors.filter((message) => !message.startsWith('Received a progress notification for an unknown token')),
    client: normalizePeerIds(run.client),
  };
}

/** The in-place `server/discover` probe exchange of a wrapped SDK v2 client, taken out of its log. */
function withoutInPlaceProbe(log: TapLog): { log: TapLog; probe: JSONRPCMessage[] } {
  const isProbe = (message: JSONRPCMessage) => 'id' in message && message.id === PROBE_ID;
  return {
    log: { sent: log.sent.filter((m) => !isProbe(m)), received: log.received.filter((m) => !isProbe(m)), errors: log.errors },
    probe: [...log.sent.filter(isProbe), ...log.received.filter(isProbe)],
  };
}

/** The progress notifications the SDK received for the `progress` call, and that the response came after them. */
function progressOnTheWire(log: TapLog): number[] {
  const call = log.sent.find((m) => 'method' in m && m.method === 'tools/call' && m.params?.['name'] === 'progress') as { id: unknown } | undefined;
  const responseAt = log.received.findIndex((m) => !('method' in m) && m.id === call?.id);
  return log.received
    .slice(0, responseAt)
    .filter((m) => 'method' in m && m.method === 'notifications/progress')
    .map((m) => (m as unknown as { params: { progress: number } }).params.progress)
    .filter((progress) => progress > 0); // `slow` reports progress 0 later on
}

const pairings: StdioPairing[] = [
  { name: 'SDK v1 Client ↔ SDK v1 McpServer', clientSdk: 'v1', client: createV1Client, serverSdk: 'v1', era: 'legacy' },
  { name: 'SDK v2 Client ↔ SDK v2 McpServer, 2025 era', clientSdk: 'v2', client: () => createV2Client(), serverSdk: 'v2', era: 'legacy' },
  {
    name: 'SDK v2 Client ↔ SDK v2 McpServer, 2026-07-28 era',
    clientSdk: 'v2',
    client: () => createV2Client({ negotiation: 'auto' }),
    serverSdk: 'v2',
    era: 'modern',
  },
  { name: 'SDK v1 Client ↔ SDK v2 McpServer', clientSdk: 'v1', client: createV1Client, serverSdk: 'v2', era: 'legacy' },
];

describe.each(pairings)('$name over stdio (real child process)', (pairing) => {
  it('the client observes the same with wrap() on both sides as without, and nothing is left pending', async () => {
    const baseline = await runOverStdio(pairing, false);
    const wrapped = await runOverStdio(pairing, true);

    expect(baseline.era).toBe(pairing.era);
    expect(baseline.serverStats).toEqual({ wrapped: false });
    expect(baseline.steps.find((s) => s.step === 'cancellation')?.value).toMatchObject({ ok: { error: { message: expect.stringContaining('the test cancelled') } } });
    expect(baseline.steps.find((s) => s.step === 'ledger after cancellation')?.value).toMatchObject({
      ok: { content: [{ text: expect.stringContaining('"aborted":["slow: ') }] },
    });
    expect(baseline.client.errors).toEqual([]);
    expect(comparable(baseline).sdkErrors).toEqual([]);

    const wrappedRequests = wrapped.client.sent.filter(isRequest).length;
    // Unwrapped, the SDK v2 client probed on a sibling process; wrapped, on the session itself.
    const inPlace = withoutInPlaceProbe(wrapped.client);
    expect(withoutInPlaceProbe(baseline.client).probe).toEqual([]);
    expect(inPlace.probe).toMatchObject(pairing.era === 'modern' ? [{ method: 'server/discover' }, { result: { supportedVersions: ['2026-07-28'] } }] : []);
    wrapped.client = inPlace.log;
    expect(comparable(wrapped)).toEqual(comparable(baseline));
    expect(progressOnTheWire(baseline.client)).toEqual([1, 2, 3]);
    expect(progressOnTheWire(wrapped.client)).toEqual([1, 2, 3]);

    // Invariant 5 on both sides of the pipe. The child answers while its one inbound
    // exchange (the transport_stats call itself) is in flight.
    expect(wrapped.clientStats).toEqual(ZERO_STATS);
    expect(wrapped.serverStats).toMatchObject({ wrapped: true, stats: { ...ZERO_STATS, inbound: 1 } });
    expect(wrapped.pidForwarded).toBe(true);

    // The layers were in the path in both processes.
    expect(wrapped.clientSeen.attempts).toBe(wrappedRequests);
    // The child's snapshot was taken while answering transport_stats: one more request.
    expect(wrapped.serverStats.seen?.exchanges.filter((e) => e.startsWith('inbound request'))).toHaveLength(wrappedRequests + 1);
  });
});
