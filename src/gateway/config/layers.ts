/**
 * The option shapes of the layers, as configuration: one entry per layer factory, with
 * the same names, units and ranges as the factory (docs/layers.md), limited to what can
 * be written in a file (functions, backoff objects and shared budgets stay in code).
 *
 * A stack is a list of single-key entries, first = outermost, exactly as `wrap()` takes
 * the factories' results:
 *
 *   layers:
 *     - logging: {}
 *     - retry: { maxAttempts: 3 }
 *     - when: { method: tools/call, tool: "slow_*" }
 *       layers:
 *         - timeout: { attemptMs: 120000 }
 *
 * This file is the one place these shapes are written down; the JSON Schema
 * (`mcp-layers schema`), the validation of config files and the types src/gateway/stack.ts
 * builds layers from all come from it. The factories keep their own validation: whatever
 * only they can check (a breaker kind's own options, maxDelayMs >= initialDelayMs...) is
 * reported under the same path when the stack is built, because stack.ts builds each
 * factory at its entry's place (optionsAt, src/core/options.ts).
 */
import { z } from 'zod';
import { boolean, choice, duration, integer, names, number, openRatio, options, patterns, rate, text } from './fields.ts';

const budget = z
  .union([z.literal(false), options({ percent: number(0, 100).optional(), ttlMs: number(10).optional(), minPerSecond: number(0).optional() })], {
    error: 'budget options { percent, ttlMs, minPerSecond }, or false',
  })
  .meta({ description: 'Retry budget: retries may add at most `percent` of the requests seen over `ttlMs`, plus `minPerSecond` (default 0.2 / 10 000 / 10); false for none.' });

export const retryOptions = options(
  {
    maxAttempts: integer(1).optional().meta({ description: 'Attempts in all, the first included (default 3).' }),
    backoff: options({
      initialDelayMs: duration().optional().meta({ description: 'Scale of the first delay (default 200).' }),
      maxDelayMs: duration().optional().meta({ description: 'Longest delay (default 10 000).' }),
      exponent: number(1).optional().meta({ description: 'Growth per attempt (default 2).' }),
    }, 'Exponential backoff with decorrelated jitter.').optional(),
    budget: budget.optional(),
    idempotent: boolean().optional().meta({ description: 'true: every request through this layer is safe to send twice; false: none is. Default: per request (read-only methods, annotated tools).' }),
    maxRetryAfterMs: duration().optional().meta({ description: 'Longest server-directed delay to wait for (default 60 000).' }),
  },
  'Sends an outbound request again after a transient failure, when that is safe.',
);

const timeoutShape = {
  attemptMs: duration(1).optional().meta({ description: 'Deadline of each call through this layer (each attempt, below retry), ms. Default 30 000 unless only `totalMs` is given.' }),
  perMethod: z
    .record(text('a method name or glob'), z.union([duration(1), z.literal(false)], { error: 'a duration in milliseconds >= 1, or false' }), {
      error: 'an object of method name (or glob) to milliseconds or false',
    })
    .optional()
    .meta({ description: '`attemptMs` per method (names or globs, first match wins); false exempts a method.' }),
  resetOnProgress: boolean().optional().meta({ description: 'Progress notifications push the attempt deadline further (default false).' }),
  maxAttemptMs: duration(1).optional().meta({ description: 'With resetOnProgress: the attempt\'s ceiling however much progress arrives, ms (default 10 × attemptMs).' }),
};

export const timeoutOptions = options(
  {
    ...timeoutShape,
    totalMs: duration(1).optional().meta({ description: 'Deadline of the whole exchange across attempts, ms. Default none.' }),
  },
  'Deadlines for outbound requests; on expiry the attempt is cancelled on the wire.',
);

export const circuitBreakerOptions = options(
  {
    breaker: choice(['consecutive', 'sampling', 'count']).optional().meta({ description: 'consecutive (default): opens after `consecutiveFailures` failures in a row; sampling: above `failureRatio` over `windowMs`; count: above `failureRatio` over the last `windowCalls` calls.' }),
    consecutiveFailures: integer(1).optional().meta({ description: 'consecutive: failures in a row that open the breaker (default 5).' }),
    failureRatio: openRatio().optional().meta({ description: 'sampling, count: ratio of failed calls, between 0 and 1 exclusive, above which the breaker opens (default 0.5).' }),
    windowMs: duration(1000).optional().meta({ description: 'sampling: the window, ms (default 30 000).' }),
    minSamples: integer(1).optional().meta({ description: 'sampling, count: calls observed in the window before the ratio is trusted and the breaker may open (default 20).' }),
    windowCalls: integer(1).optional().meta({ description: 'count: the window, in calls (default 100).' }),
    halfOpenAfterMs: duration(1).optional().meta({ description: 'How long the breaker stays open before a probe, ms (default 5 000).' }),
    scope: choice(['transport', 'method', 'tool']).optional().meta({ description: 'One breaker for the upstream (default), per method, or per tool.' }),
    maxKeys: integer(1).optional().meta({ description: 'Most breakers kept with scope method/tool (default 256).' }),
  },
  'Stops sending to a peer that keeps failing, and fails fast meanwhile.',
);

