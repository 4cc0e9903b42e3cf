/** mcp-transport.json: bytes, compression, batching, connections, reconnects, heartbeats, and the broker transports' traffic, workers and sessions. */
import type { DashboardSpec } from './grafana.ts';
import { quantile, rate, sel, sum } from './query.ts';

const BYTES = 'mcp_layers_compression_bytes_total';

export const transport: DashboardSpec = {
  uid: 'mcp-layers-transport',
  title: 'MCP / Transport',
  description: 'mcp-layers: what crosses the wire — bytes, compression, JSON-RPC batches — the connections under the transports (mcp-layers/ws, mcp-layers/http), and what the broker transports (mcp-layers/nats, mcp-layers/redis) publish, redeliver and drop. docs/observability.md explains each panel.',
  rows: [
    {
      title: 'Bytes',
      panels: [
        {
          title: 'Bytes on the wire',
          description: 'Bytes per second sent (outbound) and received (inbound), by transport, as they crossed the socket or HTTP body (after compression).',
          unit: 'binBps',
          queries: [{ expr: sum(['transport', 'direction'], rate('mcp_layers_wire_bytes_total')), legend: '{{transport}} {{direction}}' }],
        },
        {
          title: 'Bytes by encoding',
          description: 'Wire bytes per second by content encoding (identity, deflate, gzip, br, zstd) and direction: how much traffic is compressed at all.',
          unit: 'binBps',
          stack: true,
          queries: [{ expr: sum(['direction', 'encoding'], rate('mcp_layers_wire_bytes_total')), legend: '{{direction}} {{encoding}}' }],
        },
        {
          title: 'Compression ratio',
          description: 'Bytes before compression divided by bytes after, by direction and encoding, for messages that were compressed (3 = a third of the size). Near 1: the payloads do not compress (already compressed data, small messages) — raise the threshold or turn compression off to save CPU.',
          unit: 'short',
          decimals: 2,
          queries: [
            {
              expr: `${sum(['direction', 'encoding'], rate(BYTES, 'stage="before"'))} / ${sum(['direction', 'encoding'], rate(BYTES, 'stage="after"'))}`,
              legend: '{{direction}} {{encoding}}',
            },
          ],
        },
        {
          title: 'Bytes saved by compression',
          description: 'Bytes per second compression kept off the wire (before minus after), by direction.',
          unit: 'binBps',
          queries: [{ expr: `${sum(['direction'], rate(BYTES, 'stage="before"'))} - ${sum(['direction'], rate(BYTES, 'stage="after"'))}`, legend: '{{direction}}' }],
        },
      ],
    },
    {
      title: 'Batching',
      panels: [
        {
          title: 'Batch size',
          description: 'p50, p95 and p99 of messages per JSON-RPC batch the batching layer wrote, and the mean. Near 1: little to coalesce (batching only acts in protocol 2025-03-26, and on bursts).',
          unit: 'short',
          queries: [
            { expr: quantile(0.5, 'mcp_layers_batch_size', []), legend: 'p50' },
            { expr: quantile(0.95, 'mcp_layers_batch_size', []), legend: 'p95' },
            { expr: quantile(0.99, 'mcp_layers_batch_size', []), legend: 'p99' },
            { expr: `${sum([], rate('mcp_layers_batch_size_sum'))} / ${sum([], rate('mcp_layers_batch_size_count'))}`, legend: 'mean' },
          ],
        },
        {
          title: 'Batches written',
          description: 'JSON-RPC batches written per second, by transport, and the messages they carried.',
          unit: 'ops',
          queries: [
            { expr: sum(['transport'], rate('mcp_layers_batch_size_count')), legend: 'batches {{transport}}' },
            { expr: sum(['transport'], rate('mcp_layers_batch_size_sum')), legend: 'messages {{transport}}' },
          ],
        },
      ],
    },
    {
      title: 'Connections',
      panels: [
        {
          width: 8,
          title: 'Connections open',
          description: 'Connections open, by transport name: a client transport\'s own connection (0 or 1; at 0 it is reconnecting, see Reconnects), or the clients connected to a server.',
          unit: 'short',
          queries: [{ expr: sum(['transport'], sel('mcp_layers_connections_open')), legend: '{{transport}}' }],
        },
        {
          width: 8,
          title: 'Connection changes',
          description: 'Connections opened, closed, and rejected at the upgrade (authentication, origin, capacity) per second, by transport. Many rejected: clients with bad credentials or a wrong Origin; many closed and opened: unstable network or a server restarting.',
          unit: 'eps',
          colorSeries: [{ match: '.*rejected.*', color: 'red' }],
          queries: [{ expr: sum(['transport', 'state'], rate('mcp_layers_connections_total')), legend: '{{transport}} {{state}}' }],
        },
        {
          width: 8,
          title: 'Reconnects',
          description: 'Reconnection attempts per second by outcome: scheduled (the connection dropped, or a gateway\'s stdio child exited and is restarted), connected (the session was restored), failed (the attempt failed; after reconnect.maxRetries the transport closes), gave-up (a stdio child in a crash loop: upstream.restart stopped restarting it and the session ended). failed or gave-up rising: the server is down, unreachable or crashing.',
          unit: 'eps',
          colorSeries: [{ match: '.*failed.*', color: 'red' }],
          queries: [{ expr: sum(['transport', 'outcome'], rate('mcp_layers_reconnects_total')), legend: '{{transport}} {{outcome}}' }],
        },
      ],
    },
    {
      title: 'Heartbeats',
      panels: [
        {
          title: 'Heartbeats',
          description: 'WebSocket pings per second by outcome: ok (answered) or missed (unanswered within the timeout: the connection is dropped and, on a client, re-established). Missed heartbeats: a stalled peer or network path; compare with reconnects.',
          unit: 'eps',
          colorSeries: [{ match: '.*missed.*', color: 'red' }],
          queries: [{ expr: sum(['transport', 'outcome'], rate('mcp_layers_heartbeats_total')), legend: '{{transport}} {{outcome}}' }],
        },
        {
          title: 'Heartbeat round trip',
          description: 'p50, p95 and p99 round-trip time of answered pings: the network and event-loop delay between the two sides, without MCP processing. High while request latency is high too: the network or a blocked event loop, not the server\'s tools.',
          unit: 's',
          queries: [
            { expr: quantile(0.5, 'mcp_layers_heartbeat_rtt_seconds', ['transport']), legend: 'p50 {{transport}}' },
            { expr: quantile(0.95, 'mcp_layers_heartbeat_rtt_seconds', ['transport']), legend: 'p95 {{transport}}' },
            { expr: quantile(0.99, 'mcp_layers_heartbeat_rtt_seconds', ['transport']), legend: 'p99 {{transport}}' },
          ],
        },
      ],
    },
    {
      title: 'Brokers',
      panels: [
        {
          title: 'Broker messages published',
          description: 'Messages per second the broker transports (mcp-layers/nats, mcp-layers/redis) published, by transport and path: stream (requests, stored by the broker until a worker acknowledges them) or core / pubsub (answers and notifications to a client\'s inbox, fire and forget). A client transport publishes its requests; a worker its answers.',
          unit: 'ops',
          queries: [{ expr: sum(['transport', 'via'], rate('mcp_layers_broker_messages_published_total')), legend: '{{transport}} {{via}}' }],
        },
        {
          title: 'Broker bytes published',
          description: 'Bytes per second the broker transports published, headers included, by transport and path. Divided by the messages: the mean message size, to hold against the payload limit (NATS max_payload, the Redis service\'s maxPayload; 1 MiB by default).',
          unit: 'binBps',
          queries: [{ expr: sum(['transport', 'via'], rate('mcp_layers_broker_published_bytes_total')), legend: '{{transport}} {{via}}' }],
        },
        {
          width: 8,
          title: 'Redeliveries',
          description: 'Requests per second a worker received again because the worker that took them stopped before answering: delivered (idempotent, run again) or refused (not known to be idempotent: answered with one worker-lost error, -32054, never run twice). Any: a worker died or lost the broker with requests in hand; refused ones failed for their callers.',
          unit: 'ops',
          colorSeries: [{ match: '.*refused.*', color: 'red' }],
          queries: [{ expr: sum(['transport', 'outcome'], rate('mcp_layers_broker_redeliveries_total')), legend: '{{transport}} {{outcome}}' }],
        },
        {
          width: 8,
          title: 'Duplicates dropped',
          description: 'Duplicates dropped per second, by where: stream (the broker refused a second publish of one request within its window), worker (a request it had answered or holds, delivered again), client (a second answer to one request, after a redelivery). Each request still ran and was answered once.',
          unit: 'ops',
          queries: [{ expr: sum(['transport', 'where'], rate('mcp_layers_broker_deduplicated_total')), legend: '{{transport}} {{where}}' }],
        },
        {
          width: 8,
          title: 'Garbage on the broker',
          description: 'Messages per second on the service\'s subjects, streams or channels that were not ours: dropped (and answered -32600 when the request could be identified). Any: a foreign publisher, or a client of another version, writes where the workers read; the broker-garbage log record names the subject and the problem.',
          unit: 'ops',
          colorSeries: [{ match: '.*', color: 'red' }],
          queries: [{ expr: sum(['transport'], rate('mcp_layers_broker_garbage_total')), legend: '{{transport}}' }],
        },
        {
          title: 'Workers joining and leaving',
          description: 'Workers joining or leaving per second: a worker as it starts or closes, and left as a client reports the worker holding its session lost (no responders, or missed probes). Left from clients without a matching close: workers are crashing; their sessions are replayed on others (see Sessions on workers).',
          unit: 'eps',
          colorSeries: [{ match: '.*left.*', color: 'orange' }],
          queries: [{ expr: sum(['transport', 'state'], rate('mcp_layers_broker_workers_total')), legend: '{{transport}} {{state}}' }],
        },
        {
          title: 'Sessions on workers',
          description: 'Sessions per second opened on a worker, replayed there (re-established under the same session id after its worker was lost: what that worker held in memory for it is gone) and closed. Replayed rising: workers are dying or losing the broker.',
          unit: 'eps',
          colorSeries: [{ match: '.*replayed.*', color: 'orange' }],
          queries: [{ expr: sum(['transport', 'state'], rate('mcp_layers_broker_sessions_total')), legend: '{{transport}} {{state}}' }],
        },
      ],
    },
  ],
};
