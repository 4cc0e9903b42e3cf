/**
 * One MCP message per broker message: UTF-8 JSON of a single JSON-RPC message (our
 * transports never send arrays). What arrives is read with the core's classify(), so a
 * foreign publisher's bytes are told apart from our messages, and a request that can be
 * identified (an id and somewhere to answer) can still be answered.
 */
import { isUtf8 } from 'node:buffer';
import { TransportError } from '../../core/errors.ts';
import { CANCELLED, type JSONRPCMessage, type JSONRPCRequest, type RequestId } from '../../core/jsonrpc.ts';
import { classify } from '../../core/validate.ts';
import { Header } from './names.ts';

export type Decoded = { ok: true; message: JSONRPCMessage } | { ok: false; problem: string; id: RequestId | undefined };

const encoder = new TextEncoder();

export function encode(message: JSONRPCMessage): Uint8Array {
  return encoder.encode(JSON.stringify(message));
}

/** `unit` names what carries one message, for the error about arrays (`NATS message`, `stream entry`). */
export function decode(data: Uint8Array, unit: string): Decoded {
  if (data.length === 0) return { ok: false, problem: 'an empty message', id: undefined };
  if (!isUtf8(data)) return { ok: false, problem: 'a message that is not UTF-8 text', id: undefined };
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8'));
  } catch {
    return { ok: false, problem: 'a message that is not valid JSON', id: undefined };
  }
  if (Array.isArray(value)) return { ok: false, problem: `a JSON array (this transport carries one message per ${unit})`, id: undefined };
  const classified = classify(value);
  if (classified.kind === 'invalid') return { ok: false, problem: `a message that is not JSON-RPC 2.0: ${classified.problem}`, id: classified.id };
  return { ok: true, message: classified.message };
}

export interface HeaderValues {
  readonly [name: string]: string | undefined;
}

/** The values that are set, with the message's trace context copied from `_meta` (brokers and their tooling read headers; the SDKs read `_meta`). */
export function withTrace(values: HeaderValues, message?: JSONRPCMessage): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const [name, value] of Object.entries(values)) if (value !== undefined) out.push([name, value]);
  const meta = message !== undefined && 'method' in message ? message.params?._meta : undefined;
  if (meta !== undefined) {
    const traceparent = meta['traceparent'];
    const tracestate = meta['tracestate'];
    if (typeof traceparent === 'string' && traceparent.length <= 128) out.push([Header.TraceParent, traceparent]);
    if (typeof tracestate === 'string' && tracestate.length <= 512) out.push([Header.TraceState, tracestate]);
  }
  return out;
}

/** What a message is, for error messages: its method, or `a response`. */
export function describeMessage(message: JSONRPCMessage): string {
  return 'method' in message ? message.method : 'a response';
}

/** The tool a tools/call names, when it does. */
export function toolOf(message: JSONRPCMessage): string | undefined {
  if (!('method' in message) || message.method !== 'tools/call') return undefined;
  const name = message.params?.['name'];
  return typeof name === 'string' ? name : undefined;
}

/** The request a notifications/cancelled names, when it is one. */
export function cancelledRequestId(message: JSONRPCMessage): RequestId | undefined {
  if (!('method' in message) || message.method !== CANCELLED) return undefined;
  const id = message.params?.['requestId'];
  return typeof id === 'string' || typeof id === 'number' ? id : undefined;
}

/**
 * What any client of a session needs to re-establish it on another worker, kept on the
 * broker by the worker that holds the session: the `initialize` params, the protocol
 * version it negotiated, and that worker (its probe subject). Its presence is also what
 * says the session exists: a gateway replica adopts a session it does not hold only when
 * the broker still keeps its handshake.
 */
export interface Handshake {
  readonly params: JSONRPCRequest['params'];
  readonly protocolVersion: string;
  readonly worker: string;
}

export function encodeHandshake(handshake: Handshake): Uint8Array {
  return encoder.encode(JSON.stringify(handshake));
}

/** A handshake as stored, or undefined for anything else (a foreign writer's bytes are no handshake). */
export function decodeHandshake(data: Uint8Array | string | null | undefined): Handshake | undefined {
  if (data === null || data === undefined || data.length === 0) return undefined;
  try {
    const value = JSON.parse(typeof data === 'string' ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8')) as Partial<Handshake> | null;
    if (typeof value !== 'object' || value === null) return undefined;
    if (typeof value.protocolVersion !== 'string' || typeof value.worker !== 'string') return undefined;
    if (value.params !== undefined && (typeof value.params !== 'object' || value.params === null || Array.isArray(value.params))) return undefined;
    return { params: value.params, protocolVersion: value.protocolVersion, worker: value.worker };
  } catch {
    return undefined;
  }
}

/** How a broker's message size limit is named in errors, and how to raise it. */
export interface PayloadLimit {
  readonly layer: string;
  /** `the NATS server's max_payload`, `the service's maxPayload`. */
  readonly name: string;
  /** What to do about it: `raise max_payload in the server's configuration`. */
  readonly fix: string;
}

/** The error for a message the broker would refuse (or we refuse for it): it names the limit, and nothing was sent. */
export function overMaxPayload(label: string, limit: PayloadLimit, what: string, size: number, maxPayload: number): TransportError {
  return new TransportError(`${label}: ${what} is ${size} bytes with its headers, over ${limit.name} of ${maxPayload} bytes; it was not sent (${limit.fix}, or send less)`, {
    layer: limit.layer,
    reason: 'max-payload',
    neverSent: true,
    retryable: false,
    data: { size, maxPayload },
  });
}

/** What a worker sends instead of a response over the limit, so the request still ends with exactly one response. */
export function responseOverMaxPayload(label: string, limit: PayloadLimit, size: number, maxPayload: number): TransportError {
  return new TransportError(`${label}: a response is ${size} bytes with its headers, over ${limit.name} of ${maxPayload} bytes; the response was not sent`, {
    layer: limit.layer,
    reason: 'max-payload',
    data: { size, maxPayload },
  });
}
