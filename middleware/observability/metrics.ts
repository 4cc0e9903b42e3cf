/**
 * metrics(): Prometheus metrics on prom-client, in the registry the caller passes.
 *
 * - The semconv MCP histograms under their Prometheus names — operation durations
 *   (`mcp_client_operation_duration_seconds`, `mcp_server_operation_duration_seconds`)
 *   and session durations — with the semconv bucket advice.
 * - A counter or gauge for every event the core, the transports and the other layers
 *   publish (retries, timeouts, breaker state, shedding, hedges, chaos, reconnects, token
 *   refreshes, wire bytes, batch sizes, broker redeliveries...). `METRIC_FAMILIES` lists them all; docs/metrics.md documents them.
 * - Bounded cardinality: each peer- or layer-supplied label (method, tool, prompt, error
 *   type, reason...) keeps at most `maxLabelValues` distinct values, then reads `_other`.
 * - Exemplars (`trace_id`, `span_id`) on the operation histograms when the registry
 *   speaks OpenMetrics and a span is known (tracing() in the stack, or an active span).
 *
 * `metricsHandler(registry)` serves the registry on `node:http`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type * as PromModule from 'prom-client';
import type { Counter, Gauge, Histogram, Registry as PromRegistry, RegistryContentType } from 'prom-client';
import type { Context, Session } from '../../src/core/context.ts';

import type { LayerEvents } from '../../src/core/events.ts';
import type { Layer, LayerHost, Next } from '../../src/core/layer.ts';
import { booleanOption, integerOption, invalidOption, optionsObject } from '../../src/core/options.ts';
import { requirePeer } from '../../src/layer-kit/peer-deps.ts';
import {
  activeTraceIds,
  BusSubscriptions,
  DURATION_BUCKETS,
  exchangeOutcome,
  type ExchangeOutcome,
  inferNetwork,
  type NetworkInfo,
  promptName,
  subscribeAll,
  traceIdsOf,
  validateNetwork,
} from './telemetry.ts';

type Prom = typeof PromModule;
/** A prom-client registry in either format (Prometheus text or OpenMetrics). */
export type MetricsRegistry = PromRegistry<RegistryContentType>;
type MetricType = 'histogram' | 'counter' | 'gauge';

/** One metric family this layer registers (names without the optional prefix). */
export interface MetricFamily {
  readonly name: string;
  readonly type: MetricType;
  readonly labels: readonly string[];
  readonly help: string;
}

const OPERATION_LABELS = [
  'transport',
  'mcp_method_name',
  'gen_ai_tool_name',
  'gen_ai_prompt_name',
  'error_type',
  'rpc_response_status_code',
  'mcp_protocol_version',
  'network_transport',
] as const;
const SESSION_LABELS = ['transport', 'mcp_protocol_version', 'network_transport'] as const;

/**
 * Every metric family, in one place: the layer registers exactly these, docs/metrics.md
 * documents exactly these (a test holds all three together), and dashboards query them.
 */
