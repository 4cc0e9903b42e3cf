/**
 * Writing one HTTP response on node:http with the compression McpHttpServer negotiates
 * (Accept-Encoding) and the `wire` / `bytes-compressed` events it publishes: a whole body
 * (compressed only from `minBytes` on, and only when that makes it smaller), or an event
 * stream whose every event reaches the client at once.
 *
 * A whole body goes out as one write, headers included; an event stream's headers go
 * out with its first event (or at once, for a stream that may stay quiet), and its last
 * event with the end of the body.
 */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { isJsonContentType } from '@modelcontextprotocol/sdk/shared/mediaType.js';
import { asError } from '../../core/errors.ts';
import type { JSONRPCMessage } from '../../core/jsonrpc.ts';
import type { CompressionSettings, Encoding, EventFanout } from '../../core/wire.ts';
import { compressBuffer, createCompressor, negotiateEncoding } from '../encoding.ts';

export class Responder {
  readonly res: ServerResponse;
  readonly #req: IncomingMessage;
  readonly #settings: CompressionSettings | undefined;
  readonly #fanout: EventFanout;
  readonly #report: (error: Error) => void;

  constructor(req: IncomingMessage, res: ServerResponse, settings: CompressionSettings | undefined, fanout: EventFanout, report: (error: Error) => void) {
    this.#req = req;
    this.res = res;
    this.#settings = settings;
    this.#fanout = fanout;
    this.#report = report;
  }

  /** Whether the response is over (sent, or the client went away). */
  get finished(): boolean {
    return this.res.writableEnded || this.res.destroyed;
  }

