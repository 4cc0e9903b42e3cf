/**
 * Listening on loopback, reporting where, reading the path a request asks for and
 * answering malformed requests: shared by the WebSocket and HTTP servers (and the gateway's listener).
 */
import http, { type IncomingMessage, STATUS_CODES } from 'node:http';
import type { AddressInfo, Server } from 'node:net';
import type { Duplex } from 'node:stream';
import { ErrorCode } from '../core/errors.ts';
import { errorBody } from './guard.ts';

/** A target the URL parser would return unchanged as its path: no query, dots, escapes, backslashes or leading `//`. */
const PLAIN_PATH = /^\/(?![/])[\w\-/]*$/;

/** The path of a request's target ('' when it cannot be read: then it matches no endpoint). */
export function pathOf(req: IncomingMessage): string {
  const target = req.url;
  if (target !== undefined && PLAIN_PATH.test(target)) return target;
  try {
    return new URL(req.url ?? '/', 'http://localhost').pathname;
  } catch {
    return '';
  }
}

/** Starts `server` listening; rejects with the listen error (EADDRINUSE...) instead of emitting it. */
export function listenOn(server: Server, port: number, host: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** The bound address, or a clear error naming the server when it is not listening. */
export function addressOf(server: Server, label: string): AddressInfo {
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error(`${label}: not listening`);
  return address;
}

/** `host:port` for a URL (IPv6 in brackets). */
export function hostPort({ address, port, family }: AddressInfo): string {
  return `${family === 'IPv6' ? `[${address}]` : address}:${port}`;
}

const answered = new WeakSet<Duplex>();

/**
 * The `clientError` handler of every server here: what Node would answer (431 for
 * oversized headers, 408 for a request or its headers that took too long, 400 otherwise),
 * with a JSON-RPC style body naming the problem. Writes only on a socket that carries no
 * response in progress (an answer in the middle of one would corrupt it); never throws.
 */
export function answerClientError(error: Error & { code?: string }, socket: Duplex): void {
  try {
    if (answered.has(socket)) return;
    answered.add(socket);
    const busy = (socket as { _httpMessage?: unknown })._httpMessage;
    const idle = (socket as { bytesWritten?: number }).bytesWritten === 0 || busy === null;
    if (error.code === 'ECONNRESET' || !socket.writable || !idle) {
      socket.destroy();
      return;
    }
    const [status, message] = describeClientError(error.code);
    const body = errorBody(ErrorCode.InvalidRequest, message);
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
    const timer = setTimeout(() => socket.destroy(), 1000);
    timer.unref();
    socket.once('close', () => clearTimeout(timer));
  } catch {
    socket.destroy();
  }
}

function describeClientError(code: string | undefined): [number, string] {
  switch (code) {
    case 'HPE_HEADER_OVERFLOW':
      return [431, `Request Header Fields Too Large: the request's headers exceed the server's limit of ${http.maxHeaderSize} bytes (maxHeaderSize)`];
    case 'ERR_HTTP_REQUEST_TIMEOUT':
    case 'HPE_HEADERS_TIMEOUT':
      return [408, 'Request Timeout: the request (or its headers) did not arrive within the server\'s time limit (headersTimeout / requestTimeout)'];
    default:
      return [400, `Bad Request: the request is not valid HTTP/1.1${code === undefined || !/^[A-Z_]{1,40}$/.test(code) ? '' : ` (${code})`}`];
  }
}
