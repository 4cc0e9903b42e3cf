/**
 * The oauth layer over Streamable HTTP against a real authorization server (oidc-provider,
 * access tokens living 3 s) in front of an MCP server that verifies every request's JWT
 * (jose): SDK v1 and v2 clients, StreamableHTTPClientTransport with auth.fetch() on
 * mcp-layers/http's createFetch. Real time, real tokens; every wait is on a real event
 * (responses, token requests). Every line the run logs is searched for the secrets.
 */
import { StreamableHTTPClientTransport as ClientTransportV1 } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { StreamableHTTPClientTransport as ClientTransportV2 } from '@modelcontextprotocol/client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MemoryTokenStore, oauth, type OAuthOptions } from '#middleware/oauth/oauth.ts';
import { ErrorCode } from '#core/errors.ts';
import { wrap } from '#core/index.ts';
import type { Transport } from '#core/transport.ts';
import { createFetch, type McpFetch } from '#transports/http/index.ts';
import { type IdentityProvider, SCOPE, startIdentityProvider } from '../support/identity-provider.ts';
import { transportClient } from '../support/apps.ts';
import type { Sdk, TestClient } from '../support/clients.ts';
import { type ProtectedServer, serveHttp } from '../support/protected-mcp.ts';
import { RunLog } from '../support/run-log.ts';

const TOKEN_TTL_S = 3;

let idp: IdentityProvider;
let log: RunLog;
const cleanup: Array<() => unknown> = [];

beforeAll(async () => {
  idp = await startIdentityProvider({ accessTokenTtl: TOKEN_TTL_S });
});

afterAll(async () => {
  await idp.close();
});

afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
  log.stop();
  expectNoSecretLeaks();
});

/** No token, refresh token or client secret in anything the run printed, published or threw. */
function expectNoSecretLeaks(): void {
  expect(log.lines.length).toBeGreaterThan(0);
  expect(log.leaks([...idp.issued, idp.clientSecret])).toEqual([]);
}

interface Run {
  server: ProtectedServer;
  client: TestClient;
  auth: ReturnType<typeof oauth>;
  transport: ReturnType<typeof wrap>;
}

type Options = Partial<OAuthOptions> | ((server: ProtectedServer) => Promise<Partial<OAuthOptions>>);

async function connect(version: Sdk, given: Options = {}): Promise<Run> {
  log = new RunLog();
  log.captureConsole();
  const server = await serveHttp(idp);
  cleanup.push(() => server.close());
  const options = typeof given === 'function' ? await given(server) : given;
  const auth = oauth({
    issuer: idp.issuer,
    clientId: idp.clientId,
    clientAuth: { method: 'client_secret_basic', clientSecret: idp.clientSecret },
    grant: 'client_credentials',
    scopes: [SCOPE],
    resource: server.url,
    ...options,
  });
  const fetch: McpFetch = createFetch();
  cleanup.push(() => fetch.close());
  const authorized = auth.fetch(fetch);
  const inner =
    version === 'v1'
      ? (new ClientTransportV1(new URL(server.url), { fetch: authorized }) as unknown as Transport)
      : (new ClientTransportV2(new URL(server.url), { fetch: authorized }) as unknown as Transport);
  const transport = wrap(inner, [auth]);
  log.watch('client', transport.events);
  const client = transportClient(version);
  (client.raw as { onerror?: (e: Error) => void }).onerror = log.errors('client');
  await client.connect(transport);
  cleanup.push(() => client.close());
  return { server, client, auth, transport };
}

/** Calls `work` and records the outcome; resolves to the error, if any. */
async function work(client: TestClient, ms = 10): Promise<Error | undefined> {
  try {
    const result = (await client.callTool({ name: 'work', arguments: { ms } })) as { isError?: boolean; content?: Array<{ text?: string }> };
    if (result.isError === true) return new Error(`tool error: ${result.content?.[0]?.text}`);
    return undefined;
  } catch (error) {
    log.record('call failed', error);
    return error as Error;
  }
}

function expiry(token: string): number {
  return JSON.parse(Buffer.from(token.split('.')[1] as string, 'base64url').toString()).exp * 1000;
}

describe.each<Sdk>(['v1', 'v2'])('oauth over Streamable HTTP, SDK %s client', (version) => {
  it('runs across several token expiries with zero failed requests', async () => {
    const run = await connect(version);
    const refreshes: string[] = [];
    run.transport.events.on('token-refresh', (e) => refreshes.push(`${e.outcome} ${e.reason}`));
    const failures: Error[] = [];
    let calls = 0;
    // Done once three tokens the client used have expired, however fast the machine is.
    const done = () => {
      const tokens = [...new Set(run.server.presented)];
      return tokens.length >= 4 && Date.now() > expiry(tokens[2] as string);
    };
    const agent = async () => {
      for (let i = 0; i < 2000 && !done(); i++) {
        calls++;
        const failure = await work(run.client);
        if (failure !== undefined) failures.push(failure);
      }
    };
    await Promise.all([agent(), agent(), agent()]);
    expect(done()).toBe(true);
    expect(failures).toEqual([]);
    expect(run.server.executions).toBe(calls);
    // Each token was replaced ahead of its expiry, in the background.
    expect(refreshes.length).toBeGreaterThanOrEqual(3);
    expect(new Set(refreshes)).toEqual(new Set(['ok proactive']));
  });
});

