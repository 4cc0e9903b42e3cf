/**
 * How messages sit on Redis (../broker/codec.ts reads and writes the messages
 * themselves): a stream entry is the message in field `m` and every header in a field
 * of its own name; a pub/sub message is a frame, one line of headers as a JSON object,
 * a newline, then the message. A frame whose first line is not such an object is read
 * as a message without headers, so a foreign publisher's bytes are still classified.
 */
import type { PayloadLimit } from '../broker/codec.ts';
import { MESSAGE_FIELD } from './keys.ts';

/** The default limit on one message with its headers: NATS's default max_payload, so both brokers refuse the same. */
export const DEFAULT_MAX_PAYLOAD = 1024 * 1024;

/** How errors name the limit. */
export const REDIS_LIMIT: PayloadLimit = { layer: 'redis', name: "the service's maxPayload", fix: 'raise maxPayload in serveRedis() options' };

/** The fields of a stream entry: the message, then its headers. */
export function entryFields(data: Uint8Array, headers: Array<[string, string]>): Array<string | Buffer> {
  const fields: Array<string | Buffer> = [MESSAGE_FIELD, Buffer.from(data.buffer, data.byteOffset, data.byteLength)];
  for (const [name, value] of headers) fields.push(name, value);
  return fields;
}

/** Bytes a message takes against maxPayload: the message and its headers' names and values. */
export function entrySize(data: Uint8Array, headers: Array<[string, string]>): number {
  let size = data.length;
  for (const [name, value] of headers) size += Buffer.byteLength(name) + Buffer.byteLength(value);
  return size;
}

export interface Entry {
  readonly data: Uint8Array;
  readonly headers: Map<string, string>;
}

/** A stream entry's field list as a message and headers; a missing message is empty (garbage, reported as such). */
export function readEntry(fields: unknown): Entry {
  const headers = new Map<string, string>();
  let data: Uint8Array = new Uint8Array(0);
  if (Array.isArray(fields)) {
    for (let i = 0; i + 1 < fields.length; i += 2) {
      const name = String(fields[i]);
      const value = fields[i + 1];
      if (name === MESSAGE_FIELD) data = Buffer.isBuffer(value) ? value : Buffer.from(String(value));
      else headers.set(name, Buffer.isBuffer(value) ? value.toString('utf8') : String(value));
    }
  }
  return { data, headers };
}

/** A pub/sub frame. */
export function frame(data: Uint8Array, headers: Array<[string, string]>): Buffer {
  return Buffer.concat([Buffer.from(`${JSON.stringify(Object.fromEntries(headers))}\n`), data]);
}

export function frameSize(data: Uint8Array, headers: Array<[string, string]>): number {
  return Buffer.byteLength(JSON.stringify(Object.fromEntries(headers))) + 1 + data.length;
}

export function readFrame(payload: Buffer): Entry {
  const newline = payload.indexOf(0x0a);
  if (newline > 0 && payload[0] === 0x7b) {
    try {
      const value = JSON.parse(payload.subarray(0, newline).toString('utf8')) as unknown;
      if (typeof value === 'object' && value !== null && !Array.isArray(value) && Object.values(value).every((v) => typeof v === 'string')) {
        return { data: payload.subarray(newline + 1), headers: new Map(Object.entries(value as Record<string, string>)) };
      }
    } catch {
      // Not our header line: the whole payload is the message.
    }
  }
  return { data: payload, headers: new Map() };
}

/** Headers as a plain object, for MessageExtraInfo (`requestInfo.headers`). */
export function headerRecord(headers: Map<string, string>): Record<string, string> {
  const record: Record<string, string> = {};
  for (const [name, value] of headers) record[name.toLowerCase()] = value;
  return record;
}
