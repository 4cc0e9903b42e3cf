/** mcp-auth.json: the oauth layer's token refreshes, their failures and latency, the token store. */
import type { DashboardSpec } from './grafana.ts';
import { quantile, rate, ratio, sel, sum } from './query.ts';
import { breakerStatePanel } from './resilience.ts';

const REFRESHES = 'mcp_layers_token_refreshes_total';
const UNAUTHORIZED = 'error_type="-32053"';

export const auth: DashboardSpec = {
  uid: 'mcp-layers-auth',
  title: 'MCP / Auth',
  description: 'mcp-layers: OAuth access tokens kept fresh by the oauth() layer — refreshes, failures, latency, the token store, and requests refused for want of a token. docs/observability.md explains each panel.',
  rows: [
    {
      title: 'Token refreshes',
      panels: [
        {
          width: 8,
          title: 'Token refreshes',
          description: 'Token requests (with their retries) per second by outcome and transport. ok comes in a steady rhythm: one per token lifetime per client, ahead of expiry.',
          unit: 'eps',
          colorSeries: [{ match: '.*failed.*', color: 'red' }],
          queries: [{ expr: sum(['transport', 'outcome'], rate(REFRESHES)), legend: '{{transport}} {{outcome}}' }],
        },
        {
          width: 8,
          title: 'Token refresh failure ratio',
          description: 'Share of token requests that failed, by transport. Red: requests start failing with -32053 once the current token expires. The logs (event token-refresh, reason) say why: invalid-grant (re-authorize), invalid-client (wrong secret), token-endpoint-unavailable (identity provider down).',
          unit: 'percentunit',
          max: 1,
          min: 0,
          thresholds: [
            [null, 'green'],
            [0.01, 'red'],
          ],
          queries: [{ expr: ratio(['transport'], rate(REFRESHES, 'outcome="failed"'), rate(REFRESHES)), legend: '{{transport}}' }],
        },
        {
          width: 8,
          title: 'Token refresh latency',
          description: 'p50 and p95 duration of token requests (retries included), by outcome. Requests wait for a refresh only when their token is about to expire; slow refreshes then show as request latency.',
          unit: 's',
          queries: [
            { expr: quantile(0.5, 'mcp_layers_token_refresh_duration_seconds', ['outcome']), legend: 'p50 {{outcome}}' },
            { expr: quantile(0.95, 'mcp_layers_token_refresh_duration_seconds', ['outcome']), legend: 'p95 {{outcome}}' },
          ],
        },
      ],
    },
    {
      title: 'Failures',
      panels: [
        {
          title: 'Requests refused: unauthorized',
          description: 'Requests sent that failed with -32053 Unauthorized per second, by transport and method: no usable token (the refresh failed, re-authorization is needed) or the server rejected a fresh token. Nothing was sent for them.',
          unit: 'reqps',
          queries: [{ expr: sum(['transport', 'mcp_method_name'], rate('mcp_client_operation_duration_seconds_count', UNAUTHORIZED)), legend: '{{transport}} {{mcp_method_name}}' }],
        },
        {
          title: 'Token store failures',
          description: 'Token store loads or saves that failed per second, by operation. save: tokens stay in memory, but a rotated refresh token is lost at the next restart (then re-authorization is needed) — fix the store (permissions, disk, secrets manager). load: the first request failed with -32053.',
          unit: 'eps',
          thresholds: [
            [null, 'green'],
            [0.001, 'red'],
          ],
          queries: [{ expr: sum(['transport', 'operation'], rate('mcp_layers_token_store_failures_total')), legend: '{{transport}} {{operation}}' }],
        },
        breakerStatePanel(
          'Token endpoint breaker',
          'The oauth layer\'s own circuit breaker on the token endpoint: open (red) after repeated transient failures — the identity provider is down or unreachable, and token requests fail fast (-32053, token-endpoint-circuit-open) until it probes again.',
          `sum by (instance, breaker) (${[
            `${sel('mcp_layers_breaker_state', 'breaker="oauth-token-endpoint"', 'state="half-open"')} * 1`,
            `${sel('mcp_layers_breaker_state', 'breaker="oauth-token-endpoint"', 'state="open"')} * 2`,
            `${sel('mcp_layers_breaker_state', 'breaker="oauth-token-endpoint"', 'state="isolated"')} * 3`,
          ].join(' or ')})`,
        ),
      ],
    },
  ],
};
