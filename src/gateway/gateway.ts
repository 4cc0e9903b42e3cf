/**
 * The gateway: one port (127.0.0.1 unless told otherwise) serving MCP over Streamable
 * HTTP and WebSocket on the same path, plus /metrics, /healthz and /readyz; one
 * ProxySession per downstream session, each with its own upstream session.
 *
 *   client ──HTTP/WS──► downstream transport ─ downstream stack ─┐
 *                                                                ProxySession
 *   server ◄─stdio/HTTP/WS── upstream transport ─ upstream stack ┘
 *
 * The 2026-07-28 era over HTTP has no session: each request is an exchange of its own, a
 * ProxySession that lives as long as that request, with a sessionless upstream on the
 * broker — so any replica serves any request. Other upstreams keep the 2025 eras over
 * HTTP (docs/gateway.md, "The 2026-07-28 era over HTTP").
 *
 * Startup checks everything a file can get wrong before anything starts — every layer's
 * options, the stdio command on PATH, layers a transport cannot carry, the port — and
 * reports it as a ConfigError. Shutdown stops accepting, lets what is in flight finish
 * up to a deadline, answers the rest with an error, then closes every session (and
 * with it every child process).
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve as resolvePath } from 'node:path';
import { type Counter, type Gauge, type Registry, Registry as PromRegistry } from 'prom-client';
import winston from 'winston';
import { BROKER_URL_SCHEMES, type DownstreamConfig, type GatewayConfig } from './config/gateway.ts';
import type { LayerEntry } from './config/layers.ts';
import { formatPath, type PathSegment } from './config/issues.ts';
import { ConfigError, type LoadedConfig, loadConfigFile } from './config/load.ts';
import { SESSION_ERA_VERSIONS, UNSUPPORTED_PROTOCOL_VERSION } from './eras.ts';
import { collectProcessMetrics, counterOf, gaugeOf } from './families.ts';
import { configChanges, sameSection } from './reload/changes.ts';
import { type AppliedConfig, ConfigReloader, RELOAD_METRIC_FAMILIES, type ReloadOutcome, type ReloadTrigger } from './reload/reloader.ts';
import { listenOn } from './listen.ts';
import { asError, ErrorCode, toErrorObject } from '../core/errors.ts';
import { tryRequirePeer } from '../layer-kit/peer-deps.ts';
import type * as OtelApi from '@opentelemetry/api';
import { EventBus } from '../core/events.ts';
import { AuthenticationError, isLoopbackHost } from '../transports/guard.ts';
import { isRequest, type JSONRPCMessage } from '../core/jsonrpc.ts';
import { McpHttpServer } from '../transports/http/server.ts';
import type { Adopted, PerRequestAdmitted, Refusal } from '../transports/http/server.ts';
import { headersNameStatelessEra } from '../transports/http/era.ts';
import { PerRequestHttpTransport } from '../transports/http/per-request.ts';
import { StreamableHttpSessionTransport } from '../transports/http/session.ts';
import { answerClientError, pathOf } from '../transports/listen.ts';
import { McpWebSocketServer } from '../transports/ws/server.ts';
import { STATELESS_PROTOCOL_VERSION, type Transport } from '../core/transport.ts';
import { type LayeredTransport, type Wrapped, wrap } from '../core/wrap.ts';
import { metricsHandler } from '../../middleware/observability/metrics.ts';
import { LIST_CACHE_FAMILY } from './federation/cache.ts';
import { createFederation, type Federation, upstreamSections } from './federation/federation.ts';
import { describeClash } from './federation/names.ts';
import type { GatewayLogger } from './logger.ts';
import { ClientPolicies } from './clients/policies.ts';
import { type CloseReason, ProxySession, type ProxySessionOptions } from './proxy.ts';
import { type BuiltStack, buildStack, StackProblemsError } from './stack.ts';
import { createUpstream, findCommand, type Upstream } from './upstream.ts';
import { WRAP_SETTING_KEYS, wrapOptionsOf } from './wrap-options.ts';

/** Defaults of everything the config may leave out (docs/gateway.md lists them). */
const GATEWAY_DEFAULTS = {
  host: '127.0.0.1',
  port: 8080,
  path: '/mcp',
  transports: ['http', 'websocket'] as const,
  maxSessions: 64,
  idleTimeoutMs: 600_000,
  detachedTimeoutMs: 60_000,
  handshakeTimeoutMs: 10_000,
  evictIdleSessions: true,
  heldMessageTimeoutMs: 30_000,
  jsonResponses: false,
  drainTimeoutMs: 10_000,
  metricsPath: '/metrics',
  upstreamLayers: [{ tracing: {} }, { metrics: {} }, { logging: {} }] as LayerEntry[],
  downstreamLayers: [{ tracing: {} }, { metrics: {} }] as LayerEntry[],
};

/**
 * The stack a side gets when the config names none. `tracing` is in it when an
 * OpenTelemetry tracer provider is registered as the stacks are built (the CLI registers
 * its SDK first when `observability.traces` is on; an embedding application, its own).
 * Without one every span is a no-op, no context can be injected, and `_meta` travels
 * through unchanged either way: the layers would only cost time (~4 % of the calls per
 * second at 1 in flight over HTTP; docs/benchmarks.md). A config that names `tracing` gets it.
 */
export function defaultLayers(side: 'upstream' | 'downstream'): LayerEntry[] {
  const layers = side === 'upstream' ? GATEWAY_DEFAULTS.upstreamLayers : GATEWAY_DEFAULTS.downstreamLayers;
  return tracerRegistered() ? layers : layers.filter((entry) => !('tracing' in entry));
}

/** True when @opentelemetry/api is installed and a tracer provider is registered with it. */
function tracerRegistered(): boolean {
  const api = tryRequirePeer<typeof OtelApi>('@opentelemetry/api');
  if (api === undefined) return false;
  // The global provider is a proxy that has a delegate once an SDK registered one.
  const provider = api.trace.getTracerProvider() as { getDelegateTracer?: (name: string) => unknown };
  return typeof provider.getDelegateTracer !== 'function' || provider.getDelegateTracer('mcp-layers') !== undefined;
}