export const METRIC_FAMILIES = [
  { name: 'mcp_client_operation_duration_seconds', type: 'histogram', labels: OPERATION_LABELS, help: 'Duration of MCP requests and notifications this side sent, until the response (or the write) completed (semconv mcp.client.operation.duration).' },
  { name: 'mcp_server_operation_duration_seconds', type: 'histogram', labels: OPERATION_LABELS, help: 'Duration of MCP requests and notifications the peer sent, until this side answered (or delivered) them (semconv mcp.server.operation.duration).' },
  { name: 'mcp_client_session_duration_seconds', type: 'histogram', labels: SESSION_LABELS, help: 'Duration of MCP sessions this side opened as the client, from start to close (semconv mcp.client.session.duration).' },
  { name: 'mcp_server_session_duration_seconds', type: 'histogram', labels: SESSION_LABELS, help: 'Duration of MCP sessions this side served, from start to close (semconv mcp.server.session.duration).' },
  { name: 'mcp_layers_sessions_active', type: 'gauge', labels: ['transport'], help: 'Wrapped transports started and not yet closed.' },
  { name: 'mcp_layers_requests_in_flight', type: 'gauge', labels: ['transport', 'direction', 'mcp_method_name'], help: 'Requests that entered the metrics layer and have not finished.' },
  { name: 'mcp_layers_attempts_total', type: 'counter', labels: ['transport', 'mcp_method_name', 'gen_ai_tool_name'], help: 'Attempts put on the wire for outbound requests (first tries, retries and hedges).' },
  { name: 'mcp_layers_retries_total', type: 'counter', labels: ['transport', 'mcp_method_name', 'gen_ai_tool_name', 'reason'], help: 'Retries scheduled by the retry layer, by the failure that caused them.' },
  { name: 'mcp_layers_retry_budget_exhausted_total', type: 'counter', labels: ['transport', 'mcp_method_name'], help: 'Retries refused because the retry budget was spent.' },
  { name: 'mcp_layers_give_ups_total', type: 'counter', labels: ['transport', 'mcp_method_name', 'reason'], help: 'Requests the retry layer gave up on after its last attempt.' },
  { name: 'mcp_layers_timeouts_total', type: 'counter', labels: ['transport', 'mcp_method_name', 'gen_ai_tool_name', 'scope'], help: 'Deadlines that passed, per attempt or for the whole request.' },
  { name: 'mcp_layers_breaker_state', type: 'gauge', labels: ['breaker', 'state'], help: 'Circuit breaker state: 1 for the current state of each breaker, 0 for the others.' },
  { name: 'mcp_layers_breaker_transitions_total', type: 'counter', labels: ['breaker', 'from', 'to'], help: 'Circuit breaker state changes.' },
  { name: 'mcp_layers_breaker_rejections_total', type: 'counter', labels: ['transport', 'breaker', 'mcp_method_name'], help: 'Requests refused without being sent because the breaker was open.' },
  { name: 'mcp_layers_shed_total', type: 'counter', labels: ['transport', 'direction', 'mcp_method_name', 'reason'], help: 'Requests refused by a concurrency limit (load shedding).' },
  { name: 'mcp_layers_queued_total', type: 'counter', labels: ['transport', 'direction', 'mcp_method_name'], help: 'Requests that waited in a concurrency limit\'s queue.' },
  { name: 'mcp_layers_hedges_total', type: 'counter', labels: ['transport', 'mcp_method_name', 'gen_ai_tool_name'], help: 'Hedged attempts started.' },
  { name: 'mcp_layers_hedge_wins_total', type: 'counter', labels: ['transport', 'mcp_method_name', 'winner'], help: 'Hedged requests by which attempt won: primary or hedge.' },
  { name: 'mcp_layers_chaos_injections_total', type: 'counter', labels: ['transport', 'mcp_method_name', 'fault'], help: 'Faults injected on purpose by the chaos layer.' },
  { name: 'mcp_layers_cancellations_total', type: 'counter', labels: ['transport', 'direction', 'mcp_method_name', 'by'], help: 'Requests cancelled by the application or the peer.' },
  { name: 'mcp_layers_cancels_sent_total', type: 'counter', labels: ['transport', 'mcp_method_name'], help: 'notifications/cancelled sent for attempts the stack abandoned (timeouts, hedge losers, cancels).' },
  { name: 'mcp_layers_stray_responses_total', type: 'counter', labels: ['transport', 'reason'], help: 'Responses dropped because their id was not pending: late (abandoned attempt) or unknown.' },
  { name: 'mcp_layers_invalid_messages_total', type: 'counter', labels: ['transport'], help: 'Messages from the peer that were not valid JSON-RPC.' },
  { name: 'mcp_layers_protocol_versions_total', type: 'counter', labels: ['transport', 'mcp_protocol_version'], help: 'Protocol versions negotiated.' },
  { name: 'mcp_layers_reconnects_total', type: 'counter', labels: ['transport', 'outcome'], help: 'Reconnection attempts: scheduled, connected, failed or gave-up.' },
  { name: 'mcp_layers_connections_open', type: 'gauge', labels: ['transport'], help: 'Connections open under the transport name (a client: 0 or 1; a server: one per connected client).' },
  { name: 'mcp_layers_connections_total', type: 'counter', labels: ['transport', 'state'], help: 'Connection changes under a transport: opened, closed, or rejected at the upgrade.' },
  { name: 'mcp_layers_heartbeats_total', type: 'counter', labels: ['transport', 'outcome'], help: 'Heartbeats: answered (ok) or missed.' },
  { name: 'mcp_layers_heartbeat_rtt_seconds', type: 'histogram', labels: ['transport'], help: 'Round-trip time of answered heartbeats.' },
  { name: 'mcp_layers_token_refreshes_total', type: 'counter', labels: ['transport', 'outcome'], help: 'OAuth token refreshes: ok or failed.' },
  { name: 'mcp_layers_token_refresh_duration_seconds', type: 'histogram', labels: ['transport', 'outcome'], help: 'Duration of OAuth token refreshes.' },
  { name: 'mcp_layers_token_store_failures_total', type: 'counter', labels: ['transport', 'operation'], help: 'Token store loads or saves that failed (a rotated refresh token may be lost on restart).' },
  { name: 'mcp_layers_wire_bytes_total', type: 'counter', labels: ['transport', 'direction', 'encoding'], help: 'Bytes on the wire, by direction (outbound: sent) and content encoding.' },
  { name: 'mcp_layers_compression_bytes_total', type: 'counter', labels: ['transport', 'direction', 'encoding', 'stage'], help: 'Bytes before and after compression (stage), by direction and encoding.' },
  { name: 'mcp_layers_batch_size', type: 'histogram', labels: ['transport'], help: 'Messages per JSON-RPC batch written by the batching layer.' },
  { name: 'mcp_layers_broker_messages_published_total', type: 'counter', labels: ['transport', 'via'], help: 'Messages a broker transport (mcp-layers/nats, mcp-layers/redis) published: via the broker\'s durable path (stream) or its fire-and-forget one (core on NATS, pubsub on Redis).' },
  { name: 'mcp_layers_broker_published_bytes_total', type: 'counter', labels: ['transport', 'via'], help: 'Bytes of the messages a broker transport published, headers included, as they count against the broker\'s payload limit.' },
  { name: 'mcp_layers_broker_redeliveries_total', type: 'counter', labels: ['transport', 'mcp_method_name', 'outcome'], help: 'Requests a worker received again because their first worker stopped before answering: delivered (idempotent: run again) or refused (answered with one worker-lost error).' },
  { name: 'mcp_layers_broker_deduplicated_total', type: 'counter', labels: ['transport', 'where'], help: 'Duplicates dropped: a second publish of one request refused by the broker (stream), a request a worker had answered or holds (worker), a second answer to one request (client).' },
  { name: 'mcp_layers_broker_workers_total', type: 'counter', labels: ['transport', 'state'], help: 'Workers joining or leaving a service: a worker as it starts or closes, or a client that lost its worker (left).' },
  { name: 'mcp_layers_broker_sessions_total', type: 'counter', labels: ['transport', 'state'], help: 'Sessions on a worker: opened, replayed (re-established after their worker was lost) or closed.' },
  { name: 'mcp_layers_broker_garbage_total', type: 'counter', labels: ['transport'], help: 'Messages on a service\'s subjects, streams or channels that were not ours (a foreign publisher): dropped, and answered when the request could be identified.' },
] as const satisfies readonly MetricFamily[];

