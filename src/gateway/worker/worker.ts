/**
 * `mcp-layers worker`: a stdio MCP server served to the clients of a broker (NATS
 * JetStream or Redis Streams, docs/scale-out.md), through the same stacks as the
 * gateway's, with a child process per session.
 *
 *   client ─► broker ─► serveNats / serveRedis ─ server transport ─ worker stack ─┐
 *                                                                                 ProxySession
 *                                     stdio child ◄─ WatchedStdioTransport ─ upstream stack ┘
 *
 * The library worker (src/transports/broker/worker.ts) decides everything about
 * delivery: sessions pinned to this worker after `initialize`, capacity, a request
 * acknowledged only after its answer is published, redelivery only if idempotent, the
 * drain. What is left here is the gateway's part: each transport it hands over is paired
 * with a stdio child by a ProxySession (src/gateway/proxy.ts), which starts the child on
 * the first message, holds what arrives meanwhile, answers every request exactly once
 * (with why the child ended, when it did) and ends both sides together.
 *
 * Sessionless (2026-07-28) requests: the library gives each its own transport, so each
 * gets its own child, which serves that one request and is stopped once it is answered.
 * That is the era's model (no state between requests) at the price of a process start
 * per request; a stdio server that does not speak 2026-07-28 answers as it would over
 * stdio, and a negotiating client falls back to a 2025 session (docs/gateway.md "Worker").
 */
import { type Counter, Registry } from 'prom-client';
import winston from 'winston';
import { EventBus } from '../../core/events.ts';
import { optionsAt } from '../../core/options.ts';
import type { Transport } from '../../core/transport.ts';
import { EventFanout } from '../../core/wire.ts';
import { type LayeredTransport, wrap } from '../../core/wrap.ts';
import type { BrokerServerTransport } from '../../transports/broker/session.ts';
import { NatsServerTransport } from '../../transports/nats/session.ts';
import { NatsWorker, type NatsWorkerOptions } from '../../transports/nats/worker.ts';
import { RedisServerTransport } from '../../transports/redis/session.ts';
import { RedisWorker, type RedisWorkerOptions } from '../../transports/redis/worker.ts';
import type { GatewayConfig, UpstreamConfig } from '../config/gateway.ts';
import type { LayerEntry } from '../config/layers.ts';
import { ConfigError, type LoadedConfig } from '../config/load.ts';
import type { WorkerConfig } from '../config/worker.ts';
import { checkGateway, defaultLayers } from '../gateway.ts';
import { collectProcessMetrics, counterOf, gaugeOf } from '../families.ts';
import type { GatewayLogger } from '../logger.ts';
import { ProxySession } from '../proxy.ts';
import { type BuiltStack, buildStack, StackProblemsError } from '../stack.ts';
import { createUpstream, type Upstream } from '../upstream.ts';
import { wrapOptionsOf } from '../wrap-options.ts';
import { Endpoints, type EndpointUrls } from './endpoints.ts';
import { libraryOptions, WORKER_DEFAULTS, type WorkerSettings, workerSettingsOf } from './settings.ts';

/** The worker's own metric families (beside the layers'); docs/gateway.md "Worker". */
export const WORKER_METRIC_FAMILIES = [
  { name: 'mcp_layers_worker_sessions', type: 'gauge', labels: [], help: 'Sessions (2025 era) this worker holds, each with its own child process.' },
  { name: 'mcp_layers_worker_in_flight', type: 'gauge', labels: [], help: 'Requests delivered to this worker and not answered yet (sessions and sessionless requests).' },
  { name: 'mcp_layers_worker_children', type: 'gauge', labels: [], help: 'Child processes started and not yet stopped (one per session, or per sessionless request).' },
  {
    name: 'mcp_layers_worker_session_closes_total',
    type: 'counter',
    labels: ['reason'],
    help: 'Sessions (and sessionless requests) closed, by why: downstream-closed (the client, or the broker side, ended it), upstream-closed, upstream-failed, shutdown.',
  },
] as const;