/** The gateway's own metric families (beside the metrics layers'); docs/gateway.md. */
export const GATEWAY_METRIC_FAMILIES = [
  { name: 'mcp_layers_gateway_sessions', type: 'gauge', labels: ['listener'], help: 'Downstream sessions open, by listener (http, websocket).' },
  { name: 'mcp_layers_gateway_sessions_refused_total', type: 'counter', labels: ['listener', 'reason'], help: 'New sessions refused: max-sessions (the limit was reached and no session could be reclaimed) or shutting-down.' },
  {
    name: 'mcp_layers_gateway_session_closes_total',
    type: 'counter',
    labels: ['reason'],
    help: 'Sessions closed, by why: downstream-closed, upstream-closed, upstream-failed, initialize-failed, idle, detached, handshake-timeout, evicted, shutdown.',
  },
  {
    name: 'mcp_layers_gateway_client_requests_total',
    type: 'counter',
    labels: ['client', 'outcome'],
    help: "Requests from each client (downstream.clients, or unknown) by what its policy decided: admitted, rate-limited, concurrency-limited, denied.",
  },
  { name: 'mcp_layers_gateway_client_in_flight', type: 'gauge', labels: ['client'], help: "Requests in flight from each client, across its sessions." },
  LIST_CACHE_FAMILY,
  ...RELOAD_METRIC_FAMILIES,
] as const;

export interface GatewayRuntime {
  readonly logger: GatewayLogger;
  /** Where metrics layers and the gateway register; served at the metrics path. Default: a new Registry. */
  readonly registry?: Registry;
  /** Reads the config again for reload() (SIGHUP, --watch). Default: the config the gateway started with, read again from its file. */
  readonly load?: () => LoadedConfig;
}

/**
 * What a session runs on: the stacks and the upstream of the config that was current when
 * it opened. A reload makes a new generation for the sessions opened after it; the ones
 * open keep theirs to the end (docs/gateway.md, "Live reload").
 */
interface Generation {
  readonly config: GatewayConfig;
  readonly settings: GatewaySettings;
  readonly stacks: { readonly upstream: BuiltStack; readonly downstream: BuiltStack };
  readonly upstream: Upstream;
}

export interface GatewayUrls {
  readonly http: string | undefined;
  readonly websocket: string | undefined;
  readonly metrics: string;
  readonly health: string;
  readonly ready: string;
}

/** Everything the config decides, with defaults filled in. */
export interface GatewaySettings {
  readonly host: string;
  readonly port: number;
  readonly path: string;
  readonly transports: ReadonlyArray<'http' | 'websocket'>;
  readonly maxSessions: number;
  readonly idleTimeoutMs: number | undefined;
  readonly detachedTimeoutMs: number | undefined;
  readonly handshakeTimeoutMs: number | undefined;
  readonly evictIdleSessions: boolean;
  readonly heldMessageTimeoutMs: number;
  /** HTTP: a lone request's whole answer as application/json (downstream.jsonResponses). */
  readonly jsonResponses: boolean;
  readonly drainTimeoutMs: number;
  readonly metricsPath: string;
  readonly processMetrics: boolean;
  /** Whether /metrics and /readyz ask for a bearer token (docs/gateway.md "Endpoints"). */
  readonly metricsAuth: 'bearer' | 'none';
}

export function settingsOf(config: GatewayConfig): GatewaySettings {
  const d: DownstreamConfig = config.downstream ?? {};
  const idle = d.idleTimeoutMs ?? GATEWAY_DEFAULTS.idleTimeoutMs;
  const orNever = (value: number | false) => (value === false ? undefined : value);
  const host = d.host ?? GATEWAY_DEFAULTS.host;
  return {
    host,
    port: d.port ?? GATEWAY_DEFAULTS.port,
    path: d.path ?? GATEWAY_DEFAULTS.path,
    transports: [...new Set(d.transports ?? GATEWAY_DEFAULTS.transports)],
    maxSessions: d.maxSessions ?? GATEWAY_DEFAULTS.maxSessions,
    idleTimeoutMs: orNever(idle),
    detachedTimeoutMs: orNever(d.detachedTimeoutMs ?? GATEWAY_DEFAULTS.detachedTimeoutMs),
    handshakeTimeoutMs: orNever(d.handshakeTimeoutMs ?? GATEWAY_DEFAULTS.handshakeTimeoutMs),
    evictIdleSessions: d.evictIdleSessions ?? GATEWAY_DEFAULTS.evictIdleSessions,
    heldMessageTimeoutMs: d.heldMessageTimeoutMs ?? GATEWAY_DEFAULTS.heldMessageTimeoutMs,
    jsonResponses: d.jsonResponses ?? GATEWAY_DEFAULTS.jsonResponses,
    drainTimeoutMs: config.shutdown?.drainTimeoutMs ?? GATEWAY_DEFAULTS.drainTimeoutMs,
    metricsPath: config.observability?.metrics?.path ?? GATEWAY_DEFAULTS.metricsPath,
    processMetrics: config.observability?.metrics?.processMetrics ?? true,
    // Tool names and traffic are visible in /metrics: off loopback, the tokens that guard MCP guard it too.
    metricsAuth: config.observability?.metrics?.auth ?? ((d.bearerTokens !== undefined || d.clients !== undefined) && !isLoopbackHost(host) ? 'bearer' : 'none'),
  };
}


const silent = winston.createLogger({ silent: true });

/**
 * Everything `mcp-layers check` verifies without starting anything: every layer built
 * (the factories' own checks), the stdio command found, and layers the transports
 * cannot carry refused. Returns the problems, one line each.
 */
