/**
 * An MCP server over WebSocket: listens on a port (127.0.0.1 by default) or attaches to
 * an existing http(s) server at a path, checks every upgrade (path, subprotocol,
 * capacity, Origin, authenticate), and hands one server-side Transport per connection
 * to the application:
 *
 *   const wss = await listenWebSocket({ port: 8080, onconnection: async (transport) => {
 *     const server = new McpServer({ name: 'demo', version: '1.0.0' });
 *     await server.connect(wrap(transport, layers, { events: transport.events }));
 *   } });
 *
 * A refused upgrade gets a plain HTTP response (401, 403, 404, 400, 503) with a JSON-RPC
 * style body saying why. Nothing a peer sends can crash the process: every socket has an
 * error listener, every callback is guarded.
 */
import { randomUUID } from 'node:crypto';
import http, { type IncomingMessage, STATUS_CODES } from 'node:http';
import type https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer as WsServer, type WebSocket } from 'ws';
import { ConnectionClosedError, ErrorCode } from '../../core/errors.ts';
import type { EventBus } from '../../core/events.ts';
import type { JSONRPCMessage } from '../../core/jsonrpc.ts';
import type { MessageExtraInfo, Transport, TransportSendOptions } from '../../core/transport.ts';
import { errorBody, Guard, GUARD_OPTIONS, type GuardOptions } from '../guard.ts';
import { durationOption, functionOption, integerOption, invalidOption, optionsObject, stringOption } from '../../core/options.ts';
import { type CompressionSettings, EventFanout, WIRE_CONTROL, type WireControl } from '../../core/wire.ts';
import { Channel, type ChannelSettings, CloseCode, encode } from './channel.ts';
import { COMMON_OPTIONS, resolveCommon, SUBPROTOCOL, type WebSocketCommonOptions, wsDeflateOptions } from './options.ts';
import { addressOf, answerClientError, hostPort, listenOn, pathOf } from '../listen.ts';
import { deliverTo, reportTo } from '../../core/callbacks.ts';

export interface WebSocketServerOptions extends WebSocketCommonOptions, GuardOptions {
  /** Called once per accepted connection with its transport (not started yet: `connect()` starts it). */
  onconnection: (transport: WebSocketServerTransport, request: IncomingMessage) => void | Promise<void>;
  /** Attach to this server instead of listening. */
  server?: http.Server | https.Server;
  /** Port to listen on (0 picks a free one). Ignored with `server`. Default 0. */
  port?: number;
  /** Interface to bind. Default 127.0.0.1: exposing a server is a decision, not a default. */
  host?: string;
  /** The path clients connect to. Default `/mcp`. */
  path?: string;
  /** Open connections beyond this are refused with 503. Default 1024. */
  maxConnections?: number;
  /** How long a client may take to send its upgrade request (own server only). Default 10 000 ms. */
  upgradeTimeoutMs?: number;
}

/** What the server accepts from one client message by default, like the SDK's HTTP body limit. */
const DEFAULT_SERVER_MAX_PAYLOAD = 4 * 1024 * 1024;
const LABEL = 'websocket server';

export class McpWebSocketServer {
  /** Server-level problems: refused upgrades, a failing onconnection, socket errors. */
  onerror?: (error: Error) => void;
  /** Every connection publishes here (`connection`, `heartbeat`, `wire`...), and so does the server. */
  readonly events: EventBus;

