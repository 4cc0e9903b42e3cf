/** A tracing layer built before any OpenTelemetry SDK is registered still records once one is. */
import { afterAll, describe, expect, it } from 'vitest';
import { tracing } from '#middleware/observability/tracing.ts';
import { wrap } from '#core/wrap.ts';
import { RecordingApp, ScriptedPeer, turn } from '../support/scripted-peer.ts';
import { startOtel } from '../support/otel.ts';

let otel: ReturnType<typeof startOtel> | undefined;
afterAll(async () => {
  await otel?.shutdown();
});

describe('tracing() and a late SDK', () => {
  it('looks the global tracer up at the first span, not at construction', async () => {
    const layer = tracing();
    otel = startOtel();
    const peer = new ScriptedPeer();
    const transport = wrap(peer, [layer]);
    const _app = new RecordingApp(transport);
    await transport.start();
    await transport.send({ jsonrpc: '2.0', id: 1, method: 'ping' });
    peer.deliver({ jsonrpc: '2.0', id: peer.requests()[0]?.id as number, result: {} });
    await turn();
    expect(otel.spans().map((s) => s.name)).toEqual(['ping']);
    expect(peer.requests()[0]?.params?._meta?.['traceparent']).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
  });
});