export interface WorkerRuntime {
  readonly logger: GatewayLogger;
  /** Where the metrics layers and the worker register; served at /metrics. Default: a new Registry. */
  readonly registry?: Registry;
}

type LibraryWorker = NatsWorker | RedisWorker;

const silent = winston.createLogger({ silent: true });

/** The worker's stack entries: the file's, or the gateway's default for a server-side stack. */
function workerEntries(config: GatewayConfig): readonly LayerEntry[] {
  return (config.worker as WorkerConfig).layers ?? defaultLayers('downstream');
}

/**
 * Everything `mcp-layers check` (and the worker at startup) verifies of a worker config
 * without connecting: the upstream is a stdio command (found on PATH, its stack built, as
 * for the gateway), the worker's stack builds and its transport can carry it, and the
 * library accepts the options. Returns the problems, one line each.
 */
export function checkWorker(loaded: LoadedConfig): string[] {
  const { config, baseDir } = loaded;
  const worker = config.worker;
  if (worker === undefined) return ['worker: missing; expected the worker section, with worker.broker: nats://HOST:PORT/SERVICE or redis://HOST:PORT/SERVICE'];
  const problems: string[] = [];
  if (config.upstreams !== undefined) {
    problems.push('upstreams: the worker serves one stdio server (upstream.command), not several upstreams; several upstreams are served by the gateway');
  } else if (config.upstream?.command === undefined) {
    problems.push('upstream.command: missing; the worker serves a stdio server (a child process per session), not a URL: set upstream.command, or give the command after --');
  } else {
    // The upstream side is the gateway's, checked the gateway's way (command on PATH, stack, what stdio can carry).
    problems.push(...checkGateway({ ...loaded, config: { ...config, downstream: { ...config.downstream, layers: [] } } }));
  }
  const settings = workerSettingsOf(config);
  let stack: BuiltStack | undefined;
  try {
    stack = buildStack(workerEntries(config), { side: 'downstream', section: 'worker', logger: silent, registry: new Registry(), baseDir });
  } catch (error) {
    if (error instanceof StackProblemsError) problems.push(...error.problems);
    else throw error;
  }
  if (stack !== undefined) {
    // Layers that refuse a transport (batching: the broker carries one message per entry) say so when attached.
    const ServerTransport = settings.address.broker === 'nats' ? NatsServerTransport : RedisServerTransport;
    const transport = new ServerTransport({ publish: () => {}, answer: () => {}, closed: () => {} }, { sessionId: undefined, clientId: 'check', inbox: 'check', fanout: new EventFanout(new EventBus()), layer: settings.address.broker, label: 'check' });
    try {
      void wrap(transport, stack.layers, { name: 'downstream' }).close().catch(() => {});
    } catch (error) {
      problems.push(`worker.layers: ${(error as Error).message}`);
    }
  }
  try {
    libraryWorker(worker, settings, () => {}, new EventBus());
  } catch (error) {
    problems.push((error as Error).message);
  }
  return problems;
}

/** The library worker, not started; its option errors name `worker.<option>`. */
function libraryWorker(worker: WorkerConfig, settings: WorkerSettings, onsession: (transport: BrokerServerTransport) => Promise<void> | void, events: EventBus): LibraryWorker {
  const options = { ...libraryOptions(worker, settings), onsession, events };
  return settings.address.broker === 'nats'
    ? optionsAt('worker', 'serveNats', () => new NatsWorker(options as unknown as NatsWorkerOptions))
    : optionsAt('worker', 'serveRedis', () => new RedisWorker(options as unknown as RedisWorkerOptions));
}

export class StdioWorker {
  readonly settings: WorkerSettings;
  readonly registry: Registry;
  readonly upstream: Upstream;
  /** Every child's transport publishes here (retries, breaker state, timeouts…). */
  readonly upstreamEvents = new EventBus();
  /** Every broker transport publishes here, and the library worker too (`connection`). */
  readonly downstreamEvents = new EventBus();
  readonly stacks: { readonly upstream: BuiltStack; readonly worker: BuiltStack };
  readonly source: string;

