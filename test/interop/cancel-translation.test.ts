/**
 * An application's `notifications/cancelled` is translated to the live wire id — and to
 * nothing else. The peer must read the notification the application wrote: the same
 * `reason` (or none), the same `_meta` (on 2026-07-28 the SDK puts its per-request
 * envelope there), any other params; only `requestId` changes (docs/architecture.md#ids,
 * invariant 6).
 */
import { describe, expect, it } from 'vitest';
import type { JSONRPCMessage } from '#core/jsonrpc.ts';
import { wrap } from '#core/wrap.ts';
import { linkedPair } from '../support/links.ts';

async function cancelThroughWrap(cancelParams: Record<string, unknown>) {
  const [appSide, peerSide] = linkedPair('v1');
  const peerReceived: JSONRPCMessage[] = [];
  peerSide.onmessage = (message) => void peerReceived.push(message);
  await peerSide.start();
  const wrapped = wrap(appSide, []);
  await wrapped.start();

  await wrapped.send({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'slow' } });
  await wrapped.send({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 7, ...cancelParams } });
  await wrapped.close();
  const [request, cancel] = peerReceived;
  return { wireId: (request as { id: unknown }).id, cancel };
}

describe('application cancellation on the wire', () => {
  it("keeps the application's reason and only replaces the request id", async () => {
    const { wireId, cancel } = await cancelThroughWrap({ reason: 'the user pressed stop' });
    expect(cancel).toEqual({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: wireId, reason: 'the user pressed stop' } });
  });

  it('sends no reason when the application gave none', async () => {
    const { wireId, cancel } = await cancelThroughWrap({});
    expect(cancel).toEqual({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: wireId } });
  });

  it("keeps the application's _meta (the 2026-07-28 per-request envelope) and other params", async () => {
    const meta = { 'io.modelcontextprotocol/protocolVersion': '2026-07-28', 'io.modelcontextprotocol/clientInfo': { name: 'c', version: '1' } };
    const { wireId, cancel } = await cancelThroughWrap({ reason: 'stop', _meta: meta, extension: { kept: true } });
    expect(cancel).toEqual({
      jsonrpc: '2.0',
      method: 'notifications/cancelled',
      params: { requestId: wireId, reason: 'stop', _meta: meta, extension: { kept: true } },
    });
  });
});
