/**
 * tracing(): one OpenTelemetry span per exchange, following the semantic conventions
 * for MCP (semantic-conventions-genai, docs/gen-ai/mcp.md), with trace context carried
 * in `params._meta` (SEP-414).
 *
 * - Outbound requests and notifications get a CLIENT span named `{mcp.method.name} {target}`;
 *   its context is injected into `params._meta` (`traceparent`, `tracestate`, `baggage`)
 *   of what goes on the wire — the application's message object is never modified.
 * - Inbound ones get a SERVER span whose parent is the context extracted from their
 *   `params._meta`, linked to the ambient span (an HTTP server span) when there is one.
 * - Attempts, retries, hedges, timeouts, breaker rejections, shedding and chaos are span
 *   events on the exchange's span (see docs/observability.md for why events, not child
 *   spans): every attempt's server span is then a direct child of the client span.
 *
 * Depends on @opentelemetry/api only; the application configures the SDK.
 */
import type * as OtelApiModule from '@opentelemetry/api';
import type {
  Attributes,
  Context as OtelContext,
  Link,
  Span,
  SpanOptions,
  TextMapGetter,
  TextMapPropagator,
  TextMapSetter,
  Tracer,
  TracerProvider,
} from '@opentelemetry/api';
import type { Context, Session } from '../../src/core/context.ts';
import type { LayerEvents } from '../../src/core/events.ts';
import { withMeta } from '../../src/core/jsonrpc.ts';
import type { Layer, LayerHost, Next } from '../../src/core/layer.ts';
import { booleanOption, integerOption, invalidOption, optionsObject } from '../../src/core/options.ts';
import { requirePeer } from '../../src/layer-kit/peer-deps.ts';
import { type RedactRule, Redactor } from './redact.ts';
import {
  BusSubscriptions,
  exchangeOutcome,
  inferNetwork,
  type NetworkInfo,
  promptName,
  resourceUri,
  SemConv,
  settled,
  subscribeAll,
  TRACE_STATE,
  type TraceIds,
  validateNetwork,
} from './telemetry.ts';

type OtelApi = typeof OtelApiModule;

export interface TracingOptions {
  /** A Tracer, or a TracerProvider to take one from. Default: the global provider's `mcp-layers` tracer. */
  tracer?: Tracer | TracerProvider;
  /** How context is written to and read from `params._meta`. Default: the globally configured propagator. */
  propagator?: TextMapPropagator;
  /** Record `gen_ai.tool.call.arguments` on `tools/call` spans (redacted, truncated). Default false. */
  captureArguments?: boolean;
  /** Record `gen_ai.tool.call.result` on successful `tools/call` spans (redacted, truncated). Default false. */
  captureResults?: boolean;
  /** Longest captured argument or result, in characters. Default 4096. */
  maxCaptureLength?: number;
  /** Use the resource URI as the span name's target (high cardinality, so opt-in as semconv asks). Default false. */
  resourceUriInSpanName?: boolean;
  /** Network attributes; overrides what is inferred from the inner transport. */
  network?: NetworkInfo;
  /** Extra redaction rules for captured arguments and results (see docs/observability.md). */
  redact?: RedactRule[];
}

/** Where the exchange's span lives in `ctx.state`. */
const SPAN = Symbol('mcp-layers.tracing.span');

interface ExchangeSpan {
  readonly span: Span;
  readonly context: OtelContext;
  /** False once the exchange ended: later events no longer touch the span. */
  open: boolean;
  /** The session's id and protocol version as the span started with them: set again at the end only if they changed. */
  readonly sessionId: string | undefined;
  readonly protocolVersion: string | undefined;
}

const metaGetter: TextMapGetter<Record<string, unknown>> = {
  keys: (carrier) => Object.keys(carrier),
  get: (carrier, key) => {
    const value = carrier[key];
    return typeof value === 'string' ? value : undefined;
  },
};