export function checkGateway(loaded: LoadedConfig): string[] {
  const { config, baseDir } = loaded;
  const problems: string[] = [];
  const settings = settingsOf(config);
  if (settings.metricsAuth === 'bearer' && config.downstream?.bearerTokens === undefined && config.downstream?.clients === undefined) {
    problems.push('observability.metrics.auth: "bearer" needs downstream.bearerTokens or downstream.clients (the credentials /metrics and /readyz accept)');
  }
  // Each upstream section (`upstream`, or every `upstreams.<name>`) is checked alike, its problems named under its path.
  const sections = upstreamSections(config);
  const downstreamEntries = config.downstream?.layers ?? defaultLayers('downstream');
  const stackProblems = (entries: readonly LayerEntry[], side: 'upstream' | 'downstream', section?: readonly PathSegment[]) => {
    try {
      buildStack(entries, { side, ...(section === undefined ? {} : { section }), logger: silent, registry: new PromRegistry(), baseDir });
    } catch (error) {
      if (error instanceof StackProblemsError) problems.push(...error.problems);
      else throw error;
    }
  };
  for (const { path, config: upstream } of sections) stackProblems(upstream.layers ?? defaultLayers('upstream'), 'upstream', path);
  stackProblems(downstreamEntries, 'downstream');
  for (const { path, config: upstream } of sections) {
    if (upstream.command === undefined) continue;
    const cwd = upstream.cwd === undefined ? undefined : resolvePath(baseDir, upstream.cwd);
    const found = findCommand(upstream.command, cwd, { ...process.env, ...upstream.env });
    if (!found.ok) problems.push(`${formatPath([...path, 'command'])}: ${found.reason}`);
  }
  if (problems.length > 0) return problems;
  // Layers that refuse a transport (batching over stdio, compression without createFetch) say so when attached.
  const tryWrap = (side: 'upstream' | 'downstream', at: string, transport: Transport, entries: readonly LayerEntry[], what: string) => {
    let stack: BuiltStack;
    try {
      stack = buildStack(withoutOAuth(entries), { side, logger: silent, registry: new PromRegistry(), baseDir });
    } catch {
      return;
    }
    try {
      void wrap(transport, stack.layers, { name: side }).close().catch(() => {});
    } catch (error) {
      problems.push(`${at}.layers: ${(error as Error).message}${what === '' ? '' : ` (${what})`}`);
    }
  };
  for (const { path, config: section } of sections) {
    const upstream = createUpstream(section, { baseDir, oauth: undefined, logger: silent, maxSessions: settings.maxSessions });
    tryWrap('upstream', formatPath(path), upstream.create('check'), section.layers ?? defaultLayers('upstream'), '');
    void upstream.close();
  }
  if (settings.transports.includes('http')) {
    tryWrap('downstream', 'downstream', new StreamableHttpSessionTransport({ sessionIdGenerator: randomUUID }), downstreamEntries, 'served over Streamable HTTP');
  }
  return problems;
}

/**
 * Several upstreams: their stacks built (problems named under `upstreams.<name>`), and
 * with `federation.prefix: never` one probe session that must find no clash.
 */
async function startFederation(loaded: LoadedConfig, logger: GatewayLogger, registry: Registry, events: EventBus, maxSessions: number, previous: Federation | undefined): Promise<Federation> {
  const federation = createFederation({
    config: loaded.config,
    baseDir: loaded.baseDir,
    logger,
    events,
    registry,
    maxSessions,
    defaultLayers: defaultLayers('upstream'),
    build: (entries, section) => {
      try {
        return buildStack(entries, { side: 'upstream', section, logger, registry, baseDir: loaded.baseDir });
      } catch (error) {
        throw error instanceof StackProblemsError ? new ConfigError(loaded.source, error.problems) : error;
      }
    },
  }, previous);
  if ((loaded.config.federation?.prefix ?? 'always') !== 'never') return federation;
  const clashes = await federation.probe();
  if (clashes.length === 0) return federation;
  await federation.close();
  throw new ConfigError(
    loaded.source,
    clashes.map((clash) => `federation.prefix: "never", but ${describeClash(clash)}; rename one, filter one out (upstreams.<name>.tools / prompts / resources), or use prefix always or on-clash`),
  );
}

function withoutOAuth(entries: readonly LayerEntry[]): LayerEntry[] {
  return entries.filter((entry) => !('oauth' in entry));
}

/** What the gateway tells whoever embeds it (`gateway.on('session-close', …)`). */
export interface GatewayEvents {
  'session-open': [{ id: string; listener: 'http' | 'websocket' }];
  'session-close': [{ id: string; sessionId: string | undefined; listener: 'http' | 'websocket'; reason: CloseReason }];
  /** A 2026-07-28 request over HTTP is over (answered, cancelled by its client, or failed), and so is everything it held. */
  'exchange-close': [{ id: string; reason: CloseReason }];
}

export class Gateway extends EventEmitter<GatewayEvents> {
  readonly registry: Registry;
  /** Every upstream transport publishes here (retries, breaker state, timeouts…); with several upstreams, every one of them. */
  readonly upstreamEvents: EventBus;
  /** Every downstream transport publishes here. */
  readonly downstreamEvents = new EventBus();
  readonly source: string;

  #current: Generation;
  /** Sessions (and 2026-07-28 exchanges) on each upstream: one a reload replaced closes when its last one does. */
  readonly #upstreamUsers = new Map<Upstream, number>();
  readonly #reloader: ConfigReloader;
  readonly #log: GatewayLogger;
  readonly #server: http.Server;
  readonly #http: McpHttpServer | undefined;
  readonly #ws: McpWebSocketServer | undefined;
  readonly #sessions = new Set<ProxySession>();
  /** 2026-07-28 requests over HTTP in flight, each its own ProxySession (not a session: nothing outlives the request). */
  readonly #exchanges = new Set<ProxySession>();
  /** Sessions by their Mcp-Session-Id (HTTP), filled as requests name them. */
  readonly #byMcpSessionId = new Map<string, ProxySession>();
  /** The response of each request that is creating (or adopting) an HTTP session (the factory sees only the request). */
  readonly #creating = new WeakMap<IncomingMessage, ServerResponse>();
  /** Sessions being adopted from the broker, by Mcp-Session-Id: concurrent requests for one share the adoption. */
  readonly #adopting = new Map<string, Promise<{ downstream: Wrapped<StreamableHttpSessionTransport>; session: ProxySession } | Adopted>>();
  /** `downstream.clients`: who sent each request, and what its policy lets through. */
  readonly #clients: ClientPolicies;
  readonly #metricsHandler: (req: IncomingMessage, res: ServerResponse) => void;
  readonly #metrics: ReturnType<typeof gatewayMetrics>;
  #draining = false;
  #shutdown: Promise<void> | undefined;
  #stopped = false;
  #nextLocalId = 1;

