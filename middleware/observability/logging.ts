/**
 * logging(): structured records on the caller's winston logger — one per exchange and
 * one per resilience or lifecycle event — with trace ids, and with secrets redacted
 * before the record reaches the logger (so before any winston format or transport runs).
 *
 *   { level: 'info', message: 'mcp outbound tools/call search: ok in 12.3 ms',
 *     event: 'exchange', transport: 'github', direction: 'outbound', kind: 'request',
 *     method: 'tools/call', id: 4, wire_ids: [7], tool: 'search', outcome: 'ok',
 *     duration_ms: 12.3, attempts: 1, trace_id: '…', span_id: '…', session_id: '…' }
 *
 * Payloads (params, results, error data, headers) are off by default; when on they are
 * redacted and truncated. docs/observability.md lists every field and level.
 */
import type { Context } from '../../src/core/context.ts';

import type { LayerEvents } from '../../src/core/events.ts';
import type { Layer, LayerHost, Next } from '../../src/core/layer.ts';
import { integerOption, invalidOption, optionProblem, optionsObject } from '../../src/core/options.ts';
import { REDACTED, type RedactRule, Redactor } from './redact.ts';
import {
  activeTraceIds,
  BusSubscriptions,
  exchangeOutcome,
  promptName,
  resourceUri,
  settled,
  subscribeAll,
  traceIdsOf,
} from './telemetry.ts';

/** What logging() needs of a logger: winston's `log(entry)`, and `isLevelEnabled` to skip work. */
export interface LogSink {
  log(entry: LogRecord): unknown;
  isLevelEnabled?(level: string): boolean;
  /** winston's level table, used to validate configured levels. */
  levels?: Record<string, number>;
}

export interface LogRecord {
  level: string;
  message: string;
  [field: string]: unknown;
}

type EventName = keyof LayerEvents;
type LevelFor<E> = string | false | ((event: E) => string | false);

export interface LoggingOptions {
  /** A winston Logger (the caller's: its formats and transports decide where records go). */
  logger: LogSink;
  /** Level of records for requests that succeeded. Default `info`. */
  level?: string;
  /**
   * Levels by record: `failure` (failed requests, default `warn`), `notification`
   * (notifications, default `debug`), and any event type (see docs). `false` silences one.
   */
  levels?: Partial<{ failure: string | false; notification: string | false } & { [K in EventName]: string | false }>;
  /** Log params, results, error data and headers: `true` (2048 characters each) or `{ maxLength }`. Default off. */
  payloads?: boolean | { maxLength?: number };
  /** Extra redaction: key names, dotted paths from the record root (`params.arguments.ssn`), or RegExps. */
  redact?: RedactRule[];
}

const DEFAULT_PAYLOAD_LENGTH = 2048;
/** How long winston's "disabled" for a level is taken as the answer. */
const DISABLED_ANSWER_MS = 1000;

/** Distinct repeating strings (methods, names, session ids) remembered scrubbed per logging() layer. */
const MAX_SCRUBBED_NAMES = 1024;

