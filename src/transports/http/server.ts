/**
 * McpHttpServer: serves an SDK Streamable HTTP server transport (wrapped or not, v1 or
 * v2) on node:http, adding what the SDK transports leave to the host:
 *
 *   - a body-size limit (413 with a JSON-RPC error body, checked on decoded bytes); the
 *     rest of a refused body is read and dropped (bounded) so the answer reaches the client;
 *   - bodies that are not UTF-8 (-32700) or not JSON-RPC (-32600, naming the field) get 400;
 *   - request decompression (Content-Encoding zstd / br / gzip / deflate; 415 otherwise)
 *     and response compression negotiated by Accept-Encoding — SSE streams are flushed
 *     event by event so nothing waits in the compressor; `Accept-Encoding` on every
 *     response tells clients (createFetch) which codings request bodies may use;
 *   - Host and Origin allow-lists and authenticate() (authInfo reaches the SDK's handlers),
 *     then admit() with the parsed body (a refusal of the application's: a 429);
 *   - client errors of its own listener (431 for oversized headers, 408, 400) in JSON;
 *   - sessions: `sessions: (req) => transport` creates a transport for each new session
 *     and routes later requests by Mcp-Session-Id (404 for unknown ids, so clients
 *     re-initialize, unless `adopt` serves a session that lives elsewhere — another
 *     gateway replica's); stateless transports (no session id) are closed after their response;
 *   - the 2026-07-28 era beside the 2025 sessions: with `perRequest`, a POST whose body
 *     (and headers) name 2026-07-28 gets a transport of its own for that one exchange
 *     (per-request.ts), after its headers are checked against its body (era.ts: 400 for
 *     a mismatch, 405 for a GET or DELETE of that era).
 *
 * Web-standard transports (`handleRequest(Request, { parsedBody, authInfo }) → Response`,
 * v1 and v2) get everything above. The v1 Node transport (`handleRequest(req, res, body)`)
 * writes its own response: it gets the limit, decoding, auth and routing, not response
 * compression. Any fetch-style `handler(Request, { parsedBody, authInfo })` works too.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';
import { ErrorCode } from '../../core/errors.ts';
import { EventBus } from '../../core/events.ts';
import { AVAILABLE_ENCODINGS, encodingsOption } from '../../core/wire.ts';
import { compressBuffer, createCompressor, negotiateEncoding } from '../encoding.ts';
import { errorBody, Guard, GUARD_OPTIONS, type GuardOptions } from '../guard.ts';
import { functionOption, integerOption, invalidOption, optionsObject, settingsObject, stringOption } from '../../core/options.ts';
import { type CompressionSettings, type Encoding, EventFanout, httpServerWire, innermost } from '../../core/wire.ts';
import type { RequestId } from '../../core/jsonrpc.ts';
import { classify } from '../../core/validate.ts';
import { DISCARD_FACTOR, DISCARD_MS, discardRest, readBody } from './body.ts';
import { addressOf, answerClientError, hostPort, listenOn, pathOf } from '../listen.ts';
import { Responder } from './respond.ts';
import { routeEra } from './era.ts';
import { PerRequestHttpTransport } from './per-request.ts';
import { StreamableHttpSessionTransport } from './session.ts';
import { reportTo } from '../../core/callbacks.ts';

/** What McpHttpServer needs of a transport: the SDK server transports have this shape. */
export interface HttpServerTransportLike {
  handleRequest: (...args: never[]) => unknown;
  sessionId?: string | undefined;
  close(): Promise<void>;
  onclose?: (() => void) | undefined;
}

export interface HandlerExtra {
  parsedBody?: unknown;
  authInfo?: unknown;
}

export type FetchHandler = (request: Request, extra: HandlerExtra) => Response | Promise<Response>;