type FamilyName = (typeof METRIC_FAMILIES)[number]['name'];

/** Bucket boundaries of the histograms that do not measure MCP operations or sessions. */
const RTT_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const BATCH_BUCKETS = [1, 2, 3, 5, 10, 20, 50, 100];

/** Label value that stands for every value past the cardinality cap. */
export const OTHER_LABEL_VALUE = '_other';

/** Method names from the MCP spec never count against the cap. */
const KNOWN_METHODS = [
  'initialize', 'ping', 'server/discover', 'completion/complete', 'elicitation/create', 'logging/setLevel', 'sampling/createMessage',
  'prompts/get', 'prompts/list', 'resources/list', 'resources/read', 'resources/subscribe', 'resources/unsubscribe', 'resources/templates/list',
  'roots/list', 'tools/call', 'tools/list', 'subscriptions/listen', 'tasks/get', 'tasks/list', 'tasks/result', 'tasks/cancel',
  'notifications/initialized', 'notifications/cancelled', 'notifications/progress', 'notifications/message', 'notifications/prompts/list_changed',
  'notifications/resources/list_changed', 'notifications/resources/updated', 'notifications/roots/list_changed', 'notifications/tools/list_changed',
  'notifications/elicitation/complete', 'notifications/tasks/status',
];

const MAX_LABEL_LENGTH = 128;

export interface MetricsOptions {
  /** The prom-client Registry to register in. Required: pass prom-client's `register` to use the global default. */
  registry: MetricsRegistry;
  /** Prepended to every metric name (`myapp_` gives `myapp_mcp_client_operation_duration_seconds`). Default none. */
  prefix?: string;
  /** Buckets of the operation and session duration histograms, in seconds. Default: the semconv advice. */
  buckets?: readonly number[];
  /** Distinct values kept per label (tools, methods, error types...) before `_other`. Default 100. */
  maxLabelValues?: number;
  /** Attach trace-id exemplars to the operation histograms. Default: on when the registry is OpenMetrics. */
  exemplars?: boolean;
  /** Network attributes (only `transport` is used, as `network_transport`); overrides inference. */
  network?: NetworkInfo;
}

/** Keeps a label's distinct values bounded: past `limit`, new values read `_other`. */
class LabelCap {
  readonly #seen: Set<string>;
  readonly #limit: number;
  #count = 0;

  constructor(limit: number, preset: readonly string[] = []) {
    this.#limit = limit;
    this.#seen = new Set(preset);
  }

