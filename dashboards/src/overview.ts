/** mcp-overview.json: traffic, errors, latency, in-flight requests and sessions. */
import type { DashboardSpec, PanelSpec } from './grafana.ts';
import { FAILED, NOT_CANCELLED, quantile, rate, ratio, REQUESTS, sel, sum } from './query.ts';

const CLIENT = 'mcp_client_operation_duration_seconds';
const SERVER = 'mcp_server_operation_duration_seconds';
const SIDES = { sent: CLIENT, received: SERVER } as const;

const TOOL_CALLS = 'mcp_method_name="tools/call"';
/** Long-lived by design (a subscription lives until the application ends it): kept out of latency percentiles. */
const TIMED_REQUESTS = 'mcp_method_name!~"notifications/.*|subscriptions/listen"';

function percentiles(histogram: typeof CLIENT | typeof SERVER, by: string, ...matchers: string[]): PanelSpec['queries'] {
  return [0.5, 0.95, 0.99].map((q) => ({ expr: quantile(q, histogram, [by], ...matchers), legend: `p${q * 100} {{${by}}}` }));
}

const ERROR_THRESHOLDS: PanelSpec['thresholds'] = [
  [null, 'green'],
  [0.01, 'orange'],
  [0.05, 'red'],
];

export const overview: DashboardSpec = {
  uid: 'mcp-layers-overview',
  title: 'MCP / Overview',
  description: 'mcp-layers: MCP traffic, errors, latency and sessions of every wrapped transport (metrics() layer). docs/observability.md explains each panel.',
  rows: [
    {
      title: 'At a glance',
      panels: [
        {
          kind: 'stat',
          width: 6,
          height: 4,
          title: 'Requests sent',
          description: 'Requests this side sent per second (outbound: a client\'s tool calls, a server\'s sampling requests), all methods, notifications excluded.',
          unit: 'reqps',
          queries: [{ expr: sum([], rate(`${CLIENT}_count`, REQUESTS)) }],
        },
        {
          kind: 'stat',
          width: 6,
          height: 4,
          title: 'Error ratio (sent)',
          description: 'Share of requests sent that failed: a JSON-RPC error (the peer\'s or one the stack synthesized: timeout, circuit open, shed...) or a tool result with isError. Cancelled requests are neither failures nor successes and are left out of the ratio. Red: see the Errors row and the MCP / Resilience dashboard.',
          unit: 'percentunit',
          thresholds: ERROR_THRESHOLDS,
          decimals: 2,
          queries: [{ expr: ratio([], rate(`${CLIENT}_count`, REQUESTS, FAILED), rate(`${CLIENT}_count`, REQUESTS, NOT_CANCELLED)) }],
        },
        {
          kind: 'stat',
          width: 6,
          height: 4,
          title: 'p95 latency (sent)',
          description: 'The 95th percentile of the time the application waited for its requests, every method together (retries and backoff included when metrics() sits before retry(), as recommended).',
          unit: 's',
          thresholds: [
            [null, 'green'],
            [1, 'orange'],
            [5, 'red'],
          ],
          queries: [{ expr: quantile(0.95, CLIENT, [], TIMED_REQUESTS) }],
        },
        {
          kind: 'stat',
          width: 6,
          height: 4,
          title: 'Active sessions',
          description: 'Wrapped transports started and not yet closed, all transports together.',
          unit: 'short',
          queries: [{ expr: sum([], sel('mcp_layers_sessions_active')) }],
        },
      ],
    },
    {
      title: 'Traffic',
      panels: [
        {
          title: 'Operations sent by method',
          description: 'Requests and notifications this side sent, per second, by MCP method. A client\'s tools/call, resources/read...; a server\'s sampling/createMessage and notifications.',
          unit: 'reqps',
          queries: [{ expr: sum(['mcp_method_name'], rate(`${CLIENT}_count`)), legend: '{{mcp_method_name}}' }],
        },
        {
          title: 'Operations received by method',
          description: 'Requests and notifications the peer sent, per second, by MCP method (a server\'s incoming tools/call; a client\'s incoming sampling requests).',
          unit: 'reqps',
          queries: [{ expr: sum(['mcp_method_name'], rate(`${SERVER}_count`)), legend: '{{mcp_method_name}}' }],
        },
        {
          title: 'Tool calls by tool',
          description: 'tools/call per second by tool name, sent and received. Tool names past the cardinality cap (maxLabelValues) read _other.',
          unit: 'reqps',
          queries: [
            { expr: sum(['gen_ai_tool_name'], rate(`${CLIENT}_count`, TOOL_CALLS)), legend: 'sent {{gen_ai_tool_name}}' },
            { expr: sum(['gen_ai_tool_name'], rate(`${SERVER}_count`, TOOL_CALLS)), legend: 'received {{gen_ai_tool_name}}' },
          ],
        },
        {
          title: 'Requests in flight',
          description: 'Requests that entered the metrics layer and have not finished, by direction and method. A line that only grows: requests that never complete (a peer that stopped answering, no timeout in the stack).',
          unit: 'short',
          queries: [{ expr: sum(['direction', 'mcp_method_name'], sel('mcp_layers_requests_in_flight')), legend: '{{direction}} {{mcp_method_name}}' }],
        },
      ],
    },
    {
      title: 'Errors',
      panels: (['sent', 'received'] as const).map((side): PanelSpec => ({
        title: `Error ratio by method (${side})`,
        description: `Share of requests ${side} that failed, by method; cancellations excluded. ${side === 'sent' ? 'Red: read the error types beside; timeouts (-32001), an open breaker (-32050) or shedding (-32051) point at the MCP / Resilience dashboard, peer errors at the server.' : 'Red: the application (or the layers on this side: shedding -32051) fails what peers ask; read the error types beside.'}`,
        unit: 'percentunit',
        thresholds: ERROR_THRESHOLDS,
        max: 1,
        min: 0,
        queries: [{ expr: ratio(['mcp_method_name'], rate(`${SIDES[side]}_count`, REQUESTS, FAILED), rate(`${SIDES[side]}_count`, REQUESTS, NOT_CANCELLED)), legend: '{{mcp_method_name}}' }],
      })).concat([
        {
          title: 'Errors by type',
          description: 'Failed operations per second by error.type: a JSON-RPC error code (-32001 timeout, -32050 circuit open, -32051 shed, -32052 retries exhausted, -32053 unauthorized, -32055 chaos; see docs/errors.md), or tool_error for a tool result with isError. Cancellations are on their own panel.',
          unit: 'reqps',
          queries: [
            { expr: sum(['error_type'], rate(`${CLIENT}_count`, FAILED)), legend: 'sent {{error_type}}' },
            { expr: sum(['error_type'], rate(`${SERVER}_count`, FAILED)), legend: 'received {{error_type}}' },
          ],
        },
        {
          title: 'Cancellations',
          description: 'Requests cancelled per second, by direction and by whom (the application or the peer). Not errors: a user who moved on, or a peer that gave up. A rise together with latency means callers stop waiting.',
          unit: 'reqps',
          queries: [{ expr: sum(['direction', 'by'], rate('mcp_layers_cancellations_total')), legend: '{{direction}} by {{by}}' }],
        },
      ]),
    },
    {
      title: 'Latency',
      panels: [
        {
          title: 'Latency by method (sent)',
          description: 'p50, p95 and p99 of the time requests this side sent took until their response, by method (subscriptions/listen excluded: it lasts as long as the subscription). Red: compare with the received side of the peer, and with retries and timeouts on MCP / Resilience.',
          unit: 's',
          queries: percentiles(CLIENT, 'mcp_method_name', TIMED_REQUESTS),
        },
        {
          title: 'Latency by tool (sent)',
          description: 'p50, p95 and p99 of tools/call this side sent, by tool.',
          unit: 's',
          queries: percentiles(CLIENT, 'gen_ai_tool_name', TOOL_CALLS),
        },
        {
          title: 'Latency by method (received)',
          description: 'p50, p95 and p99 of the time this side took to answer what the peer asked, by method: the server\'s own processing time as the peer sees it, minus the network.',
          unit: 's',
          queries: percentiles(SERVER, 'mcp_method_name', TIMED_REQUESTS),
        },
        {
          title: 'Latency by tool (received)',
          description: 'p50, p95 and p99 of tools/call the peer sent, by tool: which of this server\'s tools are slow.',
          unit: 's',
          queries: percentiles(SERVER, 'gen_ai_tool_name', TOOL_CALLS),
        },
      ],
    },
    {
      title: 'Sessions',
      panels: [
        {
          width: 8,
          title: 'Active sessions',
          description: 'Wrapped transports started and not yet closed, by transport. A steady climb with flat traffic: sessions that are never closed (leaked clients, idle sessions without a timeout).',
          unit: 'short',
          queries: [{ expr: sum(['transport'], sel('mcp_layers_sessions_active')), legend: '{{transport}}' }],
        },
        {
          width: 8,
          title: 'Session duration',
          description: 'p50 and p95 duration of MCP sessions that ended, as the client and as the server. Very short sessions in numbers: clients that reconnect for every call, or sessions that fail right after initialize.',
          unit: 's',
          queries: [
            { expr: quantile(0.5, 'mcp_client_session_duration_seconds', []), legend: 'p50 client' },
            { expr: quantile(0.95, 'mcp_client_session_duration_seconds', []), legend: 'p95 client' },
            { expr: quantile(0.5, 'mcp_server_session_duration_seconds', []), legend: 'p50 server' },
            { expr: quantile(0.95, 'mcp_server_session_duration_seconds', []), legend: 'p95 server' },
          ],
        },
        {
          width: 8,
          title: 'Sessions ended',
          description: 'MCP sessions that ended per second, as the client and as the server. Many with short durations: clients that reconnect for every call, or sessions failing right after initialize.',
          unit: 'ops',
          queries: [
            { expr: sum([], rate('mcp_client_session_duration_seconds_count')), legend: 'as client' },
            { expr: sum([], rate('mcp_server_session_duration_seconds_count')), legend: 'as server' },
          ],
        },
      ],
    },
    {
      title: 'Gateway',
      panels: [
        {
          width: 8,
          title: 'Gateway sessions',
          description: 'Downstream sessions open in mcp-layers gateway, by listener (http, websocket). Each has its own upstream session (for a stdio upstream, its own child process). Near maxSessions: new sessions are about to be refused.',
          unit: 'short',
          queries: [{ expr: sum(['listener'], sel('mcp_layers_gateway_sessions')), legend: '{{listener}}' }],
        },
        {
          width: 8,
          title: 'Gateway sessions refused',
          description: 'New sessions the gateway refused per second, by listener and reason: max-sessions (raise downstream.maxSessions, or run more gateways) or shutting-down (expected during a rollout).',
          unit: 'ops',
          colorSeries: [{ match: '.*max-sessions.*', color: 'red' }],
          queries: [{ expr: sum(['listener', 'reason'], rate('mcp_layers_gateway_sessions_refused_total')), legend: '{{listener}} {{reason}}' }],
        },
        {
          width: 8,
          title: 'Gateway session closes',
          description: 'Sessions the gateway closed per second, by why: downstream-closed (the client left), upstream-closed or upstream-failed (the upstream server ended or crashed: the gateway log says how), initialize-failed, idle (idleTimeoutMs), detached (an HTTP client holding no stream: detachedTimeoutMs), handshake-timeout (a silent WebSocket), evicted (reclaimed for a new client at maxSessions), shutdown.',
          unit: 'ops',
          colorSeries: [{ match: '.*upstream-failed.*', color: 'red' }],
          queries: [{ expr: sum(['reason'], rate('mcp_layers_gateway_session_closes_total')), legend: '{{reason}}' }],
        },
        {
          width: 6,
          title: 'Config generation',
          description: 'The config generation each gateway runs: 1 at start, +1 for every reload (SIGHUP, --watch) that changed something. Gateways of one deployment on different generations: a reload reached only some of them.',
          unit: 'short',
          queries: [{ expr: `max by (instance) (${sel('mcp_layers_gateway_config_generation')})`, legend: '{{instance}}' }],
        },
        {
          width: 6,
          title: 'Last reload applied',
          description: '1 when the last config reload of each gateway was applied (or changed nothing), 0 when it was refused: the file has problems and the previous generation keeps running (the config-reload log record lists them by path and line; alert MCPGatewayConfigReloadFailed).',
          unit: 'short',
          queries: [{ expr: `min by (instance) (${sel('mcp_layers_gateway_config_last_reload_success')})`, legend: '{{instance}}' }],
        },
        {
          width: 6,
          title: 'Time since the last reload',
          description: 'How long ago each gateway last reloaded its config (gateways that never reloaded are not shown).',
          unit: 's',
          queries: [{ expr: `time() - max by (instance) (${sel('mcp_layers_gateway_config_last_reload_timestamp_seconds')} > 0)`, legend: '{{instance}}' }],
        },
        {
          width: 6,
          title: 'Config reloads',
          description: 'Config reloads per second, by trigger (signal, watch, api) and outcome: applied, unchanged, or rejected — the file had problems and the previous generation keeps running (the config-reload log record lists them by path and line; alert MCPGatewayConfigReloadFailed).',
          unit: 'ops',
          colorSeries: [{ match: '.*rejected.*', color: 'red' }],
          queries: [{ expr: sum(['trigger', 'outcome'], rate('mcp_layers_gateway_config_reloads_total')), legend: '{{trigger}} {{outcome}}' }],
        },
      ],
    },
    {
      title: 'Upstreams',
      panels: [
        {
          width: 8,
          title: 'Requests by upstream',
          description: 'Requests the gateway sent to each upstream per second: `upstream` for a single one, `upstream:<name>` for each of several (upstreams:). One of several down: its rate drops to 0 while the others carry on.',
          unit: 'reqps',
          queries: [{ expr: sum(['transport'], rate(`${CLIENT}_count`, REQUESTS, 'transport=~"upstream.*"')), legend: '{{transport}}' }],
        },
        {
          width: 8,
          title: 'Error ratio by upstream',
          description: 'Share of the requests sent to each upstream that failed (cancelled ones left out). One upstream red and the others green: that server, its breaker (MCP / Resilience) and its log records (transport upstream:<name>).',
          unit: 'percentunit',
          thresholds: ERROR_THRESHOLDS,
          queries: [{ expr: ratio(['transport'], rate(`${CLIENT}_count`, REQUESTS, FAILED, 'transport=~"upstream.*"'), rate(`${CLIENT}_count`, REQUESTS, NOT_CANCELLED, 'transport=~"upstream.*"')), legend: '{{transport}}' }],
        },
        {
          width: 8,
          title: 'List cache by upstream',
          description: 'Several upstreams: list requests answered from the cache (hit: this session fetched it; shared-hit: a list the upstream marked cacheScope public, fetched by another session) or fetched (miss), by upstream. Mostly misses: the upstream sends list_changed often, or ttlMs 0.',
          unit: 'ops',
          queries: [{ expr: sum(['upstream', 'outcome'], rate('mcp_layers_gateway_list_cache_total')), legend: '{{upstream}} {{outcome}}' }],
        },
      ],
    },
    {
      title: 'Clients',
      panels: [
        {
          width: 12,
          title: 'Requests by client',
          description: 'Requests per second from each named client (downstream.clients; everyone else is unknown), by what its policy decided: admitted, rate-limited (over its token bucket: 429 over HTTP, -32057 with retryAfterMs), concurrency-limited (over its maxInFlight: -32051), denied (a tool or upstream outside its allow-lists: -32058).',
          unit: 'reqps',
          colorSeries: [
            { match: '.*rate-limited.*', color: 'orange' },
            { match: '.*denied.*', color: 'red' },
          ],
          queries: [{ expr: sum(['client', 'outcome'], rate('mcp_layers_gateway_client_requests_total')), legend: '{{client}} {{outcome}}' }],
        },
        {
          width: 12,
          title: 'Requests in flight by client',
          description: "Requests each client has in flight across its sessions. Against its maxInFlight: the client is about to be refused.",
          unit: 'short',
          queries: [{ expr: sum(['client'], sel('mcp_layers_gateway_client_in_flight')), legend: '{{client}}' }],
        },
      ],
    },
    {
      title: 'Protocol health',
      panels: [
        {
          width: 8,
          title: 'Stray responses',
          description: 'Responses dropped because their id was not pending, by reason. late: an answer to an attempt the stack abandoned (a timeout, a hedge loser) — expected in small numbers. unknown: an id this side never sent — a buggy peer or a proxy mixing sessions; investigate.',
          unit: 'mps',
          colorSeries: [{ match: '.*unknown.*', color: 'red' }],
          queries: [{ expr: sum(['reason'], rate('mcp_layers_stray_responses_total')), legend: '{{reason}}' }],
        },
        {
          width: 8,
          title: 'Invalid messages',
          description: 'Messages from the peer that were not valid JSON-RPC, per second, by transport. Anything above zero is a peer bug (or an attack): the logs (logging(), event invalid-message) say what was wrong.',
          unit: 'mps',
          thresholds: [
            [null, 'green'],
            [0.001, 'red'],
          ],
          queries: [{ expr: sum(['transport'], rate('mcp_layers_invalid_messages_total')), legend: '{{transport}}' }],
        },
        {
          width: 8,
          title: 'Protocol versions negotiated',
          description: 'Sessions per second by the MCP protocol version they negotiated: which versions your peers speak, and whether an upgrade rolled out. Batching only works in 2025-03-26.',
          unit: 'ops',
          queries: [{ expr: sum(['mcp_protocol_version'], rate('mcp_layers_protocol_versions_total')), legend: '{{mcp_protocol_version}}' }],
        },
      ],
    },
  ],
};