/** An answer instead of a transport: the status, the JSON-RPC error, and headers (Retry-After) to send with it. */
export interface Refusal {
  readonly status: number;
  readonly code: number;
  readonly message: string;
  readonly headers?: Record<string, string>;
  readonly data?: Record<string, unknown>;
}

/** What `adopt` may answer: a transport that serves the session from now on, a refusal, or undefined (404: the session is unknown). */
export type Adopted = HttpServerTransportLike | { refuse: Refusal } | undefined;

/** What `perRequest` answers: the transport (a PerRequestHttpTransport, wrapped or not) for one 2026-07-28 exchange, or a refusal. */
export type PerRequestAdmitted = HttpServerTransportLike | { refuse: Refusal };

export interface HttpCompressionOptions {
  /** Response codings, most preferred first. Default zstd, br, gzip (those this Node has). */
  encodings?: readonly Encoding[];
  /** Non-streamed responses smaller than this many bytes go uncompressed. Default 1024. */
  minBytes?: number;
}

export interface McpHttpServerOptions extends GuardOptions {
  /** One transport for every request: a stateless server, or a single session. */
  transport?: HttpServerTransportLike;
  /** Creates the transport (and connects your McpServer to it) for each new session. */
  sessions?: (request: IncomingMessage) => HttpServerTransportLike | Promise<HttpServerTransportLike>;
  /**
   * With `sessions`: a request names a session this server does not hold. Return a
   * transport that serves it from now on (a session that lives on a broker, which any
   * gateway replica can serve), or undefined for the usual 404.
   */
  adopt?: (request: IncomingMessage, sessionId: string) => Adopted | Promise<Adopted>;
  /**
   * With `sessions`: serve the 2026-07-28 era too. Creates the transport for each request
   * of that era (a PerRequestHttpTransport, wrapped or not, connected to your server or
   * proxy), or refuses it. Without it, every request is served as the 2025 eras are.
   * The gateway's, for now: PerRequestHttpTransport is not published from mcp-layers/http.
   */
  perRequest?: (request: IncomingMessage) => PerRequestAdmitted | Promise<PerRequestAdmitted>;
  /**
   * Called for every request once it is authenticated and its body parsed (`body` is
   * undefined but for a POST), before any transport sees it: a Refusal answers it
   * instead (the gateway's 429 for a client over its rate limit).
   */
  admit?: (request: IncomingMessage, body: unknown, authInfo: unknown) => Refusal | undefined;
  /** Or a fetch-style handler (e.g. a 2026-07-28 per-request handler). */
  handler?: FetchHandler;
  /** Attach to this server instead of listening: McpHttpServer handles its `request` events for `path`. */
  server?: http.Server;
  /** Port to listen on (0 picks a free one). Default 0. */
  port?: number;
  /** Interface to bind. Default 127.0.0.1. */
  host?: string;
  /** The MCP endpoint. Default `/mcp`. */
  path?: string;
  /** Largest request body, in bytes (after decoding). Default 4 MiB, like the SDK. */
  maxBodyBytes?: number;
  /** Most concurrent sessions (with `sessions`). Default 10 000. */
  maxSessions?: number;
  /** `false` turns compression off both ways; default on, negotiated. */
  compression?: boolean | HttpCompressionOptions;
  /** Where `wire` and `bytes-compressed` are published. */
  events?: EventBus;
}

const LABEL = 'http server';
const DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024;
const DEFAULT_RESPONSE_ENCODINGS: readonly Encoding[] = ['zstd', 'br', 'gzip'];

type Target =
  | { kind: 'native'; transport: HttpServerTransportLike; inner: StreamableHttpSessionTransport; created: boolean }
  | { kind: 'web'; call: FetchHandler; transport: HttpServerTransportLike | undefined; created: boolean }
  | { kind: 'node'; transport: HttpServerTransportLike; created: boolean }
  | ({ kind: 'refuse' } & Refusal);

export class McpHttpServer {
  /** Errors that have no request to answer with: failing transports, broken sockets. */
  onerror?: (error: Error) => void;
  readonly events: EventBus;