  readonly #options: WebSocketServerOptions;
  readonly #guard: Guard;
  readonly #wss: WsServer;
  readonly #server: http.Server | https.Server;
  readonly #ownServer: boolean;
  readonly #path: string;
  readonly #host: string;
  readonly #port: number;
  #maxConnections: number;
  readonly #channel: ChannelSettings;
  readonly #common: ReturnType<typeof resolveCommon>;
  readonly #onconnection: WebSocketServerOptions['onconnection'];
  readonly #connections = new Set<WebSocketServerTransport>();
  /** Upgrades being checked (authenticate may be slow): counted against maxConnections. */
  #admitting = 0;
  #closing: Promise<void> | undefined;
  readonly #onUpgrade = (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    this.#handleUpgrade(request, socket, head).catch((error: unknown) => {
      this.#report(error);
      reject(socket, 500, ErrorCode.InternalError, 'Internal Server Error: the upgrade could not be completed');
    });
  };

  constructor(options: WebSocketServerOptions) {
    optionsObject(options, 'McpWebSocketServer', [
      ...COMMON_OPTIONS,
      ...GUARD_OPTIONS,
      'onconnection',
      'server',
      'port',
      'host',
      'path',
      'maxConnections',
      'upgradeTimeoutMs',
    ]);
    this.#options = options;
    this.#onconnection = functionOption<WebSocketServerOptions['onconnection']>('McpWebSocketServer.onconnection', options.onconnection) as WebSocketServerOptions['onconnection'];
    if (this.#onconnection === undefined) throw invalidOption('McpWebSocketServer.onconnection', 'a function (transport, request) => void', undefined);
    this.#common = resolveCommon('McpWebSocketServer', LABEL, options, DEFAULT_SERVER_MAX_PAYLOAD);
    this.#channel = this.#common.channel;
    this.events = this.#common.events;
    this.#guard = new Guard('McpWebSocketServer', options);
    this.#path = stringOption('McpWebSocketServer.path', options.path, '/mcp');
    if (!this.#path.startsWith('/')) throw invalidOption('McpWebSocketServer.path', 'a path starting with "/"', this.#path);
    this.#host = stringOption('McpWebSocketServer.host', options.host, '127.0.0.1');
    this.#port = integerOption('McpWebSocketServer.port', options.port, 0, 0, 65535);
    this.#maxConnections = integerOption('McpWebSocketServer.maxConnections', options.maxConnections, 1024, 1);
    const upgradeTimeoutMs = durationOption('McpWebSocketServer.upgradeTimeoutMs', options.upgradeTimeoutMs, 10_000, 1);
    this.#wss = new WsServer({
      noServer: true,
      clientTracking: false,
      maxPayload: this.#channel.maxPayload,
      perMessageDeflate: wsDeflateOptions(this.#common.deflate),
      // The channel checks UTF-8 itself, so that its 1007 close can say what was wrong.
      skipUTF8Validation: true,
      handleProtocols: (protocols) => (protocols.has(SUBPROTOCOL) ? SUBPROTOCOL : false),
    });
    this.#wss.on('error', (error) => this.#report(error));
    if (options.server !== undefined) {
      if (typeof options.server !== 'object' || options.server === null || typeof options.server.on !== 'function') {
        throw invalidOption('McpWebSocketServer.server', 'an http.Server or https.Server', options.server);
      }
      this.#server = options.server;
      this.#ownServer = false;
    } else {
      this.#server = http.createServer({
        headersTimeout: upgradeTimeoutMs,
        requestTimeout: upgradeTimeoutMs,
        connectionsCheckingInterval: Math.min(1000, Math.max(50, Math.floor(upgradeTimeoutMs / 2))),
      });
      this.#server.on('request', (_req, res) => {
        const body = errorBody(ErrorCode.InvalidRequest, `Upgrade Required: this endpoint speaks MCP over WebSocket (subprotocol "${SUBPROTOCOL}") at ${this.#path}`);
        res.writeHead(426, { 'content-type': 'application/json', upgrade: 'websocket', connection: 'close' }).end(body);
      });
      this.#server.on('clientError', answerClientError);
      this.#ownServer = true;
    }
    this.#server.on('upgrade', this.#onUpgrade);
  }

  /** Starts listening (own server only; an attached server is already yours to listen). */
  async listen(): Promise<this> {
    if (this.#ownServer && !this.#server.listening) await listenOn(this.#server, this.#port, this.#host);
    return this;
  }

  get address(): AddressInfo {
    return addressOf(this.#server, LABEL);
  }

  /** `ws://host:port/path` of this server (once listening). */
  get url(): string {
    const scheme = 'setSecureContext' in this.#server ? 'wss' : 'ws';
    return `${scheme}://${hostPort(this.address)}${this.#path}`;
  }

  /** The transports of the open connections. */
  /** Connections held at most; an upgrade past it is refused with 503. Settable (a gateway's config reload). */
  get maxConnections(): number {
    return this.#maxConnections;
  }

  set maxConnections(value: number) {
    this.#maxConnections = integerOption('McpWebSocketServer.maxConnections', value, 1024, 1);
  }

  get connections(): ReadonlySet<WebSocketServerTransport> {
    return this.#connections;
  }

  /** Stops accepting, closes every connection with 1001 (going away), and the server if it is ours. */
  close(): Promise<void> {
    if (this.#closing !== undefined) return this.#closing;
    this.#closing = (async () => {
      this.#server.off('upgrade', this.#onUpgrade);
      await Promise.all([...this.#connections].map((t) => t.close(CloseCode.GoingAway, 'server shutting down')));
      this.#wss.close();
      if (this.#ownServer) {
        await new Promise<void>((resolve) => {
          this.#server.close(() => resolve());
          (this.#server as http.Server).closeAllConnections?.();
        });
      }
    })();
    return this.#closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on('error', (error) => this.#report(new Error(`${LABEL}: socket error during the upgrade: ${error.message}`, { cause: error })));
    const path = pathOf(request);
    if (path !== this.#path) {
      // On a shared server another upgrade listener may own this path.
      if (!this.#ownServer && this.#server.listenerCount('upgrade') > 1) return;
      return this.#refuse(socket, 404, ErrorCode.InvalidRequest, `Not Found: the MCP WebSocket endpoint is ${this.#path}`);
    }
    if (this.#closing !== undefined) return this.#refuse(socket, 503, ErrorCode.ConnectionClosed, 'Service Unavailable: the server is shutting down');
    const offered = request.headers['sec-websocket-protocol'];
    if (offered !== undefined && !offered.split(',').some((p) => p.trim() === SUBPROTOCOL)) {
      return this.#refuse(socket, 400, ErrorCode.InvalidRequest, `Bad Request: this endpoint speaks the "${SUBPROTOCOL}" WebSocket subprotocol; the client offered ${JSON.stringify(offered.slice(0, 100))}`);
    }
    if (this.#connections.size + this.#admitting >= this.#maxConnections) {
      return this.#refuse(socket, 503, ErrorCode.LoadShed, `Service Unavailable: the server is at its limit of ${this.#maxConnections} connections; try again later`, { 'retry-after': '1' });
    }
    this.#admitting++;
    let admission;
    try {
      admission = await this.#guard.admit(request);
    } finally {
      this.#admitting--;
    }
    if (!admission.ok) {
      if (admission.cause !== undefined) this.#report(new Error(`${LABEL}: authenticate() threw; the upgrade was refused with 401`, { cause: admission.cause }));
      return this.#refuse(socket, admission.status, admission.code, admission.message, admission.headers);
    }
    if (socket.destroyed || this.#closing !== undefined) {
      socket.destroy();
      return;
    }
    this.#wss.handleUpgrade(request, socket, head, (ws) => this.#accept(ws, request, socket as Socket, admission.authInfo));
  }

  #accept(ws: WebSocket, request: IncomingMessage, raw: Socket, authInfo: unknown): void {
    const fanout = new EventFanout(this.events);
    const transport = new WebSocketServerTransport(ws, raw, request, authInfo, this.#channel, fanout, this.#common.deflate?.minBytes);
    this.#connections.add(transport);
    transport[ON_CLOSED] = () => this.#connections.delete(transport);
    fanout.emit('connection', { state: 'open', transport: 'websocket' });
    Promise.resolve()
      .then(() => this.#onconnection(transport, request))
      .catch((error: unknown) => {
        this.#report(new Error(`${LABEL}: onconnection failed; closing the connection with 1011: ${(error as Error)?.message ?? String(error)}`, { cause: error }));
        void transport.close(CloseCode.InternalError, 'the server could not set up the session');
      });
  }

  #refuse(socket: Duplex, status: number, code: number, message: string, headers: Record<string, string> = {}): void {
    this.events.emit('connection', { state: 'rejected', transport: 'websocket', code: status, reason: message });
    reject(socket, status, code, message, headers);
  }

  #report(error: unknown): void {
    reportTo(this, error);
  }

  /** For tests and diagnostics: the options this server was built with. */
  get options(): Readonly<WebSocketServerOptions> {
    return this.#options;
  }
}

/** Creates a server and starts listening (own server) — the one-call form. */
export async function listenWebSocket(options: WebSocketServerOptions): Promise<McpWebSocketServer> {
  return new McpWebSocketServer(options).listen();
}

const ON_CLOSED = Symbol('onClosed');

/** The server side of one WebSocket connection: a Transport for `McpServer.connect()`. */
export class WebSocketServerTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage, extra?: MessageExtraInfo) => void;
  /** A random id per connection (SDK servers key per-session state such as log levels by it). */
  sessionId: string | undefined = randomUUID();
  /** The upgrade request (headers, URL, remote address). */
  readonly request: IncomingMessage;
  /** What `authenticate()` resolved to; passed as `authInfo` with every message. */
  readonly authInfo: unknown;
  readonly events: EventBus;
  readonly [WIRE_CONTROL]: WireControl;
  [ON_CLOSED]: (() => void) | undefined;

  readonly #channel: Channel;
  readonly #fanout: EventFanout;
  readonly #extra: MessageExtraInfo;
  readonly #deflateThreshold: number | undefined;
  #started = false;
  #closed = false;
  readonly #whenClosed = Promise.withResolvers<void>();

  constructor(
    ws: WebSocket,
    raw: Socket,
    request: IncomingMessage,
    authInfo: unknown,
    settings: ChannelSettings,
    fanout: EventFanout,
    deflateThreshold: number | undefined,
  ) {
    this.request = request;
    this.authInfo = authInfo;
    this.#fanout = fanout;
    this.events = fanout.primary;
    this.#deflateThreshold = deflateThreshold;
    const headers = request.headers;
    this.#extra = {
      ...(authInfo === undefined ? {} : { authInfo }),
      requestInfo: { headers, url: new URL(request.url ?? '/', `http://${headers.host ?? 'localhost'}`) },
    };
    // Nothing is read until start(): messages that arrive before the application connects wait in the socket.
    ws.pause();
    this.#channel = new Channel(ws, raw, settings, fanout, {
      messages: (messages) => {
        for (const message of messages) this.#deliver(message);
      },
      error: (error) => this.#report(error),
      close: (code, reason) => {
        this.#closed = true;
        fanout.emit('connection', { state: 'closed', transport: 'websocket', code, reason });
        this[ON_CLOSED]?.();
        this.#whenClosed.resolve();
        try {
          this.onclose?.();
        } catch (error) {
          this.#report(error);
        }
      },
    });
    this.#channel.setCompressionThreshold(this.#channel.deflateNegotiated ? deflateThreshold : undefined);
    this[WIRE_CONTROL] = {
      kind: 'websocket',
      acceptsBatches: true,
      compress: (compression: CompressionSettings) => {
        const threshold = compression.encodings.includes('deflate') && this.#deflateThreshold !== undefined ? compression.minBytes : undefined;
        this.#channel.setCompressionThreshold(this.#channel.deflateNegotiated ? threshold : undefined);
      },
      observe: (bus) => {
        const known = this.#fanout.includes(bus);
        const stop = this.#fanout.add(bus);
        // The connection opened before anyone could wrap this transport: a new observer
        // learns that it is open, so it can count the close it will see later.
        if (!known && !this.#closed) bus.emit('connection', { state: 'open', transport: 'websocket' });
        return stop;
      },
    };
  }

  /** Bytes waiting in the socket's send buffer. */
  get bufferedAmount(): number {
    return this.#channel.socket.bufferedAmount;
  }

  async start(): Promise<void> {
    if (this.#started) throw new Error(`${LABEL}: transport already started; note that McpServer.connect() calls start() itself`);
    this.#started = true;
    if (this.#closed) throw new ConnectionClosedError(`${LABEL}: the client disconnected before the session started`, { neverSent: true, layer: 'websocket' });
    this.#channel.socket.resume();
  }

  async send(message: JSONRPCMessage | JSONRPCMessage[], _options?: TransportSendOptions): Promise<void> {
    if (this.#closed) {
      throw new ConnectionClosedError(`${LABEL}: cannot send: the client disconnected`, { neverSent: true, layer: 'websocket' });
    }
    await this.#channel.write(encode(message));
  }

  /** Closes the connection (1000 unless told otherwise) and resolves when it is closed. */
  async close(code: number = CloseCode.Normal, reason = 'server closed the session'): Promise<void> {
    if (!this.#closed) {
      await this.#channel.closeAndWait(code, reason, this.#whenClosed.promise);
    }
  }

  #deliver(message: JSONRPCMessage): void {
    deliverTo(this, message, this.#extra);
  }

  #report(error: unknown): void {
    reportTo(this, error);
  }
}

/** Writes a refusal on a socket that never became a WebSocket, then drops it. */
function reject(socket: Duplex, status: number, code: number, message: string, headers: Record<string, string> = {}): void {
  if (socket.destroyed) return;
  const body = errorBody(code, message);
  const lines = [
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}`,
    'Connection: close',
    'Content-Type: application/json',
    `Content-Length: ${Buffer.byteLength(body)}`,
    ...Object.entries(headers)
      .filter(([name, value]) => /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name) && !/[\r\n]/.test(value))
      .map(([name, value]) => `${name}: ${value}`),
  ];
  socket.end(`${lines.join('\r\n')}\r\n\r\n${body}`);
  const timer = setTimeout(() => socket.destroy(), 1000);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
}