export const concurrencyOptions = options(
  {
    maxInFlight: integer(1).optional().meta({ description: 'Requests running at once, per direction (default 100).' }),
    maxQueued: integer(0).optional().meta({ description: 'Requests waiting for a slot, per direction (default 0).' }),
    direction: choice(['outbound', 'inbound', 'both']).optional().meta({ description: 'Which requests are limited (default both).' }),
    retryAfterMs: duration().optional().meta({ description: 'Hint for the peer in the error answering a shed inbound request.' }),
  },
  'A bulkhead: at most maxInFlight requests at once, maxQueued more waiting, shed the rest.',
);

export const hedgingOptions = options(
  {
    delayMs: duration().optional().meta({ description: 'Hedge after this long (default 1 000; with percentile, until minSamples were seen).' }),
    percentile: number(1, 99.99).optional().meta({ description: 'Hedge when slower than this percentile of recent latencies (default 95 unless delayMs alone is given).' }),
    maxHedges: integer(1, 10).optional().meta({ description: 'Extra attempts per request (default 1).' }),
    minSamples: integer(1, 1000).optional().meta({ description: 'Latencies needed before the percentile is trusted (default 20).' }),
    budget: budget.optional(),
    idempotent: boolean().optional().meta({ description: 'As for retry.' }),
  },
  'Sends a slow idempotent read again and takes whichever answer comes first.',
);

export const chaosOptions = options(
  {
    seed: integer(-0x8000_0000, 0x7fff_ffff).optional().meta({ description: 'PRNG seed (default 1): the same seed and traffic give the same faults.' }),
    latency: z
      .strictObject(
        {
          delayMs: z.union([duration(), z.tuple([duration(), duration()], { error: 'a [min, max] pair of durations' })], { error: 'a duration or a [min, max] pair' }),
          rate: rate().optional(),
        },
        { error: 'an object { delayMs, rate? } (a bare number names no unit)' },
      )
      .optional()
      .meta({ description: 'Added latency: { delayMs: number | [min, max], rate } (rate: the share of requests delayed, default 1).' }),
    errorRate: rate().optional().meta({ description: 'Share of requests failed without sending (default 0).' }),
    dropRate: rate().optional().meta({ description: 'Share of requests whose response is lost (default 0).' }),
    disconnectRate: rate().optional().meta({ description: 'Share of requests failed as a lost connection after sending (default 0).' }),
    direction: choice(['outbound', 'inbound', 'both']).optional().meta({ description: 'Which requests get faults (default outbound).' }),
    enabled: boolean().optional(),
  },
  'Deterministic fault injection.',
);

/** A stage of standard(): that layer's options, or false to leave it out. */
const stage = <T extends z.ZodType>(schema: T, what: string) => z.union([z.literal(false), schema], { error: `${what} options, or false to leave the stage out` });

export const standardOptions = options(
  {
    concurrency: stage(concurrencyOptions, 'concurrency').optional().meta({ description: 'Default { maxInFlight: 1000, maxQueued: 0 }.' }),
    totalTimeout: z.union([z.literal(false), duration(1)], { error: 'a duration in milliseconds >= 1, or false' }).optional().meta({ description: 'The exchange deadline across all attempts, ms (default 30 000).' }),
    retry: stage(retryOptions, 'retry').optional().meta({ description: 'Default { maxAttempts: 3 }.' }),
    circuitBreaker: stage(circuitBreakerOptions, 'circuitBreaker').optional().meta({ description: 'Default: sampling, > 25 % failures over 30 s once 10 calls were seen; probe after 5 s.' }),
    attemptTimeout: z
      .union([z.literal(false), duration(1), options(timeoutShape)], { error: 'a duration in milliseconds, timeout options without totalMs, or false' })
      .optional()
      .meta({ description: 'Each attempt\'s deadline, ms (default 10 000).' }),
  },
  'The recommended stack: concurrency → total timeout → retry → circuit breaker → attempt timeout.',
);

export const batchingOptions = options(
  {
    maxMessages: integer(1).optional().meta({ description: 'Most messages per JSON-RPC array (default 32).' }),
    maxDelayMs: duration().optional().meta({ description: 'How long a message may wait for company (default 0: the current turn of the event loop).' }),
  },
  'Coalesces outbound messages into JSON-RPC arrays (WebSocket, HTTP client; protocol 2025-03-26 only).',
);

