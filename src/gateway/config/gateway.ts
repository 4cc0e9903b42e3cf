/**
 * The gateway's configuration file (`mcp-layers gateway --config mcp-layers.yaml`):
 *
 *   upstream:                 # what the gateway connects to, and its client-side stack
 *     command: node           #   a stdio server (one child process per session)…
 *     args: [server.js]
 *     # url: https://mcp.example.com/mcp   …or a Streamable HTTP / WebSocket server
 *     layers: [ { retry: {} }, { circuitBreaker: {} } ]
 *   downstream:               # what the gateway serves, and its server-side stack
 *     port: 8080              #   127.0.0.1 unless `host` says otherwise
 *     transports: [http, websocket]
 *     layers: [ { concurrency: { maxInFlight: 64 } } ]
 *   observability: { logs: { level: info, format: json }, tracing: { exporter: otlp } }
 *
 * docs/gateway.md is the reference; `mcp-layers schema` prints this as JSON Schema.
 */
import { z } from 'zod';
import { isName, NAME_RULE } from '../../transports/broker/names.ts';
import { boolean, choice, duration, integer, names, options, stringMap, text, url } from './fields.ts';
import { checkClients, clientEntry, unknownClients } from './clients.ts';
import { layerList } from './layers.ts';
import { RESTART_DEFAULTS } from '../supervised-child.ts';
import { BROKER_SCHEMES, parseBrokerUrl, workerConfig } from './worker.ts';

export const UPSTREAM_SCHEMES = ['http', 'https', 'ws', 'wss'] as const;
/** The URL schemes whose upstream is a service's workers on a broker (mcp-layers/nats, mcp-layers/redis): the worker's own. */
export const BROKER_URL_SCHEMES: readonly string[] = Object.values(BROKER_SCHEMES).flatMap((schemes) => schemes.map((s) => `${s}:`));

const STDIO_ONLY = ['args', 'env', 'cwd', 'stderr', 'restart'] as const;
const REMOTE_ONLY = ['headers', 'http', 'websocket', 'broker'] as const;
/** What only an MCP server reached over HTTP or WebSocket takes. */
const DIRECT_ONLY = ['headers', 'http', 'websocket'] as const;


/** An MCP server's URL, or a broker's (the service's workers). */
function upstreamUrl() {
  const accepted: readonly string[] = [...UPSTREAM_SCHEMES.map((s) => `${s}:`), ...BROKER_URL_SCHEMES];
  const expected = `an absolute upstream URL (${UPSTREAM_SCHEMES.map((s) => `${s}://`).join(', ')}; or a broker URL, ${BROKER_URL_SCHEMES.map((s) => `${s}//`).join(', ')} HOST:PORT/SERVICE)`;
  return z.string({ error: expected }).refine((value) => URL.canParse(value) && accepted.includes(new URL(value).protocol), { error: expected, params: { expected: true } });
}

const brokerOptions = options(
  {
    heartbeat: z
      .union([z.literal(false), options({ intervalMs: duration(1).optional(), timeoutMs: duration(1).optional(), maxMissed: integer(1).optional() })], { error: 'heartbeat options, or false' })
      .optional()
      .meta({ description: "Probes of each session's worker (default every 5 000 ms, 2 000 ms to answer, gone after 2 missed; false: off)." }),
    recover: z
      .union(
        [z.literal(false), options({ maxRetries: integer(1).optional(), initialDelayMs: duration().optional(), maxDelayMs: duration().optional(), timeoutMs: duration(1).optional() })],
        { error: 'recover options, or false' },
      )
      .optional()
      .meta({ description: 'Re-establishing a session on another worker when its worker is gone, by replaying its handshake (default on; false: the session closes).' }),
    publishTimeoutMs: duration(1).optional().meta({ description: 'How long a publish waits for the broker to store it (default 5 000).' }),
    prefix: text('a name').refine(isName, { error: NAME_RULE }).optional().meta({ description: 'The first part of every subject, stream and key (default mcp); the same as the workers\'.' }),
    connectOptions: z.record(z.string(), z.unknown(), { error: 'an object of the client library\'s connect options' }).optional().meta({
      description: "Passed to the client library as they are: @nats-io/transport-node's connect() (user, pass, token, tls, reconnectTimeWait…) or @redis/client's createClient() (username, password, database, socket…). Use ${ENV_VAR} for secrets.",
    }),
  },
  'The broker client of a nats:// or redis:// upstream (NatsClientTransport, RedisClientTransport options).',
);

