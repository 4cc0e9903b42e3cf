/**
 * What the observability layers (tracing, metrics, logging) share: the OpenTelemetry
 * MCP semantic-convention names, how an exchange's outcome is classified, what can be
 * learned about the network under a transport, and where tracing leaves the trace ids
 * so that metrics (exemplars) and logs can carry them without importing OpenTelemetry.
 */
import type * as OtelApiModule from '@opentelemetry/api';
import type { Context } from '../../src/core/context.ts';
import { endsExchange, ErrorCode, McpLayersError } from '../../src/core/errors.ts';
import { invalidOption, optionProblem } from '../../src/core/options.ts';
import type { EventBus, LayerEvents } from '../../src/core/events.ts';
import type { JSONRPCParams } from '../../src/core/jsonrpc.ts';
import type { LayerHost } from '../../src/core/layer.ts';
import { tryRequirePeer } from '../../src/layer-kit/peer-deps.ts';
import type { Transport } from '../../src/core/transport.ts';

/**
 * Attribute names from the OpenTelemetry semantic conventions for MCP
 * (semantic-conventions-genai, docs/gen-ai/mcp.md). Defined here because the
 * constants in `@opentelemetry/semantic-conventions/incubating` are deprecated.
 */
export const SemConv = {
  MCP_METHOD_NAME: 'mcp.method.name',
  MCP_SESSION_ID: 'mcp.session.id',
  MCP_PROTOCOL_VERSION: 'mcp.protocol.version',
  MCP_RESOURCE_URI: 'mcp.resource.uri',
  JSONRPC_REQUEST_ID: 'jsonrpc.request.id',
  RPC_RESPONSE_STATUS_CODE: 'rpc.response.status_code',
  ERROR_TYPE: 'error.type',
  GEN_AI_OPERATION_NAME: 'gen_ai.operation.name',
  GEN_AI_TOOL_NAME: 'gen_ai.tool.name',
  GEN_AI_PROMPT_NAME: 'gen_ai.prompt.name',
  GEN_AI_TOOL_CALL_ARGUMENTS: 'gen_ai.tool.call.arguments',
  GEN_AI_TOOL_CALL_RESULT: 'gen_ai.tool.call.result',
  NETWORK_TRANSPORT: 'network.transport',
  NETWORK_PROTOCOL_NAME: 'network.protocol.name',
  NETWORK_PROTOCOL_VERSION: 'network.protocol.version',
  SERVER_ADDRESS: 'server.address',
  SERVER_PORT: 'server.port',
} as const;

/** The semconv bucket advice for every MCP duration histogram, in seconds. */
export const DURATION_BUCKETS: readonly number[] = Object.freeze([0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 120, 300]);

/** `error.type` when a `tools/call` result has `isError: true`. */
export const TOOL_ERROR = 'tool_error';
/** `error.type` when the application or the peer cancelled the request. */
export const CANCELLED_ERROR = 'cancelled';

/** How an exchange ended, as logs and dashboards name it. */
export type OutcomeKind = 'ok' | 'error' | 'tool_error' | 'cancelled';

/** How an exchange ended, in the terms every observability layer reports. */
export interface ExchangeOutcome {
  outcome: OutcomeKind;
  /** Semconv `error.type`: the JSON-RPC code as a string, `tool_error` or `cancelled`; absent on success. */
  errorType: string | undefined;
  /** Semconv `rpc.response.status_code`: the JSON-RPC error code of the response, when there was one. */
  statusCode: string | undefined;
  /** The JSON-RPC error message (or the thrown error's), for span status and logs. */
  message: string | undefined;
  /** The typed error the stack raised, when it failed the exchange itself. */
  error: McpLayersError | undefined;
}

const OK: ExchangeOutcome = Object.freeze({ outcome: 'ok', errorType: undefined, statusCode: undefined, message: undefined, error: undefined });

/**
 * Classifies an exchange once the layers below returned (`failure` undefined) or threw.
 * A thrown error becomes the JSON-RPC error the core synthesizes from it, so the code
 * reported is the code the application (or the peer) receives.
 */