export const compressionOptions = options(
  {
    encodings: z.array(choice(['zstd', 'br', 'gzip', 'deflate']), { error: 'a list of encodings' }).optional().meta({ description: 'Allowed codings, most preferred first (default zstd, br, gzip, deflate).' }),
    minBytes: integer(0).optional().meta({ description: 'Smaller messages go uncompressed, bytes (default 1024).' }),
  },
  'Compresses what crosses the wire with the transport\'s own negotiated mechanism.',
);

const redact = names('redaction rule (a key name or a dotted path)').meta({ description: 'Extra redaction: key names or dotted paths.' });

export const tracingOptions = options(
  {
    captureArguments: boolean().optional().meta({ description: 'Record gen_ai.tool.call.arguments (redacted, truncated). Default false.' }),
    captureResults: boolean().optional().meta({ description: 'Record gen_ai.tool.call.result (redacted, truncated). Default false.' }),
    maxCaptureLength: integer(16).optional().meta({ description: 'Longest captured argument or result (default 4096).' }),
    resourceUriInSpanName: boolean().optional().meta({ description: 'Use the resource URI in span names (default false).' }),
    redact: redact.optional(),
  },
  'One OpenTelemetry span per exchange (the gateway configures the SDK: observability.tracing).',
);

export const metricsOptions = options(
  {
    prefix: z.string({ error: 'a metric name prefix ([a-zA-Z_][a-zA-Z0-9_]*)' }).regex(/^([a-zA-Z_][a-zA-Z0-9_]*)?$/, { error: 'a metric name prefix ([a-zA-Z_][a-zA-Z0-9_]*)' }).optional(),
    buckets: z.array(z.number({ error: 'a positive number (seconds)' }).gt(0, { error: 'a positive number (seconds)' }), { error: 'an increasing list of positive numbers (seconds)' }).min(1, { error: 'an increasing list of positive numbers (seconds)' }).optional().meta({ description: 'Operation and session duration buckets, seconds (default: the semconv advice).' }),
    maxLabelValues: integer(1).optional().meta({ description: 'Distinct values per label before `_other` (default 100).' }),
  },
  'Prometheus metrics in the gateway\'s registry (served at /metrics).',
);

export const loggingOptions = options(
  {
    level: text('a level name').optional().meta({ description: 'Level of records for requests that succeeded (default info).' }),
    levels: z
      .record(text('a record name'), z.union([text('a level name'), z.literal(false)], { error: 'a level name or false' }), { error: 'an object of record → level' })
      .optional()
      .meta({ description: 'Levels by record: failure, notification, or an event type; false silences one.' }),
    payloads: z
      .union([boolean(), options({ maxLength: integer(16).optional() })], { error: 'true, false or { maxLength }' })
      .optional()
      .meta({ description: 'Log params, results, error data and headers (redacted, truncated). Default false.' }),
    redact: redact.optional(),
  },
  'Structured records on the gateway\'s logger, one per exchange and per event; secrets redacted.',
);

export const oauthOptions = options(
  {
    issuer: text('an issuer URL').optional().meta({ description: 'The authorization server; its token endpoint is discovered.' }),
    tokenEndpoint: text('a token endpoint URL').optional(),
    clientId: text('a client id').optional(),
    clientAuth: z
      .discriminatedUnion(
        'method',
        [
          options({ method: z.literal(['client_secret_basic', 'client_secret_post', 'client_secret_jwt']), clientSecret: text('a client secret (use ${ENV_VAR})') }),
          options({ method: z.literal('none') }),
        ],
        { error: 'client authentication { method: client_secret_basic | client_secret_post | client_secret_jwt, clientSecret } or { method: none }' },
      )
      .optional()
      .meta({ description: 'How the gateway authenticates to the token endpoint (default { method: none }). Put secrets in the environment: clientSecret: ${CLIENT_SECRET}.' }),
    grant: choice(['client_credentials', 'refresh_token']).optional(),
    scopes: names('scope').optional(),
    resource: z.union([text('a resource URL'), names('resource URL')], { error: 'a resource URL or a list of them' }).optional(),
    refreshSkewMs: duration().optional(),
    store: options({ file: text('a file path') }, 'Where tokens are kept (a rotated refresh token is saved there). Default: memory.').optional(),
    timeoutMs: duration(1).optional(),
    retry: options({ maxRetries: integer(1).optional(), initialDelayMs: duration().optional(), maxDelayMs: duration().optional() }).optional(),
    breaker: options({ consecutiveFailures: integer(1).optional(), halfOpenAfterMs: duration(1).optional() }).optional(),
    perMessageHeaders: boolean().optional(),
  },
  'OAuth 2.0 access tokens for the upstream, kept fresh (HTTP and WebSocket upstreams).',
);