const upstreamShape = {
  command: text('a command (the stdio MCP server to start, one process per session)').optional().meta({ description: 'A stdio MCP server: the command to run. One child process per downstream session.' }),
  args: z.array(z.string({ error: 'a string argument' }), { error: 'a list of arguments' }).optional().meta({ description: 'Arguments of `command`.' }),
  env: stringMap('environment value').optional().meta({ description: 'Environment of the child, added to HOME, LOGNAME, PATH, SHELL, TERM and USER (the SDK passes only those on).' }),
  cwd: text('a directory').optional().meta({ description: 'Working directory of the child (relative to the config file). Default: the gateway\'s.' }),
  stderr: choice(['inherit', 'ignore', 'log']).optional().meta({ description: 'The child\'s stderr: inherit (default, to the gateway\'s stderr), ignore, or log (one log record per line).' }),
  restart: z
    .union(
      [z.literal(false), options({ initialDelayMs: duration().optional(), maxDelayMs: duration().optional(), maxRestarts: integer(1).optional(), windowMs: duration(1).optional() })],
      { error: 'restart options, or false' },
    )
    .optional()
    .meta({
      description:
        'Restarting a child that exits while its session is open, the session restored by replaying its handshake (default on for the gateway, off for the worker: initialDelayMs 100, maxDelayMs 10 000; more than maxRestarts 5 crashes within windowMs 60 000 is a crash loop that ends the session; false: the session ends with the child).',
    }),
  url: upstreamUrl()
      .optional()
      .meta({
        description:
          'A remote MCP server: http(s):// (Streamable HTTP, pooled connections) or ws(s):// (WebSocket, one connection per session); or a service\'s workers on a broker: nats://HOST:PORT/SERVICE or redis(s)://HOST:PORT/SERVICE (one broker connection for every session).',
      }),
  headers: stringMap('header value').optional().meta({ description: 'Extra HTTP headers for every request / the WebSocket handshake (use ${ENV_VAR} for secrets).' }),
  http: options(
      {
        connections: integer(1).optional().meta({ description: 'Connections per origin (default max(64, 2 × downstream.maxSessions + 16): over HTTP/1.1 each session holds one for its event stream).' }),
        keepAliveTimeoutMs: duration(1).optional().meta({ description: 'Idle keep-alive, ms (default 4 000).' }),
        headersTimeoutMs: duration().optional(),
        allowH2: boolean().optional(),
        compression: boolean().optional().meta({ description: 'Negotiated compression both ways (default true).' }),
      },
      'createFetch() options: the undici connection pool shared by every session.',
    ).optional(),
  websocket: options(
      {
        connectTimeoutMs: duration(1).optional(),
        maxPayloadBytes: integer(1).optional(),
        perMessageDeflate: boolean().optional(),
        heartbeat: z.union([z.literal(false), options({ intervalMs: duration(1).optional(), timeoutMs: duration(1).optional() })], { error: 'heartbeat options, or false' }).optional(),
        reconnect: z
          .union(
            [
              z.literal(false),
              options({
                maxRetries: integer(0).optional(),
                initialDelayMs: duration().optional(),
                maxDelayMs: duration().optional(),
                queueTimeoutMs: duration(1)
                  .optional()
                  .meta({ description: 'How long a message sent while the connection is being restored waits for it before it fails, never sent (default 30 000).' }),
              }),
            ],
            { error: 'reconnect options, or false' },
          )
          .optional(),
      },
      'WebSocketClientTransport options.',
    ).optional(),
  broker: brokerOptions.optional(),
  idempotentTools: names('tool name or glob').optional().meta({ description: 'Tools safe to send twice (retried, hedged), besides those annotated readOnlyHint/idempotentHint.' }),
  nonIdempotentTools: names('tool name or glob').optional().meta({ description: 'Tools never sent twice, whatever their annotations say.' }),
  maxDepth: integer(2).optional().meta({ description: 'The deepest nesting a message from the server may have, the message itself being level 1; a deeper one is refused and the request waiting for it ends with -32600 (default 1000).' }),
  layers: layerList('upstream').optional().meta({ description: 'The client-side stack, first = outermost. Default: tracing, metrics, logging.' }),
};

