/**
 * logging() with payloads on, in front of the real oauth() layer, over Streamable HTTP to
 * a server that verifies every JWT issued by a real authorization server: bearer tokens
 * on every request, a client secret on every token request, and — in the tool arguments —
 * a refresh token and the client secret again. Every line the logger wrote is searched
 * for every one of them.
 */
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { logging } from '#middleware/observability/logging.ts';
import { metrics } from '#middleware/observability/metrics.ts';
import { oauth } from '#middleware/oauth/oauth.ts';
import { tracing } from '#middleware/observability/tracing.ts';
import { wrap } from '#core/index.ts';
import type { Transport } from '#core/transport.ts';
import { createFetch } from '#transports/http/index.ts';
import { type IdentityProvider, SCOPE, startIdentityProvider } from '../support/identity-provider.ts';
import { captureLogger } from '../support/log-capture.ts';
import { transportClient } from '../support/apps.ts';
import { parseExposition, value } from '../support/prom-text.ts';
import { serveHttp } from '../support/protected-mcp.ts';

let idp: IdentityProvider;
beforeAll(async () => {
  idp = await startIdentityProvider({ accessTokenTtl: 60 });
});
afterAll(async () => {
  await idp.close();
});

describe('logging in front of oauth over Streamable HTTP', () => {
  it('writes no token, refresh token or client secret in any line, with payloads on', async () => {
    const server = await serveHttp(idp);
    const fetch = createFetch();
    const log = captureLogger('silly');
    const registry = new Registry();
    const auth = oauth({
      issuer: idp.issuer,
      clientId: idp.clientId,
      clientAuth: { method: 'client_secret_basic', clientSecret: idp.clientSecret },
      grant: 'client_credentials',
      scopes: [SCOPE],
      resource: server.url,
    });
    const inner = new StreamableHTTPClientTransport(new URL(server.url), { fetch: auth.fetch(fetch) }) as unknown as Transport;
    const transport = wrap(inner, [logging({ logger: log.logger, payloads: true }), tracing(), metrics({ registry }), auth], { name: 'protected' });
    const client = transportClient('v1');
    try {
      await client.connect(transport);
      const refreshToken = await idp.mintRefreshToken(server.url);
      for (let i = 0; i < 3; i++) {
        await client.callTool({ name: 'work', arguments: { ms: 1, refresh_token: refreshToken, client_secret: idp.clientSecret, note: `Bearer ${idp.issued[0]}` } });
      }
      await client.close();
      await new Promise((resolve) => setImmediate(resolve));

      const secrets = [...idp.issued, idp.clientSecret];
      expect(secrets.length).toBeGreaterThanOrEqual(3);
      const leaks = log.lines.filter((line) => secrets.some((secret) => line.includes(secret)));
      expect(leaks).toEqual([]);
      const records = log.records();
      expect(records.filter((r) => r['event'] === 'exchange' && r['tool'] === 'work' && r['outcome'] === 'ok')).toHaveLength(3);
      expect(records.find((r) => r['event'] === 'token-refresh')).toMatchObject({ outcome: 'ok', transport: 'protected' });
      expect(records.find((r) => r['tool'] === 'work' && r['event'] === 'exchange')).toMatchObject({
        params: { arguments: { refresh_token: '[REDACTED]', client_secret: '[REDACTED]', note: 'Bearer [REDACTED]' } },
      });
      // The same traffic, counted: the token refresh and the tool calls.
      const samples = parseExposition(await registry.metrics());
      expect(value(samples, 'mcp_layers_token_refreshes_total', { transport: 'protected', outcome: 'ok' })).toBeGreaterThanOrEqual(1);
      expect(value(samples, 'mcp_client_operation_duration_seconds_count', { transport: 'protected', gen_ai_tool_name: 'work' })).toBe(3);
    } finally {
      await fetch.close();
      await server.close();
    }
  });
});