export const matchOptions = options(
  {
    method: patterns('method').optional(),
    tool: patterns('tool name').optional(),
    prompt: patterns('prompt name').optional(),
    resource: patterns('resource URI').optional(),
    direction: choice(['outbound', 'inbound']).optional(),
    kind: choice(['request', 'notification']).optional(),
  },
  'Which exchanges the layers apply to (globs; every field given must match).',
);

/** Every layer a config can name, with its options. `when` is the one entry with two keys. */
export const LAYER_OPTIONS = {
  standard: standardOptions,
  retry: retryOptions,
  timeout: timeoutOptions,
  circuitBreaker: circuitBreakerOptions,
  concurrency: concurrencyOptions,
  hedging: hedgingOptions,
  chaos: chaosOptions,
  batching: batchingOptions,
  compression: compressionOptions,
  tracing: tracingOptions,
  metrics: metricsOptions,
  logging: loggingOptions,
  oauth: oauthOptions,
} as const;

// Named definitions in the JSON Schema (`$defs`), so editors show them by name and each is written once.
for (const [name, schema] of Object.entries(LAYER_OPTIONS)) z.globalRegistry.add(schema, { ...schema.meta(), id: `${name}Options` });
z.globalRegistry.add(matchOptions, { ...matchOptions.meta(), id: 'match' });

export type LayerName = keyof typeof LAYER_OPTIONS;
export const LAYER_NAMES = Object.keys(LAYER_OPTIONS) as LayerName[];

/** Which side of the gateway a stack belongs to: client-side (upstream) or server-side (downstream). */
export type Side = 'upstream' | 'downstream';

/** Layers that only make sense on one side. */
export const SIDE_ONLY: Partial<Record<LayerName, Side>> = { oauth: 'upstream' };

export const layerNamesFor = (side: Side): LayerName[] => LAYER_NAMES.filter((name) => (SIDE_ONLY[name] ?? side) === side);

export type LayerOptionsOf<N extends LayerName> = z.output<(typeof LAYER_OPTIONS)[N]>;

/** A parsed stack entry. */
export type LayerEntry = { [N in LayerName]: { readonly [K in N]: LayerOptionsOf<N> } }[LayerName] | WhenEntry | UnlessEntry;

/** `when(match, ...layers)`: the layers apply to the exchanges `when` selects. */
export interface WhenEntry {
  readonly when: z.output<typeof matchOptions>;
  readonly layers: readonly LayerEntry[];
}

/**
 * `when(ctx => !match(ctx), ...layers)`: the layers apply to every exchange `unless`
 * does not select. With a `when` for the same match it gives "these get X, the rest get
 * Y" — a deadline can only be shortened by an inner layer, never lengthened, so
 * `slow_*` tools get 120 s only if the 30 s for everything else skips them.
 */
export interface UnlessEntry {
  readonly unless: z.output<typeof matchOptions>;
  readonly layers: readonly LayerEntry[];
}

/** Entry kinds besides the layers themselves. */
export const CONDITIONAL_ENTRIES = ['when', 'unless'] as const;

const lists = new Map<Side, z.ZodType<LayerEntry[]>>();

/**
 * The stack of one side: `[{ retry: {...} }, { when: {...}, layers: [...] }]`. One schema
 * per side, however many sections hold a stack of it (the gateway's downstream, the
 * worker's): the JSON Schema names it once (`$defs.downstreamLayers`).
 */
export function layerList(side: Side): z.ZodType<LayerEntry[]> {
  const known = lists.get(side);
  if (known !== undefined) return known;
  const branches: z.ZodType[] = layerNamesFor(side).map((name) =>
    z.strictObject({ [name]: LAYER_OPTIONS[name] }).meta({ title: name, description: LAYER_OPTIONS[name].description }),
  );
  const list: z.ZodType<LayerEntry[]> = z.array(
    z.union([
      ...branches,
      z.strictObject({
        when: matchOptions,
        get layers() {
          return list;
        },
      }).meta({ title: 'when', description: 'Applies `layers` only to the exchanges `when` selects.' }),
      z.strictObject({
        unless: matchOptions,
        get layers() {
          return list;
        },
      }).meta({ title: 'unless', description: 'Applies `layers` to every exchange `unless` does not select.' }),
    ]),
    { error: 'a list of layers' },
  ).meta({ id: `${side}Layers`, description: `The ${side === 'upstream' ? 'client-side' : 'server-side'} stack, first = outermost: one { <layer>: <options> } per entry, or { when, layers } / { unless, layers }.` }) as unknown as z.ZodType<LayerEntry[]>;
  lists.set(side, list);
  return list;
}