type UpstreamShape = z.output<z.ZodObject<typeof upstreamShape>>;

function checkUpstream(upstream: UpstreamShape, ctx: z.RefinementCtx): void {
  const given = [upstream.command, upstream.url].filter((v) => v !== undefined).length;
  if (given !== 1) {
    ctx.addIssue({
      code: 'custom',
      message: `expected exactly one of command (a stdio server to start) or url (http(s)://, ws(s)://, or a broker URL nats:// or redis(s)://), got ${given === 0 ? 'neither' : 'both'}`,
      path: [],
    });
    return;
  }
  const restart = upstream.restart;
  if (restart !== undefined && restart !== false && restart.maxDelayMs !== undefined && restart.maxDelayMs < (restart.initialDelayMs ?? RESTART_DEFAULTS.initialDelayMs)) {
    ctx.addIssue({ code: 'custom', message: `expected at least restart.initialDelayMs (${restart.initialDelayMs ?? RESTART_DEFAULTS.initialDelayMs}), got ${restart.maxDelayMs}`, path: ['restart', 'maxDelayMs'] });
  }
  const misplaced = upstream.command === undefined ? STDIO_ONLY : REMOTE_ONLY;
  for (const key of misplaced) {
    if (upstream[key] !== undefined) {
      ctx.addIssue({ code: 'custom', message: `applies only to ${upstream.command === undefined ? 'a stdio upstream (command)' : 'a remote upstream (url)'}`, path: [key] });
    }
  }
  if (upstream.url !== undefined && URL.canParse(upstream.url)) {
    const url = new URL(upstream.url);
    const scheme = url.protocol;
    if (BROKER_URL_SCHEMES.includes(scheme)) {
      // The worker's reading of a broker URL: one rule for where the service, the credentials and TLS are.
      const parsed = parseBrokerUrl(upstream.url);
      if (!parsed.ok) ctx.addIssue({ code: 'custom', message: parsed.problem, path: ['url'] });
      for (const key of DIRECT_ONLY) {
        if (upstream[key] !== undefined) ctx.addIssue({ code: 'custom', message: 'applies only to an http(s) or ws(s) upstream', path: [key] });
      }
      return;
    }
    if (upstream.broker !== undefined) ctx.addIssue({ code: 'custom', message: 'applies only to a nats:// or redis(s):// upstream', path: ['broker'] });
    if (upstream.http !== undefined && (scheme === 'ws:' || scheme === 'wss:')) ctx.addIssue({ code: 'custom', message: 'applies only to an http(s) upstream', path: ['http'] });
    if (upstream.websocket !== undefined && (scheme === 'http:' || scheme === 'https:')) ctx.addIssue({ code: 'custom', message: 'applies only to a ws(s) upstream', path: ['websocket'] });
  }
}

export const upstreamConfig = options(upstreamShape, 'The MCP server behind the gateway: exactly one of `command` or `url`.').superRefine(checkUpstream);

/** What one upstream of several shows of a kind of entry: names (tools, prompts) or URIs (resources, templates) as globs; deny wins. */
const entryFilter = (what: string) =>
  options(
    {
      allow: names(`${what} or glob`).optional().meta({ description: `Only these ${what}s are served (default: all).` }),
      deny: names(`${what} or glob`).optional().meta({ description: `These ${what}s are never served, even when allowed.` }),
    },
    `Which ${what}s of this upstream the gateway serves: allow (default all), then deny.`,
  );