export function exchangeOutcome(ctx: Context, failed: boolean, failure?: unknown): ExchangeOutcome {
  if (failed) {
    if (isCancellation(ctx, failure)) {
      return { outcome: 'cancelled', errorType: CANCELLED_ERROR, statusCode: undefined, message: errorMessage(failure), error: asTyped(failure) };
    }
    const code = endsExchange(failure) ? failure.code : ErrorCode.InternalError;
    return { outcome: 'error', errorType: String(code), statusCode: String(code), message: errorMessage(failure), error: asTyped(failure) };
  }
  const response = ctx.response;
  if (response === undefined) return OK;
  if ('error' in response) {
    const code = String(response.error.code);
    return { outcome: 'error', errorType: code, statusCode: code, message: response.error.message, error: undefined };
  }
  if (ctx.method === 'tools/call' && response.result['isError'] === true) {
    return { outcome: 'tool_error', errorType: TOOL_ERROR, statusCode: undefined, message: undefined, error: undefined };
  }
  return OK;
}

function isCancellation(ctx: Context, failure: unknown): boolean {
  return failure instanceof McpLayersError && failure.reason === 'cancelled' && ctx.aborted;
}

function asTyped(failure: unknown): McpLayersError | undefined {
  return endsExchange(failure) ? failure : undefined;
}

function errorMessage(failure: unknown): string {
  return failure instanceof Error ? failure.message : String(failure);
}

/** The resource URI an exchange acts on (requests and `notifications/resources/updated`). */
export function resourceUri(ctx: Context): string | undefined {
  if (ctx.method === 'notifications/resources/updated') return stringParam(ctx.params, 'uri');
  return ctx.method.startsWith('resources/') ? ctx.target : undefined;
}

/** `params.name` of a `prompts/get`, else undefined. */
export function promptName(ctx: Context): string | undefined {
  return ctx.method === 'prompts/get' ? ctx.target : undefined;
}

function stringParam(params: JSONRPCParams | undefined, key: string): string | undefined {
  const value = params?.[key];
  return typeof value === 'string' ? value : undefined;
}

/** What is known about the network under a transport (semconv `network.*`, `server.*`). */
export interface NetworkInfo {
  /** `pipe` (stdio), `tcp`, `quic`, `unix`... */
  transport?: string | undefined;
  /** `http`, `websocket`. */
  protocolName?: string | undefined;
  /** `1.1`, `2`. */
  protocolVersion?: string | undefined;
  /** Client side: the server's host name or address. */
  serverAddress?: string | undefined;
  serverPort?: number | undefined;
}

const NETWORK_FIELDS = ['transport', 'protocolName', 'protocolVersion', 'serverAddress', 'serverPort'] as const;

/** Validates a `network` option (tracing, metrics); returns a copy holding only the fields given. */
export function validateNetwork(network: unknown, option: string): NetworkInfo {
  if (network === undefined) return {};
  if (typeof network !== 'object' || network === null) {
    throw invalidOption(option, 'an object { transport?, protocolName?, protocolVersion?, serverAddress?, serverPort? }', network);
  }
  const given = network as Record<string, unknown>;
  const out: NetworkInfo = {};
  for (const key of Object.keys(given)) {
    if (!(NETWORK_FIELDS as readonly string[]).includes(key)) throw optionProblem(option, `unknown field "${key}"; expected one of ${NETWORK_FIELDS.join(', ')}`);
    const value = given[key];
    if (value === undefined) continue;
    if (key === 'serverPort') {
      if (!Number.isInteger(value) || (value as number) < 0 || (value as number) > 65535) throw invalidOption(`${option}.serverPort`, 'a port number (0-65535)', value);
      out.serverPort = value as number;
    } else {
      if (typeof value !== 'string' || value === '') throw invalidOption(`${option}.${key}`, 'a non-empty string', value);
      out[key as Exclude<(typeof NETWORK_FIELDS)[number], 'serverPort'>] = value;
    }
  }
  return out;
}

/**
 * Best effort: infers the network from the inner transport's class name (the SDKs'
 * `StdioClientTransport`, `StreamableHTTPClientTransport`, `WebSocketClientTransport`...)
 * and, for client transports, the server from the URL it was given. Anything it cannot
 * tell stays undefined; `tracing({ network })` / `metrics({ network })` override it.
 */
export function inferNetwork(inner: Transport): NetworkInfo {
  const name = (inner as { constructor?: { name?: unknown } }).constructor?.name;
  const className = typeof name === 'string' ? name : '';
  const info: NetworkInfo = {};
  if (/stdio/i.test(className)) info.transport = 'pipe';
  else if (/websocket/i.test(className)) Object.assign(info, { transport: 'tcp', protocolName: 'websocket' });
  else if (/http|sse/i.test(className)) Object.assign(info, { transport: 'tcp', protocolName: 'http' });
  // The SDKs keep the server URL on `_url`; our own transports expose `url`.
  const url = toUrl((inner as { url?: unknown }).url) ?? toUrl((inner as { _url?: unknown })._url);
  if (url !== undefined) {
    info.serverAddress = url.hostname.replace(/^\[|\]$/g, '');
    info.serverPort = url.port === '' ? defaultPort(url.protocol) : Number(url.port);
    if (info.transport === undefined) info.transport = 'tcp';
  }
  return info;
}