const metaSetter: TextMapSetter<Record<string, string>> = {
  set: (carrier, key, value) => {
    carrier[key] = value;
  },
};

const DEFAULT_CAPTURE_LENGTH = 4096;

const KNOWN = ['tracer', 'propagator', 'captureArguments', 'captureResults', 'maxCaptureLength', 'resourceUriInSpanName', 'network', 'redact'];

export function tracing(options?: TracingOptions): Layer {
  const o = optionsObject(options, 'tracing', KNOWN);
  const api = requirePeer<OtelApi>('@opentelemetry/api', 'tracing()');
  // The global tracer is looked up at the first span, not here: an SDK registered after the
  // stack was built (or through another copy of @opentelemetry/api) still gets the spans.
  const ownTracer = o.tracer === undefined ? undefined : resolveTracer(o.tracer);
  let globalTracer: Tracer | undefined;
  const tracerNow = (): Tracer => ownTracer ?? (globalTracer ??= api.trace.getTracer('mcp-layers'));
  const propagator = o.propagator ?? api.propagation;
  if (typeof propagator.inject !== 'function' || typeof propagator.extract !== 'function') {
    throw invalidOption('tracing.propagator', 'a TextMapPropagator (inject and extract)', o.propagator);
  }
  const captureArguments = booleanOption('tracing.captureArguments', o.captureArguments, false);
  const captureResults = booleanOption('tracing.captureResults', o.captureResults, false);
  const resourceInName = booleanOption('tracing.resourceUriInSpanName', o.resourceUriInSpanName, false);
  const maxCapture = integerOption('tracing.maxCaptureLength', o.maxCaptureLength, DEFAULT_CAPTURE_LENGTH, 16);
  const redactor = new Redactor(o.redact ?? [], 'tracing.redact');
  const configured = validateNetwork(o.network, 'tracing.network');
  const configuredNetwork = networkSides(networkAttributes(configured));
  const networks = new WeakMap<Session, NetworkSides>();

  const capture = (value: unknown): string => {
    const text = JSON.stringify(redactor.redact(value)) ?? 'null';
    return text.length > maxCapture ? `${text.slice(0, maxCapture)}…` : text;
  };

  function spanOf(ctx: Context): ExchangeSpan | undefined {
    const record = ctx.state.get(SPAN) as ExchangeSpan | undefined;
    return record?.open ? record : undefined;
  }

  function event(ctx: Context, name: string, attributes: Attributes): void {
    spanOf(ctx)?.span.addEvent(name, attributes);
  }

  /** Session-wide events land on whatever span is active where they were published. */
  function ambientEvent(name: string, attributes: Attributes): void {
    api.trace.getActiveSpan()?.addEvent(name, attributes);
  }

  const listeners: { [K in keyof LayerEvents]?: (event: LayerEvents[K]) => void } = {
    // Every outbound request publishes one: attributes only for an open span, with literal
    // keys (SemConv.JSONRPC_REQUEST_ID) so the object is built in one step.
    attempt: (e) => spanOf(e.ctx)?.span.addEvent('mcp_layers.attempt', { 'mcp_layers.attempt': e.attempt, 'jsonrpc.request.id': String(e.wireId) }),
    retry: (e) => event(e.ctx, 'mcp_layers.retry', { 'mcp_layers.attempt': e.attempt, 'mcp_layers.delay_ms': e.delayMs, 'mcp_layers.reason': redactor.text(e.reason) }),
    'retry-budget-exhausted': (e) => event(e.ctx, 'mcp_layers.retry_budget_exhausted', { 'mcp_layers.reason': redactor.text(e.reason) }),
    'give-up': (e) => event(e.ctx, 'mcp_layers.give_up', { 'mcp_layers.attempts': e.attempts, 'mcp_layers.reason': redactor.text(e.reason) }),
    timeout: (e) => event(e.ctx, 'mcp_layers.timeout', { 'mcp_layers.scope': e.scope, 'mcp_layers.timeout_ms': e.ms }),
    'breaker-rejected': (e) => event(e.ctx, 'mcp_layers.breaker_rejected', { 'mcp_layers.breaker': e.key }),
    shed: (e) => event(e.ctx, 'mcp_layers.shed', { 'mcp_layers.reason': e.reason, 'mcp_layers.in_flight': e.inFlight, 'mcp_layers.queued': e.queued }),
    queued: (e) => event(e.ctx, 'mcp_layers.queued', { 'mcp_layers.queued': e.queued }),
    hedge: (e) => event(e.ctx, 'mcp_layers.hedge', { 'mcp_layers.attempt': e.attempt, 'mcp_layers.delay_ms': e.delayMs }),
    'hedge-outcome': (e) => event(e.ctx, 'mcp_layers.hedge_outcome', { 'mcp_layers.winner': e.winner, 'mcp_layers.cancelled': e.cancelled }),
    chaos: (e) => event(e.ctx, 'mcp_layers.chaos', { 'mcp_layers.fault': e.fault }),
    cancelled: (e) => event(e.ctx, 'mcp_layers.cancelled', { 'mcp_layers.by': e.by, ...(e.reason === undefined ? {} : { 'mcp_layers.reason': redactor.text(e.reason) }) }),
    'cancel-sent': (e) => event(e.ctx, 'mcp_layers.cancel_sent', { [SemConv.JSONRPC_REQUEST_ID]: String(e.wireId), 'mcp_layers.reason': redactor.text(e.reason) }),
    'breaker-state': (e) => ambientEvent('mcp_layers.breaker_state', { 'mcp_layers.breaker': e.key, 'mcp_layers.from': e.from, 'mcp_layers.to': e.to }),
    'token-refresh': (e) => ambientEvent('mcp_layers.token_refresh', { 'mcp_layers.outcome': e.outcome, 'mcp_layers.duration_ms': e.durationMs, 'mcp_layers.reason': redactor.text(e.reason) }),
    reconnect: (e) => ambientEvent('mcp_layers.reconnect', { 'mcp_layers.attempt': e.attempt, 'mcp_layers.delay_ms': e.delayMs, 'mcp_layers.outcome': e.outcome }),
  };
  const subscriptions = new BusSubscriptions((host) => subscribeAll(host.events, listeners));

  /**
   * The parent of a new span, and the links it carries, when `_meta` carries trace
   * context (the common case, none, needs no span-context checks at all).
   */
  function remoteParentOf(ctx: Context, active: OtelContext, meta: Record<string, unknown>): { parent: OtelContext; links: Link[] | undefined } {
    const remote = extractFrom(active, meta);
    if (remote === undefined) return { parent: active, links: undefined };
    const ambient = api.trace.getSpanContext(active);
    const hasAmbient = ambient !== undefined && api.isSpanContextValid(ambient);
    if (ctx.direction === 'inbound') {
      // semconv: the peer's context is the parent; the ambient one (an HTTP server span) is linked.
      const linked = hasAmbient && ambient.spanId !== api.trace.getSpanContext(remote)?.spanId;
      return { parent: remote, links: linked ? [{ context: ambient }] : undefined };
    }
    // Outbound: the caller's active span wins; else the context the application put in _meta itself.
    return { parent: hasAmbient ? active : remote, links: undefined };
  }

  /** The context in `_meta`, on top of `base` (whose baggage it keeps unless `_meta` carries its own). */
  function extractFrom(base: OtelContext, meta: Record<string, unknown>): OtelContext | undefined {
    const extracted = propagator.extract(base, meta, metaGetter);
    const spanContext = api.trace.getSpanContext(extracted);
    // A malformed traceparent leaves the base's span in place: that is no remote parent.
    const found = spanContext !== undefined && spanContext !== api.trace.getSpanContext(base) && api.isSpanContextValid(spanContext);
    return found ? extracted : undefined;
  }

  function spanName(ctx: Context): string {
    const target = ctx.method === 'tools/call' || ctx.method === 'prompts/get' ? ctx.target : resourceInName ? resourceUri(ctx) : undefined;
    return target === undefined ? ctx.method : `${ctx.method} ${target}`;
  }

  function startAttributes(ctx: Context, sessionId: string | undefined, protocolVersion: string | undefined): Attributes {
    // A literal key (SemConv.MCP_METHOD_NAME) keeps the object's shape built in one step.
    const attributes: Attributes = { 'mcp.method.name': ctx.method };
    if (ctx.id !== undefined) attributes[SemConv.JSONRPC_REQUEST_ID] = String(ctx.id);
    const tool = ctx.tool;
    if (tool !== undefined) {
      attributes[SemConv.GEN_AI_TOOL_NAME] = tool;
      attributes[SemConv.GEN_AI_OPERATION_NAME] = 'execute_tool';
      if (captureArguments && ctx.params?.['arguments'] !== undefined) attributes[SemConv.GEN_AI_TOOL_CALL_ARGUMENTS] = capture(ctx.params['arguments']);
    }
    const prompt = promptName(ctx);
    if (prompt !== undefined) attributes[SemConv.GEN_AI_PROMPT_NAME] = prompt;
    const uri = resourceUri(ctx);
    if (uri !== undefined) attributes[SemConv.MCP_RESOURCE_URI] = uri;
    if (sessionId !== undefined) attributes[SemConv.MCP_SESSION_ID] = sessionId;
    if (protocolVersion !== undefined) attributes[SemConv.MCP_PROTOCOL_VERSION] = protocolVersion;
    const sides = networks.get(ctx.session) ?? configuredNetwork;
    // server.* describe the peer we call: CLIENT spans only.
    const network = ctx.direction === 'outbound' ? sides.client : sides.server;
    for (const key in network) attributes[key] = network[key];
    const own = ctx.session.attributes;
    for (const key in own) attributes[key] = own[key];
    return attributes;
  }

  function finish(ctx: Context, record: ExchangeSpan, failed: boolean, failure?: unknown): void {
    const span = record.span;
    if (!span.isRecording()) {
      span.end();
      return;
    }
    const { sessionId, protocolVersion } = ctx.session;
    // initialize learns both only from its own response.
    if (sessionId !== undefined && sessionId !== record.sessionId) span.setAttribute(SemConv.MCP_SESSION_ID, sessionId);
    if (protocolVersion !== undefined && protocolVersion !== record.protocolVersion) span.setAttribute(SemConv.MCP_PROTOCOL_VERSION, protocolVersion);
    if (ctx.direction === 'outbound' && ctx.kind === 'request') span.setAttribute('mcp_layers.attempts', ctx.attempts);
    const outcome = exchangeOutcome(ctx, failed, failure);
    if (outcome.errorType !== undefined) {
      span.setAttribute(SemConv.ERROR_TYPE, outcome.errorType);
      if (outcome.statusCode !== undefined) span.setAttribute(SemConv.RPC_RESPONSE_STATUS_CODE, outcome.statusCode);
      if (outcome.error !== undefined) {
        span.setAttribute('mcp_layers.error.layer', outcome.error.layer);
        span.setAttribute('mcp_layers.error.reason', outcome.error.reason);
      }
      span.setStatus({ code: api.SpanStatusCode.ERROR, ...(outcome.message === undefined ? {} : { message: redactor.text(outcome.message) }) });
    } else if (captureResults && ctx.method === 'tools/call' && ctx.response !== undefined && 'result' in ctx.response) {
      span.setAttribute(SemConv.GEN_AI_TOOL_CALL_RESULT, capture(ctx.response.result));
    }
    span.end();
  }

  function handle(ctx: Context, next: Next): Promise<void> {
    const open = spanOf(ctx);
    // Already traced further out (or by a forked attempt's sibling): stay in that span.
    if (open !== undefined) {
      try {
        return api.context.with(open.context, next);
      } catch (error) {
        return Promise.reject(error);
      }
    }
    const active = api.context.active();
    const meta = ctx.params?._meta;
    let parent = active;
    let links: Link[] | undefined;
    if (meta !== undefined && meta !== null && typeof meta['traceparent'] === 'string') ({ parent, links } = remoteParentOf(ctx, active, meta));
    const outbound = ctx.direction === 'outbound';
    const { sessionId, protocolVersion } = ctx.session;
    const options: SpanOptions = { kind: outbound ? api.SpanKind.CLIENT : api.SpanKind.SERVER, attributes: startAttributes(ctx, sessionId, protocolVersion) };
    if (links !== undefined) options.links = links;
    const span = tracerNow().startSpan(spanName(ctx), options, parent);
    const spanContext = api.trace.setSpan(parent, span);
    if (outbound) {
      const carrier: Record<string, string> = {};
      propagator.inject(spanContext, carrier, metaSetter);
      // A copy of the application's message carries the context on the wire (SEP-414).
      if (hasEntries(carrier)) ctx.message = withMeta(ctx.message, carrier);
    }
    const record: ExchangeSpan = { span, context: spanContext, open: true, sessionId, protocolVersion };
    ctx.state.set(SPAN, record);
    const ids = span.spanContext();
    // Without an SDK, spans carry the invalid (all-zero) ids: nothing worth logging. The
    // span context is a TraceIds already (logs and exemplars read only its two ids).
    if (ids.traceId !== api.INVALID_TRACEID) ctx.state.set(TRACE_STATE, ids satisfies TraceIds);
    return settled(
      () => api.context.with(spanContext, next),
      (failed, failure) => {
        record.open = false;
        finish(ctx, record, failed, failure);
      },
    );
  }

  return {
    name: 'tracing',
    handle,
    attach(host: LayerHost) {
      const inferred = inferNetwork(host.inner);
      networks.set(host.session, networkSides(networkAttributes({ ...inferred, ...configured })));
      return subscriptions.attach(host);
    },
  };
}

