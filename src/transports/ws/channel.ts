/**
 * One open WebSocket carrying MCP, shared by the client and server transports:
 * validated reads, writes with backpressure, heartbeats, byte accounting, close codes.
 * It never throws into `ws` callbacks and never lets a peer's bytes crash the process:
 * everything a peer can get wrong ends up in `handlers.error` and, when fatal, a close.
 */
import type { Socket } from 'node:net';
import { WebSocket } from 'ws';
import { asError, ConnectionClosedError, InvalidMessageError } from '../../core/errors.ts';
import type { JSONRPCMessage } from '../../core/jsonrpc.ts';
import type { EventFanout } from '../../core/wire.ts';
import { parseFrame } from './frames.ts';

/** The close codes this package uses (RFC 6455 §7.4.1). */
export const CloseCode = {
  Normal: 1000,
  GoingAway: 1001,
  ProtocolError: 1002,
  Abnormal: 1006,
  InvalidPayload: 1007,
  PolicyViolation: 1008,
  MessageTooBig: 1009,
  InternalError: 1011,
  ServiceRestart: 1012,
  TryAgainLater: 1013,
} as const;

export interface ChannelSettings {
  /** `websocket client` or `websocket server`: prefixes every message. */
  readonly label: string;
  /** send() waits while more than this many bytes are buffered. */
  readonly highWaterMark: number;
  /** Ping period; 0 turns heartbeats off. */
  readonly heartbeatIntervalMs: number;
  /** How long a ping may go unanswered before the peer is declared dead. */
  readonly heartbeatTimeoutMs: number;
  readonly maxPayload: number;
}

export interface ChannelHandlers {
  /** Valid messages of one frame (a batch arrives as several, in order). */
  messages(messages: JSONRPCMessage[]): void;
  /** Something to report to `onerror`. */
  error(error: Error): void;
  /** The socket closed; `code` 1006 when it died without a close frame. */
  close(code: number, reason: string): void;
}

export class Channel {
  readonly socket: WebSocket;
  readonly #raw: Socket | undefined;
  readonly #settings: ChannelSettings;
  readonly #events: EventFanout;
  readonly #handlers: ChannelHandlers;
  /** Messages at least this long are deflated (when permessage-deflate was negotiated); undefined = never. */
  #threshold: number | undefined;
  #lastWrite: Promise<void> | undefined;
  /** Writers waiting for the buffer to drain, and the tail of their line. */
  #waiting = 0;
  #turns: Promise<void> = Promise.resolve();
  #failed = false;
  #closed = false;
  #heartbeat: NodeJS.Timeout | undefined;
  #pongDeadline: NodeJS.Timeout | undefined;
  #pingSentAt = 0;
  #bytesWrittenMark = 0;
  #bytesReadMark = 0;
  #deflate: boolean | undefined;