/** The level of each event's record; a function picks by content. */
const EVENT_LEVELS: { [K in EventName]: LevelFor<LayerEvents[K]> } = {
  attempt: 'debug',
  'cancel-sent': 'debug',
  cancelled: 'info',
  // A late response after a timeout is expected; an unknown one is not.
  'stray-response': (e) => (e.reason === 'late' ? 'debug' : 'warn'),
  'invalid-message': 'warn',
  'protocol-version': 'info',
  start: 'info',
  close: 'info',
  retry: 'warn',
  'retry-budget-exhausted': 'warn',
  'give-up': 'warn',
  timeout: 'warn',
  'breaker-state': (e) => (e.to === 'open' || e.to === 'isolated' ? 'warn' : 'info'),
  'breaker-rejected': 'warn',
  shed: 'warn',
  queued: 'debug',
  hedge: 'info',
  'hedge-outcome': 'debug',
  chaos: 'info',
  reconnect: (e) => (e.outcome === 'failed' || e.outcome === 'gave-up' ? 'error' : e.outcome === 'scheduled' ? 'warn' : 'info'),
  connection: (e) => (e.state === 'rejected' ? 'warn' : 'info'),
  heartbeat: (e) => (e.outcome === 'missed' ? 'warn' : 'debug'),
  'token-refresh': (e) => (e.outcome === 'failed' ? 'error' : 'info'),
  'token-store-failed': 'error',
  'batch-flushed': 'debug',
  'bytes-compressed': 'debug',
  wire: 'debug',
  // The broker transports: a message per publish is detail; a worker lost (its requests
  // redelivered, its sessions replayed elsewhere) and a foreign publisher are not.
  'broker-published': 'debug',
  'broker-redelivered': 'warn',
  'broker-deduplicated': 'info',
  // A worker leaving on its own (its close) says no reason; a client that lost its worker says how.
  'broker-worker': (e) => (e.state === 'left' && e.reason !== undefined ? 'warn' : 'info'),
  'broker-session': (e) => (e.state === 'replayed' ? 'warn' : 'info'),
  'broker-garbage': 'warn',
};

/**
 * Record fields whose values this layer produces itself (vocabulary, numbers, hex ids,
 * the transport's configured name): redaction skips them. Everything else — messages,
 * methods, names, URIs, reasons, errors, payloads, event fields — is scrubbed.
 */
const TRUSTED_FIELDS: ReadonlySet<string> = new Set([
  'level', 'event', 'transport', 'direction', 'kind', 'outcome', 'duration_ms', 'attempts', 'wire_ids', 'trace_id', 'span_id',
]);

/** Every top-level field an exchange record may carry. */
const EXCHANGE_FIELDS = [
  'level', 'message', 'event', 'transport', 'direction', 'kind', 'method', 'id', 'tool', 'prompt', 'resource_uri', 'trace_id', 'span_id',
  'session_id', 'protocol_version', 'outcome', 'duration_ms', 'attempts', 'wire_ids', 'error', 'params', 'result', 'headers',
].filter((field) => !TRUSTED_FIELDS.has(field));

/** Wire ids of an outbound exchange's attempts, collected from `attempt` events. */
const WIRE_IDS = Symbol('mcp-layers.logging.wire-ids');

const KNOWN = ['logger', 'level', 'levels', 'payloads', 'redact'];

