/**
 * Reading a request body under a size limit, decoding its Content-Encoding on the way.
 * The limit counts decoded bytes too, so a small compressed bomb is stopped as early as
 * a large plain body. Nothing is buffered beyond the limit.
 */
import type { IncomingMessage } from 'node:http';
import type { Transform } from 'node:stream';
import { createDecompressor, isEncoding } from '../encoding.ts';
import type { Encoding } from '../wire.ts';

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
      if (decoder === undefined) finish({ ok: true, text: Buffer.concat(chunks).toString('utf8') });
      else decoder.end();
    };
    if (decoder !== undefined) {
      decoder.on('data', onDecoded);
      decoder.on('end', () => finish({ ok: true, text: Buffer.concat(chunks).toString('utf8') }));
      decoder.on('error', (error) => finish({ ok: false, status: 400, message: `Bad Request: the request body could not be decoded as ${coding}: ${error.message}` }));
    }
    request.on('data', onRaw);
    request.once('end', onEnd);
    request.once('error', (error) => finish({ ok: false, status: 400, message: `Bad Request: the request body could not be read: ${error.message}` }));
    request.once('aborted', () => finish({ ok: false, status: 400, message: 'Bad Request: the client aborted the request body' }));
  });
}

function tooLarge(limit: number): BodyResult {
  return { ok: false, status: 413, message: `Payload Too Large: the request body exceeds the server's limit of ${limit} bytes (maxBodyBytes)` };
}