function resolveTracer(given: Tracer | TracerProvider): Tracer {
  if (typeof given === 'object' && given !== null) {
    if (typeof (given as Tracer).startSpan === 'function') return given as Tracer;
    if (typeof (given as TracerProvider).getTracer === 'function') return (given as TracerProvider).getTracer('mcp-layers');
  }
  throw invalidOption('tracing.tracer', 'an OpenTelemetry Tracer or TracerProvider', given);
}

/** A session's network attributes, as CLIENT spans carry them and as SERVER spans do (no `server.*`: that is the peer we call). */
interface NetworkSides {
  readonly client: Attributes;
  readonly server: Attributes;
}

function networkSides(all: Attributes): NetworkSides {
  const server: Attributes = {};
  for (const key in all) if (!key.startsWith('server.')) server[key] = all[key];
  return { client: all, server };
}

function hasEntries(carrier: Record<string, string>): boolean {
  for (const _ in carrier) return true;
  return false;
}

function networkAttributes(info: NetworkInfo): Attributes {
  const attributes: Attributes = {};
  if (info.transport !== undefined) attributes[SemConv.NETWORK_TRANSPORT] = info.transport;
  if (info.protocolName !== undefined) attributes[SemConv.NETWORK_PROTOCOL_NAME] = info.protocolName;
  if (info.protocolVersion !== undefined) attributes[SemConv.NETWORK_PROTOCOL_VERSION] = info.protocolVersion;
  if (info.serverAddress !== undefined) {
    attributes[SemConv.SERVER_ADDRESS] = info.serverAddress;
    if (info.serverPort !== undefined) attributes[SemConv.SERVER_PORT] = info.serverPort;
  }
  return attributes;
}