  constructor(socket: WebSocket, raw: Socket | undefined, settings: ChannelSettings, events: EventFanout, handlers: ChannelHandlers) {
    this.socket = socket;
    this.#raw = raw;
    this.#settings = settings;
    this.#events = events;
    this.#handlers = handlers;
    this.#bytesWrittenMark = raw?.bytesWritten ?? 0;
    this.#bytesReadMark = raw?.bytesRead ?? 0;
    socket.on('message', (data, isBinary) => this.#onMessage(data as Buffer, isBinary));
    socket.on('error', (error) => this.#onSocketError(error));
    socket.on('pong', () => this.#onPong());
    socket.once('close', (code, reason) => this.#onClose(code, reason.toString('utf8')));
    if (settings.heartbeatIntervalMs > 0) {
      this.#heartbeat = setInterval(() => this.#ping(), settings.heartbeatIntervalMs);
      this.#heartbeat.unref();
    }
  }

  /** True when permessage-deflate was negotiated on this connection (fixed once it is open; ws builds the list on every read). */
  get deflateNegotiated(): boolean {
    if (this.#deflate !== undefined) return this.#deflate;
    const negotiated = this.socket.extensions.includes('permessage-deflate');
    if (this.socket.readyState === WebSocket.OPEN) this.#deflate = negotiated;
    return negotiated;
  }

  get open(): boolean {
    return !this.#closed && this.socket.readyState === WebSocket.OPEN;
  }

  /** Compress messages of at least `threshold` characters; undefined = never. */
  setCompressionThreshold(threshold: number | undefined): void {
    this.#threshold = threshold;
  }

  /**
   * Writes one frame. Resolves once it is handed to the socket, or — when more than
   * `highWaterMark` bytes are buffered — once it is flushed, so a fast sender waits
   * for a slow peer instead of filling memory. Rejects with a ConnectionClosedError
   * (neverSent) when the socket is not open.
   */
  async write(text: string): Promise<void> {
    if (this.#waiting > 0 || this.#congested()) {
      // Wait in line: writers that waited before this one go first, so order is kept.
      this.#waiting++;
      const turn = this.#turns.then(() => this.#drained());
      this.#turns = turn;
      try {
        await turn;
      } finally {
        this.#waiting--;
      }
    }
    if (!this.open) {
      throw new ConnectionClosedError(`${this.#settings.label}: cannot send: the connection is not open`, { neverSent: true, layer: 'websocket' });
    }
    const compress = this.#threshold !== undefined && text.length >= this.#threshold;
    const written = new Promise<void>((resolve, reject) => {
      this.socket.send(text, { binary: false, compress, fin: true }, (error) => {
        if (error !== undefined && error !== null) {
          reject(new ConnectionClosedError(`${this.#settings.label}: the connection failed while sending: ${error.message}`, { layer: 'websocket', cause: error }));
          return;
        }
        this.#accountWrite(compress, text);
        resolve();
      });
    });
    written.catch(() => {}); // the close path reports; a caller that waits sees the rejection
    this.#lastWrite = written;
    if (this.socket.bufferedAmount > this.#settings.highWaterMark) await written;
  }

  #congested(): boolean {
    return this.#lastWrite !== undefined && this.socket.bufferedAmount > this.#settings.highWaterMark;
  }

  async #drained(): Promise<void> {
    while (this.#congested() && this.open) await (this.#lastWrite as Promise<void>).catch(() => {});
  }

  /** Starts the closing handshake (idempotent). */
  close(code: number, reason: string): void {
    if (this.socket.readyState === WebSocket.CLOSED || this.socket.readyState === WebSocket.CLOSING) return;
    try {
      this.socket.close(code, truncateReason(reason));
    } catch {
      this.socket.terminate();
    }
  }

  /**
   * Starts the closing handshake and waits for `closed`. A peer that has not answered the
   * close frame within CLOSE_GRACE_MS is dropped: closing must not hang on a dead peer.
   */
  async closeAndWait(code: number, reason: string, closed: Promise<unknown>): Promise<void> {
    this.close(code, reason);
    const timer = setTimeout(() => this.terminate(), CLOSE_GRACE_MS);
    timer.unref();
    try {
      await closed;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Drops the connection at once (dead peer). */
  terminate(): void {
    this.socket.terminate();
  }

  #onMessage(data: Buffer, isBinary: boolean): void {
    if (this.#failed) return;
    this.#accountRead(data.length);
    const parsed = parseFrame(data, isBinary);
    if (!parsed.ok) {
      this.#failed = true;
      this.#handlers.error(
        new InvalidMessageError(`${this.#settings.label}: the peer sent ${parsed.problem}; closing the connection with 1007`, 'inbound', { layer: 'websocket', reason: 'invalid-frame' }),
      );
      // The peer learns which problem it was; close() keeps it within the 123 bytes a reason may have.
      this.close(CloseCode.InvalidPayload, `Invalid MCP message: ${parsed.problem}`);
      return;
    }
    try {
      this.#handlers.messages(parsed.messages);
    } catch (error) {
      this.#handlers.error(asError(error));
    }
  }

  #onSocketError(error: Error & { code?: string }): void {
    // ws closes the connection itself after these; the close event follows.
    let message: string;
    switch (error.code) {
      case 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH':
        message = `the peer sent a message larger than maxPayloadBytes (${this.#settings.maxPayload} bytes); closing the connection with 1009`;
        break;
      case 'WS_ERR_INVALID_UTF8':
        message = 'the peer sent a text message that is not valid UTF-8; closing the connection with 1007';
        break;
      default:
        message = error.code?.startsWith('WS_ERR_') ? `the peer broke the WebSocket protocol (${error.message}); closing the connection` : `socket error: ${error.message}`;
    }
    this.#failed = this.#failed || error.code?.startsWith('WS_ERR_') === true;
    this.#handlers.error(new Error(`${this.#settings.label}: ${message}`, { cause: error }));
  }

  #ping(): void {
    if (!this.open) return;
    if (this.#pongDeadline !== undefined) return; // still waiting for the previous pong
    this.#pingSentAt = performance.now();
    try {
      this.socket.ping();
    } catch {
      return;
    }
    this.#pongDeadline = setTimeout(() => {
      this.#pongDeadline = undefined;
      this.#events.emit('heartbeat', { outcome: 'missed' });
      this.#handlers.error(
        new Error(`${this.#settings.label}: the peer did not answer a ping within ${this.#settings.heartbeatTimeoutMs} ms; dropping the connection`),
      );
      this.terminate();
    }, this.#settings.heartbeatTimeoutMs);
    this.#pongDeadline.unref();
  }

  #onPong(): void {
    if (this.#pongDeadline === undefined) return;
    clearTimeout(this.#pongDeadline);
    this.#pongDeadline = undefined;
    if (this.#events.has('heartbeat')) this.#events.emit('heartbeat', { outcome: 'ok', rttMs: performance.now() - this.#pingSentAt });
  }

  #onClose(code: number, reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#heartbeat);
    clearTimeout(this.#pongDeadline);
    this.#pongDeadline = undefined;
    this.#handlers.close(code, reason);
  }

  /** Socket byte counts are exact in total; per message they are the delta since the last one. */
  #accountWrite(compressed: boolean, text: string): void {
    const raw = this.#raw;
    if (raw === undefined) return;
    const now = raw.bytesWritten;
    const bytes = now - this.#bytesWrittenMark;
    this.#bytesWrittenMark = now;
    const events = this.#events;
    if (events.has('wire')) events.emit('wire', { direction: 'outbound', bytes, encoding: compressed ? 'deflate' : 'identity' });
    if (compressed && events.has('bytes-compressed')) {
      events.emit('bytes-compressed', { encoding: 'deflate', direction: 'outbound', before: Buffer.byteLength(text), after: bytes });
    }
  }

  #accountRead(payload: number): void {
    const raw = this.#raw;
    if (raw === undefined) return;
    const now = raw.bytesRead;
    const bytes = now - this.#bytesReadMark;
    this.#bytesReadMark = now;
    const events = this.#events;
    const compressed = this.deflateNegotiated && bytes > 0 && bytes < payload;
    if (events.has('wire')) events.emit('wire', { direction: 'inbound', bytes, encoding: compressed ? 'deflate' : 'identity' });
    if (compressed && events.has('bytes-compressed')) events.emit('bytes-compressed', { encoding: 'deflate', direction: 'inbound', before: payload, after: bytes });
  }
}

/** How long closeAndWait() waits for the peer's answer to a close frame before dropping the connection. */
const CLOSE_GRACE_MS = 2000;

/** The most bytes of UTF-8 a close reason may have (RFC 6455 §5.5: 125 minus the 2-byte code). */
export const MAX_CLOSE_REASON_BYTES = 123;

/** Fits a close reason in 123 bytes, cut between code points (never inside a character) and marked with `…`. */
export function truncateReason(reason: string): string {
  if (Buffer.byteLength(reason) <= MAX_CLOSE_REASON_BYTES) return reason;
  const budget = MAX_CLOSE_REASON_BYTES - Buffer.byteLength('…');
  let bytes = 0;
  let cut = '';
  for (const char of reason) {
    // A lone surrogate goes out as U+FFFD (3 bytes), as Buffer.byteLength counts it.
    const size = Buffer.byteLength(char);
    if (bytes + size > budget) break;
    bytes += size;
    cut += char;
  }
  return `${cut}…`;
}

/** Serializes what send() was given; a JSON-RPC array goes out as one frame. */
export function encode(message: JSONRPCMessage | JSONRPCMessage[]): string {
  return JSON.stringify(message);
}
