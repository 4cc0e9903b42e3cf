/**
 * A server transport for one 2026-07-28 exchange over Streamable HTTP, for McpHttpServer's
 * `perRequest` option: the era has no session, so each POST is a transport of its own —
 * one request, whose answer and whatever the server sends while it runs (progress,
 * logs, subscription notices) go on that POST's own response, and nothing else.
 *
 *   - The answer written first (the common case) is the whole response, one body with its
 *     headers, as the session transport (session.ts) writes it; otherwise the response is
 *     an event stream from the first message on, each event flushed, ended by the answer.
 *     Responses are `text/event-stream`, as the session transport's are, unless
 *     `jsonResponses` says otherwise: then a whole answer is one `application/json` body.
 *   - The client cancels by closing its request (the era has no `notifications/cancelled`
 *     from client to server over HTTP): a response that closes before its answer was
 *     written is delivered as `notifications/cancelled` for the request, which is what
 *     the core and the application understand (docs/architecture.md, "Cancellation,
 *     both ways"), and the transport closes.
 *   - It closes itself once the answer is written (or the client went away): whoever
 *     holds it learns from `onclose` that the exchange is over.
 *   - A notification (no id) is acknowledged with 202 and delivered; the transport closes.
 *   - No response stays silent for 15 s: keep-alive comments, as on the session transport.
 *
 * McpHttpServer has checked the body (JSON-RPC, one message) and its era (era.ts) before.
 */
import type { IncomingMessage } from 'node:http';
import { CANCELLED, isRequest, type JSONRPCMessage, type RequestId } from '../../core/jsonrpc.ts';
import type { MessageExtraInfo, TransportSendOptions } from '../../core/transport.ts';
import { deliverTo, reportTo } from '../../core/callbacks.ts';
import { errorJson, event, EVENT_STREAM, type EventStream, KEEP_ALIVE, KEEP_ALIVE_MS, loneAnswer, postRefusal, type Responder } from './respond.ts';
import { extraInfo } from './session.ts';

export interface PerRequestHttpOptions {
  /** Between keep-alive comments on a silent response. Default 15 000. */
  keepAliveMs?: number;
  /** Answer with `application/json` when the answer is all there is (respond.ts `loneAnswer`). Default false: an event stream, as the SDK's transport answers. */
  jsonResponses?: boolean;
}

export class PerRequestHttpTransport {
  /** Always undefined: the era has no session. */
  readonly sessionId: undefined = undefined;
  onmessage?: ((message: JSONRPCMessage, extra?: MessageExtraInfo) => void) | undefined;
  onclose?: (() => void) | undefined;
  onerror?: ((error: Error) => void) | undefined;

  readonly #keepAliveMs: number;
  readonly #json: boolean;
  #started = false;
  #used = false;
  #closed = false;
  #out: Responder | undefined;
  #requestId: RequestId | undefined;
  /** The answer is written (or being compressed): nothing more goes on the response. */
  #answered = false;
  #events: EventStream | undefined;
  #at = performance.now();
  #pulse: NodeJS.Timeout | undefined;

  constructor(options: PerRequestHttpOptions = {}) {
    this.#keepAliveMs = options.keepAliveMs ?? KEEP_ALIVE_MS;
    this.#json = options.jsonResponses ?? false;
  }

  async start(): Promise<void> {
    if (this.#started) throw new Error('Transport already started');
    this.#started = true;
  }

  /** Serves the one POST; `body` is its single JSON-RPC message. The answer follows on `out`. */
  handleRequest(req: IncomingMessage, out: Responder, body: unknown, authInfo: unknown): void {
    if (this.#used || this.#closed) {
      out.whole(500, { 'content-type': 'application/json' }, errorJson(-32603, 'Internal Server Error: a per-request transport serves one request'));
      return;
    }
    this.#used = true;
    const refused = postRefusal(req);
    if (refused !== undefined) {
      out.whole(refused.status, { 'content-type': 'application/json' }, errorJson(-32000, refused.message));
      void this.close();
      return;
    }
    const message = body as JSONRPCMessage;
    const extra = extraInfo(req, authInfo);
    if (!isRequest(message)) {
      out.whole(202, {}, undefined);
      deliverTo(this, message, extra);
      void this.close();
      return;
    }
    this.#out = out;
    this.#requestId = message.id;
    this.#at = performance.now();
    out.res.once('close', () => {
      if (this.#answered || this.#closed) return;
      // The client closed its request before the answer: in this era, that is how it cancels.
      const cancel: JSONRPCMessage = { jsonrpc: '2.0', method: CANCELLED, params: { requestId: message.id, reason: 'the client closed the request' } };
      deliverTo(this, cancel, extra);
      // On the next turn: whoever holds the transport forwards the cancellation before it learns the exchange is over.
      setImmediate(() => void this.close());
    });
    this.#pulse = setInterval(() => this.#keepAlive(), this.#keepAliveMs / 2);
    this.#pulse.unref();
    deliverTo(this, message, extra);
  }

  async send(message: JSONRPCMessage, _options?: TransportSendOptions): Promise<void> {
    const out = this.#out;
    if (out === undefined || this.#answered || this.#closed || out.finished) {
      throw new Error(`No connection established for ${'method' in message ? message.method : `the response to ${JSON.stringify(message.id)}`}: the request's response is over`);
    }
    const isAnswer = !('method' in message) && message.id === this.#requestId;
    if (!isAnswer) {
      this.#eventsOf(out).write(event(message));
      return;
    }
    this.#answered = true;
    clearInterval(this.#pulse);
    if (this.#events !== undefined) this.#events.end(event(message));
    else {
      // Nothing was streamed yet: the whole answer is known, and goes out as one body.
      const { base, body } = loneAnswer(message, this.#json);
      out.whole(200, { ...base }, body);
    }
    queueMicrotask(() => void this.close());
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#pulse);
    // Closed before its answer (the server went away): the stream ends, as the session transport's do.
    const out = this.#out;
    if (!this.#answered && out !== undefined && !out.finished) this.#eventsOf(out).end();
    try {
      this.onclose?.();
    } catch (error) {
      reportTo(this, error);
    }
  }

  #eventsOf(out: Responder): EventStream {
    this.#events ??= out.stream(200, { ...EVENT_STREAM }, false);
    return this.#events;
  }

  /** The response has been silent for half the interval: a comment keeps it (and whatever is between) alive. */
  #keepAlive(): void {
    const out = this.#out;
    if (out === undefined || this.#answered || out.finished) return;
    const silentSince = this.#events === undefined ? this.#at : this.#events.lastWrite;
    if (performance.now() - silentSince < this.#keepAliveMs / 2) return;
    // A response still waiting for its first message gets its headers with the comment.
    this.#events ??= out.stream(200, { ...EVENT_STREAM }, true);
    this.#events.write(KEEP_ALIVE);
  }
}
