/**
 * A stateful Streamable HTTP server transport on node:http itself (2025-03-26,
 * 2025-06-18 and 2025-11-25), for McpHttpServer: the gateway's HTTP sessions.
 *
 * Why not the SDK's WebStandardStreamableHTTPServerTransport, which McpHttpServer still
 * serves for everyone else: profiled under load in the gateway, every request paid for a
 * Web `Request` (headers copied, a URL parsed, an AbortController whose abort builds a
 * DOMException), a `ReadableStream` and a `Response` read back out, a random stream id,
 * the headers copied again into `requestInfo`, a zod pass over messages McpHttpServer and
 * the core check already, a keep-alive interval, and an event stream written in three
 * pieces — headers flushed on their own, the event, the end of the body — through a
 * compressor created for each response when the client accepts gzip (as fetch does).
 *
 * Here a POST's response starts with the first message for it. When that message is the
 * last one (the answer to its only request, the common case), the whole event stream is
 * known and goes out as one body with its headers, in one write, compressed only from
 * McpHttpServer's `minBytes` on, like any other whole body. Otherwise it is an event stream
 * from that message on, every event flushed (and compressed as negotiated) at once.
 * Responses are `text/event-stream`, as the SDK's, unless `jsonResponses` says otherwise:
 * then a lone request's whole answer is one `application/json` body (respond.ts
 * `loneAnswer`). Not by default, because clients see the difference (the SDK client
 * reports an event stream still open when it closes; it never reports a JSON body).
 *
 * What it keeps of the SDK's transport, answer for answer: Accept (406) and Content-Type
 * (415) checks, batches of at most 100 (400), one initialize per session (400), the
 * Mcp-Session-Id on every response and its checks (400 before initialize or without the
 * header, 404 for another id), Mcp-Protocol-Version checked against the versions it
 * knows (400; `setSupportedProtocolVersions` adds some), one standalone GET stream (409
 * for a second), DELETE (200, then the session closes), 405 otherwise, 404 after close,
 * keep-alive comments so that no open response stays silent for 15 s (a POST still
 * waiting for its first message gets its headers with one), a cancelled request's
 * stream left open, and `send()` semantics: a response goes to the POST of its request,
 * a message with `relatedRequestId` to that request's stream, anything else to the GET
 * stream or nowhere. No resumability (no event store), as before.
 */
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import { SUPPORTED_PROTOCOL_VERSIONS } from '@modelcontextprotocol/sdk/types.js';
import { CANCELLED, type JSONRPCMessage, type RequestId } from '../../core/jsonrpc.ts';
import type { MessageExtraInfo, TransportSendOptions } from '../../core/transport.ts';
import { errorJson, event, EVENT_STREAM, KEEP_ALIVE, KEEP_ALIVE_MS, loneAnswer, postRefusal, type EventStream, type Responder } from './respond.ts';
import { deliverTo, reportTo } from '../../core/callbacks.ts';

/** The SDK's transports refuse longer batches (MAX_BATCH_SIZE). */
const MAX_BATCH = 100;

export interface StreamableHttpSessionOptions {
  /** The session's Mcp-Session-Id, made when initialize arrives. */
  sessionIdGenerator: () => string;
  /**
   * A session initialized elsewhere, served here from its next request on: the transport
   * starts initialized under this id (a gateway replica adopting a session another one
   * opened; `setSupportedProtocolVersions` adds its version when the SDK's list lacks it).
   */
  adopt?: string;
  /** Between keep-alive comments on event streams. Default 15 000. */
  keepAliveMs?: number;
  /** Answer a lone request with `application/json` when its response is all there is (respond.ts `loneAnswer`). Default false: an event stream, as the SDK's transport answers. */
  jsonResponses?: boolean;
}

/** One POST that carried requests: answered once every one of them is. */
interface Exchange {
  readonly out: Responder;
  /** Its requests still unanswered. */
  pending: number;
  /** Answers collected while the response is not an event stream yet. */
  readonly answers: JSONRPCMessage[];
  events: EventStream | undefined;
  /** When the POST arrived (performance.now()): its silence, while it is not an event stream. */
  readonly at: number;
  /** The POST's body was a JSON-RPC batch (an array), not one message. */
  readonly batch: boolean;
}

/** The GET stream; `early` holds what was sent to it while its headers were being written. */
interface Standalone {
  events: EventStream | undefined;
  readonly early: string[];
}

