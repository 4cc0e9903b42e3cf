/**
 * The upstream: where the gateway's sessions go. One `create()` per downstream session:
 *
 *   stdio   a new child process per session (the SDK's StdioClientTransport, watched so
 *           that an exit says why: child.ts), restarted when it exits under an open
 *           session unless `restart` is off (supervised-child.ts)
 *   http    a new Streamable HTTP session per session, over one pooled undici Agent
 *           (createFetch) that every session shares
 *   ws      a new WebSocket connection per session (WebSocketClientTransport)
 *   broker  a new broker session per session with a service's workers
 *           (NatsClientTransport, RedisClientTransport), over one broker connection
 *           every session shares (opened by open(), closed by close())
 *
 * An `oauth` layer in the upstream stack is wired in here: its fetch authorizes every
 * HTTP request, its WebSocket options authorize every handshake.
 */
import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, isAbsolute, join, resolve } from 'node:path';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { BROKER_URL_SCHEMES, type UpstreamConfig } from './config/gateway.ts';
import { type BrokerAddress, parseBrokerUrl } from './config/worker.ts';
import type { Transport } from '../core/transport.ts';
import type { BrokerClientOptions } from '../transports/broker/options.ts';
import { NatsClientTransport } from '../transports/nats/client.ts';
import { openConnection as openNats, resolveCommon as resolveNats } from '../transports/nats/connection.ts';
import type { NatsConnectionLike, NatsConnectOptions } from '../transports/nats/options.ts';
import { RedisClientTransport } from '../transports/redis/client.ts';
import { type Conn, openConnection as openRedis, openDuplicate, quit, resolveCommon as resolveRedis } from '../transports/redis/connection.ts';
import type { RedisConnectOptions } from '../transports/redis/options.ts';
import { createFetch, type McpFetch } from '../transports/http/fetch.ts';
import { WebSocketClientTransport, type WebSocketClientTransportOptions } from '../transports/ws/client.ts';
import { redactUrl } from '../transports/redact-url.ts';
import type { OAuthLayer } from '../../middleware/oauth/oauth.ts';
import { WatchedStdioTransport } from './child.ts';
import { restartPolicy, SupervisedStdioTransport } from './supervised-child.ts';
import type { GatewayLogger } from './logger.ts';

/** `federation`: several upstreams behind one endpoint (federation/federation.ts). */
export type UpstreamKind = 'stdio' | 'http' | 'websocket' | 'broker' | 'federation';

/** What the gateway knows of a session when it makes its upstream transport. */
export interface SessionInit {
  /** The downstream session's id (HTTP `Mcp-Session-Id`): a broker session is opened under the same id. */
  readonly sessionId?: string | undefined;
  /** A broker upstream: join this session, which another gateway replica opened, instead of opening one. */
  readonly join?: string | undefined;
}

export interface Upstream {
  readonly kind: UpstreamKind;
  /** For logs and the banner: the command line, or the URL without credentials or query. */
  readonly description: string;
  /** A new, unstarted transport for one session. */
  create(session: string, init?: SessionInit): Transport;
  /** Opens what sessions share before the first one starts (the broker connection); throws when it cannot. */
  open?(): Promise<void>;
  /** Releases what sessions share (the HTTP connection pool, the broker connection). */
  close(): Promise<void>;
}

export interface UpstreamOptions {
  readonly baseDir: string;
  readonly oauth: OAuthLayer | undefined;
  readonly logger: GatewayLogger;
  /** Sessions the gateway may hold at once: sizes the HTTP connection pool by default. */
  readonly maxSessions: number;
  /** Whether a stdio child is restarted when `upstream.restart` does not say: the gateway's default (true), not the worker's. */
  readonly restartByDefault?: boolean;
}

/**
 * Connections per origin for an HTTP upstream, unless the config says. Over HTTP/1.1 every
 * session's standalone SSE stream (GET) holds a connection for the session's life, and
 * every request in flight holds one until its response ends: two per session, and some to
 * spare, keeps a full gateway from starving its own requests.
 */
export function defaultConnections(maxSessions: number): number {
  return Math.max(64, 2 * maxSessions + 16);
}