/** Upstream names become prefixes of names (tools) and of URI schemes (resources): a letter first, then letters, digits and -. */
export const UPSTREAM_NAME = /^[A-Za-z][A-Za-z0-9-]{0,31}$/;
const UPSTREAM_NAME_RULE = 'a name of 1 to 32 letters, digits and -, starting with a letter (it prefixes tool names and resource URI schemes)';

export const memberConfig = options(
  {
    ...upstreamShape,
    tools: entryFilter('tool name').optional(),
    prompts: entryFilter('prompt name').optional(),
    resources: entryFilter('resource URI').optional(),
  },
  'One of several MCP servers behind the gateway (upstreams): an upstream, plus which of its tools, prompts and resources are served.',
).superRefine((member, ctx) => {
  checkUpstream(member, ctx);
  if (member.url !== undefined && URL.canParse(member.url) && BROKER_URL_SCHEMES.includes(new URL(member.url).protocol)) {
    ctx.addIssue({ code: 'custom', message: 'a broker upstream (nats://, redis://) is served only as the one `upstream:` (replicas adopt single-upstream sessions); use an http(s):// or ws(s):// URL or a command here', path: ['url'] });
  }
});

export const PREFIX_MODES = ['always', 'on-clash', 'never'] as const;

export const federationConfig = options(
  {
    prefix: choice(PREFIX_MODES)
      .optional()
      .meta({ description: 'When names and URIs get their upstream\'s prefix: always (default: names do not change when an upstream is added), on-clash (only names two upstreams share), never (a clash is a config error at start).' }),
    separator: z
      .string({ error: 'a separator of 1 to 8 characters from A-Z a-z 0-9 _ - .' })
      .regex(/^[A-Za-z0-9_.-]{1,8}$/, { error: 'a separator of 1 to 8 characters from A-Z a-z 0-9 _ - .' })
      .optional()
      .meta({ description: 'Between the upstream\'s name and a tool or prompt name (default __). Resource URIs are prefixed as <upstream>+<uri>.' }),
    pageSize: integer(1).optional().meta({ description: 'Entries per page of a merged list (default 100).' }),
    cacheTtlMs: duration(0)
      .optional()
      .meta({ description: 'How long an upstream\'s list stays fresh when it sends no ttlMs and declares no listChanged (default 5 000; 0: never cached).' }),
  },
  'Several upstreams behind one endpoint: how their lists are merged.',
);

export const DOWNSTREAM_TRANSPORTS = ['http', 'websocket'] as const;