export function logging(options?: LoggingOptions): Layer {
  const o = optionsObject(options, 'logging', KNOWN);
  const candidate = o.logger;
  if (typeof candidate !== 'object' || candidate === null || typeof candidate.log !== 'function') {
    throw invalidOption('logging.logger', 'a winston Logger (an object with a log(entry) method)', candidate);
  }
  const logger: LogSink = candidate;
  const knownLevels = typeof logger.levels === 'object' && logger.levels !== null ? logger.levels : undefined;
  const checkLevel = (value: unknown, option: string, allowFalse: boolean): string | false => {
    if (allowFalse && value === false) return false;
    if (typeof value !== 'string' || value === '' || (knownLevels !== undefined && !(value in knownLevels))) {
      const expected = knownLevels === undefined ? 'a level name' : `one of the logger's levels (${Object.keys(knownLevels).join(', ')})`;
      throw invalidOption(option, allowFalse ? `${expected} or false` : expected, value);
    }
    return value;
  };
  const okLevel = checkLevel(o.level ?? 'info', 'logging.level', false) as string;
  const levels = o.levels ?? {};
  if (typeof levels !== 'object' || levels === null) throw invalidOption('logging.levels', 'an object of record → level', levels);
  const eventLevels: Record<string, LevelFor<never>> = { ...EVENT_LEVELS };
  let failureLevel: string | false = 'warn';
  let notificationLevel: string | false = 'debug';
  for (const [key, value] of Object.entries(levels)) {
    const level = checkLevel(value, `logging.levels.${key}`, true);
    if (key === 'failure') failureLevel = level;
    else if (key === 'notification') notificationLevel = level;
    else if (key in EVENT_LEVELS) eventLevels[key] = level;
    else throw optionProblem('logging.levels', `unknown record "${key}"; expected failure, notification or an event type (${Object.keys(EVENT_LEVELS).join(', ')})`);
  }
  const payloads = o.payloads ?? false;
  let maxPayload = 0;
  if (payloads === true) maxPayload = DEFAULT_PAYLOAD_LENGTH;
  else if (typeof payloads === 'object' && payloads !== null) {
    const cut = optionsObject(payloads, 'logging.payloads', ['maxLength']);
    maxPayload = integerOption('logging.payloads.maxLength', cut.maxLength, DEFAULT_PAYLOAD_LENGTH, 16);
  } else if (payloads !== false) {
    throw invalidOption('logging.payloads', 'true, false or { maxLength }', payloads);
  }
  const redactor = new Redactor(o.redact ?? [], 'logging.redact');

  // A winston logger's answers, for as long as its own level stays what it was (the answer
  // allocates): a level it said was enabled is not asked again — were a transport's level
  // raised meanwhile, winston still drops the record itself, each transport checking every
  // record; a level it said was disabled (every request's `attempt` record at debug) is
  // not asked again for DISABLED_ANSWER_MS, so a transport's level lowered is seen within
  // that time. Other sinks are asked every time.
  const enabledLevels = new Set<string>();
  const disabledUntil = new Map<string, number>();
  let enabledFor: string | undefined;
  const enabled = (level: string | false): level is string => {
    if (level === false) return false;
    const check = logger.isLevelEnabled;
    if (check === undefined) return true;
    const current = (logger as { level?: unknown }).level;
    if (typeof current !== 'string') return check.call(logger, level);
    if (current !== enabledFor) {
      enabledLevels.clear();
      disabledUntil.clear();
      enabledFor = current;
    }
    if (enabledLevels.has(level)) return true;
    const until = disabledUntil.get(level);
    if (until !== undefined && performance.now() < until) return false;
    if (!check.call(logger, level)) {
      disabledUntil.set(level, performance.now() + DISABLED_ANSWER_MS);
      return false;
    }
    enabledLevels.add(level);
    return true;
  };

  /** Payloads already redacted as they were added to a record. */
  const clean = new WeakSet<object>();

  /** The only way out for records built from events: redacted here, before the logger sees them. */
  function emit(record: LogRecord): void {
    write(redactor.redactRecord(record, clean, TRUSTED_FIELDS));
  }

  function write(record: LogRecord): void {
    try {
      logger.log(record);
    } catch {
      // A broken logger must not break the message path (and has nowhere to report).
    }
  }

  /** A payload for the record: redacted, and cut to `maxPayload` characters of JSON. */
  function payload(value: unknown): unknown {
    const redacted = redactor.redact(value);
    const text = JSON.stringify(redacted);
    if (text === undefined || text.length <= maxPayload) {
      if (typeof redacted === 'object' && redacted !== null) clean.add(redacted);
      return redacted;
    }
    return redactor.text(`${text.slice(0, maxPayload)}… (${text.length - maxPayload} more characters)`);
  }

  /**
   * Adds the fields that place a record in its exchange; `scrub` is applied to the strings
   * that come from outside, `name` (the same rules, remembered) to those that repeat.
   */
  function addExchangeFields(record: LogRecord, ctx: Context, scrub: (text: string) => string, name: (text: string) => string): void {
    const id = ctx.id;
    if (id !== undefined) record['id'] = typeof id === 'string' ? scrub(id) : id;
    const tool = ctx.tool;
    if (tool !== undefined) record['tool'] = name(tool);
    const prompt = promptName(ctx);
    if (prompt !== undefined) record['prompt'] = name(prompt);
    const uri = resourceUri(ctx);
    if (uri !== undefined) record['resource_uri'] = scrub(uri);
    const ids = traceIdsOf(ctx) ?? activeTraceIds();
    if (ids !== undefined) {
      record['trace_id'] = ids.traceId;
      record['span_id'] = ids.spanId;
    }
    const { sessionId, protocolVersion } = ctx.session;
    if (sessionId !== undefined) record['session_id'] = name(sessionId);
    if (protocolVersion !== undefined) record['protocol_version'] = name(protocolVersion);
  }

  /** Leaves strings as they are: for records `emit()` redacts whole. */
  const asIs = (text: string): string => text;
  const scrub = (text: string): string => redactor.text(text);
  // Methods, tool and prompt names, session ids and protocol versions repeat from record
  // to record: each is scrubbed once (the rules never change), up to a bound.
  const scrubbedNames = new Map<string, string>();
  const scrubName = (text: string): string => {
    let out = scrubbedNames.get(text);
    if (out === undefined) {
      out = redactor.text(text);
      if (scrubbedNames.size < MAX_SCRUBBED_NAMES) scrubbedNames.set(text, out);
    }
    return out;
  };

  function headersOf(ctx: Context): unknown {
    if (ctx.direction === 'outbound') return ctx.options?.headers;
    const extra = ctx.extra as { requestInfo?: { headers?: unknown }; request?: { headers?: unknown } } | undefined;
    return extra?.requestInfo?.headers ?? extra?.request?.headers;
  }

  // Exchange records are redacted as they are built, field by field, with the rules
  // redactRecord() applies (text scrubbed, payloads already redacted, fields named like a
  // secret replaced), so the record is not walked again. Path rules need the whole record.
  const buildRedacted = !redactor.hasPathRules;
  const secretFields = EXCHANGE_FIELDS.filter((field) => redactor.isSecretKey(field));

  function logExchange(ctx: Context, started: number, failed: boolean, failure: unknown): void {
    const outcome = exchangeOutcome(ctx, failed, failure);
    const level = ctx.kind === 'notification' ? notificationLevel : outcome.outcome === 'ok' || outcome.outcome === 'cancelled' ? okLevel : failureLevel;
    if (!enabled(level)) return;
    const durationMs = Math.round((performance.now() - started) * 10) / 10;
    const target = ctx.target;
    const text = buildRedacted ? scrub : asIs;
    const name = buildRedacted ? scrubName : asIs;
    const record: LogRecord = {
      level,
      message: text(`mcp ${ctx.direction} ${ctx.method}${target === undefined ? '' : ` ${target}`}: ${outcome.outcome} in ${durationMs} ms`),
      event: 'exchange',
      transport: ctx.session.name,
      direction: ctx.direction,
      kind: ctx.kind,
      method: name(ctx.method),
    };
    addExchangeFields(record, ctx, text, name);
    record['outcome'] = outcome.outcome;
    record['duration_ms'] = durationMs;
    if (ctx.direction === 'outbound' && ctx.kind === 'request') {
      record['attempts'] = ctx.attempts;
      const wireIds = ctx.state.get(WIRE_IDS);
      if (wireIds !== undefined) record['wire_ids'] = wireIds;
    }
    const response = ctx.response;
    if (outcome.outcome === 'error' || outcome.outcome === 'cancelled') {
      const error: Record<string, unknown> = { message: outcome.message };
      if (outcome.statusCode !== undefined) error['code'] = Number(outcome.statusCode);
      if (outcome.error !== undefined) Object.assign(error, { layer: outcome.error.layer, reason: outcome.error.reason });
      if (maxPayload > 0 && response !== undefined && 'error' in response && response.error.data !== undefined) error['data'] = payload(response.error.data);
      record['error'] = buildRedacted ? redactor.redact(error) : error;
    }
    if (maxPayload > 0) {
      if (ctx.params !== undefined) record['params'] = payloadField(payload(ctx.params));
      if (response !== undefined && 'result' in response) record['result'] = payloadField(payload(response.result));
      const headers = headersOf(ctx);
      if (headers !== undefined) record['headers'] = payloadField(payload(headers));
    }
    if (!buildRedacted) {
      emit(record);
      return;
    }
    for (const field of secretFields) if (field in record) record[field] = REDACTED;
    write(record);
  }

  /** What redactRecord() would leave of a payload: a string (cut) is scrubbed once more. */
  function payloadField(value: unknown): unknown {
    return buildRedacted && typeof value === 'string' ? redactor.text(value) : value;
  }

  function handle(ctx: Context, next: Next): Promise<void> {
    const started = performance.now();
    return settled(next, (failed, failure) => logExchange(ctx, started, failed, failure));
  }

  /** One record per event; `ctx` becomes the exchange's fields, the rest is copied in snake_case. */
  function eventRecord<K extends EventName>(type: K, event: LayerEvents[K], transport: string): void {
    if (type === 'attempt') {
      const { ctx, wireId } = event as LayerEvents['attempt'];
      // A new array per attempt: a record already logged keeps the ids it was given.
      const ids = ctx.state.get(WIRE_IDS) as unknown[] | undefined;
      ctx.state.set(WIRE_IDS, ids === undefined ? [wireId] : [...ids, wireId]);
    }
    const chosen = eventLevels[type] as LevelFor<LayerEvents[K]>;
    const level = typeof chosen === 'function' ? chosen(event) : chosen;
    if (!enabled(level)) return;
    const ctx = (event as { ctx?: Context }).ctx;
    const record: LogRecord = {
      level,
      message: ctx === undefined ? `mcp ${type}` : `mcp ${type}: ${ctx.method}${ctx.target === undefined ? '' : ` ${ctx.target}`}`,
      event: type,
    };
    if (ctx === undefined) {
      record['transport'] = transport;
      const ids = activeTraceIds();
      if (ids !== undefined) {
        record['trace_id'] = ids.traceId;
        record['span_id'] = ids.spanId;
      }
    } else {
      record['transport'] = ctx.session.name;
      record['direction'] = ctx.direction;
      record['kind'] = ctx.kind;
      record['method'] = ctx.method;
      addExchangeFields(record, ctx, asIs, asIs);
    }
    for (const [key, value] of Object.entries(event)) {
      if (key === 'ctx' || value === undefined) continue;
      const field = snake(key);
      // An event's own field never hides an exchange field (`connection` has its own `transport`).
      record[field in record ? `event_${field}` : field] = value instanceof Error ? { name: value.name, message: value.message } : value;
    }
    emit(record);
  }

  const subscriptions = new BusSubscriptions((host: LayerHost) => {
    const transport = host.session.name;
    const listeners: { [K in EventName]?: (event: LayerEvents[K]) => void } = {};
    for (const type of Object.keys(EVENT_LEVELS) as EventName[]) {
      // `close` is published after layers detach; the detach below records it instead.
      if (type === 'close') continue;
      (listeners as Record<string, unknown>)[type] = (event: LayerEvents[typeof type]) => eventRecord(type, event, transport);
    }
    return subscribeAll(host.events, listeners);
  });

  return {
    name: 'logging',
    handle,
    attach(host: LayerHost) {
      const detach = subscriptions.attach(host);
      return () => {
        detach();
        const chosen = eventLevels['close'];
        const level = typeof chosen === 'function' || chosen === undefined ? 'info' : chosen;
        if (!enabled(level)) return;
        const { session } = host;
        emit({
          level,
          message: `mcp close: ${session.name}`,
          event: 'close',
          transport: session.name,
          ...(session.sessionId === undefined ? {} : { session_id: session.sessionId }),
          ...(session.protocolVersion === undefined ? {} : { protocol_version: session.protocolVersion }),
        });
      };
    },
  };
}

const snakeCase = new Map<string, string>();

/** `delayMs` → `delay_ms`, memoized: event field names are few. */
function snake(key: string): string {
  let out = snakeCase.get(key);
  if (out === undefined) {
    out = key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
    if (snakeCase.size < 1024) snakeCase.set(key, out);
  }
  return out;
}