  private constructor(loaded: LoadedConfig, runtime: GatewayRuntime, stacks: Generation['stacks'], upstream: Upstream, upstreamEvents: EventBus) {
    super();
    this.upstreamEvents = upstreamEvents;
    this.source = loaded.source;
    this.#current = { config: loaded.config, settings: settingsOf(loaded.config), stacks, upstream };
    this.#log = runtime.logger;
    this.registry = runtime.registry ?? new PromRegistry();
    this.#reloader = new ConfigReloader({
      load: runtime.load ?? (() => loadConfigFile(this.source)),
      check: checkGateway,
      apply: (next) => this.#apply(next),
      logger: this.#log,
      registry: this.registry,
    });
    this.#metrics = gatewayMetrics(this.registry, this.settings.processMetrics);
    this.#metricsHandler = metricsHandler(this.registry as Parameters<typeof metricsHandler>[0], { path: this.settings.metricsPath });
    this.#server = http.createServer({ headersTimeout: 30_000, requestTimeout: 0, keepAliveTimeout: 5_000 });
    this.#server.on('request', (req, res) => this.#route(req, res));
    this.#server.on('clientError', answerClientError);
    const { path, transports, maxSessions } = this.settings;
    const downstream = loaded.config.downstream ?? {};
    this.#clients = new ClientPolicies(downstream, { requests: this.#metrics.clientRequests, inFlight: this.#metrics.clientInFlight });
    // Identity is resolved once per HTTP request and WebSocket upgrade; the sessions read it back from the request.
    // Always asked: a reload may add tokens or clients (with none configured, every request is `unknown` at once).
    const authenticate = (request: IncomingMessage) => ({ client: this.#clients.identify(request) });
    if (transports.includes('http')) {
      this.#http = new McpHttpServer({
        sessions: (req) => this.#openHttpSession(req),
        // Over a broker, any replica serves any session: one it does not hold is adopted.
        ...(upstream.kind === 'broker' ? { adopt: (req: IncomingMessage, sessionId: string) => this.#adoptHttpSession(req, sessionId) } : {}),
        perRequest: (req: IncomingMessage) => this.#openExchange(req),
        authenticate,
        admit: (req: IncomingMessage, body: unknown) => this.#admitRequest(req, body),
        path,
        maxSessions: listenerLimit(maxSessions),
        ...(downstream.allowedOrigins === undefined ? {} : { allowedOrigins: downstream.allowedOrigins }),
        ...(downstream.allowedHosts === undefined ? {} : { allowedHosts: downstream.allowedHosts }),
        ...(downstream.maxBodyBytes === undefined ? {} : { maxBodyBytes: downstream.maxBodyBytes }),
        events: this.downstreamEvents,
      });
      this.#http.onerror = (error) => this.#log.warn(`http: ${error.message}`, { event: 'http-error' });
    }
    if (transports.includes('websocket')) {
      this.#ws = new McpWebSocketServer({
        server: this.#server,
        path,
        maxConnections: listenerLimit(maxSessions),
        ...(downstream.allowedOrigins === undefined ? {} : { allowedOrigins: downstream.allowedOrigins }),
        ...(downstream.allowedHosts === undefined ? {} : { allowedHosts: downstream.allowedHosts }),
        // Admission runs before the upgrade: a refused client gets a plain 401, or 503 with Retry-After.
        authenticate: (request) => this.#admit('websocket', authenticate(request)),
        onconnection: (transport, request) => this.#openWebSocketSession(transport, this.#clients.clientOf(request)),
      });
      this.#ws.onerror = (error) => this.#log.warn(`websocket: ${error.message}`, { event: 'websocket-error' });
    }
  }

  /** Validates, builds and listens; throws ConfigError (nothing left running) when the config cannot work. */
  static async start(loaded: LoadedConfig, runtime: GatewayRuntime): Promise<Gateway> {
    const problems = checkGateway(loaded);
    if (problems.length > 0) throw new ConfigError(loaded.source, problems);
    const registry = runtime.registry ?? new PromRegistry();
    const upstreamEvents = new EventBus();
    const { stacks, upstream } = await buildGeneration(loaded, runtime.logger, registry, upstreamEvents, undefined);
    const gateway = new Gateway(loaded, { ...runtime, registry }, stacks, upstream, upstreamEvents);
    try {
      await gateway.#listen();
    } catch (error) {
      await upstream.close();
      throw error;
    }
    return gateway;
  }

  /** The settings of the running config (the last reload's). */
  get settings(): GatewaySettings {
    return this.#current.settings;
  }

  /** The stacks new sessions get. */
  get stacks(): Generation['stacks'] {
    return this.#current.stacks;
  }

  /** Where new sessions go. */
  get upstream(): Upstream {
    return this.#current.upstream;
  }

  /** The config generation running: 1 at start, +1 for every reload that changed something. */
  get generation(): number {
    return this.#reloader.generation;
  }

  /**
   * Reads the config again (runtime.load) — or takes `loaded` — checks it as
   * `mcp-layers check` does, and applies it without dropping a session. A config with a
   * problem changes nothing; the outcome says why. SIGHUP and `--watch` call this.
   */
  reload(trigger: ReloadTrigger = 'api', loaded?: LoadedConfig): Promise<ReloadOutcome> {
    return this.#reloader.reload(trigger, loaded === undefined ? undefined : () => loaded);
  }

  /**
   * Applies a checked config (docs/gateway.md, "Live reload"): sessions opened from now on
   * get its stacks and upstream, and the open ones keep theirs to their end; the tokens and
   * the limits apply to everything from the next request on. What only a restart changes is
   * named and left as it is.
   */
  async #apply(loaded: LoadedConfig): Promise<AppliedConfig> {
    const previous = this.#current;
    const { live, needsRestart } = configChanges(previous.config, loaded.config);
    // The HTTP listener serves adoption and 2026-07-28 requests only in front of a broker, and is built once.
    if (onBroker(previous.config) !== onBroker(loaded.config)) {
      throw new ConfigError(loaded.source, ['upstream.url: a broker upstream (nats://, redis://) cannot replace another kind, nor be replaced by one, without a restart']);
    }
    if (live.length === 0) return { changes: [], needsRestart };
    const { stacks, upstream } = await buildGeneration(loaded, this.#log, this.registry, this.upstreamEvents, previous);
    // What only a restart changes keeps its running value, so the settings describe what runs.
    const { host, port, path, transports, metricsPath, processMetrics, metricsAuth } = previous.settings;
    const settings = { ...settingsOf(loaded.config), host, port, path, transports, metricsPath, processMetrics, metricsAuth };
    this.#current = { config: loaded.config, settings, stacks, upstream };
    // Clients that stay keep their buckets and their requests in flight; a removed one is refused from its next request.
    this.#clients.apply(loaded.config.downstream ?? {});
    if (this.#http !== undefined) this.#http.maxSessions = listenerLimit(settings.maxSessions);
    if (this.#ws !== undefined) this.#ws.maxConnections = listenerLimit(settings.maxSessions);
    const level = loaded.config.observability?.logs?.level;
    if (level !== undefined) this.#log.level = level;
    // Several upstreams before and after: the open sessions get the new set (upstreams added, removed or changed) at once.
    if (upstream !== previous.upstream && previous.upstream.kind === 'federation' && upstream.kind === 'federation') {
      await (previous.upstream as Federation).supersede(upstream as Federation);
    }
    if (upstream !== previous.upstream) this.#retire(previous.upstream);
    return { changes: live, needsRestart };
  }

  /** Counts a session on `upstream` until it closes. */
  #use(upstream: Upstream): () => void {
    this.#upstreamUsers.set(upstream, (this.#upstreamUsers.get(upstream) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.#upstreamUsers.get(upstream) ?? 1) - 1;
      if (left > 0) return void this.#upstreamUsers.set(upstream, left);
      this.#upstreamUsers.delete(upstream);
      if (upstream !== this.#current.upstream) this.#retire(upstream);
    };
  }

  /** An upstream a reload replaced: closed once no session uses it (its pool, its broker connection). */
  #retire(upstream: Upstream): void {
    if (this.#upstreamUsers.has(upstream)) return;
    upstream.close().catch((error: unknown) => this.#log.warn(`closing the previous upstream: ${asError(error).message}`, { event: 'upstream-close-failed' }));
  }

  get address(): AddressInfo {
    return this.#server.address() as AddressInfo;
  }

  get urls(): GatewayUrls {
    const { address, port, family } = this.address;
    const host = family === 'IPv6' ? `[${address}]` : address;
    const base = `${host}:${port}`;
    const { path, transports } = this.settings;
    return {
      http: transports.includes('http') ? `http://${base}${path}` : undefined,
      websocket: transports.includes('websocket') ? `ws://${base}${path}` : undefined,
      metrics: `http://${base}${this.settings.metricsPath}`,
      health: `http://${base}/healthz`,
      ready: `http://${base}/readyz`,
    };
  }

  get sessions(): ReadonlySet<ProxySession> {
    return this.#sessions;
  }

  /** 2026-07-28 requests over HTTP in flight (each a ProxySession of its own). */
  get exchanges(): ReadonlySet<ProxySession> {
    return this.#exchanges;
  }

  get draining(): boolean {
    return this.#draining;
  }

  /** True once shutdown() has finished. */
  get stopped(): boolean {
    return this.#stopped;
  }

  /**
   * Graceful shutdown: refuse new sessions and requests, give what is in flight up to
   * `drainTimeoutMs` to finish, answer the rest with an error, close every session
   * (children exit), then the listener. Resolves when all of it is done.
   */
  shutdown(drainTimeoutMs = this.settings.drainTimeoutMs): Promise<void> {
    this.#shutdown ??= this.#stop(drainTimeoutMs);
    return this.#shutdown;
  }

  async #stop(drainTimeoutMs: number): Promise<void> {
    this.#draining = true;
    const inFlight = [...this.#sessions, ...this.#exchanges].reduce((n, s) => n + s.inFlight, 0);
    this.#log.info(`shutting down: ${this.#sessions.size} sessions, ${inFlight} requests in flight, up to ${drainTimeoutMs} ms to finish`, {
      event: 'shutdown',
      sessions: this.#sessions.size,
      in_flight: inFlight,
      drain_timeout_ms: drainTimeoutMs,
    });
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'deadline'>((resolve) => {
      timer = setTimeout(() => resolve('deadline'), drainTimeoutMs);
      timer.unref();
    });
    await Promise.all(
      [...this.#sessions, ...this.#exchanges].map(async (session) => {
        const outcome = await Promise.race([session.drain().then(() => 'drained' as const), deadline]);
        if (outcome === 'deadline' && session.inFlight > 0) {
          await session.abort(`the gateway shut down before the upstream server answered (drain timeout ${drainTimeoutMs} ms)`);
        } else {
          await session.close('shutdown');
        }
      }),
    );
    clearTimeout(timer);
    await Promise.allSettled([this.#http?.close(), this.#ws?.close()]);
    await new Promise<void>((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeIdleConnections();
      // Responses still being written get a moment; then every connection goes.
      const force = setTimeout(() => this.#server.closeAllConnections(), 1_000);
      force.unref();
    });
    // The current upstream, and any a reload replaced that a session still held.
    await Promise.allSettled([this.#current.upstream, ...this.#upstreamUsers.keys()].filter((u, i, all) => all.indexOf(u) === i).map((u) => u.close()));
    this.#stopped = true;
    this.#log.info('gateway stopped', { event: 'stopped' });
  }

  #listen(): Promise<void> {
    const { host, port } = this.settings;
    return listenOn(this.#server, { host, port, section: 'downstream', holder: 'another gateway?', source: this.source });
  }

  // --- HTTP routing --------------------------------------------------------------------

  #route(req: IncomingMessage, res: ServerResponse): void {
    req.on('error', () => {});
    res.on('error', () => {});
    const path = pathOf(req);
    if (path === this.settings.path) {
      if (this.#http === undefined) return json(res, 426, { error: `This endpoint speaks MCP over WebSocket only; connect to ws://…${this.settings.path}` }, { upgrade: 'websocket' });
      const sessionId = req.headers['mcp-session-id'];
      // A 2026-07-28 request opens no session: McpHttpServer gives it an exchange of its own (#openExchange).
      if (sessionId === undefined && req.method === 'POST' && !headersNameStatelessEra(req.headers)) {
        const refusal = this.#refusal(true);
        if (refusal !== undefined) {
          this.#metrics.refused.inc({ listener: 'http', reason: refusal.reason });
          return jsonRpcError(res, 503, ErrorCode.LoadShed, refusal.message, { 'retry-after': '5' });
        }
        this.#creating.set(req, res);
      } else if (typeof sessionId === 'string') {
        const known = this.#sessionNamed(sessionId);
        if (known !== undefined) known.attachResponse(res, req.method === 'GET');
        else if (this.upstream.kind === 'broker') this.#creating.set(req, res);
      }
      void this.#http.handle(req, res);
      return;
    }
    if (path === '/healthz') return json(res, 200, { status: 'ok' });
    if (path === '/readyz' || path === this.settings.metricsPath) {
      if (!this.#observerAdmitted(req, res)) return;
      if (path === this.settings.metricsPath) return this.#metricsHandler(req, res);
      const refusal = this.#refusal(false);
      const body = { status: refusal === undefined ? 'ready' : refusal.reason, sessions: this.#sessions.size, maxSessions: this.settings.maxSessions };
      return json(res, refusal === undefined ? 200 : 503, body);
    }
    json(res, 404, { error: `Not Found: the MCP endpoint is ${this.settings.path}` });
  }

  /** `observability.metrics.auth`: /metrics and /readyz ask for the same bearer tokens as MCP. */
  #observerAdmitted(req: IncomingMessage, res: ServerResponse): boolean {
    if (this.settings.metricsAuth === 'none') return true;
    try {
      this.#clients.identify(req, false);
      return true;
    } catch (error) {
      const refusal = error as AuthenticationError;
      json(res, refusal.status, { error: refusal.message }, { ...refusal.headers });
      return false;
    }
  }

  /**
   * Why a new session would be refused now, if it would. At the limit, `reclaim` closes
   * the least recently active session nobody is using (downstream.evictIdleSessions) to
   * make room, rather than turn the newcomer away.
   */
  #refusal(reclaim: boolean): { reason: 'shutting-down' | 'max-sessions'; message: string } | undefined {
    if (this.#draining) return { reason: 'shutting-down', message: 'Service Unavailable: the gateway is shutting down; connect to another instance' };
    let open = 0;
    let victim: ProxySession | undefined;
    for (const session of this.#sessions) {
      if (session.closed) continue;
      open++;
      if (session.evictable && (victim === undefined || session.lastActivity < victim.lastActivity)) victim = session;
    }
    if (open < this.settings.maxSessions) return undefined;
    if (this.settings.evictIdleSessions && victim !== undefined) {
      if (reclaim) void victim.close('evicted');
      return undefined;
    }
    return { reason: 'max-sessions', message: `Service Unavailable: the gateway holds its limit of ${this.settings.maxSessions} sessions (downstream.maxSessions), all in use; try again later` };
  }

  #sessionNamed(mcpSessionId: string): ProxySession | undefined {
    const known = this.#byMcpSessionId.get(mcpSessionId);
    if (known !== undefined) return known;
    for (const session of this.#sessions) {
      if (session.sessionId === mcpSessionId && !session.closed) {
        this.#byMcpSessionId.set(mcpSessionId, session);
        return session;
      }
    }
    return undefined;
  }

  #admit(listener: 'websocket', identity: object): object {
    const refusal = this.#refusal(true);
    if (refusal === undefined) return identity;
    this.#metrics.refused.inc({ listener, reason: refusal.reason });
    throw new AuthenticationError(refusal.message, { status: 503, headers: { 'retry-after': '5' } });
  }

  // --- sessions ------------------------------------------------------------------------

  async #openHttpSession(req: IncomingMessage): Promise<Wrapped<StreamableHttpSessionTransport>> {
    const generation = this.#current;
    const inner = new StreamableHttpSessionTransport({ sessionIdGenerator: randomUUID, jsonResponses: generation.settings.jsonResponses });
    const client = this.#clients.clientOf(req);
    const downstream = this.#wrapDownstream(generation, inner, client);
    const session = this.#open(generation, 'http', downstream, () => downstream.close(), client);
    const res = this.#creating.get(req);
    if (res !== undefined) session.attachResponse(res, false);
    await downstream.start();
    return downstream;
  }

  /**
   * A request names a session this replica does not hold, over a broker upstream: another
   * replica opened it (or held it and went away). Its upstream joins it on the broker —
   * which refuses when it keeps no handshake for it: the session is over, and 404 tells
   * the client to initialize again — and its downstream side starts initialized.
   */
  async #adoptHttpSession(req: IncomingMessage, sessionId: string): Promise<Adopted> {
    let adopting = this.#adopting.get(sessionId);
    if (adopting === undefined) {
      adopting = this.#adopt(sessionId, req).finally(() => this.#adopting.delete(sessionId));
      this.#adopting.set(sessionId, adopting);
    }
    const adopted = await adopting;
    if (adopted === undefined || !('session' in adopted)) return adopted;
    const res = this.#creating.get(req);
    if (res !== undefined) adopted.session.attachResponse(res, req.method === 'GET');
    return adopted.downstream;
  }

  async #adopt(sessionId: string, req: IncomingMessage): Promise<{ downstream: Wrapped<StreamableHttpSessionTransport>; session: ProxySession } | Adopted> {
    const refusal = this.#refusal(true);
    if (refusal !== undefined) {
      this.#metrics.refused.inc({ listener: 'http', reason: refusal.reason });
      return { refuse: { status: 503, code: ErrorCode.LoadShed, message: refusal.message } };
    }
    const id = `local-${this.#nextLocalId++}`;
    const generation = this.#current;
    const upstream = this.#wrapUpstream(generation, generation.upstream.create(id, { join: sessionId }));
    try {
      await upstream.start();
    } catch (error) {
      await upstream.close().catch(() => {});
      if ((error as { reason?: unknown }).reason === 'session-unknown') {
        this.#log.debug(`session ${sessionId} is not on the broker: 404, the client initializes again`, { event: 'session-unknown', mcp_session_id: sessionId });
        return undefined;
      }
      this.#log.warn(`could not adopt session ${sessionId} from the broker: ${asError(error).message}`, { event: 'adopt-failed', mcp_session_id: sessionId });
      return { refuse: { status: 503, code: ErrorCode.ConnectionClosed, message: 'Service Unavailable: the session could not be reached on the broker; try again' } };
    }
    const header = req.headers['mcp-protocol-version'];
    const protocolVersion = (upstream.inner as { protocolVersion?: string }).protocolVersion ?? (typeof header === 'string' ? header : undefined);
    const inner = new StreamableHttpSessionTransport({ sessionIdGenerator: randomUUID, adopt: sessionId, jsonResponses: generation.settings.jsonResponses });
    const client = this.#clients.clientOf(req);
    const downstream = this.#wrapDownstream(generation, inner, client);
    const session = this.#open(generation, 'http', downstream, () => downstream.close(), client, id, { upstream, protocolVersion });
    this.#log.debug('session adopted from the broker', { event: 'session-adopted', session: id, mcp_session_id: sessionId });
    await downstream.start();
    return { downstream, session };
  }

  #wrapUpstream(generation: Generation, transport: Transport): LayeredTransport {
    return wrap(transport, generation.stacks.upstream.layers, { name: 'upstream', events: this.upstreamEvents, ...wrapOptionsOf(generation.config.upstream) });
  }

  /**
   * One 2026-07-28 request over HTTP. Over a broker it goes sessionless to the service's
   * shared subject or stream, where any worker takes it, and its answer comes back to
   * this replica's per-request inbox: any replica serves any request. Other upstreams are
   * a process or a connection per session, held by this replica; serving the era would
   * mean sharing one between clients (or starting one per request), so they keep the
   * 2025 eras over HTTP: the refusal is the one an SDK client falls back to initialize on,
   * and WebSocket still carries 2026-07-28 to them end to end.
   */
  async #openExchange(req: IncomingMessage): Promise<PerRequestAdmitted> {
    if (this.upstream.kind !== 'broker') {
      return {
        refuse: {
          status: 400,
          code: UNSUPPORTED_PROTOCOL_VERSION,
          message: `Unsupported protocol version: this gateway serves 2026-07-28 over Streamable HTTP only in front of a broker (upstream nats:// or redis://); its upstream is ${this.upstream.kind}: use initialize (${SESSION_ERA_VERSIONS[0]}) here, or WebSocket`,
          data: { supported: [...SESSION_ERA_VERSIONS], requested: STATELESS_PROTOCOL_VERSION },
        },
      };
    }
    if (this.#draining) {
      return { refuse: { status: 503, code: ErrorCode.LoadShed, message: 'Service Unavailable: the gateway is shutting down; send the request to another instance', headers: { 'retry-after': '5' } } };
    }
    const limit = this.settings.maxSessions;
    if (this.#exchanges.size >= limit) {
      this.#metrics.refused.inc({ listener: 'http', reason: 'max-sessions' });
      return {
        refuse: { status: 503, code: ErrorCode.LoadShed, message: `Service Unavailable: the gateway holds its limit of ${limit} 2026-07-28 requests in flight (downstream.maxSessions); try again later`, headers: { 'retry-after': '1' } },
      };
    }
    const id = `request-${this.#nextLocalId++}`;
    const generation = this.#current;
    const release = this.#use(generation.upstream);
    const client = this.#clients.clientOf(req);
    const downstream = this.#wrapDownstream(generation, new PerRequestHttpTransport({ jsonResponses: generation.settings.jsonResponses }), client);
    const exchange = new ProxySession({
      id,
      listener: 'http',
      downstream,
      client: this.#clients.bind(client),
      openUpstream: () => this.#wrapUpstream(generation, generation.upstream.create(id)),
      perRequest: true,
      logger: this.#log,
      closeDownstream: () => downstream.close(),
      // It lives as long as its request: the session timeouts never apply.
      idleTimeoutMs: undefined,
      heldMessageTimeoutMs: this.settings.heldMessageTimeoutMs,
      onclose: (closed, reason) => {
        release();
        if (this.#exchanges.delete(closed)) this.emit('exchange-close', { id: closed.id, reason });
      },
    });
    this.#exchanges.add(exchange);
    await downstream.start();
    return downstream;
  }

  async #openWebSocketSession(transport: Transport & { close(code?: number, reason?: string): Promise<void> }, client: string): Promise<void> {
    const generation = this.#current;
    const downstream = this.#wrapDownstream(generation, transport, client);
    this.#open(
      generation,
      'websocket',
      downstream,
      (reason) => {
        // Shutdown: clients reconnect to another instance (1001). Upstream gone: 1011, they reconnect
        // and get a new upstream session. Idle: a normal close, nothing to come back for.
        const [code, text] = CLOSE_CODES[reason];
        return transport.close(code, text);
      },
      client,
    );
    await downstream.start();
  }

  /** Every span of the session's exchanges names its client (a name from the config, or unknown: bounded). */
  #wrapDownstream<T extends Transport>(generation: Generation, inner: T, client: string): Wrapped<T> {
    return wrap(inner, generation.stacks.downstream.layers, {
      name: 'downstream',
      events: this.downstreamEvents,
      attributes: { [CLIENT_ATTRIBUTE]: client },
      ...wrapOptionsOf(generation.config.downstream),
    });
  }

  /**
   * An HTTP request, authenticated and read, before any session sees it. A session's
   * requests come from the client that opened it: another client's is told the session
   * does not exist (404, as for an id never issued — a 403 would confirm the id is
   * live to whoever guessed or stole it). A POST carrying requests from a client with no
   * token left is answered 429 with Retry-After; one carrying only notifications and
   * answers (a client's reply to sampling) always goes through.
   */
  #admitRequest(req: IncomingMessage, body: unknown): Refusal | undefined {
    const client = this.#clients.clientOf(req);
    const sessionId = req.headers['mcp-session-id'];
    const session = typeof sessionId === 'string' ? this.#sessionNamed(sessionId) : undefined;
    if (session !== undefined && session.client !== undefined && session.client.name !== client) {
      this.#log.warn(`a request for session ${session.id} came from client ${client}, not ${session.client.name}: refused as unknown (404)`, { event: 'client-mismatch', session: session.id, client });
      return { status: 404, code: -32001, message: 'Session not found: it expired or never existed; start a new session with initialize' };
    }
    const messages: unknown[] = Array.isArray(body) ? body : body === undefined ? [] : [body];
    if (!messages.some((message) => isRequest(message as JSONRPCMessage))) return undefined;
    const limited = this.#clients.rateLimited(client);
    if (limited === undefined) return undefined;
    const { code, message, data } = toErrorObject(limited, 0);
    return { status: 429, code, message, headers: { 'retry-after': String(Math.ceil((limited.retryAfterMs ?? 0) / 1000)) }, ...(data === undefined ? {} : { data: data as Record<string, unknown> }) };
  }

  #open(
    generation: Generation,
    listener: 'http' | 'websocket',
    downstream: LayeredTransport,
    closeDownstream: (reason: CloseReason) => Promise<void>,
    client: string,
    id = `local-${this.#nextLocalId++}`,
    adopted?: ProxySessionOptions['adopted'],
  ): ProxySession {
    const release = this.#use(generation.upstream);
    const session = new ProxySession({
      id,
      listener,
      downstream,
      // The downstream session's id, when it has one, names the broker session too (docs/gateway.md, "Replicas").
      openUpstream: () => this.#wrapUpstream(generation, generation.upstream.create(id, { sessionId: downstream.sessionId })),
      // Over a broker, other replicas may serve an HTTP session too; a WebSocket session lives on its connection.
      shared: listener === 'http' && generation.upstream.kind === 'broker',
      ...(adopted === undefined ? {} : { adopted }),
      client: this.#clients.bind(client),
      logger: this.#log,
      closeDownstream,
      idleTimeoutMs: generation.settings.idleTimeoutMs,
      detachedTimeoutMs: generation.settings.detachedTimeoutMs,
      handshakeTimeoutMs: generation.settings.handshakeTimeoutMs,
      heldMessageTimeoutMs: generation.settings.heldMessageTimeoutMs,
      onclose: (closed, reason) => {
        release();
        if (closed.sessionId !== undefined && this.#byMcpSessionId.get(closed.sessionId) === closed) this.#byMcpSessionId.delete(closed.sessionId);
        if (!this.#sessions.delete(closed)) return;
        this.#metrics.sessions.dec({ listener });
        this.#metrics.closes.inc({ reason });
        this.emit('session-close', { id: closed.id, sessionId: closed.sessionId, listener, reason });
      },
    });
    this.#sessions.add(session);
    this.#metrics.sessions.inc({ listener });
    this.emit('session-open', { id, listener });
    this.#log.debug('session opened', { event: 'session-open', session: id, listener, client });
    return session;
  }
}

/**
 * The stacks and the upstream of a config, built and opened; throws ConfigError. A side
 * whose entries are those of `previous` keeps its stack (and with it its breakers' and
 * budgets' state), and an upstream configured as before is the same upstream.
 */
async function buildGeneration(loaded: LoadedConfig, logger: GatewayLogger, registry: Registry, events: EventBus, previous: Generation | undefined): Promise<Pick<Generation, 'stacks' | 'upstream'>> {
  const { config } = loaded;
  const build = (side: 'upstream' | 'downstream', entries: readonly LayerEntry[], before: readonly LayerEntry[] | undefined) => {
    if (previous !== undefined && sameSection(before, entries)) return previous.stacks[side];
    try {
      return buildStack(entries, { side, logger, registry, baseDir: loaded.baseDir });
    } catch (error) {
      throw error instanceof StackProblemsError ? new ConfigError(loaded.source, error.problems) : error;
    }
  };
  // Several upstreams: each has its own stack (federation.ts); the one around them all is empty.
  const entriesOf = (c: GatewayConfig) => ({ upstream: c.upstream === undefined ? [] : (c.upstream.layers ?? defaultLayers('upstream')), downstream: c.downstream?.layers ?? defaultLayers('downstream') });
  const now = entriesOf(config);
  const before = previous === undefined ? undefined : entriesOf(previous.config);
  const stacks = { upstream: build('upstream', now.upstream, before?.upstream), downstream: build('downstream', now.downstream, before?.downstream) };
  if (previous !== undefined && stacks.upstream === previous.stacks.upstream && sameSection(connectionOf(previous.config), connectionOf(config))) {
    return { stacks, upstream: previous.upstream };
  }
  const maxSessions = settingsOf(config).maxSessions;
  const upstream =
    config.upstream === undefined
      ? await startFederation(loaded, logger, registry, events, maxSessions, previous?.upstream.kind === 'federation' ? (previous.upstream as Federation) : undefined)
      : createUpstream(config.upstream, { baseDir: loaded.baseDir, oauth: stacks.upstream.oauth, logger, maxSessions });
  try {
    await upstream.open?.();
  } catch (error) {
    // The cause, not the transport's message: that one names the URL as written, credentials included.
    const cause = asError((error as Error).cause ?? error);
    throw new ConfigError(loaded.source, [`upstream.url: could not connect to the broker at ${upstream.description}: ${cause.message}`]);
  }
  return { stacks, upstream };
}

/** The listeners' own limit: the gateway admits sessions itself (#refusal); this only backs it up, with room for sessions still closing. */
function listenerLimit(maxSessions: number): number {
  return maxSessions + 16;
}

function onBroker(config: GatewayConfig): boolean {
  const url = config.upstream?.url;
  return url !== undefined && BROKER_URL_SCHEMES.includes(new URL(url).protocol);
}

/**
 * What the upstream is reached by: its section without the stack and the idempotency
 * lists, which each session's wrap reads. Several upstreams are one federation, built
 * from their sections and the federation's (each with its stack inside).
 */
function connectionOf(config: GatewayConfig): unknown {
  if (config.upstream === undefined) return { upstreams: config.upstreams, federation: config.federation };
  const { layers: _layers, ...connection }: Record<string, unknown> = config.upstream;
  for (const key of WRAP_SETTING_KEYS) delete connection[key];
  return connection;
}

const CLOSE_CODES: Record<CloseReason, [number, string]> = {
  shutdown: [1001, 'gateway shutting down'],
  'upstream-closed': [1011, 'the upstream server closed the session'],
  'upstream-failed': [1011, 'the upstream server could not be reached'],
  'initialize-failed': [1011, 'initialize failed'],
  idle: [1000, 'session idle'],
  detached: [1000, 'session idle'],
  'handshake-timeout': [1008, 'nothing was sent within the handshake timeout'],
  // 1013 (try again later): the client did nothing, and may come back when it has something to say.
  evicted: [1013, 'session reclaimed for a new client'],
  'downstream-closed': [1000, 'session closed'],
};

/** The span attribute that names a session's client (docs/gateway.md, "Clients and policies"). */
const CLIENT_ATTRIBUTE = 'mcp_layers.client.name';

function gatewayMetrics(registry: Registry, processMetrics: boolean): { sessions: Gauge; refused: Counter; closes: Counter; clientRequests: Counter; clientInFlight: Gauge } {
  const [sessions, refused, closes, clientRequests, clientInFlight] = GATEWAY_METRIC_FAMILIES;
  if (processMetrics) collectProcessMetrics(registry);
  return {
    sessions: gaugeOf(registry, sessions),
    refused: counterOf(registry, refused),
    closes: counterOf(registry, closes),
    clientRequests: counterOf(registry, clientRequests),
    clientInFlight: gaugeOf(registry, clientInFlight),
  };
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, { ...headers, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)), 'cache-control': 'no-store' }).end(text);
}

function jsonRpcError(res: ServerResponse, status: number, code: number, message: string, headers: Record<string, string> = {}): void {
  json(res, status, { jsonrpc: '2.0', id: null, error: { code, message } }, headers);
}