export const downstreamConfig = options(
  {
    host: text('a host name or address').optional().meta({ description: 'Interface to bind (default 127.0.0.1: exposing the gateway is a decision, not a default).' }),
    port: integer(0, 65535).optional().meta({ description: 'Port (default 8080; 0 picks a free one).' }),
    path: z.string({ error: 'a path starting with "/"' }).regex(/^\/[^?#]*$/, { error: 'a path starting with "/"' }).optional().meta({ description: 'The MCP endpoint, for both transports (default /mcp).' }),
    transports: z
      .array(choice(DOWNSTREAM_TRANSPORTS), { error: 'a list of transports (http, websocket)' })
      .min(1, { error: 'at least one transport (http, websocket)' })
      .optional()
      .meta({ description: 'Served on `path`: Streamable HTTP and/or WebSocket (default both).' }),
    allowedOrigins: z
      .union([z.literal('*'), names('origin pattern')], { error: '"*" or a list of origin patterns' })
      .optional()
      .meta({ description: 'Origins browsers may connect from (default: loopback origins). Requests without Origin are allowed.' }),
    allowedHosts: z
      .union([z.literal('*'), names('host name pattern')], { error: '"*" or a list of host name patterns' })
      .optional()
      .meta({ description: 'Host names clients may address the gateway by (`Host` header; globs, a port only when named). Default: loopback names on loopback connections, anything on others.' }),
    bearerTokens: names('token')
      .min(1, { error: 'at least one token' })
      .optional()
      .meta({ description: 'Clients must send `Authorization: Bearer <one of these>` (HTTP requests and WebSocket upgrades); others get 401. Use ${ENV_VAR}. Default: no authentication (keep the gateway on loopback then).' }),
    clients: z
      .array(clientEntry, { error: 'a list of clients ({ name, token | value, rateLimit?, maxInFlight?, upstreams?, tools? })' })
      .min(1, { error: 'at least one client' })
      .optional()
      .meta({ description: 'Named clients, each recognized by its bearer token (or its value of clientHeader), with its own rate limit, concurrency limit and allow-lists; the name labels logs, metrics and spans.' }),
    clientHeader: text('a header name')
      .regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/, { error: 'a header name (letters, digits, "-")' })
      .refine((name) => name.toLowerCase() !== 'authorization', { error: 'a header other than authorization (clients with a bearer token have `token`)', params: { expected: true } })
      .optional()
      .meta({ description: 'The header whose value names the clients listed with `value` (e.g. x-api-key).' }),
    unknownClients: unknownClients.optional(),
    maxSessions: integer(1).optional().meta({ description: 'Concurrent downstream sessions (default 64). Each has its own upstream session — for a stdio upstream, its own child process.' }),
    idleTimeoutMs: z.union([z.literal(false), duration(1)], { error: 'a duration in milliseconds >= 1, or false' }).optional().meta({ description: 'A session with no traffic and nothing in flight for this long is closed (default 600 000; false: never).' }),
    detachedTimeoutMs: z
      .union([z.literal(false), duration(1)], { error: 'a duration in milliseconds >= 1, or false' })
      .optional()
      .meta({ description: 'The same for an HTTP session whose client holds no stream open (no GET stream, no request being answered): clients that exit without DELETE (default 60 000; false: idleTimeoutMs applies).' }),
    handshakeTimeoutMs: z
      .union([z.literal(false), duration(1)], { error: 'a duration in milliseconds >= 1, or false' })
      .optional()
      .meta({ description: 'A WebSocket that sends nothing for this long after it connects is closed with 1008 (default 10 000; false: idleTimeoutMs applies).' }),
    heldMessageTimeoutMs: duration(1)
      .optional()
      .meta({ description: 'HTTP: how long a message from the server with no stream to go on (no GET stream, no request in flight) waits for one before a server request is answered with an error and a notification dropped (default 30 000).' }),
    evictIdleSessions: boolean().optional().meta({ description: 'At maxSessions, close the least recently active session nobody is using (nothing in flight, and a client that never spoke or holds no HTTP stream) to admit a new one, instead of refusing it with 503 (default true).' }),
    maxBodyBytes: integer(1).optional().meta({ description: 'Largest HTTP request body (default 4 MiB).' }),
    maxDepth: integer(2).optional().meta({ description: 'The deepest nesting a message from a client may have, the message itself being level 1; a deeper request is answered -32600 (default 1000).' }),
    jsonResponses: boolean()
      .optional()
      .meta({
        description:
          'HTTP: a POST holding one request whose response is the first and only message for it is answered with one application/json body instead of an event stream (default false, as the SDK server answers). Clients must accept both, and read JSON for less; an SDK client then no longer reports an aborted event stream as it closes, so what it sees differs from a direct connection to an SDK server.',
      }),
  layers: layerList('downstream').optional().meta({ description: 'The server-side stack, first = outermost. Default: tracing, metrics.' }),
  },
  'What the gateway serves.',
).superRefine(checkClients);

export const observabilityConfig = options(
  {
    logs: options({
      level: choice(['error', 'warn', 'info', 'http', 'verbose', 'debug', 'silly']).optional().meta({ description: 'Default info (LOG_LEVEL overrides).' }),
      format: choice(['json', 'pretty']).optional().meta({ description: 'json (one record per line, default when stderr is not a terminal) or pretty.' }),
    }).optional(),
    metrics: options({
      path: z.string({ error: 'a path starting with "/"' }).regex(/^\/[^?#]*$/, { error: 'a path starting with "/"' }).optional().meta({ description: 'Default /metrics.' }),
      processMetrics: boolean().optional().meta({ description: 'prom-client\'s process and Node.js metrics (default true).' }),
      auth: choice(['bearer', 'none']).optional().meta({ description: 'Whether /metrics and /readyz ask for one of downstream.bearerTokens: bearer, or none (default bearer when bearerTokens are set and the listener is not loopback, else none). /healthz is always open.' }),
    }).optional(),
    tracing: options({
      exporter: choice(['otlp', 'console', 'none']).optional().meta({ description: 'otlp: OTLP over HTTP through @opentelemetry/sdk-node; default none unless OTEL_TRACES_EXPORTER or OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT is set.' }),
      endpoint: url(['http', 'https'], 'OTLP endpoint URL').optional().meta({ description: 'OTLP traces endpoint (default: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, else http://localhost:4318/v1/traces).' }),
      headers: stringMap('header value').optional(),
      serviceName: text('a service name').optional().meta({ description: 'Default OTEL_SERVICE_NAME, else mcp-layers-gateway.' }),
    }).optional(),
  },
  'The gateway\'s own logs, metrics endpoint and trace export.',
);

export const gatewayConfig = options(
  {
    $schema: z.string().optional().meta({ description: 'For editors: the JSON Schema (`mcp-layers schema > mcp-layers.schema.json`).' }),
    upstream: upstreamConfig.optional(),
    upstreams: z
      .record(z.string(), memberConfig, { error: 'an object of upstreams by name' })
      .optional()
      .meta({ description: 'Several MCP servers behind one endpoint, by name (the name prefixes their tools, prompts and resources). Instead of `upstream`.' }),
    federation: federationConfig.optional(),
    downstream: downstreamConfig.optional(),
    shutdown: options({
      drainTimeoutMs: duration(0).optional().meta({ description: 'On SIGTERM/SIGINT: how long in-flight requests may take to finish before they are answered with an error (default 10 000).' }),
    }).optional(),
    observability: observabilityConfig.optional(),
    worker: workerConfig.optional(),
  },
  'mcp-layers gateway configuration.',
).superRefine((config, ctx) => {
  // Neither reads as it always has (the one-server form is the usual one); both is refused by name.
  if (config.upstream === undefined && config.upstreams === undefined) ctx.addIssue({ code: 'custom', message: 'missing; expected an options object', path: ['upstream'] });
  if (config.upstream !== undefined && config.upstreams !== undefined) {
    ctx.addIssue({ code: 'custom', message: 'expected exactly one of upstream (one MCP server) or upstreams (several, by name), got both', path: [] });
  }
  if (config.upstreams !== undefined) {
    const named = Object.keys(config.upstreams);
    if (named.length === 0) ctx.addIssue({ code: 'custom', message: 'expected at least one upstream', path: ['upstreams'] });
    for (const name of named) if (!UPSTREAM_NAME.test(name)) ctx.addIssue({ code: 'custom', message: `expected ${UPSTREAM_NAME_RULE}, got ${JSON.stringify(name)}`, path: ['upstreams', name] });
  }
  if (config.federation !== undefined && config.upstreams === undefined) ctx.addIssue({ code: 'custom', message: 'applies only to several upstreams (upstreams)', path: ['federation'] });
});

export type GatewayConfig = z.output<typeof gatewayConfig>;
export type UpstreamConfig = z.output<typeof upstreamConfig>;
export type MemberConfig = z.output<typeof memberConfig>;
export type FederationConfig = z.output<typeof federationConfig>;
export type DownstreamConfig = z.output<typeof downstreamConfig>;

/**
 * `mcp-layers schema`: the config as JSON Schema, for editors. What JSON Schema cannot say
 * (a secret, which is checked without ever printing it) is described by its metadata.
 */
export function configJsonSchema(): Record<string, unknown> {
  return { ...z.toJSONSchema(gatewayConfig, { io: 'input', unrepresentable: 'any' }), title: 'mcp-layers gateway and worker configuration' };
}