  value(value: string | undefined): string | undefined {
    if (value === undefined) return undefined;
    if (this.#seen.has(value)) return value;
    if (this.#count >= this.#limit || value.length > MAX_LABEL_LENGTH) return OTHER_LABEL_VALUE;
    this.#count++;
    this.#seen.add(value);
    return value;
  }
}

type Labels = Record<string, string | number>;

/** Drops undefined label values (prom-client reads a missing label as empty). */
function labels(values: Record<string, string | undefined>): Labels {
  const out: Labels = {};
  for (const key in values) {
    const value = values[key];
    if (value !== undefined) out[key] = value;
  }
  return out;
}

type Key = string | undefined;
type Node = Map<Key, unknown>;

/**
 * Entries found by a fixed-length path of label values: nested maps, so that a lookup
 * builds no key string and allocates nothing. The values are capped (`LabelCap`) so the
 * sets are few by design; `limit` bounds them all the same, and past it `add` refuses and
 * the caller takes the unbound path.
 */
class LabelTree<T extends object> {
  readonly #root: Node = new Map();
  readonly #depth: number;
  readonly #limit: number;
  #size = 0;

  constructor(depth: number, limit: number) {
    this.#depth = depth;
    this.#limit = limit;
  }

  find(k0: Key, k1?: Key, k2?: Key, k3?: Key, k4?: Key, k5?: Key, k6?: Key): T | undefined {
    const depth = this.#depth;
    let node = this.#root.get(k0);
    if (depth > 1 && node !== undefined) node = (node as Node).get(k1);
    if (depth > 2 && node !== undefined) node = (node as Node).get(k2);
    if (depth > 3 && node !== undefined) node = (node as Node).get(k3);
    if (depth > 4 && node !== undefined) node = (node as Node).get(k4);
    if (depth > 5 && node !== undefined) node = (node as Node).get(k5);
    if (depth > 6 && node !== undefined) node = (node as Node).get(k6);
    return node as T | undefined;
  }

  /** Stores `entry` under the path; false (nothing stored) once `limit` entries are held. */
  add(entry: T, k0: Key, k1?: Key, k2?: Key, k3?: Key, k4?: Key, k5?: Key, k6?: Key): boolean {
    if (this.#size >= this.#limit) return false;
    const keys = [k0, k1, k2, k3, k4, k5, k6];
    let node = this.#root;
    for (let i = 0; i < this.#depth - 1; i++) {
      let child = node.get(keys[i]) as Node | undefined;
      if (child === undefined) {
        child = new Map();
        node.set(keys[i], child);
      }
      node = child;
    }
    node.set(keys[this.#depth - 1], entry);
    this.#size++;
    return true;
  }

  /** Every entry held. */
  values(): Generator<T> {
    return leaves<T>(this.#root);
  }
}

function* leaves<T>(node: Node): Generator<T> {
  for (const value of node.values()) {
    if (value instanceof Map) yield* leaves<T>(value as Node);
    else yield value as T;
  }
}

/** Label sets bound per metrics() instance (and per in-flight gauge) before falling back to unbound calls. */
const MAX_BOUND_LABEL_SETS = 4096;

/** One operation-histogram label set, bound once. */
interface BoundOperation {
  readonly labels: Labels;
  readonly observe: (seconds: number) => void;
}

/** The raw label values of an operation, and the entry the capped ones were bound to (see `lastClient` in metrics()). */
interface LastOperation {
  entry: BoundOperation | undefined;
  session: Session | undefined;
  transport: string | undefined;
  method: string | undefined;
  tool: string | undefined;
  prompt: string | undefined;
  errorType: string | undefined;
  statusCode: string | undefined;
  version: string | undefined;
}

function emptyLastOperation(): LastOperation {
  return { entry: undefined, session: undefined, transport: undefined, method: undefined, tool: undefined, prompt: undefined, errorType: undefined, statusCode: undefined, version: undefined };
}

/** A request's raw (transport, method), its capped method and its in-flight count (see `lastClient` in metrics()). */
interface LastRequest {
  transport: string;
  rawMethod: string;
  method: string;
  count: InFlightCount | undefined;
}

function emptyLastRequest(): LastRequest {
  return { transport: '', rawMethod: '', method: '', count: undefined };
}

/** One in-flight label set: the count lives here, and reaches the gauge when it is collected. */
interface InFlightCount {
  readonly labels: Labels;
  count: number;
}

/**
 * The requests in flight of every metrics() layer that shares a gauge (layers on one
 * registry share families). An inc and a dec per request would hash the label set twice
 * in prom-client; here they touch a counter, and the gauge is set from it each time it
 * is collected (a scrape, `registry.metrics()`, `gauge.get()`), so every reading is the same.
 */
const inFlightTables = new WeakMap<Gauge, LabelTree<InFlightCount>>();

function inFlightTable(gauge: Gauge): LabelTree<InFlightCount> {
  let table = inFlightTables.get(gauge);
  if (table === undefined) {
    // transport, direction, mcp_method_name
    const counts = new LabelTree<InFlightCount>(3, MAX_BOUND_LABEL_SETS);
    inFlightTables.set(gauge, counts);
    const withCollect = gauge as { collect?: () => unknown };
    const before = withCollect.collect;
    withCollect.collect = function (this: Gauge) {
      for (const entry of counts.values()) gauge.set(entry.labels, entry.count);
      return before?.call(this);
    };
    table = counts;
  }
  return table;
}

const KNOWN = ['registry', 'prefix', 'buckets', 'maxLabelValues', 'exemplars', 'network'];

export function metrics(options?: MetricsOptions): Layer {
  const o = optionsObject(options, 'metrics', KNOWN);
  const prom = requirePeer<Prom>('prom-client', 'metrics()');
  const registry = o.registry as MetricsRegistry | undefined;
  if (typeof registry !== 'object' || registry === null || typeof registry.registerMetric !== 'function' || typeof registry.getSingleMetric !== 'function') {
    throw invalidOption('metrics.registry', "a prom-client Registry (pass prom-client's `register` to use the global default)", registry);
  }
  const prefix = o.prefix ?? '';
  if (typeof prefix !== 'string' || !/^([a-zA-Z_][a-zA-Z0-9_]*)?$/.test(prefix)) throw invalidOption('metrics.prefix', 'a metric name prefix ([a-zA-Z_][a-zA-Z0-9_]*)', o.prefix);
  const buckets = o.buckets ?? DURATION_BUCKETS;
  if (!Array.isArray(buckets) || buckets.length === 0 || buckets.some((b, i) => typeof b !== 'number' || !Number.isFinite(b) || b <= 0 || (i > 0 && b <= (buckets[i - 1] as number)))) {
    throw invalidOption('metrics.buckets', 'a non-empty increasing array of positive numbers (seconds)', o.buckets);
  }
  const maxLabelValues = integerOption('metrics.maxLabelValues', o.maxLabelValues, 100, 1);
  const openMetrics = (registry.contentType as string) === prom.Registry.OPENMETRICS_CONTENT_TYPE;
  const exemplars = booleanOption('metrics.exemplars', o.exemplars, openMetrics);
  if (exemplars && !openMetrics) {
    throw invalidOption('metrics.exemplars', 'false on a Prometheus-format registry (exemplars need registry.setContentType(Registry.OPENMETRICS_CONTENT_TYPE))', true);
  }
  const configuredTransport = validateNetwork(o.network, 'metrics.network').transport;

  // --- the families -----------------------------------------------------------
  const create = (family: MetricFamily, extra: { buckets?: readonly number[]; enableExemplars?: boolean } = {}): unknown => {
    const name = prefix + family.name;
    const existing = registry.getSingleMetric(name) as { labelNames?: readonly string[] } | undefined;
    if (existing !== undefined) {
      // Another metrics() on the same registry (say, a client and a server): share the family.
      const same = existing.labelNames !== undefined && existing.labelNames.length === family.labels.length && family.labels.every((l) => existing.labelNames?.includes(l));
      if (!same) throw new Error(`metrics(): the registry already holds a metric named "${name}" with other labels; use another registry or a prefix`);
      return existing;
    }
    const config = { name, help: family.help, labelNames: [...family.labels], registers: [registry] };
    switch (family.type) {
      case 'histogram':
        return new prom.Histogram({ ...config, buckets: [...(extra.buckets ?? buckets)], ...(extra.enableExemplars ? { enableExemplars: true } : {}) });
      case 'counter':
        return new prom.Counter(config);
      case 'gauge':
        return new prom.Gauge(config);
    }
  };
  const byName = new Map<FamilyName, unknown>();
  for (const family of METRIC_FAMILIES) {
    const special = family.name === 'mcp_layers_heartbeat_rtt_seconds' ? RTT_BUCKETS : family.name === 'mcp_layers_batch_size' ? BATCH_BUCKETS : undefined;
    const isOperation = family.name === 'mcp_client_operation_duration_seconds' || family.name === 'mcp_server_operation_duration_seconds';
    byName.set(family.name, create(family, { ...(special === undefined ? {} : { buckets: special }), enableExemplars: isOperation && exemplars }));
  }
  const histogram = (name: FamilyName) => byName.get(name) as Histogram;
  const counter = (name: FamilyName) => byName.get(name) as Counter;
  const gauge = (name: FamilyName) => byName.get(name) as Gauge;

  const clientOperations = histogram('mcp_client_operation_duration_seconds');
  const serverOperations = histogram('mcp_server_operation_duration_seconds');
  const inFlight = gauge('mcp_layers_requests_in_flight');

  // --- bounded labels -----------------------------------------------------------
  const caps = {
    method: new LabelCap(maxLabelValues, KNOWN_METHODS),
    tool: new LabelCap(maxLabelValues),
    prompt: new LabelCap(maxLabelValues),
    code: new LabelCap(maxLabelValues, ['tool_error', 'cancelled']),
    version: new LabelCap(maxLabelValues),
    reason: new LabelCap(maxLabelValues),
    breaker: new LabelCap(maxLabelValues),
    encoding: new LabelCap(maxLabelValues),
    other: new LabelCap(maxLabelValues),
  };

  const networks = new WeakMap<Session, string | undefined>();

  function exchangeLabels(ctx: Context): Record<string, string | undefined> {
    return {
      transport: ctx.session.name,
      mcp_method_name: caps.method.value(ctx.method),
      gen_ai_tool_name: caps.tool.value(ctx.tool),
    };
  }

  // Label sets bound once: transport, network_transport, method, tool or prompt (a method
  // has at most one of them), error_type, rpc_response_status_code, protocol version.
  const clientBound = new LabelTree<BoundOperation>(7, MAX_BOUND_LABEL_SETS);
  const serverBound = new LabelTree<BoundOperation>(7, MAX_BOUND_LABEL_SETS);
  const inFlightCounts = inFlightTable(inFlight);

  /**
   * The raw label values of the last exchange observed in one direction, and the entry
   * they were bound to. A cap returns the same value for a value it has seen, and does
   * nothing else: when the raw values repeat (they do, in real traffic), the caps, the
   * network lookup and the tree walk would give the same entry, so it is taken from here.
   * A miss takes the full path, so the caps see values in the same order as without it.
   */
  const lastClient = emptyLastOperation();
  const lastServer = emptyLastOperation();

  /** `requestMethod`: the capped method, when handle() took it already (requests). */
  function observeOperation(ctx: Context, requestMethod: string | undefined, seconds: number, failed: boolean, failure: unknown): void {
    const outcome = exchangeOutcome(ctx, failed, failure);
    const outbound = ctx.direction === 'outbound';
    const last = outbound ? lastClient : lastServer;
    const session = ctx.session;
    const rawMethod = ctx.method;
    const rawTool = ctx.tool;
    const rawPrompt = promptName(ctx);
    const rawVersion = session.protocolVersion;
    let entry = last.entry;
    if (
      entry === undefined ||
      last.session !== session ||
      last.transport !== session.name ||
      last.method !== rawMethod ||
      last.tool !== rawTool ||
      last.prompt !== rawPrompt ||
      last.errorType !== outcome.errorType ||
      last.statusCode !== outcome.statusCode ||
      last.version !== rawVersion
    ) {
      entry = boundOperation(ctx, requestMethod, outcome, outbound);
      last.entry = entry;
      last.session = session;
      last.transport = session.name;
      last.method = rawMethod;
      last.tool = rawTool;
      last.prompt = rawPrompt;
      last.errorType = outcome.errorType;
      last.statusCode = outcome.statusCode;
      last.version = rawVersion;
    }
    if (exemplars) {
      const target = outbound ? clientOperations : serverOperations;
      const ids = traceIdsOf(ctx) ?? activeTraceIds();
      if (ids === undefined) target.observe({ labels: entry.labels, value: seconds });
      else target.observe({ labels: entry.labels, value: seconds, exemplarLabels: { trace_id: ids.traceId, span_id: ids.spanId } });
    } else {
      entry.observe(seconds);
    }
  }

  function boundOperation(ctx: Context, requestMethod: string | undefined, outcome: ExchangeOutcome, outbound: boolean): BoundOperation {
    // The caps see values in the order they always have: which values a full cap admits depends on it.
    const method = requestMethod ?? caps.method.value(ctx.method);
    const tool = caps.tool.value(ctx.tool);
    const prompt = caps.prompt.value(promptName(ctx));
    const errorType = caps.code.value(outcome.errorType);
    const statusCode = caps.code.value(outcome.statusCode);
    const version = caps.version.value(ctx.session.protocolVersion);
    const transport = ctx.session.name;
    const network = networks.has(ctx.session) ? networks.get(ctx.session) : configuredTransport;
    const target = outbound ? clientOperations : serverOperations;
    const bound = outbound ? clientBound : serverBound;
    const targetName = tool ?? prompt;
    const entry = bound.find(transport, network, method, targetName, errorType, statusCode, version);
    if (entry !== undefined) return entry;
    const values = labels({
      transport,
      mcp_method_name: method,
      gen_ai_tool_name: tool,
      gen_ai_prompt_name: prompt,
      error_type: errorType,
      rpc_response_status_code: statusCode,
      mcp_protocol_version: version,
      network_transport: network,
    });
    const made: BoundOperation = { labels: values, observe: target.labels(values).observe };
    return bound.add(made, transport, network, method, targetName, errorType, statusCode, version) ? made : { labels: values, observe: (v) => target.observe(values, v) };
  }

  /** The last request's raw (transport, method) per direction, its capped method and its in-flight count: see `lastClient`. */
  const lastOutboundRequest = emptyLastRequest();
  const lastInboundRequest = emptyLastRequest();

  /** The in-flight count of this request's label set (undefined past the bound: then the gauge is used directly). */
  function inFlightCount(ctx: Context, method: string | undefined): InFlightCount | undefined {
    const transport = ctx.session.name;
    let entry = inFlightCounts.find(transport, ctx.direction, method);
    if (entry === undefined) {
      const made: InFlightCount = { labels: labels({ transport, direction: ctx.direction, mcp_method_name: method }), count: 0 };
      if (inFlightCounts.add(made, transport, ctx.direction, method)) entry = made;
    }
    return entry;
  }

  // Not an async function: `then` keeps no suspended frame, which halves what each call allocates.
  function handle(ctx: Context, next: Next): Promise<void> {
    const started = performance.now();
    let method: string | undefined;
    let counted: InFlightCount | undefined;
    let unbound: Labels | undefined;
    if (ctx.kind === 'request') {
      const last = ctx.direction === 'outbound' ? lastOutboundRequest : lastInboundRequest;
      if (last.count !== undefined && last.rawMethod === ctx.method && last.transport === ctx.session.name) {
        method = last.method;
        counted = last.count;
      } else {
        method = caps.method.value(ctx.method);
        counted = inFlightCount(ctx, method);
        if (counted !== undefined) {
          last.transport = ctx.session.name;
          last.rawMethod = ctx.method;
          last.method = method as string;
          last.count = counted;
        }
      }
      if (counted !== undefined) counted.count++;
      else inFlight.inc((unbound = labels({ transport: ctx.session.name, direction: ctx.direction, mcp_method_name: method })));
    }
    // settled(), written out: one closure context per exchange instead of two, and no `done` closure.
    let running: Promise<void>;
    try {
      running = next();
    } catch (error) {
      try {
        finish(ctx, method, started, counted, unbound, true, error);
      } catch (thrown) {
        return Promise.reject(thrown);
      }
      return Promise.reject(error);
    }
    return running.then(
      () => finish(ctx, method, started, counted, unbound, false, undefined),
      (error: unknown) => {
        finish(ctx, method, started, counted, unbound, true, error);
        throw error;
      },
    );
  }

  function finish(ctx: Context, method: string | undefined, started: number, counted: InFlightCount | undefined, unbound: Labels | undefined, failed: boolean, failure: unknown): void {
    if (counted !== undefined) counted.count--;
    else if (unbound !== undefined) inFlight.dec(unbound);
    observeOperation(ctx, method, (performance.now() - started) / 1000, failed, failure);
  }

  // --- events -------------------------------------------------------------------
  // Every outbound request publishes one: bound per (transport, method, tool).
  const attempts = counter('mcp_layers_attempts_total');
  const attemptsBound = new LabelTree<{ inc: () => void }>(3, MAX_BOUND_LABEL_SETS);
  // The last attempt's raw (transport, method, tool) and its child: see `lastClient`.
  const lastAttempt = { transport: '', method: '', tool: undefined as string | undefined, child: undefined as { inc: () => void } | undefined };
  function countAttempt(ctx: Context): void {
    const transport = ctx.session.name;
    const rawTool = ctx.tool;
    const last = lastAttempt;
    let child = last.child;
    if (child === undefined || last.method !== ctx.method || last.tool !== rawTool || last.transport !== transport) {
      child = attemptChild(transport, caps.method.value(ctx.method), caps.tool.value(rawTool));
      last.transport = transport;
      last.method = ctx.method;
      last.tool = rawTool;
      last.child = child;
    }
    child.inc();
  }

  function attemptChild(transport: string, method: string | undefined, tool: string | undefined): { inc: () => void } {
    const child = attemptsBound.find(transport, method, tool);
    if (child !== undefined) return child;
    const values = labels({ transport, mcp_method_name: method, gen_ai_tool_name: tool });
    const made = attempts.labels(values);
    return attemptsBound.add(made, transport, method, tool) ? made : { inc: () => attempts.inc(values) };
  }

  // Every message a broker transport publishes publishes one: bound per (transport, via).
  const published = { messages: counter('mcp_layers_broker_messages_published_total'), bytes: counter('mcp_layers_broker_published_bytes_total') };
  const publishedBound = new LabelTree<{ messages: { inc: () => void }; bytes: { inc: (by: number) => void } }>(2, MAX_BOUND_LABEL_SETS);
  function countPublished(transport: string, event: LayerEvents['broker-published']): void {
    const via = caps.other.value(event.via);
    let child = publishedBound.find(transport, via);
    if (child === undefined) {
      const values = labels({ transport, via });
      const made = { messages: published.messages.labels(values), bytes: published.bytes.labels(values) };
      child = publishedBound.add(made, transport, via) ? made : { messages: { inc: () => published.messages.inc(values) }, bytes: { inc: (by) => published.bytes.inc(values, by) } };
    }
    child.messages.inc();
    child.bytes.inc(event.bytes);
  }

  // Every message a transport reads or writes publishes one (wire bytes): bound per (transport, direction, encoding).
  const wireBytes = counter('mcp_layers_wire_bytes_total');
  const wireBound = new LabelTree<{ inc: (by: number) => void }>(3, MAX_BOUND_LABEL_SETS);
  function countWire(transport: string, event: LayerEvents['wire']): void {
    const encoding = caps.encoding.value(event.encoding);
    let child = wireBound.find(transport, event.direction, encoding);
    if (child === undefined) {
      const values = labels({ transport, direction: event.direction, encoding });
      const made = wireBytes.labels(values);
      child = wireBound.add(made, transport, event.direction, encoding) ? made : { inc: (by) => wireBytes.inc(values, by) };
    }
    child.inc(event.bytes);
  }

  function subscribe(host: LayerHost): () => void {
    // Events without an exchange are labelled with the transport whose bus carried them.
    const transport = host.session.name;
    const inc = (name: FamilyName, values: Record<string, string | undefined>, by = 1) => counter(name).inc(labels(values), by);
    const listeners: { [K in keyof LayerEvents]: ((event: LayerEvents[K]) => void) | null } = {
      attempt: (e) => countAttempt(e.ctx),
      retry: (e) => inc('mcp_layers_retries_total', { ...exchangeLabels(e.ctx), reason: caps.reason.value(e.reason) }),
      'retry-budget-exhausted': (e) => inc('mcp_layers_retry_budget_exhausted_total', { transport: e.ctx.session.name, mcp_method_name: caps.method.value(e.ctx.method) }),
      'give-up': (e) => inc('mcp_layers_give_ups_total', { transport: e.ctx.session.name, mcp_method_name: caps.method.value(e.ctx.method), reason: caps.reason.value(e.reason) }),
      timeout: (e) => inc('mcp_layers_timeouts_total', { ...exchangeLabels(e.ctx), scope: e.scope }),
      'breaker-state': (e) => {
        const breaker = caps.breaker.value(e.key);
        inc('mcp_layers_breaker_transitions_total', { breaker, from: e.from, to: e.to });
        for (const state of BREAKER_STATES) gauge('mcp_layers_breaker_state').set(labels({ breaker, state }), state === e.to ? 1 : 0);
      },
      'breaker-rejected': (e) => inc('mcp_layers_breaker_rejections_total', { transport: e.ctx.session.name, breaker: caps.breaker.value(e.key), mcp_method_name: caps.method.value(e.ctx.method) }),
      shed: (e) => inc('mcp_layers_shed_total', { transport: e.ctx.session.name, direction: e.ctx.direction, mcp_method_name: caps.method.value(e.ctx.method), reason: caps.reason.value(e.reason) }),
      queued: (e) => inc('mcp_layers_queued_total', { transport: e.ctx.session.name, direction: e.ctx.direction, mcp_method_name: caps.method.value(e.ctx.method) }),
      hedge: (e) => inc('mcp_layers_hedges_total', exchangeLabels(e.ctx)),
      'hedge-outcome': (e) => inc('mcp_layers_hedge_wins_total', { transport: e.ctx.session.name, mcp_method_name: caps.method.value(e.ctx.method), winner: e.winner <= 1 ? 'primary' : 'hedge' }),
      chaos: (e) => inc('mcp_layers_chaos_injections_total', { transport: e.ctx.session.name, mcp_method_name: caps.method.value(e.ctx.method), fault: caps.other.value(e.fault) }),
      cancelled: (e) => inc('mcp_layers_cancellations_total', { transport: e.ctx.session.name, direction: e.ctx.direction, mcp_method_name: caps.method.value(e.ctx.method), by: e.by }),
      'cancel-sent': (e) => inc('mcp_layers_cancels_sent_total', { transport: e.ctx.session.name, mcp_method_name: caps.method.value(e.ctx.method) }),
      'stray-response': (e) => inc('mcp_layers_stray_responses_total', { transport, reason: e.reason }),
      'invalid-message': () => inc('mcp_layers_invalid_messages_total', { transport }),
      'protocol-version': (e) => inc('mcp_layers_protocol_versions_total', { transport, mcp_protocol_version: caps.version.value(e.version) }),
      // Sessions are measured per transport in attach(): the bus may be shared.
      start: null,
      close: null,
      reconnect: (e) => inc('mcp_layers_reconnects_total', { transport, outcome: e.outcome }),
      connection: (e) => {
        inc('mcp_layers_connections_total', { transport, state: e.state });
        if (e.state === 'open') gauge('mcp_layers_connections_open').inc(labels({ transport }));
        else if (e.state === 'closed') gauge('mcp_layers_connections_open').dec(labels({ transport }));
      },
      heartbeat: (e) => {
        inc('mcp_layers_heartbeats_total', { transport, outcome: e.outcome });
        if (e.outcome === 'ok' && e.rttMs !== undefined) histogram('mcp_layers_heartbeat_rtt_seconds').observe(labels({ transport }), e.rttMs / 1000);
      },
      'token-refresh': (e) => {
        inc('mcp_layers_token_refreshes_total', { transport, outcome: e.outcome });
        histogram('mcp_layers_token_refresh_duration_seconds').observe(labels({ transport, outcome: e.outcome }), e.durationMs / 1000);
      },
      'token-store-failed': (e) => inc('mcp_layers_token_store_failures_total', { transport, operation: e.operation }),
      'batch-flushed': (e) => histogram('mcp_layers_batch_size').observe(labels({ transport }), e.size),
      'bytes-compressed': (e) => {
        const base = { transport, direction: e.direction, encoding: caps.encoding.value(e.encoding) };
        inc('mcp_layers_compression_bytes_total', { ...base, stage: 'before' }, e.before);
        inc('mcp_layers_compression_bytes_total', { ...base, stage: 'after' }, e.after);
      },
      wire: (e) => countWire(transport, e),
      // No session ids, subjects or worker ids in labels: they are unbounded (the logs have them).
      'broker-published': (e) => countPublished(transport, e),
      'broker-redelivered': (e) => inc('mcp_layers_broker_redeliveries_total', { transport, mcp_method_name: caps.method.value(e.method), outcome: e.outcome }),
      'broker-deduplicated': (e) => inc('mcp_layers_broker_deduplicated_total', { transport, where: e.where }),
      'broker-worker': (e) => inc('mcp_layers_broker_workers_total', { transport, state: e.state }),
      'broker-session': (e) => inc('mcp_layers_broker_sessions_total', { transport, state: e.state }),
      'broker-garbage': () => inc('mcp_layers_broker_garbage_total', { transport }),
    };
    const active: { [K in keyof LayerEvents]?: (event: LayerEvents[K]) => void } = {};
    for (const type of Object.keys(listeners) as Array<keyof LayerEvents>) {
      const listener = listeners[type];
      if (listener !== null) (active as Record<string, unknown>)[type] = listener;
    }
    return subscribeAll(host.events, active);
  }
  const subscriptions = new BusSubscriptions(subscribe);

  /** One session per wrapped transport: from its start to its close (when it detaches). */
  function trackSession(host: LayerHost, network: string | undefined): () => void {
    const { session } = host;
    let startedAt: number | undefined;
    const sessions = gauge('mcp_layers_sessions_active');
    const off = host.events.on('start', (e) => {
      if (e.name !== session.name || startedAt !== undefined) return;
      startedAt = performance.now();
      sessions.inc(labels({ transport: session.name }));
    });
    return () => {
      off();
      if (startedAt === undefined) return;
      sessions.dec(labels({ transport: session.name }));
      const role = session.role;
      if (role === undefined) return; // never initialized: not an MCP session
      const name = role === 'client' ? 'mcp_client_session_duration_seconds' : 'mcp_server_session_duration_seconds';
      histogram(name).observe(
        labels({ transport: session.name, mcp_protocol_version: caps.version.value(session.protocolVersion), network_transport: network }),
        (performance.now() - startedAt) / 1000,
      );
    };
  }

  return {
    name: 'metrics',
    handle,
    attach(host: LayerHost) {
      const network = configuredTransport ?? inferNetwork(host.inner).transport;
      networks.set(host.session, network);
      // The last operations were bound with the network their session had until now.
      lastClient.entry = undefined;
      lastServer.entry = undefined;
      const detachEvents = subscriptions.attach(host);
      const endSession = trackSession(host, network);
      return () => {
        endSession();
        detachEvents();
        // A closed session is not kept alive by the cache (docs/architecture.md#invariant-5).
        if (lastClient.session === host.session) Object.assign(lastClient, emptyLastOperation());
        if (lastServer.session === host.session) Object.assign(lastServer, emptyLastOperation());
      };
    },
  };
}

const BREAKER_STATES: ReadonlyArray<LayerEvents['breaker-state']['to']> = ['closed', 'open', 'half-open', 'isolated'];

export interface MetricsHandlerOptions {
  /** The path served. Default `/metrics`. */
  path?: string;
}

/**
 * A `node:http` request handler serving `registry` at `/metrics` (GET and HEAD), in the
 * registry's format (Prometheus text or OpenMetrics):
 *
 *   http.createServer(metricsHandler(registry)).listen(9464, '127.0.0.1');
 */
export function metricsHandler(registry: MetricsRegistry, options?: MetricsHandlerOptions): (req: IncomingMessage, res: ServerResponse) => void {
  if (typeof registry !== 'object' || registry === null || typeof registry.metrics !== 'function') {
    throw invalidOption('metricsHandler(registry)', 'a prom-client Registry', registry);
  }
  const path = optionsObject(options, 'metricsHandler', ['path']).path ?? '/metrics';
  if (typeof path !== 'string' || !path.startsWith('/')) throw invalidOption('metricsHandler.path', 'a path starting with "/"', path);
  return (req, res) => {
    const url = req.url ?? '/';
    const query = url.indexOf('?');
    if ((query === -1 ? url : url.slice(0, query)) !== path) {
      res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' }).end('Not Found\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain; charset=utf-8' }).end('Method Not Allowed\n');
      return;
    }
    registry.metrics().then(
      (body) => {
        res.writeHead(200, { 'Content-Type': registry.contentType, 'Cache-Control': 'no-store' });
        res.end(req.method === 'HEAD' ? undefined : body);
      },
      () => {
        // A failing collect() callback must not take the process down or leak its details.
        if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' });
        res.end('Metrics collection failed\n');
      },
    );
  };
}