  readonly #guard: Guard;
  readonly #server: http.Server;
  readonly #ownServer: boolean;
  readonly #path: string;
  readonly #host: string;
  readonly #port: number;
  readonly #maxBody: number;
  #maxSessions: number;
  readonly #compression: CompressionSettings | undefined;
  /** Codings accepted on request bodies. */
  readonly #decodings: readonly Encoding[];
  readonly #fanout: EventFanout;
  readonly #single: HttpServerTransportLike | undefined;
  readonly #factory: McpHttpServerOptions['sessions'];
  readonly #adoptSession: McpHttpServerOptions['adopt'];
  readonly #perRequest: McpHttpServerOptions['perRequest'];
  readonly #admit: McpHttpServerOptions['admit'];
  readonly #handler: FetchHandler | undefined;
  readonly #sessions = new Map<string, HttpServerTransportLike>();
  readonly #adopted = new WeakSet<HttpServerTransportLike>();
  #closing: Promise<void> | undefined;
  readonly #onRequest = (req: IncomingMessage, res: ServerResponse) => {
    if (!this.#ownServer && pathOf(req) !== this.#path) return;
    void this.handle(req, res);
  };

  constructor(options: McpHttpServerOptions) {
    optionsObject(options, 'McpHttpServer', [
      ...GUARD_OPTIONS,
      'transport',
      'sessions',
      'adopt',
      'perRequest',
      'admit',
      'handler',
      'server',
      'port',
      'host',
      'path',
      'maxBodyBytes',
      'maxSessions',
      'compression',
      'events',
    ]);
    const given = [options.transport, options.sessions, options.handler].filter((x) => x !== undefined).length;
    if (given !== 1) throw invalidOption('McpHttpServer', 'exactly one of transport, sessions or handler', `${given} of them`);
    if (options.transport !== undefined && typeof (options.transport as { handleRequest?: unknown }).handleRequest !== 'function') {
      throw invalidOption('McpHttpServer.transport', 'an SDK HTTP server transport (with handleRequest())', options.transport);
    }
    this.#single = options.transport;
    this.#factory = functionOption('McpHttpServer.sessions', options.sessions);
    this.#adoptSession = functionOption('McpHttpServer.adopt', options.adopt);
    if (this.#adoptSession !== undefined && this.#factory === undefined) throw invalidOption('McpHttpServer.adopt', 'used with sessions', 'adopt without sessions');
    this.#perRequest = functionOption('McpHttpServer.perRequest', options.perRequest);
    if (this.#perRequest !== undefined && this.#factory === undefined) throw invalidOption('McpHttpServer.perRequest', 'used with sessions', 'perRequest without sessions');
    this.#admit = functionOption('McpHttpServer.admit', options.admit);
    this.#handler = functionOption('McpHttpServer.handler', options.handler);
    this.#guard = new Guard('McpHttpServer', options);
    this.#path = stringOption('McpHttpServer.path', options.path, '/mcp');
    this.#host = stringOption('McpHttpServer.host', options.host, '127.0.0.1');
    this.#port = integerOption('McpHttpServer.port', options.port, 0, 0, 65535);
    this.#maxBody = integerOption('McpHttpServer.maxBodyBytes', options.maxBodyBytes, DEFAULT_MAX_BODY_BYTES, 1);
    this.#maxSessions = integerOption('McpHttpServer.maxSessions', options.maxSessions, 10_000, 1);
    if (options.compression === false) {
      this.#compression = undefined;
      this.#decodings = [];
    } else {
      const c = options.compression === true || options.compression === undefined ? {} : settingsObject('McpHttpServer.compression', options.compression, ['encodings', 'minBytes']);
      this.#compression = {
        encodings: encodingsOption('McpHttpServer.compression.encodings', c['encodings'], DEFAULT_RESPONSE_ENCODINGS),
        minBytes: integerOption('McpHttpServer.compression.minBytes', c['minBytes'], 1024, 0),
      };
      this.#decodings = AVAILABLE_ENCODINGS;
    }
    if (options.events !== undefined && !(options.events instanceof EventBus)) throw invalidOption('McpHttpServer.events', 'an EventBus', options.events);
    this.events = options.events ?? new EventBus();
    this.#fanout = new EventFanout(this.events);
    if (options.server !== undefined) {
      this.#server = options.server;
      this.#ownServer = false;
    } else {
      this.#server = http.createServer({ headersTimeout: 30_000, requestTimeout: 0 });
      this.#server.on('clientError', answerClientError);
      this.#ownServer = true;
    }
    this.#server.on('request', this.#onRequest);
  }

  async listen(): Promise<this> {
    if (this.#ownServer && !this.#server.listening) await listenOn(this.#server, this.#port, this.#host);
    return this;
  }

  get address(): AddressInfo {
    return addressOf(this.#server, LABEL);
  }

  /** `http://host:port/path` once listening. */
  get url(): string {
    return `http://${hostPort(this.address)}${this.#path}`;
  }

  /** Open sessions by Mcp-Session-Id (with `sessions`). */
  /** Sessions held at most; a new session past it is refused with 503. Settable (a gateway's config reload). */
  get maxSessions(): number {
    return this.#maxSessions;
  }

  set maxSessions(value: number) {
    this.#maxSessions = integerOption('McpHttpServer.maxSessions', value, 10_000, 1);
  }

  get sessions(): ReadonlyMap<string, HttpServerTransportLike> {
    return this.#sessions;
  }

  close(): Promise<void> {
    if (this.#closing !== undefined) return this.#closing;
    this.#closing = (async () => {
      this.#server.off('request', this.#onRequest);
      const transports = [...this.#sessions.values(), ...(this.#single === undefined ? [] : [this.#single])];
      this.#sessions.clear();
      await Promise.allSettled(transports.map((t) => t.close()));
      if (this.#ownServer) {
        await new Promise<void>((resolve) => {
          this.#server.close(() => resolve());
          this.#server.closeAllConnections();
        });
      }
    })();
    return this.#closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** Handles one request (also usable from your own router). Never rejects. */
  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // A router in front (the gateway's) may have added these already.
    if (req.listenerCount('error') === 0) req.on('error', ignore);
    if (res.listenerCount('error') === 0) res.on('error', ignore);
    try {
      await this.#handle(req, res);
    } catch (error) {
      this.#report(error);
      if (!res.headersSent) reply(res, 500, ErrorCode.InternalError, 'Internal Server Error: the request could not be handled');
      else res.destroy();
    }
    // Answered before the body was read (413, 401, 404...): the client may still be sending it.
    if (!req.complete) discardRest(req, res, this.#maxBody * DISCARD_FACTOR, DISCARD_MS);
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (pathOf(req) !== this.#path) return reply(res, 404, ErrorCode.InvalidRequest, `Not Found: the MCP endpoint is ${this.#path}`);
    if (this.#closing !== undefined) return reply(res, 503, ErrorCode.ConnectionClosed, 'Service Unavailable: the server is shutting down');
    if (this.#decodings.length > 0) res.setHeader('accept-encoding', this.#decodings.join(', '));
    const admitted = this.#guard.admit(req);
    const admission = admitted instanceof Promise ? await admitted : admitted;
    if (!admission.ok) {
      if (admission.cause !== undefined) this.#report(new Error(`${LABEL}: authenticate() threw; the request was refused with 401`, { cause: admission.cause }));
      return reply(res, admission.status, admission.code, admission.message, admission.headers);
    }
    let parsedBody: unknown;
    if (req.method === 'POST') {
      const body = await readBody(req, this.#maxBody, this.#decodings);
      if (!body.ok) return reply(res, body.status, body.status === 413 || body.status === 415 ? ErrorCode.InvalidRequest : -32700, body.message);
      try {
        parsedBody = JSON.parse(body.text);
      } catch (error) {
        return reply(res, 400, -32700, `Parse error: the request body is not valid JSON (${(error as Error).message})`);
      }
      // The SDK transports answer JSON that is not JSON-RPC with a bare "-32700 Parse error";
      // the core's own check names the field. Shallow: the wrapped core checks deeply later.
      const invalid = notJsonRpc(parsedBody);
      if (invalid !== undefined) return reply(res, 400, ErrorCode.InvalidRequest, `Invalid Request: ${invalid.problem}`, {}, invalid.id);
    }
    const refused = this.#admit?.(req, parsedBody, admission.authInfo);
    if (refused !== undefined) return reply(res, refused.status, refused.code, refused.message, refused.headers, requestIdOf(parsedBody), refused.data);
    if (this.#perRequest !== undefined) {
      const route = routeEra(req.method, req.headers, parsedBody);
      if (route.era === 'refused') return reply(res, route.status, route.code, route.message, route.headers, route.id, route.data);
      if (route.era === 'stateless') return this.#exchange(req, res, this.#perRequest, parsedBody, admission.authInfo);
    }
    const found = this.#target(req);
    const target = found instanceof Promise ? await found : found;
    if (target.kind === 'refuse') return reply(res, target.status, target.code, target.message, target.headers, null, target.data);
    const transport = target.transport;
    try {
      if (target.kind === 'native') {
        if (target.created) this.#adoptBeforeHeaders(target.transport, res);
        const settings = httpServerWire.get(target.inner)?.settings ?? this.#compression;
        const out = new Responder(req, res, settings, this.#fanoutFor(target.transport), (error) => this.#report(error));
        target.inner.handleRequest(req, out, parsedBody, admission.authInfo);
        if (target.created) this.#adopt(target.transport, res);
        return;
      }
      if (target.kind === 'node') {
        (req as IncomingMessage & { auth?: unknown }).auth = admission.authInfo;
        if (target.created) this.#adoptBeforeHeaders(target.transport, res);
        await (target.transport.handleRequest as unknown as (a: IncomingMessage, b: ServerResponse, c: unknown) => Promise<void>)(req, res, parsedBody);
        if (target.created) this.#adopt(target.transport, res);
        return;
      }
      const controller = new AbortController();
      res.once('close', () => controller.abort());
      const request = toWebRequest(req, controller.signal);
      const extra: HandlerExtra = {};
      if (parsedBody !== undefined) extra.parsedBody = parsedBody;
      if (admission.authInfo !== undefined) extra.authInfo = admission.authInfo;
      const response = await target.call(request, extra);
      if (target.created && transport !== undefined) this.#adopt(transport, res);
      await this.#write(req, res, response, transport);
    } catch (error) {
      if (target.created && transport !== undefined && transport.sessionId === undefined) void transport.close().catch(() => {});
      throw error;
    }
  }

  /** One 2026-07-28 exchange: a transport of its own, which closes itself once answered. */
  async #exchange(req: IncomingMessage, res: ServerResponse, perRequest: NonNullable<McpHttpServerOptions['perRequest']>, body: unknown, authInfo: unknown): Promise<void> {
    const admitted = await perRequest(req);
    if ('refuse' in admitted) return reply(res, admitted.refuse.status, admitted.refuse.code, admitted.refuse.message, admitted.refuse.headers, requestIdOf(body), admitted.refuse.data);
    const inner = innermost(admitted);
    if (!(inner instanceof PerRequestHttpTransport)) {
      void admitted.close().catch(() => {});
      throw invalidOption('McpHttpServer.perRequest', 'a PerRequestHttpTransport (wrapped or not)', inner);
    }
    const settings = httpServerWire.get(inner)?.settings ?? this.#compression;
    const out = new Responder(req, res, settings, this.#fanoutFor(admitted), (error) => this.#report(error));
    inner.handleRequest(req, out, body, authInfo);
  }

  /** Where the request goes; a promise only when a session is being created. */
  #target(req: IncomingMessage): Target | Promise<Target> {
    if (this.#handler !== undefined) return { kind: 'web', call: this.#handler, transport: undefined, created: false };
    if (this.#single !== undefined) return this.#targetOf(this.#single, false);
    const id = req.headers['mcp-session-id'];
    if (typeof id === 'string' && id !== '') {
      const transport = this.#sessions.get(id);
      if (transport === undefined) {
        if (this.#adoptSession !== undefined) return this.#adoptNamed(req, id, this.#adoptSession);
        return SESSION_NOT_FOUND;
      }
      return this.#targetOf(transport, false);
    }
    if (this.#sessions.size >= this.#maxSessions) {
      return { kind: 'refuse', status: 503, code: ErrorCode.LoadShed, message: `Service Unavailable: the server holds its limit of ${this.#maxSessions} sessions` };
    }
    return (async () => this.#targetOf(await (this.#factory as NonNullable<McpHttpServerOptions['sessions']>)(req), true))();
  }

  async #adoptNamed(req: IncomingMessage, id: string, adopt: NonNullable<McpHttpServerOptions['adopt']>): Promise<Target> {
    const adopted = await adopt(req, id);
    if (adopted === undefined) return SESSION_NOT_FOUND;
    if ('refuse' in adopted) return { kind: 'refuse', ...adopted.refuse };
    // Another request may have adopted it meanwhile: the first one serves the session.
    const existing = this.#sessions.get(id);
    if (existing !== undefined && existing !== adopted) {
      void adopted.close().catch(() => {});
      return this.#targetOf(existing, false);
    }
    this.#register(adopted, id);
    return this.#targetOf(adopted, false);
  }

  #targetOf(t: HttpServerTransportLike, created: boolean): Target {
    const inner = innermost(t);
    if (inner instanceof StreamableHttpSessionTransport) return { kind: 'native', transport: t, inner, created };
    if (isNodeStyle(t)) return { kind: 'node', transport: t, created };
    const call: FetchHandler = (request, extra) => (t.handleRequest as unknown as FetchHandler)(request, extra);
    return { kind: 'web', call, transport: t, created };
  }

  /** The session id exists once the response starts: register it before the client can use it. */
  #adoptBeforeHeaders(transport: HttpServerTransportLike, res: ServerResponse): void {
    const writeHead = res.writeHead;
    res.writeHead = ((...args: Parameters<typeof writeHead>) => {
      res.writeHead = writeHead;
      this.#adopt(transport, res);
      return writeHead.apply(res, args);
    }) as typeof writeHead;
  }

  /** A transport made for this request: keep it by session id, or close it when its (stateless) response ends. */
  #adopt(transport: HttpServerTransportLike, res: ServerResponse): void {
    if (this.#adopted.has(transport)) return;
    this.#adopted.add(transport);
    const id = transport.sessionId;
    if (id === undefined) {
      const close = () => void transport.close().catch((error: unknown) => this.#report(error));
      if (res.writableFinished || res.destroyed) close();
      else res.once('close', close);
      return;
    }
    this.#register(transport, id);
  }

  #register(transport: HttpServerTransportLike, id: string): void {
    this.#adopted.add(transport);
    this.#sessions.set(id, transport);
    const previous = transport.onclose;
    transport.onclose = () => {
      if (this.#sessions.get(id) === transport) this.#sessions.delete(id);
      previous?.call(transport);
    };
  }

  async #write(req: IncomingMessage, res: ServerResponse, response: Response, transport: HttpServerTransportLike | undefined): Promise<void> {
    const settings = (transport === undefined ? undefined : httpServerWire.get(innermost(transport))?.settings) ?? this.#compression;
    const fanout = this.#fanoutFor(transport);
    const headers = headersOf(response);
    const body = response.body;
    const status = response.status;
    const encoding =
      settings !== undefined && body !== null && status !== 204 && status !== 304 && !response.headers.has('content-encoding')
        ? negotiateEncoding(req.headers['accept-encoding'], settings.encodings)
        : undefined;
    if (body === null) {
      res.writeHead(status, headers).end();
      return;
    }
    const streaming = (response.headers.get('content-type') ?? '').toLowerCase().startsWith('text/event-stream');
    if (!streaming) {
      let buffer: Buffer = Buffer.from(await response.arrayBuffer());
      let used: Encoding | undefined;
      if (encoding !== undefined && buffer.length >= (settings as CompressionSettings).minBytes) {
        const packed = await compressBuffer(encoding, buffer);
        if (packed.length < buffer.length) {
          if (fanout.has('bytes-compressed')) fanout.emit('bytes-compressed', { encoding, direction: 'outbound', before: buffer.length, after: packed.length });
          buffer = packed;
          used = encoding;
        }
      }
      if (used !== undefined) {
        headers['content-encoding'] = used;
        headers['vary'] = 'accept-encoding';
      }
      headers['content-length'] = String(buffer.length);
      res.writeHead(status, headers).end(buffer);
      if (fanout.has('wire')) fanout.emit('wire', { direction: 'outbound', bytes: buffer.length, encoding: used ?? 'identity' });
      return;
    }
    delete headers['content-length'];
    if (encoding !== undefined) {
      headers['content-encoding'] = encoding;
      headers['vary'] = 'accept-encoding';
    }
    res.writeHead(status, headers);
    res.flushHeaders();
    const reader = body.getReader();
    res.once('close', () => void reader.cancel().catch(() => {}));
    const compressor = encoding === undefined ? undefined : createCompressor(encoding);
    let before = 0;
    let after = 0;
    /** What the compressor writes once the stream is ending: sent with the end of the body. */
    let tail: Buffer[] | undefined;
    compressor?.on('data', (chunk: Buffer) => {
      after += chunk.length;
      if (tail === undefined) res.write(chunk);
      else tail.push(chunk);
    });
    compressor?.on('error', (error) => {
      this.#report(error);
      res.destroy();
    });
    let last: Uint8Array | undefined;
    try {
      let next = reader.read();
      for (;;) {
        const { done, value } = await next;
        if (done) break;
        before += value.length;
        next = reader.read();
        // A transport ends a response's stream right after its last event (the SDK's do, in
        // the same call): that event then goes out with the end of the body, in one write,
        // and the client never holds an answer whose stream has not ended. A stream still
        // open is not waited for: the read is already settled or it is not.
        const ahead = await Promise.race([next, NOT_YET]);
        if (ahead !== undefined && ahead.done) {
          last = value;
          break;
        }
        if (compressor === undefined) {
          after += value.length;
          if (!res.write(value)) await Promise.race([once(res, 'drain'), once(res, 'close')]);
        } else {
          compressor.write(value);
          // Each SSE event must reach the client now, not when the compressor's window fills.
          await new Promise<void>((resolve) => compressor.flush(() => resolve()));
          if (res.writableNeedDrain) await Promise.race([once(res, 'drain'), once(res, 'close')]);
        }
        if (res.destroyed) break;
      }
    } catch {
      // the client went away or the transport closed the stream
    } finally {
      if (compressor !== undefined) {
        tail = [];
        if (last !== undefined && !res.destroyed) compressor.write(last);
        compressor.end();
        if (!compressor.readableEnded && !compressor.destroyed) await Promise.race([once(compressor, 'end'), once(compressor, 'close')]).catch(() => {});
        res.end(tail.length === 0 ? undefined : Buffer.concat(tail));
      } else if (last !== undefined && !res.destroyed) {
        after += last.length;
        res.end(last);
      } else {
        res.end();
      }
      if (encoding !== undefined && before > 0 && fanout.has('bytes-compressed')) fanout.emit('bytes-compressed', { encoding, direction: 'outbound', before, after });
      if (fanout.has('wire')) fanout.emit('wire', { direction: 'outbound', bytes: after, encoding: encoding ?? 'identity' });
    }
  }

  #fanoutFor(transport: HttpServerTransportLike | undefined): EventFanout {
    if (transport === undefined) return this.#fanout;
    const wire = httpServerWire.get(innermost(transport));
    if (wire === undefined) return this.#fanout;
    wire.fanout.add(this.events);
    return wire.fanout;
  }

  #report(error: unknown): void {
    reportTo(this, error);
  }
}

function ignore(): void {}

const SESSION_NOT_FOUND: Target = { kind: 'refuse', status: 404, code: -32001, message: 'Session not found: it expired or never existed; start a new session with initialize' };

/** Settles a race at once: what has not settled by then is still pending. */
const NOT_YET = Promise.resolve(undefined);

/** Creates an McpHttpServer and starts listening (own server). */
export async function listenHttp(options: McpHttpServerOptions): Promise<McpHttpServer> {
  return new McpHttpServer(options).listen();
}

/** The v1 Node transport takes (req, res, parsedBody) and writes the response itself. */
function isNodeStyle(transport: HttpServerTransportLike): boolean {
  const inner = innermost(transport) as { handleRequest?: { length: number } };
  return (inner.handleRequest?.length ?? 0) >= 3;
}

function toWebRequest(req: IncomingMessage, signal: AbortSignal): Request {
  const host = req.headers.host ?? 'localhost';
  const url = new URL(req.url ?? '/', `http://${host}`);
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    // The body was read (and decoded) already: its framing headers no longer apply.
    if (value === undefined || name === 'content-length' || name === 'content-encoding' || name === 'transfer-encoding') continue;
    if (Array.isArray(value)) for (const v of value) headers.append(name, v);
    else headers.set(name, value);
  }
  return new Request(url, { method: req.method ?? 'GET', headers, signal });
}

function headersOf(response: Response): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  response.headers.forEach((value, name) => {
    if (name !== 'set-cookie') out[name] = value;
  });
  const cookies = response.headers.getSetCookie();
  if (cookies.length > 0) out['set-cookie'] = cookies;
  return out;
}

/** What is wrong with a parsed body that is not a JSON-RPC message or batch, and the id to answer, if any. */
function notJsonRpc(value: unknown): { problem: string; id: RequestId | null } | undefined {
  if (Array.isArray(value)) {
    if (value.length === 0) return { problem: 'an empty JSON-RPC batch', id: null };
    for (let i = 0; i < value.length; i++) {
      const item = classify(value[i], false);
      if (item.kind === 'invalid') return { problem: `item ${i} of the batch: ${item.problem}`, id: null };
    }
    return undefined;
  }
  const classified = classify(value, false);
  if (classified.kind !== 'invalid') return undefined;
  const looksLikeRequest = typeof value === 'object' && value !== null && 'method' in value;
  return { problem: classified.problem, id: looksLikeRequest ? (classified.id ?? null) : null };
}

/** The id of a request body, to answer it under (null for anything else). */
function requestIdOf(body: unknown): RequestId | null {
  const id = (body as { id?: unknown } | undefined)?.id;
  return typeof id === 'string' || typeof id === 'number' ? id : null;
}

/** A JSON-RPC error body with an HTTP status, as the SDK's transports answer. */
function reply(res: ServerResponse, status: number, code: number, message: string, headers: Record<string, string> = {}, id: RequestId | null = null, data?: Record<string, unknown>): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = data === undefined ? errorBody(code, message, id) : JSON.stringify({ jsonrpc: '2.0', id, error: { code, message, data } });
  res.writeHead(status, { ...headers, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) }).end(body);
}
