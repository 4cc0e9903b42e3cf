/** mcp-resilience.json: what retry, timeout, circuitBreaker, concurrency, hedging and chaos did. */
import type { DashboardSpec, PanelSpec } from './grafana.ts';
import { rate, REQUESTS, sel, sum } from './query.ts';

/**
 * One series per breaker whose value is its state: 0 closed, 1 half-open, 2 open,
 * 3 isolated (the gauge is 1 for the current state and 0 for the others).
 */
const BREAKER_STATE = `sum by (instance, breaker) (${[
  `${sel('mcp_layers_breaker_state', 'state="half-open"')} * 1`,
  `${sel('mcp_layers_breaker_state', 'state="open"')} * 2`,
  `${sel('mcp_layers_breaker_state', 'state="isolated"')} * 3`,
].join(' or ')})`;

export const BREAKER_STATES: NonNullable<PanelSpec['mappings']> = [
  { value: 0, text: 'closed', color: 'green' },
  { value: 1, text: 'half-open', color: 'yellow' },
  { value: 2, text: 'open', color: 'red' },
  { value: 3, text: 'isolated', color: 'purple' },
];

export function breakerStatePanel(title: string, description: string, expr = BREAKER_STATE): PanelSpec {
  return {
    kind: 'state-timeline',
    width: 24,
    height: 6,
    title,
    description,
    unit: 'none',
    mappings: BREAKER_STATES,
    thresholds: [
      [null, 'green'],
      [1, 'yellow'],
      [2, 'red'],
      [3, 'purple'],
    ],
    queries: [{ expr, legend: '{{breaker}} {{instance}}' }],
  };
}