export function createUpstream(config: UpstreamConfig, options: UpstreamOptions): Upstream {
  if (config.command !== undefined) return stdioUpstream(config, config.command, options);
  const url = new URL(config.url as string);
  if (BROKER_URL_SCHEMES.includes(url.protocol)) {
    const parsed = parseBrokerUrl(config.url as string);
    if (!parsed.ok) throw new Error(`upstream.url: ${parsed.problem}`);
    return brokerUpstream(config, parsed.address);
  }
  return url.protocol === 'ws:' || url.protocol === 'wss:' ? webSocketUpstream(config, url, options) : httpUpstream(config, url, options);
}

function stdioUpstream(config: UpstreamConfig, command: string, { baseDir, logger, restartByDefault = true }: UpstreamOptions): Upstream {
  const cwd = config.cwd === undefined ? undefined : resolve(baseDir, config.cwd);
  const args = config.args ?? [];
  const stderr = config.stderr ?? 'inherit';
  const params = { command, args, ...(config.env === undefined ? {} : { env: config.env }), ...(cwd === undefined ? {} : { cwd }) };
  const restart = restartPolicy(config.restart, restartByDefault);
  const idempotency = { idempotentTools: config.idempotentTools, nonIdempotentTools: config.nonIdempotentTools };
  return {
    kind: 'stdio',
    description: [command, ...args].map(quote).join(' '),
    create(session) {
      const onStderrLine = (line: string) => logger.info(line, { event: 'upstream-stderr', session });
      if (restart === undefined) return new WatchedStdioTransport(params, stderr, onStderrLine);
      return new SupervisedStdioTransport({ params, stderr, onStderrLine, restart, idempotency, logger, session });
    },
    close: async () => {},
  };
}

function httpUpstream(config: UpstreamConfig, url: URL, { oauth, logger, maxSessions }: UpstreamOptions): Upstream {
  let pool: McpFetch | undefined;
  const connections = config.http?.connections ?? defaultConnections(maxSessions);
  if (connections <= maxSessions && config.http?.allowH2 !== true) {
    logger.warn(`upstream.http.connections (${connections}) is not above downstream.maxSessions (${maxSessions}): each HTTP/1.1 session holds a connection for its event stream, so requests may wait for a free one`, { event: 'config-warning' });
  }
  const fetchFor = () => {
    pool ??= createFetch({ ...config.http, connections });
    return oauth === undefined ? pool : oauth.fetch(pool);
  };
  const headers = config.headers;
  return {
    kind: 'http',
    description: redactUrl(url),
    create() {
      return new StreamableHTTPClientTransport(url, {
        fetch: fetchFor(),
        ...(headers === undefined ? {} : { requestInit: { headers } }),
      });
    },
    close: async () => {
      await pool?.close();
    },
  };
}

function webSocketUpstream(config: UpstreamConfig, url: URL, { oauth }: UpstreamOptions): Upstream {
  const fixed = config.headers ?? {};
  return {
    kind: 'websocket',
    description: redactUrl(url),
    create() {
      const options: WebSocketClientTransportOptions = { ...(config.websocket as WebSocketClientTransportOptions | undefined) };
      if (oauth !== undefined) {
        const auth = oauth.webSocketOptions();
        options.headers = async () => ({ ...fixed, ...(await auth.headers()) });
        options.onunauthorized = auth.onunauthorized;
      } else if (config.headers !== undefined) {
        options.headers = fixed;
      }
      return new WebSocketClientTransport(url, options);
    },
    close: async () => {},
  };
}

/**
 * A service's workers on a broker: `nats://HOST:PORT/SERVICE` or `redis(s)://HOST:PORT/SERVICE`
 * (the path is the service; config/gateway.ts checks it). Every session's client transport
 * uses the one connection open() makes — over Redis, one command connection and one
 * subscriber connection, on which each session subscribes its own channel — so a gateway
 * holds two or three connections to the broker whatever its number of sessions. Before
 * open() (`mcp-layers check`), create() makes transports that would connect on their own:
 * their options are checked all the same.
 */