  readonly #config: GatewayConfig;
  readonly #log: GatewayLogger;
  readonly #sessions = new Set<ProxySession>();
  readonly #metrics: { closes: Counter };
  readonly #library: LibraryWorker;
  #endpoints: Endpoints | undefined;
  #children = 0;
  #nextLocalId = 1;
  #draining = false;
  #shutdown: Promise<void> | undefined;
  #stopped = false;

  private constructor(loaded: LoadedConfig, runtime: Required<WorkerRuntime>, stacks: StdioWorker['stacks'], upstream: Upstream) {
    this.#config = loaded.config;
    this.source = loaded.source;
    this.settings = workerSettingsOf(loaded.config);
    this.#log = runtime.logger;
    this.registry = runtime.registry;
    this.stacks = stacks;
    this.upstream = upstream;
    this.#library = libraryWorker(loaded.config.worker as WorkerConfig, this.settings, (transport) => this.#onsession(transport), this.downstreamEvents);
    this.#library.onerror = (error) => this.#log.warn(`${this.settings.address.broker}: ${error.message}`, { event: 'worker-error' });
    this.#metrics = this.#registerMetrics();
  }

  /** Validates, builds, listens, connects; throws ConfigError (nothing left running) when the config cannot work. */
  static async start(loaded: LoadedConfig, runtime: WorkerRuntime): Promise<StdioWorker> {
    const problems = checkWorker(loaded);
    if (problems.length > 0) throw new ConfigError(loaded.source, problems);
    const registry = runtime.registry ?? new Registry();
    const build = (entries: readonly LayerEntry[], side: 'upstream' | 'downstream', section: string) => {
      try {
        return buildStack(entries, { side, section, logger: runtime.logger, registry, baseDir: loaded.baseDir });
      } catch (error) {
        throw error instanceof StackProblemsError ? new ConfigError(loaded.source, error.problems) : error;
      }
    };
    const { config } = loaded;
    // checkWorker refused a config without its one stdio upstream.
    const single = config.upstream as UpstreamConfig;
    const stacks = { upstream: build(single.layers ?? defaultLayers('upstream'), 'upstream', 'upstream'), worker: build(workerEntries(config), 'downstream', 'worker') };
    // A stdio upstream: no connection pool to size, no oauth (checkWorker refused a URL).
    const upstream = createUpstream(single, { baseDir: loaded.baseDir, oauth: undefined, logger: runtime.logger, maxSessions: (config.worker as WorkerConfig).maxSessions ?? WORKER_DEFAULTS.maxSessions, restartByDefault: false });
    const worker = new StdioWorker(loaded, { logger: runtime.logger, registry }, stacks, upstream);
    await worker.#start();
    return worker;
  }