export class StreamableHttpSessionTransport {
  sessionId: string | undefined;
  onmessage?: ((message: JSONRPCMessage, extra?: MessageExtraInfo) => void) | undefined;
  onclose?: (() => void) | undefined;
  onerror?: ((error: Error) => void) | undefined;
  /**
   * Sees each message a client POSTs before `onmessage` (the wrapped stack) does; a
   * message it returns true for is its own and goes no further (the gateway takes the
   * client's answers to server requests this way: docs/gateway.md, "Replicas").
   */
  divert?: ((message: JSONRPCMessage) => boolean) | undefined;

  readonly #generate: () => string;
  readonly #keepAliveMs: number;
  readonly #json: boolean;
  #versions: readonly string[] = SUPPORTED_PROTOCOL_VERSIONS;
  #started = false;
  #initialized = false;
  #closed = false;
  /** Each request in flight → the POST that carried it. */
  readonly #exchanges = new Map<RequestId, Exchange>();
  #standalone: Standalone | undefined;
  /** Keeps silent responses alive; one for the session, from its first stream to its close. */
  #pulse: NodeJS.Timeout | undefined;

  constructor(options: StreamableHttpSessionOptions) {
    this.#generate = options.sessionIdGenerator;
    this.#keepAliveMs = options.keepAliveMs ?? KEEP_ALIVE_MS;
    this.#json = options.jsonResponses ?? false;
    if (options.adopt !== undefined) {
      this.sessionId = options.adopt;
      this.#initialized = true;
    }
  }