function brokerUpstream(config: UpstreamConfig, address: BrokerAddress): Upstream {
  const nats = address.broker === 'nats';
  const { service, servers } = address;
  const broker = config.broker ?? {};
  const client: BrokerClientOptions & { service: string; prefix?: string } = {
    service,
    ...(broker.prefix === undefined ? {} : { prefix: broker.prefix }),
    ...(broker.heartbeat === undefined ? {} : { heartbeat: broker.heartbeat }),
    ...(broker.recover === undefined ? {} : { recover: broker.recover }),
    ...(broker.publishTimeoutMs === undefined ? {} : { publishTimeoutMs: broker.publishTimeoutMs }),
    ...(config.idempotentTools === undefined ? {} : { idempotentTools: config.idempotentTools }),
    ...(config.nonIdempotentTools === undefined ? {} : { nonIdempotentTools: config.nonIdempotentTools }),
  };
  // The URL's credentials and TLS (NATS), then the file's connectOptions: what is written out wins.
  const connectOptions = { ...address.connectOptions, ...broker.connectOptions };
  const label = 'upstream.broker';
  let shared: { close(): Promise<void> } | undefined;
  let natsConnection: NatsConnectionLike | undefined;
  let redis: { connection: Conn; subscriber: Conn } | undefined;
  return {
    kind: 'broker',
    description: address.description,
    create(_session, init = {}) {
      const sessionId = init.join !== undefined ? { join: init.join } : init.sessionId === undefined ? {} : { sessionId: init.sessionId };
      if (nats) {
        return new NatsClientTransport({
          ...client,
          ...sessionId,
          ...(natsConnection === undefined ? { servers, connectOptions: connectOptions as NatsConnectOptions } : { connection: natsConnection }),
        });
      }
      return new RedisClientTransport({
        ...client,
        ...sessionId,
        ...(redis === undefined ? { servers, connectOptions: connectOptions as RedisConnectOptions } : { connection: redis.connection, subscriber: redis.subscriber }),
      });
    },
    async open() {
      if (shared !== undefined) return;
      if (nats) {
        const common = resolveNats(label, { service, servers, connectOptions: connectOptions as NatsConnectOptions });
        const { nc } = await openNats(common, 'mcp-layers gateway', `mcp-layers gateway ${service}`);
        natsConnection = nc;
        shared = { close: () => nc.close().catch(() => {}) };
        return;
      }
      const common = resolveRedis(label, { service, servers, connectOptions: connectOptions as RedisConnectOptions });
      const { conn } = await openRedis(common, 'mcp-layers gateway', `mcp-layers-gateway-${service}`);
      let subscriber: Conn;
      try {
        subscriber = await openDuplicate(common, conn, true, 'mcp-layers gateway', `mcp-layers-gateway-${service}-pubsub`);
      } catch (error) {
        conn.destroy();
        throw error;
      }
      // Every session watches the two connections: as many listeners as sessions is expected, not a leak.
      for (const c of [conn, subscriber]) (c as unknown as { setMaxListeners(n: number): void }).setMaxListeners(0);
      redis = { connection: conn, subscriber };
      shared = { close: async () => void (await Promise.all([quit(subscriber), quit(conn)])) };
    },
    async close() {
      const opened = shared;
      shared = undefined;
      natsConnection = undefined;
      redis = undefined;
      await opened?.close();
    },
  };
}

/**
 * Where `command` would be found when a session starts it, or why it would not be: a
 * typo in the command must stop the gateway at startup, not fail every session later.
 */
export function findCommand(command: string, cwd: string | undefined, env: NodeJS.ProcessEnv = process.env): { ok: true; path: string } | { ok: false; reason: string } {
  const executable = (path: string) => {
    try {
      if (!statSync(path).isFile()) return false;
      if (process.platform !== 'win32') accessSync(path, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  };
  if (command.includes('/') || (process.platform === 'win32' && command.includes('\\'))) {
    const path = isAbsolute(command) ? command : resolve(cwd ?? process.cwd(), command);
    return executable(path) ? { ok: true, path } : { ok: false, reason: `${path} does not exist or is not executable` };
  }
  const extensions = process.platform === 'win32' ? (env['PATHEXT'] ?? '.EXE;.CMD;.BAT').split(';') : [''];
  for (const dir of (env['PATH'] ?? '').split(delimiter)) {
    if (dir === '') continue;
    for (const extension of extensions) {
      const path = join(dir, command + extension);
      if (executable(path)) return { ok: true, path };
    }
  }
  return { ok: false, reason: `"${command}" was not found on PATH` };
}

function quote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}
