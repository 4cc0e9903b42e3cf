/**
 * The oauth layer over WebSocket against a real authorization server (oidc-provider,
 * access tokens living 3 s). The MCP server verifies the token of every upgrade (jose)
 * and ends a connection with close code 4401 when its token expires, so the client must
 * renew the connection's credentials: before expiry (drain, reconnect with the new token),
 * or after the server refused them (4401 close, 401 upgrade). Real time; every wait is on
 * a real event. Every line the run logs is searched for the secrets.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MemoryTokenStore, oauth, type OAuthOptions } from '#middleware/oauth/oauth.ts';
import { wrap } from '#core/index.ts';
import { WebSocketClientTransport } from '#transports/ws/index.ts';
import { type IdentityProvider, SCOPE, startIdentityProvider } from '../support/identity-provider.ts';
import { transportClient } from '../support/apps.ts';
import type { TestClient } from '../support/clients.ts';
import { type ProtectedServer, serveWebSocket } from '../support/protected-mcp.ts';
import { RunLog } from '../support/run-log.ts';

let idp: IdentityProvider;
let log: RunLog;
const cleanup: Array<() => unknown> = [];

beforeAll(async () => {
  idp = await startIdentityProvider({ accessTokenTtl: 3 });
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
  ws: WebSocketClientTransport;
  closed: Promise<void>;
}

async function connect(given: Partial<OAuthOptions> | ((server: ProtectedServer) => Promise<Partial<OAuthOptions>>) = {}): Promise<Run> {
  log = new RunLog();
  log.captureConsole();
  const server = await serveWebSocket(idp);
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
  const ws = new WebSocketClientTransport(server.url.replace(/^http/, 'ws'), { ...auth.webSocketOptions(), reconnect: { initialDelayMs: 20, maxDelayMs: 200 } });
  log.watch('websocket', ws.events);
  const transport = wrap(ws, [auth]);
  log.watch('client', transport.events);
  const client = transportClient('v1');
  const raw = client.raw as { onerror?: (e: Error) => void; onclose?: () => void };
  raw.onerror = log.errors('client');
  const closed = new Promise<void>((resolve) => (raw.onclose = resolve));
  await client.connect(transport);
  cleanup.push(() => client.close());
  return { server, client, ws, closed };
}

async function work(client: TestClient, ms = 10): Promise<Error | undefined> {
  try {
    await client.callTool({ name: 'work', arguments: { ms } });
    return undefined;
  } catch (error) {
    log.record('call failed', error);
    return error as Error;
  }
}

function expiry(token: string): number {
  return JSON.parse(Buffer.from(token.split('.')[1] as string, 'base64url').toString()).exp * 1000;
}

function nextReconnect(ws: WebSocketClientTransport): Promise<void> {
  return new Promise((resolve) => {
    const off = ws.events.on('reconnect', (event) => {
      if (event.outcome !== 'connected') return;
      off();
      resolve();
    });
  });
}

describe('oauth over WebSocket', () => {
  it('runs across several token expiries with zero failed requests: each connection is renewed before its token expires', async () => {
    const run = await connect();
    let renewals = 0;
    run.ws.events.on('reconnect', (event) => event.outcome === 'connected' && renewals++);
    const failures: Error[] = [];
    let calls = 0;
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
    // One upgrade per token, each renewal before the server had to cut a connection.
    expect(renewals).toBeGreaterThanOrEqual(3);
    expect(run.server.presented.length).toBe(renewals + 1);
    expect(new Set(run.server.presented).size).toBe(run.server.presented.length);
    expect(run.server.expiredCloses).toBe(0);
    expect(run.server.rejected).toBe(0);
  });

  it('a close with 4401 (the server stopped trusting the token) refreshes and reconnects with the new token', async () => {
    const run = await connect();
    expect(await work(run.client)).toBeUndefined();
    const old = run.server.presented.at(-1) as string;
    run.server.denied.add(old);
    const before = idp.tokenRequests;
    const reconnected = nextReconnect(run.ws);
    await run.server.closeAll(4401, 'the token was revoked');
    await reconnected;
    expect(await work(run.client)).toBeUndefined();
    expect(idp.tokenRequests - before).toBe(1);
    expect(run.server.presented.slice(-1)).toEqual([idp.issued.at(-1)]);
    expect(run.server.rejected).toBe(0); // refreshed before reconnecting: the old token was not tried again
  });

  it('an upgrade refused with 401 refreshes and reconnects with the new token', async () => {
    const run = await connect();
    expect(await work(run.client)).toBeUndefined();
    const old = run.server.presented.at(-1) as string;
    run.server.denied.add(old);
    const before = idp.tokenRequests;
    const reconnected = nextReconnect(run.ws);
    // The connection drops for another reason (a restart): the reconnection presents the old token, refused.
    await run.server.closeAll(1012, 'service restart');
    await reconnected;
    expect(await work(run.client)).toBeUndefined();
    expect(idp.tokenRequests - before).toBe(1);
    expect(run.server.rejected).toBe(1);
    expect(run.server.presented.slice(-2)).toEqual([old, idp.issued.at(-1)]);
  });

  it('a revoked refresh token ends the session with a clear error — no loop, no hang', async () => {
    let minted = '';
    const store = new MemoryTokenStore();
    const run = await connect(async (server) => {
      minted = await idp.mintRefreshToken(server.url);
      store.save({ refreshToken: minted });
      return { grant: 'refresh_token', store };
    });
    expect(await work(run.client)).toBeUndefined();
    await idp.revoke(store.load()?.refreshToken as string);
    const before = idp.tokenRequests;
    const upgrades = run.server.presented.length;
    // The server ends the connection (the token expired or was revoked): renewing fails for good.
    await run.server.closeAll(4401, 'the access token was revoked');
    await run.closed;
    expect(run.ws.state).toBe('closed');
    expect(log.lines.join('\n')).toMatch(/gave up reconnecting to .*: Re-authorization is needed: the identity provider rejected the refresh token/);
    expect(idp.tokenRequests - before).toBe(1);
    expect(run.server.presented.length).toBe(upgrades);
    expect(minted).not.toBe('');
  });
});