  /** Delivers a message as if the client had POSTed it (a notification another gateway replica received for this session). */
  receive(message: JSONRPCMessage): void {
    if (this.#closed) return;
    if ('method' in message && message.method === CANCELLED) this.#cancelled(message.params?.['requestId'] as RequestId | undefined);
    deliverTo(this, message);
  }

  async start(): Promise<void> {
    if (this.#started) throw new Error('Transport already started');
    this.#started = true;
  }

  /** Versions accepted in Mcp-Protocol-Version from now on (the gateway adds the one negotiated end to end). */
  setSupportedProtocolVersions(versions: readonly string[]): void {
    this.#versions = [...versions];
  }

  /**
   * Serves one request; `body` is the parsed JSON of a POST (McpHttpServer reads, decodes,
   * parses and shape-checks it). Returns once the messages are handed on; the answer
   * follows on `out`.
   */
  handleRequest(req: IncomingMessage, out: Responder, body: unknown, authInfo: unknown): void {
    if (this.#closed) return this.#refuse(out, 404, -32001, 'Session not found');
    switch (req.method) {
      case 'POST':
        return this.#post(req, out, body, authInfo);
      case 'GET':
        return this.#get(req, out);
      case 'DELETE':
        return this.#delete(req, out);
      default:
        this.#report('Method not allowed.');
        return out.whole(405, { allow: 'GET, POST, DELETE', 'content-type': 'application/json' }, errorJson(-32000, 'Method not allowed.'));
    }
  }

  #post(req: IncomingMessage, out: Responder, body: unknown, authInfo: unknown): void {
    const refused = postRefusal(req);
    if (refused !== undefined) return this.#refuse(out, refused.status, -32000, refused.message);
    const messages = (Array.isArray(body) ? body : [body]) as JSONRPCMessage[];
    if (messages.length > MAX_BATCH) return this.#refuse(out, 400, -32600, `Invalid Request: Batch must not exceed ${MAX_BATCH} messages`);
    let initialize = false;
    let requests = 0;
    for (const message of messages) {
      if (isRequest(message)) {
        requests++;
        if (isInitialize(message)) initialize = true;
      }
    }
    if (initialize) {
      if (this.#initialized && this.sessionId !== undefined) return this.#refuse(out, 400, -32600, 'Invalid Request: Server already initialized');
      if (messages.length > 1) return this.#refuse(out, 400, -32600, 'Invalid Request: Only one initialization request is allowed');
      this.sessionId = this.#generate();
      this.#initialized = true;
    } else if (!this.#admitted(req, out)) {
      return;
    }
    const extra = extraInfo(req, authInfo);
    if (requests === 0) {
      for (const message of messages) {
        if ('method' in message && message.method === CANCELLED) this.#cancelled(message.params?.['requestId'] as RequestId | undefined);
        this.#hand(message, extra);
      }
      return out.whole(202, {}, undefined);
    }
    // A client that goes away abandons its answers: send() refuses them when they come, as the SDK's transport does.
    const exchange: Exchange = { out, pending: requests, answers: [], events: undefined, at: performance.now(), batch: Array.isArray(body) };
    for (const message of messages) if (isRequest(message)) this.#exchanges.set(message.id, exchange);
    this.#pulse ??= this.#startPulse();
    for (const message of messages) this.#hand(message, extra);
  }

  #hand(message: JSONRPCMessage, extra: MessageExtraInfo): void {
    const divert = this.divert;
    if (divert !== undefined) {
      try {
        if (divert(message)) return;
      } catch (error) {
        reportTo(this, error);
        return;
      }
    }
    deliverTo(this, message, extra);
  }

  #get(req: IncomingMessage, out: Responder): void {
    if (req.headers.accept?.includes('text/event-stream') !== true) return this.#refuse(out, 406, -32000, 'Not Acceptable: Client must accept text/event-stream');
    if (!this.#admitted(req, out)) return;
    if (this.#standalone !== undefined) return this.#refuse(out, 409, -32000, 'Conflict: Only one SSE stream is allowed per session');
    // Registered before its headers go out: whoever learns of the stream then (the gateway) may write to it at once.
    const standalone: Standalone = { events: undefined, early: [] };
    this.#standalone = standalone;
    const events = out.stream(200, this.#headers(EVENT_STREAM), true);
    standalone.events = events;
    for (const text of standalone.early.splice(0)) events.write(text);
    this.#pulse ??= this.#startPulse();
    out.res.once('close', () => {
      if (this.#standalone === standalone) this.#standalone = undefined;
    });
  }

  #delete(req: IncomingMessage, out: Responder): void {
    if (!this.#admitted(req, out)) return;
    out.whole(200, {}, undefined);
    void this.close();
  }

  /** The session and protocol-version checks of every request but initialize. */
  #admitted(req: IncomingMessage, out: Responder): boolean {
    if (!this.#initialized) {
      this.#refuse(out, 400, -32000, 'Bad Request: Server not initialized');
      return false;
    }
    const id = req.headers['mcp-session-id'];
    if (id === undefined || id === '') {
      this.#refuse(out, 400, -32000, 'Bad Request: Mcp-Session-Id header is required');
      return false;
    }
    if (id !== this.sessionId) {
      this.#refuse(out, 404, -32001, 'Session not found');
      return false;
    }
    const version = req.headers['mcp-protocol-version'];
    if (version !== undefined && !this.#versions.includes(version as string)) {
      const message = `Bad Request: Unsupported protocol version: ${String(version)} (supported versions: ${this.#versions.join(', ')})`;
      this.#refuse(out, 400, -32000, message);
      return false;
    }
    return true;
  }

  async send(message: JSONRPCMessage, options?: TransportSendOptions): Promise<void> {
    if ('result' in message || 'error' in message) {
      const id = (message as { id?: RequestId }).id;
      if (id === undefined) throw new Error('Cannot send a response on a standalone SSE stream unless resuming a previous client request');
      const exchange = this.#exchanges.get(id);
      if (exchange === undefined) throw new Error(`No connection established for request ID: ${String(id)}`);
      this.#exchanges.delete(id);
      exchange.pending--;
      if (exchange.out.finished && exchange.events === undefined) throw new Error(`No connection established for request ID: ${String(id)}`);
      if (exchange.pending > 0) {
        if (exchange.events === undefined) exchange.answers.push(message);
        else exchange.events.write(event(message));
        return;
      }
      if (exchange.events !== undefined) return exchange.events.end(event(message));
      // Nothing was streamed yet: the whole answer is known, and goes out as one body.
      if (!exchange.batch) {
        const { base, body } = loneAnswer(message, this.#json);
        return exchange.out.whole(200, this.#headers(base), body);
      }
      exchange.answers.push(message);
      exchange.out.whole(200, this.#headers(EVENT_STREAM), exchange.answers.map(event).join(''));
      return;
    }
    const related = options?.relatedRequestId;
    if (related !== undefined) {
      const exchange = this.#exchanges.get(related);
      if (exchange === undefined) throw new Error(`No connection established for request ID: ${String(related)}`);
      this.#eventsOf(exchange).write(event(message));
      return;
    }
    // No stream for it: the SDK's transport drops it too (the gateway holds such messages itself).
    const standalone = this.#standalone;
    if (standalone === undefined) return;
    if (standalone.events === undefined) standalone.early.push(event(message));
    else standalone.events.write(event(message));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#pulse);
    const standalone = this.#standalone;
    this.#standalone = undefined;
    standalone?.events?.end();
    const exchanges = new Set(this.#exchanges.values());
    this.#exchanges.clear();
    // As the SDK's transport does: each open stream ends, whatever it still waited for.
    for (const exchange of exchanges) if (!exchange.out.finished) this.#eventsOf(exchange).end();
    this.onclose?.();
  }

  /** The exchange's event stream, started now if its response has not begun (answers collected so far go first). */
  #eventsOf(exchange: Exchange, flush = false): EventStream {
    if (exchange.events !== undefined) return exchange.events;
    const events = exchange.out.stream(200, this.#headers(EVENT_STREAM), flush);
    exchange.events = events;
    for (const answer of exchange.answers.splice(0)) events.write(event(answer));
    return events;
  }

  /**
   * Every half keep-alive interval, each open response silent for that long gets a
   * keep-alive comment (a POST still waiting for its first message becomes an event stream
   * for it), so none stays silent for a whole interval. One timer for the session rather
   * than one per request.
   */
  #startPulse(): NodeJS.Timeout {
    const half = this.#keepAliveMs / 2;
    const pulse = setInterval(() => {
      const now = performance.now();
      const standalone = this.#standalone?.events;
      if (standalone !== undefined && now - standalone.lastWrite >= half) standalone.write(KEEP_ALIVE);
      for (const exchange of new Set(this.#exchanges.values())) {
        if (exchange.out.finished) continue;
        const silentSince = exchange.events === undefined ? exchange.at : exchange.events.lastWrite;
        if (now - silentSince >= half) this.#eventsOf(exchange).write(KEEP_ALIVE);
      }
    }, half);
    pulse.unref();
    return pulse;
  }

  /**
   * A request the client cancelled gets no answer (MCP), so its POST would wait in silence:
   * it becomes an event stream that stays open, as the SDK's transport leaves it.
   */
  #cancelled(id: RequestId | undefined): void {
    const exchange = id === undefined ? undefined : this.#exchanges.get(id);
    if (exchange !== undefined && exchange.events === undefined && !exchange.out.finished) this.#eventsOf(exchange, true);
  }

  #headers(base: OutgoingHttpHeaders): OutgoingHttpHeaders {
    const headers = { ...base };
    if (this.sessionId !== undefined) headers['mcp-session-id'] = this.sessionId;
    return headers;
  }

  #refuse(out: Responder, status: number, code: number, message: string): void {
    this.#report(message);
    out.whole(status, { 'content-type': 'application/json' }, errorJson(code, message));
  }

  #report(message: string): void {
    reportTo(this, new Error(message));
  }
}

function isRequest(message: JSONRPCMessage): message is JSONRPCMessage & { id: RequestId; method: string } {
  return 'method' in message && 'id' in message && message.id !== undefined;
}

/** The SDK's isInitializeRequest, by shape: an initialize with the fields the SDK requires of one. */
function isInitialize(message: { method: string; params?: unknown }): boolean {
  if (message.method !== 'initialize') return false;
  const params = message.params as { protocolVersion?: unknown; capabilities?: unknown; clientInfo?: { name?: unknown; version?: unknown } } | undefined;
  return (
    typeof params === 'object' &&
    params !== null &&
    typeof params.protocolVersion === 'string' &&
    typeof params.capabilities === 'object' &&
    params.capabilities !== null &&
    typeof params.clientInfo === 'object' &&
    params.clientInfo !== null &&
    typeof params.clientInfo.name === 'string' &&
    typeof params.clientInfo.version === 'string'
  );
}

/** `authInfo` and `requestInfo` as the SDK's transport passes them; the URL is parsed only if someone reads it. */
export function extraInfo(req: IncomingMessage, authInfo: unknown): MessageExtraInfo {
  const headers: IncomingHttpHeaders = req.headers;
  let url: URL | undefined;
  const requestInfo = {
    headers,
    get url(): URL {
      url ??= new URL(req.url ?? '/', `http://${headers.host ?? 'localhost'}`);
      return url;
    },
  };
  return authInfo === undefined ? { requestInfo } : { authInfo, requestInfo };
}
