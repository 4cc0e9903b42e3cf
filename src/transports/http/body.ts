/**
 * Reading a request body under a size limit, decoding its Content-Encoding on the way.
 * The limit counts decoded bytes too, so a small compressed bomb is stopped as early as
 * a large plain body. Nothing is buffered beyond the limit. The text must be valid
 * UTF-8: a body that is not is refused, never repaired with U+FFFD.
 */
import { isUtf8 } from 'node:buffer';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Transform } from 'node:stream';
import { isEncoding } from '../../core/wire.ts';
import { createDecompressor } from '../encoding.ts';
import type { Encoding } from '../../core/wire.ts';

export type BodyResult =
  | { ok: true; text: string }
  | { ok: false; status: 413 | 415 | 400; message: string };

export async function readBody(request: IncomingMessage, limit: number, accepted: readonly Encoding[]): Promise<BodyResult> {
  const declared = Number(request.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) return tooLarge(limit);
  const coding = (request.headers['content-encoding'] ?? 'identity').trim().toLowerCase();
  let decoder: Transform | undefined;
  if (coding !== 'identity' && coding !== '') {
    if (!isEncoding(coding) || !accepted.includes(coding)) {
      return {
        ok: false,
        status: 415,
        message: `Unsupported Media Type: the request body's Content-Encoding ${JSON.stringify(coding.slice(0, 40))} is not supported; use one of: ${accepted.join(', ') || 'identity'}`,
      };
    }
    decoder = createDecompressor(coding);
  }
  return new Promise<BodyResult>((resolve) => {
    const chunks: Buffer[] = [];
    let raw = 0;
    let decoded = 0;
    let done = false;
    const finish = (result: BodyResult) => {
      if (done) return;
      done = true;
      request.off('data', onRaw);
      decoder?.destroy();
      resolve(result);
    };
    const onDecoded = (chunk: Buffer) => {
      decoded += chunk.length;
      if (decoded > limit) return finish(tooLarge(limit));
      chunks.push(chunk);
    };
    const onRaw = (chunk: Buffer) => {
      raw += chunk.length;
      if (raw > limit) return finish(tooLarge(limit));
      if (decoder === undefined) onDecoded(chunk);
      else if (!decoder.write(chunk)) {
        request.pause();
        decoder.once('drain', () => request.resume());
      }
    };
    const onEnd = () => {
      if (decoder === undefined) finish(textOf(chunks));
      else decoder.end();
    };
    if (decoder !== undefined) {
      decoder.on('data', onDecoded);
      decoder.on('end', () => finish(textOf(chunks)));
      decoder.on('error', (error) => finish({ ok: false, status: 400, message: `Bad Request: the request body could not be decoded as ${coding}: ${error.message}` }));
    }
    request.on('data', onRaw);
    request.once('end', onEnd);
    request.once('error', (error) => finish({ ok: false, status: 400, message: `Bad Request: the request body could not be read: ${error.message}` }));
    request.once('aborted', () => finish({ ok: false, status: 400, message: 'Bad Request: the client aborted the request body' }));
  });
}

function textOf(chunks: Buffer[]): BodyResult {
  const bytes = Buffer.concat(chunks);
  if (isUtf8(bytes)) return { ok: true, text: bytes.toString('utf8') };
  return { ok: false, status: 400, message: `Parse error: the body is not valid UTF-8 (at byte ${firstInvalidUtf8(bytes)})` };
}

/** Offset of the first byte that starts no valid UTF-8 sequence (RFC 3629: no overlongs, surrogates or code points past U+10FFFF). */
export function firstInvalidUtf8(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i] as number;
    if (b < 0x80) {
      i++;
      continue;
    }
    let length: number;
    let low = 0x80;
    let high = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) length = 2;
    else if (b >= 0xe0 && b <= 0xef) {
      length = 3;
      if (b === 0xe0) low = 0xa0;
      else if (b === 0xed) high = 0x9f;
    } else if (b >= 0xf0 && b <= 0xf4) {
      length = 4;
      if (b === 0xf0) low = 0x90;
      else if (b === 0xf4) high = 0x8f;
    } else return i;
    if (i + length > bytes.length) return i;
    const second = bytes[i + 1] as number;
    if (second < low || second > high) return i;
    for (let k = 2; k < length; k++) {
      const next = bytes[i + k] as number;
      if (next < 0x80 || next > 0xbf) return i;
    }
    i += length;
  }
  return -1;
}

/** How much of a refused body is still read (and dropped), as a multiple of the limit, and for how long. */
export const DISCARD_FACTOR = 8;
export const DISCARD_MS = 10_000;

/**
 * Answers a request whose body is not read to its end: the rest is read and dropped, up
 * to `maxBytes` or `maxMs`, so the connection closes only after the client has sent its
 * body. Closing with unread bytes in the socket makes the kernel reset the connection,
 * and a client still sending (or one that reads only once it has sent everything) then
 * loses the answer and sees EPIPE/ECONNRESET instead. Within the bounds the connection
 * stays usable; past them it is ended once the answer is flushed.
 */
export function discardRest(request: IncomingMessage, response: ServerResponse, maxBytes: number, maxMs: number): void {
  const socket = request.socket as Socket | null;
  if (request.complete || socket === null || socket.destroyed) return;
  let dropped = 0;
  const stop = () => {
    clearTimeout(timer);
    request.off('data', onData);
    request.off('end', stop);
    socket.off('close', stop);
  };
  const cut = () => {
    stop();
    let ended = false;
    const end = () => {
      if (ended) return;
      ended = true;
      socket.end();
      const last = setTimeout(() => socket.destroy(), 1000);
      last.unref();
      socket.once('close', () => clearTimeout(last));
    };
    if (response.writableFinished || response.destroyed) end();
    else response.once('finish', end).once('close', end);
  };
  const onData = (chunk: Buffer) => {
    dropped += chunk.length;
    if (dropped > maxBytes) cut();
  };
  const timer = setTimeout(cut, maxMs);
  timer.unref();
  request.on('data', onData);
  request.once('end', stop);
  socket.once('close', stop);
}

function tooLarge(limit: number): BodyResult {
  return { ok: false, status: 413, message: `Payload Too Large: the request body exceeds the server's limit of ${limit} bytes (maxBodyBytes)` };
}