export const resilience: DashboardSpec = {
  uid: 'mcp-layers-resilience',
  title: 'MCP / Resilience',
  description: 'mcp-layers: retries and the retry budget, timeouts, circuit breakers, load shedding, hedging and injected faults. docs/observability.md explains each panel.',
  rows: [
    {
      title: 'Retries',
      panels: [
        {
          width: 8,
          title: 'Attempts per request',
          description: 'Attempts put on the wire per request sent (first tries, retries and hedges over requests): 1.0 when nothing is retried. The retry budget caps it near 1.2 under a full outage; above that, hedging adds attempts. Rising: the peer fails transiently — see retries by reason.',
          unit: 'short',
          decimals: 2,
          thresholds: [
            [null, 'green'],
            [1.1, 'orange'],
            [1.3, 'red'],
          ],
          queries: [{ expr: `${sum(['transport'], rate('mcp_layers_attempts_total'))} / ${sum(['transport'], rate('mcp_client_operation_duration_seconds_count', REQUESTS))}`, legend: '{{transport}}' }],
        },
        {
          width: 8,
          title: 'Retries by reason',
          description: 'Retries scheduled per second, by the failure that caused them (http-503, attempt-timeout, connection-lost, chaos-error...). Tells what is failing; the retry absorbs it only while the budget lasts.',
          unit: 'reqps',
          queries: [{ expr: sum(['reason'], rate('mcp_layers_retries_total')), legend: '{{reason}}' }],
        },
        {
          width: 8,
          title: 'Retry budget exhausted',
          description: 'Retries refused per second because the retry budget was spent (retries may add at most 20 % of requests, plus 10/s, by default). Above zero: the peer is failing broadly and the stack stopped amplifying the load — the failures now reach the application (-32052).',
          unit: 'reqps',
          thresholds: [
            [null, 'green'],
            [0.001, 'red'],
          ],
          queries: [{ expr: sum(['transport', 'mcp_method_name'], rate('mcp_layers_retry_budget_exhausted_total')), legend: '{{transport}} {{mcp_method_name}}' }],
        },
        {
          title: 'Give-ups by reason',
          description: 'Requests the retry layer stopped retrying, per second, by reason: max-attempts, budget-exhausted, not-idempotent (a request that may have run is never sent twice), deadline, retry-after-too-long. not-idempotent rising: mark tools idempotent (annotations or idempotentTools) if they are.',
          unit: 'reqps',
          queries: [{ expr: sum(['reason'], rate('mcp_layers_give_ups_total')), legend: '{{reason}}' }],
        },
        {
          title: 'Attempts by method',
          description: 'Attempts put on the wire per second, by method: first tries, retries and hedges.',
          unit: 'reqps',
          queries: [{ expr: sum(['mcp_method_name'], rate('mcp_layers_attempts_total')), legend: '{{mcp_method_name}}' }],
        },
      ],
    },
    {
      title: 'Timeouts and cancellations',
      panels: [
        {
          title: 'Timeouts',
          description: 'Deadlines that passed per second, by scope (attempt: retried if idempotent; total: the request failed with -32001) and method. Rising attempt timeouts with normal latency elsewhere: the deadline is too tight for that method (timeout perMethod), or the peer hangs.',
          unit: 'reqps',
          queries: [{ expr: sum(['scope', 'mcp_method_name'], rate('mcp_layers_timeouts_total')), legend: '{{scope}} {{mcp_method_name}}' }],
        },
        {
          title: 'Cancels sent',
          description: 'notifications/cancelled sent per second for attempts the stack abandoned (timeouts, hedge losers, application cancels), by method: work the peer may stop doing.',
          unit: 'mps',
          queries: [{ expr: sum(['mcp_method_name'], rate('mcp_layers_cancels_sent_total')), legend: '{{mcp_method_name}}' }],
        },
      ],
    },
    {
      title: 'Circuit breakers',
      panels: [
        breakerStatePanel(
          'Breaker state',
          'Each circuit breaker over time: closed (green), half-open (yellow: a probe is running), open (red: requests fail fast with -32050, nothing is sent), isolated (purple: held open by hand). Open for minutes: the peer is down or every attempt times out — check the peer, and the retries and timeouts above.',
        ),
        {
          title: 'Breaker transitions',
          description: 'Breaker state changes per second, by breaker and new state. Frequent open → half-open → open cycles: probes keep failing; the peer has not recovered.',
          unit: 'eps',
          queries: [{ expr: sum(['breaker', 'to'], rate('mcp_layers_breaker_transitions_total')), legend: '{{breaker}} → {{to}}' }],
        },
        {
          title: 'Requests rejected by an open breaker',
          description: 'Requests failed fast per second because their breaker was open (nothing was sent), by breaker and method. What the application lost to the breaker while the peer recovers.',
          unit: 'reqps',
          queries: [{ expr: sum(['breaker', 'mcp_method_name'], rate('mcp_layers_breaker_rejections_total')), legend: '{{breaker}} {{mcp_method_name}}' }],
        },
      ],
    },
    {
      title: 'Load shedding and hedging',
      panels: [
        {
          title: 'Shed requests',
          description: 'Requests refused per second by a concurrency limit (-32051), by direction and reason. outbound: this side sends more at once than maxInFlight (+ queue) allows; inbound: peers ask more than this server takes. Sustained: raise the limit if the peer can take it, or add capacity.',
          unit: 'reqps',
          queries: [{ expr: sum(['direction', 'reason'], rate('mcp_layers_shed_total')), legend: '{{direction}} {{reason}}' }],
        },
        {
          title: 'Queued requests',
          description: 'Requests per second that waited for a concurrency slot, by direction. Queueing adds latency; shedding starts when the queue is full.',
          unit: 'reqps',
          queries: [{ expr: sum(['direction'], rate('mcp_layers_queued_total')), legend: '{{direction}}' }],
        },
        {
          title: 'Hedges',
          description: 'Hedged attempts started per second, by method: reads slower than their hedging delay (or percentile) were sent again. Hedges draw on a retry budget, so they stop when the peer is overloaded.',
          unit: 'reqps',
          queries: [{ expr: sum(['mcp_method_name', 'gen_ai_tool_name'], rate('mcp_layers_hedges_total')), legend: '{{mcp_method_name}} {{gen_ai_tool_name}}' }],
        },
        {
          title: 'Hedge winners',
          description: 'Hedged requests per second by which attempt answered first: primary or hedge. Hedges that rarely win cost load for nothing: raise the delay or the percentile.',
          unit: 'reqps',
          stack: true,
          queries: [{ expr: sum(['winner'], rate('mcp_layers_hedge_wins_total')), legend: '{{winner}}' }],
        },
      ],
    },
    {
      title: 'Chaos',
      panels: [
        {
          width: 24,
          title: 'Injected faults',
          description: 'Faults the chaos layer injected on purpose per second, by kind (latency, error, drop, disconnect) and method. Non-zero in production means a chaos layer was left enabled.',
          unit: 'eps',
          queries: [{ expr: sum(['fault', 'mcp_method_name'], rate('mcp_layers_chaos_injections_total')), legend: '{{fault}} {{mcp_method_name}}' }],
        },
      ],
    },
  ],
};
