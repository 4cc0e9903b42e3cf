/**
 * One MCP message per NATS message: UTF-8 JSON of a single JSON-RPC message (our
 * transports never send arrays). What arrives is read with the core's classify(), so a
 * foreign publisher's bytes are told apart from our messages, and a request that can be
 * identified (an id and somewhere to answer) can still be answered.
 */
import { isUtf8 } from 'node:buffer';
import { headers as natsHeaders, type MsgHdrs } from '@nats-io/transport-node';
import { TransportError } from '../../core/errors.ts';
import type { JSONRPCMessage, RequestId } from '../../core/jsonrpc.ts';
import { classify } from '../../core/validate.ts';
import { Header } from './subjects.ts';

export type Decoded = { ok: true; message: JSONRPCMessage } | { ok: false; problem: string; id: RequestId | undefined };

const encoder = new TextEncoder();

export function encode(message: JSONRPCMessage): Uint8Array {
  return encoder.encode(JSON.stringify(message));
}

export function decode(data: Uint8Array): Decoded {
  if (data.length === 0) return { ok: false, problem: 'an empty message', id: undefined };
  if (!isUtf8(data)) return { ok: false, problem: 'a message that is not UTF-8 text', id: undefined };
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8'));
  } catch {
    return { ok: false, problem: 'a message that is not valid JSON', id: undefined };
  }
  if (Array.isArray(value)) return { ok: false, problem: 'a JSON array (this transport carries one message per NATS message)', id: undefined };
  const classified = classify(value);
  if (classified.kind === 'invalid') return { ok: false, problem: `a message that is not JSON-RPC 2.0: ${classified.problem}`, id: classified.id };
  return { ok: true, message: classified.message };
}

export interface HeaderValues {
  readonly [name: string]: string | undefined;
}

/** NATS headers from values (undefined ones left out), with the message's trace context copied from `_meta`. */
export function headersFor(values: HeaderValues, message?: JSONRPCMessage): MsgHdrs {
  const h = natsHeaders();
  for (const [name, value] of Object.entries(values)) if (value !== undefined) h.set(name, value);
  const meta = message !== undefined && 'method' in message ? message.params?._meta : undefined;
  if (meta !== undefined) {
    // Brokers and their tooling read trace context from headers; the `_meta` copy stays the one the SDKs read.
    const traceparent = meta['traceparent'];
    const tracestate = meta['tracestate'];
    if (typeof traceparent === 'string' && traceparent.length <= 128) h.set(Header.TraceParent, traceparent);
    if (typeof tracestate === 'string' && tracestate.length <= 512) h.set(Header.TraceState, tracestate);
  }
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

/** What a message is, for error messages: its method, or `a response`. */
export function describeMessage(message: JSONRPCMessage): string {
  return 'method' in message ? message.method : 'a response';
}

/** The error for a message the broker would refuse: it names the limit, and nothing was sent. */
export function overMaxPayload(label: string, what: string, size: number, maxPayload: number): TransportError {
  return new TransportError(
    `${label}: ${what} is ${size} bytes with its headers, over the NATS server's max_payload of ${maxPayload} bytes; it was not sent (raise max_payload in the server's configuration, or send less)`,
    { layer: 'nats', reason: 'max-payload', neverSent: true, retryable: false, data: { size, maxPayload } },
  );
}

/** The tool a tools/call names, when it does. */
export function toolOf(message: JSONRPCMessage): string | undefined {
  if (!('method' in message) || message.method !== 'tools/call') return undefined;
  const name = message.params?.['name'];
  return typeof name === 'string' ? name : undefined;
}