function toUrl(value: unknown): URL | undefined {
  if (value instanceof URL) return value;
  if (typeof value === 'string' && /^(https?|wss?):\/\//.test(value)) {
    try {
      return new URL(value);
    } catch {
      return undefined;
    }
  }
  return undefined;
}

function defaultPort(protocol: string): number | undefined {
  if (protocol === 'https:' || protocol === 'wss:') return 443;
  if (protocol === 'http:' || protocol === 'ws:') return 80;
  return undefined;
}

/**
 * Where `tracing()` records the exchange's span in `ctx.state`, so that `metrics()`
 * (exemplars) and `logging()` (`trace_id`, `span_id`) can carry it.
 */
export const TRACE_STATE: unique symbol = Symbol('mcp-layers.trace');

export interface TraceIds {
  traceId: string;
  spanId: string;
}

/** The trace ids of the exchange's span, when `tracing()` runs in the same stack. */
export function traceIdsOf(ctx: Context): TraceIds | undefined {
  return ctx.state.get(TRACE_STATE) as TraceIds | undefined;
}

type OtelApi = typeof OtelApiModule;
let otel: OtelApi | null | undefined;

/**
 * The ids of the span active in the caller's OpenTelemetry context, when
 * @opentelemetry/api is installed and a span is active (the application's own
 * instrumentation, with or without `tracing()` in the stack).
 */
export function activeTraceIds(): TraceIds | undefined {
  if (otel === undefined) otel = tryRequirePeer<OtelApi>('@opentelemetry/api') ?? null;
  if (otel === null) return undefined;
  const span = otel.trace.getActiveSpan();
  if (span === undefined) return undefined;
  const spanContext = span.spanContext();
  if (!otel.isSpanContextValid(spanContext)) return undefined;
  return { traceId: spanContext.traceId, spanId: spanContext.spanId };
}

/**
 * Runs `next()`, then `done(failed, failure)` once it settled, and settles as `next()`
 * did (or with what `done` threw): `try { await next() } finally { done() }` without an
 * async function's suspended frame, which is most of what such a wrapper allocates.
 */
export function settled(next: () => Promise<void>, done: (failed: boolean, failure: unknown) => void): Promise<void> {
  let running: Promise<void>;
  try {
    running = next();
  } catch (error) {
    try {
      done(true, error);
    } catch (thrown) {
      return Promise.reject(thrown);
    }
    return Promise.reject(error);
  }
  return running.then(
    () => done(false, undefined),
    (error: unknown) => {
      done(true, error);
      throw error;
    },
  );
}

/**
 * Subscribes a layer to the event bus of every transport it is attached to, once per
 * bus: transports that share a bus (`wrap(..., { events })`) must not count an event
 * twice. The subscription ends when the last transport using the bus detaches.
 */
export class BusSubscriptions {
  readonly #subscribe: (host: LayerHost) => () => void;
  readonly #buses = new Map<EventBus, { count: number; detach: () => void }>();

  constructor(subscribe: (host: LayerHost) => () => void) {
    this.#subscribe = subscribe;
  }

  attach(host: LayerHost): () => void {
    const bus = host.events;
    let entry = this.#buses.get(bus);
    if (entry === undefined) {
      entry = { count: 0, detach: this.#subscribe(host) };
      this.#buses.set(bus, entry);
    }
    entry.count++;
    const held = entry;
    let detached = false;
    return () => {
      if (detached) return;
      detached = true;
      if (--held.count === 0) {
        this.#buses.delete(bus);
        held.detach();
      }
    };
  }
}

/** Subscribes `listeners` to `bus`; returns one function that removes them all. */
export function subscribeAll(bus: EventBus, listeners: { [K in keyof LayerEvents]?: (event: LayerEvents[K]) => void }): () => void {
  const offs: Array<() => void> = [];
  for (const type of Object.keys(listeners) as Array<keyof LayerEvents>) {
    const listener = listeners[type];
    if (listener !== undefined) offs.push(bus.on(type, listener as (event: LayerEvents[typeof type]) => void));
  }
  return () => {
    for (const off of offs) off();
  };
}
