/**
 * NATS headers for what both brokers' transports write (../broker/codec.ts reads and
 * writes the messages themselves), and the size a message takes against `max_payload`.
 */
import { headers as natsHeaders, type MsgHdrs } from '@nats-io/transport-node';
import { type HeaderValues, type PayloadLimit, withTrace } from '../broker/codec.ts';
import type { JSONRPCMessage } from '../../core/jsonrpc.ts';

/** How errors name the NATS server's message size limit. */
export const NATS_LIMIT: PayloadLimit = { layer: 'nats', name: "the NATS server's max_payload", fix: "raise max_payload in the server's configuration" };

/** NATS headers from values (undefined ones left out), with the message's trace context copied from `_meta`; or from pairs already made. */
export function headersFor(values: HeaderValues | Array<[string, string]>, message?: JSONRPCMessage): MsgHdrs {
  const h = natsHeaders();
  for (const [name, value] of Array.isArray(values) ? values : withTrace(values, message)) h.set(name, value);
  return h;
}

/** Header values as a plain object, for MessageExtraInfo (`requestInfo.headers`). */
export function headerRecord(h: MsgHdrs | undefined): Record<string, string> {
  const record: Record<string, string> = {};
  if (h === undefined) return record;
  for (const [name, values] of h) record[name.toLowerCase()] = values.join(', ');
  return record;
}

/** Bytes a NATS message takes against `max_payload`: the payload and its encoded headers. */
export function wireSize(data: Uint8Array, h: MsgHdrs | undefined): number {
  const encoded = (h as { encode?: () => Uint8Array } | undefined)?.encode?.();
  return data.length + (encoded?.length ?? 0);
}
