/**
 * Content codings for the HTTP helpers and the WebSocket transport: how to pick one from
 * an `Accept-Encoding` header, and zlib streams tuned for on-the-fly use (which codings
 * exist and how an option names them is the wire contract: src/core/wire.ts) (brotli's default quality 11 is meant for static assets, far too slow here).
 */
import zlib from 'node:zlib';
import { ENCODINGS, type Encoding } from '../core/wire.ts';

/**
 * The best of `ours` (in our order of preference) that an `Accept-Encoding` header
 * accepts, or undefined for identity. Honours `q=0` and `*`.
 */
export function negotiateEncoding(header: string | null | undefined, ours: readonly Encoding[]): Encoding | undefined {
  if (header === undefined || header === null || header === '' || ours.length === 0) return undefined;
  const weights = new Map<string, number>();
  for (const part of header.split(',')) {
    const [rawName, ...params] = part.trim().split(';');
    const name = rawName?.trim().toLowerCase();
    if (name === undefined || name === '') continue;
    let q = 1;
    for (const param of params) {
      const [key, val] = param.trim().split('=');
      if (key?.trim().toLowerCase() === 'q') q = Number(val);
    }
    weights.set(name === 'x-gzip' ? 'gzip' : name, Number.isFinite(q) ? q : 0);
  }
  const star = weights.get('*');
  for (const encoding of ours) {
    const q = weights.get(encoding) ?? star ?? 0;
    if (q > 0) return encoding;
  }
  return undefined;
}

/** The encodings a peer lists in an `Accept-Encoding` header (RFC 7694 for request bodies). */
export function acceptedEncodings(header: string | null | undefined): Set<Encoding> {
  const accepted = new Set<Encoding>();
  if (header === undefined || header === null) return accepted;
  for (const encoding of ENCODINGS) if (negotiateEncoding(header, [encoding]) === encoding) accepted.add(encoding);
  return accepted;
}

/** A compressing stream; `flush()` on it pushes out what was written so far (SSE). */
export function createCompressor(encoding: Encoding): zlib.Gzip | zlib.BrotliCompress | zlib.Deflate | zlib.ZstdCompress {
  switch (encoding) {
    case 'zstd':
      return zlib.createZstdCompress({ params: { [zlib.constants.ZSTD_c_compressionLevel]: 3 } });
    case 'br':
      return zlib.createBrotliCompress({
        params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 5, [zlib.constants.BROTLI_PARAM_MODE]: zlib.constants.BROTLI_MODE_TEXT },
      });
    case 'gzip':
      return zlib.createGzip({ level: 6 });
    case 'deflate':
      return zlib.createDeflate({ level: 6 });
  }
}

export function createDecompressor(encoding: Encoding): zlib.Gunzip | zlib.BrotliDecompress | zlib.Inflate | zlib.ZstdDecompress {
  switch (encoding) {
    case 'zstd':
      return zlib.createZstdDecompress();
    case 'br':
      return zlib.createBrotliDecompress();
    case 'gzip':
      return zlib.createGunzip();
    case 'deflate':
      return zlib.createInflate();
  }
}

/** Compresses a whole body. */
export function compressBuffer(encoding: Encoding, input: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const stream = createCompressor(encoding);
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('error', reject);
    stream.on('end', () => resolve(Buffer.concat(chunks)));
    stream.end(input);
  });
}