  /** The whole response at once. Never throws; a compression failure is reported and the body sent as it is. */
  whole(status: number, headers: OutgoingHttpHeaders, body: string | undefined): void {
    const res = this.res;
    if (res.headersSent || this.finished) return;
    if (body === undefined) {
      res.writeHead(status, headers).end();
      return;
    }
    const length = Buffer.byteLength(body);
    const settings = this.#settings;
    const encoding = settings !== undefined && length >= settings.minBytes ? negotiateEncoding(this.#req.headers['accept-encoding'], settings.encodings) : undefined;
    // Headers and body as one string: one write, and no copy of the body into a Buffer first.
    if (encoding === undefined) return this.#send(status, headers, body, length, undefined);
    const buffer = Buffer.from(body, 'utf8');
    compressBuffer(encoding, buffer).then(
      (packed) => {
        if (packed.length >= buffer.length) return this.#send(status, headers, buffer, buffer.length, undefined);
        if (this.#fanout.has('bytes-compressed')) this.#fanout.emit('bytes-compressed', { encoding, direction: 'outbound', before: buffer.length, after: packed.length });
        this.#send(status, { ...headers, 'content-encoding': encoding, vary: 'accept-encoding' }, packed, packed.length, encoding);
      },
      (error: unknown) => {
        this.#report(asError(error));
        this.#send(status, headers, buffer, buffer.length, undefined);
      },
    );
  }

  #send(status: number, headers: OutgoingHttpHeaders, body: Buffer | string, length: number, encoding: Encoding | undefined): void {
    const res = this.res;
    if (res.headersSent || this.finished) return;
    headers['content-length'] = length;
    res.writeHead(status, headers).end(body);
    if (this.#fanout.has('wire')) this.#fanout.emit('wire', { direction: 'outbound', bytes: length, encoding: encoding ?? 'identity' });
  }

  /** Starts an event stream; `flush` sends the headers now rather than with the first event. */
  stream(status: number, headers: OutgoingHttpHeaders, flush: boolean): EventStream {
    const settings = this.#settings;
    const encoding = settings === undefined ? undefined : negotiateEncoding(this.#req.headers['accept-encoding'], settings.encodings);
    if (encoding !== undefined) {
      headers['content-encoding'] = encoding;
      headers['vary'] = 'accept-encoding';
    }
    this.res.writeHead(status, headers);
    if (flush) this.res.flushHeaders();
    return new EventStream(this.res, encoding, this.#fanout, this.#report);
  }
}

export class EventStream {
  readonly #res: ServerResponse;
  readonly #encoding: Encoding | undefined;
  readonly #fanout: EventFanout;
  readonly #compressor: ReturnType<typeof createCompressor> | undefined;
  #before = 0;
  #after = 0;
  #ended = false;
  /** When something was last written (performance.now()): keep-alives go to silent streams only. */
  lastWrite = performance.now();

  constructor(res: ServerResponse, encoding: Encoding | undefined, fanout: EventFanout, report: (error: Error) => void) {
    this.#res = res;
    this.#encoding = encoding;
    this.#fanout = fanout;
    if (encoding !== undefined) {
      const compressor = createCompressor(encoding);
      compressor.on('data', (chunk: Buffer) => {
        this.#after += chunk.length;
        if (!res.destroyed) res.write(chunk);
      });
      compressor.on('error', (error) => {
        report(error);
        res.destroy();
      });
      compressor.once('end', () => this.#finish());
      this.#compressor = compressor;
    }
    res.once('close', () => {
      if (this.#ended) return;
      this.#ended = true;
      this.#compressor?.destroy();
      this.#published();
    });
  }

  /** Whether nothing more can be written (ended, or the client went away). */
  get closed(): boolean {
    return this.#ended || this.#res.destroyed;
  }

  write(text: string): void {
    if (this.closed) return;
    this.lastWrite = performance.now();
    const chunk = Buffer.from(text, 'utf8');
    this.#before += chunk.length;
    if (this.#compressor === undefined) {
      this.#after += chunk.length;
      this.#res.write(chunk);
      return;
    }
    this.#compressor.write(chunk);
    // Each event must reach the client now, not when the compressor's window fills.
    this.#compressor.flush();
  }

  /** Ends the stream, with `text` as its last event. */
  end(text?: string): void {
    if (this.closed) return;
    if (this.#compressor !== undefined) {
      if (text !== undefined) this.write(text);
      this.#ended = true;
      this.#compressor.end();
      return;
    }
    this.#ended = true;
    if (text === undefined) {
      this.#res.end();
    } else {
      // The last chunk and the end of the body in one write.
      const chunk = Buffer.from(text, 'utf8');
      this.#before += chunk.length;
      this.#after += chunk.length;
      this.#res.end(chunk);
    }
    this.#published();
  }

  #finish(): void {
    if (!this.#res.destroyed) this.#res.end();
    this.#published();
  }

  #done = false;
  #published(): void {
    if (this.#done) return;
    this.#done = true;
    const encoding = this.#encoding;
    if (encoding !== undefined && this.#before > 0 && this.#fanout.has('bytes-compressed')) this.#fanout.emit('bytes-compressed', { encoding, direction: 'outbound', before: this.#before, after: this.#after });
    if (this.#fanout.has('wire')) this.#fanout.emit('wire', { direction: 'outbound', bytes: this.#after, encoding: encoding ?? 'identity' });
  }
}

// ── what both server transports (session.ts, per-request.ts) write and check ──────────

/** The SDK's DEFAULT_SSE_KEEP_ALIVE_MS: no open response stays silent this long. */
export const KEEP_ALIVE_MS = 15_000;
export const KEEP_ALIVE = ': keepalive\n\n';

export const EVENT_STREAM: OutgoingHttpHeaders = {
  'content-type': 'text/event-stream',
  'cache-control': 'no-cache, no-transform',
  connection: 'keep-alive',
  'x-accel-buffering': 'no',
};

const JSON_BODY: OutgoingHttpHeaders = { 'content-type': 'application/json' };

/**
 * The body that answers a POST's one request when its response is the first and last
 * message for it (the common case: nothing was streamed before it). The spec lets the
 * server answer a request with `application/json` or an event stream, and clients must
 * accept both; with `json`, it is the message as JSON, which spares the client an
 * event-stream parser: the SDK client reads an event stream through two Web streams, and
 * that is most of what a call costs it (docs/benchmarks.md, "JSON answers"). Without, one
 * event, as the SDK's transport answers unless `enableJsonResponse` is set. `base` is the
 * headers to send (copied: callers add theirs).
 */
export function loneAnswer(message: JSONRPCMessage, json: boolean): { base: OutgoingHttpHeaders; body: string } {
  return json ? { base: JSON_BODY, body: JSON.stringify(message) } : { base: EVENT_STREAM, body: event(message) };
}

/** One message as an SSE event. */
export function event(message: JSONRPCMessage): string {
  return `event: message\ndata: ${JSON.stringify(message)}\n\n`;
}

export function errorJson(code: number, message: string): string {
  return JSON.stringify({ jsonrpc: '2.0', error: { code, message }, id: null });
}

/** The SDK's checks of a POST's Accept (406) and Content-Type (415), or undefined when it passes. */
export function postRefusal(req: IncomingMessage): { status: number; message: string } | undefined {
  const accept = req.headers.accept;
  if (accept === undefined || !accept.includes('application/json') || !accept.includes('text/event-stream')) {
    return { status: 406, message: 'Not Acceptable: Client must accept both application/json and text/event-stream' };
  }
  if (!isJsonContentType(req.headers['content-type'] ?? null)) return { status: 415, message: 'Unsupported Media Type: Content-Type must be application/json' };
  return undefined;
}