  async #start(): Promise<void> {
    const { host, port, metricsPath } = this.settings;
    this.#endpoints = await Endpoints.listen({ host, port, metricsPath, registry: this.registry, source: this.source, readiness: () => this.#readiness() });
    try {
      await this.#library.start();
    } catch (error) {
      await this.#endpoints.close();
      throw error;
    }
  }

  /** This worker's id on the broker (its answers carry it in `Mcp-Worker`). */
  get id(): string {
    return this.#library.id;
  }

  get urls(): EndpointUrls {
    return (this.#endpoints as Endpoints).urls;
  }

  /** Sessions (2025 era) held now. */
  get sessions(): number {
    return this.#library.sessions;
  }

  /** Requests delivered and not answered yet. */
  get inFlight(): number {
    return this.#library.inFlight;
  }

  /** Child processes started and not stopped yet. */
  get children(): number {
    return this.#children;
  }

  get draining(): boolean {
    return this.#draining;
  }

  /** True once shutdown() has finished. */
  get stopped(): boolean {
    return this.#stopped;
  }

  /**
   * Graceful shutdown: take no new work (/readyz turns 503), let the requests in hand
   * finish for up to `drainTimeoutMs` — answered and acknowledged — and hand the rest back
   * to the broker (another worker runs them again only if idempotent); then every session
   * ends, with its child, and the listener closes. The sessions stay on the broker: their
   * clients replay their handshake on another worker.
   */
  shutdown(): Promise<void> {
    this.#shutdown ??= this.#stop();
    return this.#shutdown;
  }

  async #stop(): Promise<void> {
    this.#draining = true;
    const { drainTimeoutMs } = this.settings;
    this.#log.info(`shutting down: ${this.sessions} sessions, ${this.inFlight} requests in flight, up to ${drainTimeoutMs} ms to finish`, {
      event: 'shutdown',
      sessions: this.sessions,
      in_flight: this.inFlight,
      drain_timeout_ms: drainTimeoutMs,
    });
    await this.#library.close();
    // The library ended every transport; each session closes its child (stdin closed, then signals).
    await Promise.allSettled([...this.#sessions].map((session) => session.close('shutdown')));
    await (this.#endpoints as Endpoints).close();
    await this.upstream.close();
    this.#stopped = true;
    this.#log.info('worker stopped', { event: 'stopped' });
  }

  #readiness(): { ready: boolean; body: Record<string, unknown> } {
    const body = { sessions: this.sessions, inFlight: this.inFlight, children: this.#children };
    return this.#draining ? { ready: false, body: { status: 'shutting-down', ...body } } : { ready: true, body: { status: 'ready', ...body } };
  }

  // --- sessions ------------------------------------------------------------------------

  /** A session's (or a sessionless request's) broker transport: paired with a child of its own. */
  async #onsession(transport: BrokerServerTransport): Promise<void> {
    const id = `local-${this.#nextLocalId++}`;
    // The worker section's idempotency lists are the broker's (redelivery), not this wrap's: only its maxDepth applies here.
    const downstream = wrap(transport, this.stacks.worker.layers, { name: 'downstream', events: this.downstreamEvents, ...wrapOptionsOf({ maxDepth: this.#config.worker?.maxDepth }) });
    const upstreamConfig = this.#config.upstream as UpstreamConfig;
    let childStarted = false;
    const session = new ProxySession({
      id,
      listener: this.settings.address.broker,
      downstream,
      openUpstream: (): LayeredTransport => {
        childStarted = true;
        this.#children++;
        return wrap(this.upstream.create(id) as Transport, this.stacks.upstream.layers, { name: 'upstream', events: this.upstreamEvents, ...wrapOptionsOf(upstreamConfig) });
      },
      logger: this.#log,
      closeDownstream: () => downstream.close(),
      // The library notices clients that are gone (clientCheckMs) and releases their sessions: no idle timer here.
      idleTimeoutMs: undefined,
      onclose: (closed, reason) => {
        if (!this.#sessions.delete(closed)) return;
        if (childStarted) this.#children--;
        const why = reason === 'downstream-closed' && this.#draining ? 'shutdown' : reason;
        this.#metrics.closes.inc({ reason: why });
      },
    });
    this.#sessions.add(session);
    this.#log.debug(transport.sessionless ? 'sessionless request' : 'session opened', {
      event: 'session-open',
      session: id,
      ...(transport.sessionId === undefined ? { sessionless: true } : { mcp_session_id: transport.sessionId }),
    });
    await downstream.start();
  }

  #registerMetrics(): { closes: Counter } {
    const registry = this.registry;
    if (this.settings.processMetrics) collectProcessMetrics(registry);
    const [sessions, inFlight, children, closes] = WORKER_METRIC_FAMILIES;
    // The gauges are read when scraped: the library keeps the counts.
    gaugeOf(registry, sessions, () => this.sessions);
    gaugeOf(registry, inFlight, () => this.inFlight);
    gaugeOf(registry, children, () => this.#children);
    return { closes: counterOf(registry, closes) };
  }
}