describe('oauth over Streamable HTTP', () => {
  it('50 concurrent requests at expiry cause exactly one token request', async () => {
    // No refresh ahead of time: at expiry every request must wait for the new token.
    const run = await connect('v1', { refreshSkewMs: 0 });
    let found = false;
    for (let burst = 0; burst < 300 && !found; burst++) {
      const requestsBefore = idp.tokenRequests;
      const presentedBefore = run.server.presented.length;
      const failures = (await Promise.all(Array.from({ length: 50 }, () => work(run.client, 20)))).filter((f) => f !== undefined);
      expect(failures).toEqual([]);
      const tokenRequests = idp.tokenRequests - requestsBefore;
      if (tokenRequests === 0) continue;
      found = true;
      expect(tokenRequests).toBe(1);
      // The burst's requests that found the token expired all went out with the one new token (its POSTs:
      // the SDK's GET stream, closed at expiry, reconnects on its own schedule and may land inside the burst).
      const methods = run.server.presentedMethods;
      const presented = run.server.presented.slice(presentedBefore).filter((_, i) => methods[presentedBefore + i] === 'POST');
      expect(presented.length).toBe(50);
      expect(new Set(presented).size).toBeLessThanOrEqual(2);
      expect(presented.at(-1)).toBe(idp.issued.at(-1));
    }
    expect(found).toBe(true);
    expect(run.server.rejected).toBe(0);
  });

  it('a token the server stops accepting is refreshed and the request sent again (401 → retry once)', async () => {
    const run = await connect('v1');
    expect(await work(run.client)).toBeUndefined();
    const current = run.server.presented.at(-1) as string;
    run.server.denied.add(current);
    const before = idp.tokenRequests;
    const executions = run.server.executions;
    expect(await work(run.client)).toBeUndefined();
    expect(idp.tokenRequests - before).toBe(1);
    expect(run.server.executions).toBe(executions + 1); // the refused attempt never ran
    expect(run.server.presented.slice(-2)).toEqual([current, idp.issued.at(-1)]);
  });

  it('a revoked refresh token ends in a clear error that asks for re-authorization — no loop, no hang', async () => {
    const store = new MemoryTokenStore();
    let firstRefresh = '';
    // A user authorized the application once (the authorization-code flow left a refresh token).
    const run = await connect('v1', async (server) => {
      firstRefresh = await idp.mintRefreshToken(server.url);
      store.save({ refreshToken: firstRefresh });
      return { grant: 'refresh_token', store };
    });
    expect(await work(run.client)).toBeUndefined();
    // The refresh token was rotated and saved; the user now revokes the application's access.
    const rotated = store.load()?.refreshToken as string;
    expect(rotated).not.toBe(firstRefresh);
    await idp.revoke(rotated);
    const before = idp.tokenRequests;
    let failure: Error | undefined;
    for (let i = 0; i < 5000 && failure === undefined; i++) failure = await work(run.client);
    expect(failure).toBeDefined();
    expect((failure as { code?: number }).code).toBe(ErrorCode.Unauthorized);
    expect(failure?.message).toMatch(/Re-authorization is needed: the identity provider rejected the refresh token \(invalid_grant/);
    // Every later request fails at once with the same answer; the identity provider is asked once in all.
    for (let i = 0; i < 10; i++) expect((await work(run.client))?.message).toMatch(/Re-authorization is needed/);
    expect(idp.tokenRequests - before).toBe(1);
  });

  it('SDK v2 transport with authProvider: auth.authProvider — the SDK asks for the token and calls back on a 401', async () => {
    log = new RunLog();
    log.captureConsole();
    const server = await serveHttp(idp);
    cleanup.push(() => server.close());
    const auth = oauth({ issuer: idp.issuer, clientId: idp.clientId, clientAuth: { method: 'client_secret_basic', clientSecret: idp.clientSecret }, grant: 'client_credentials', resource: server.url });
    const fetch = createFetch();
    cleanup.push(() => fetch.close());
    const transport = wrap(new ClientTransportV2(new URL(server.url), { fetch, authProvider: auth.authProvider }) as unknown as Transport, [auth]);
    log.watch('client', transport.events);
    const client = transportClient('v2');
    await client.connect(transport);
    cleanup.push(() => client.close());
    expect(await work(client)).toBeUndefined();
    const current = server.presented.at(-1) as string;
    server.denied.add(current);
    const before = idp.tokenRequests;
    expect(await work(client)).toBeUndefined();
    expect(idp.tokenRequests - before).toBe(1);
    expect(server.presented.slice(-2)).toEqual([current, idp.issued.at(-1)]);
  });

  it('the run log search would find a secret that leaked (control)', async () => {
    const run = await connect('v1');
    await work(run.client);
    const token = run.server.presented.at(-1) as string;
    const control = new RunLog();
    control.record('leaky', { header: `Bearer ${token.slice(0, 40)}…` });
    expect(control.leaks([token])).toEqual([token]);
    expect(log.leaks([token])).toEqual([]);
  });
});
