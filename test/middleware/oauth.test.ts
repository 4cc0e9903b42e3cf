/**
 * The oauth layer's token logic under fake timers: proactive refresh, single-flight,
 * the reactive refresh on a 401, rotation through the store, final and transient
 * failures of the token endpoint, events, and redaction. The token endpoint is a
 * scripted double (test/middleware/support/oauth.ts) so that time can be controlled;
 * test/e2e/ runs the same behaviour against a real identity provider.
 */
import { inspect } from 'node:util';
import { UnauthorizedError as SdkV2UnauthorizedError } from '@modelcontextprotocol/client';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { MemoryTokenStore, oauth, type OAuthOptions, type StoredTokens } from '#middleware/oauth/oauth.ts';
import { ErrorCode } from '#core/errors.ts';
import type { LayerEvents } from '#core/events.ts';
import { wrap } from '#core/wrap.ts';
import { App, CLIENT_SECRET, ProtectedPeer, TOKEN_URL, TokenEndpointDouble } from './support/oauth.ts';

const T0 = new Date('2030-01-01T00:00:00Z').getTime();

beforeEach(() => {
  vi.useFakeTimers();
  vi.setSystemTime(T0);
});

afterEach(() => {
  vi.useRealTimers();
});

async function setup(options: Partial<OAuthOptions> = {}, endpoint = new TokenEndpointDouble()) {
  const auth = oauth({
    tokenEndpoint: TOKEN_URL,
    clientId: 'agent',
    clientAuth: { method: 'client_secret_basic', clientSecret: CLIENT_SECRET },
    grant: 'client_credentials',
    fetch: endpoint.fetch,
    ...options,
  });
  const peer = new ProtectedPeer();
  const transport = wrap(peer, [auth]);
  const app = new App(transport);
  const refreshes: Array<LayerEvents['token-refresh']> = [];
  transport.events.on('token-refresh', (event) => refreshes.push(event));
  await transport.start();
  return { auth, peer, transport, app, endpoint, refreshes };
}

describe('oauth: getting a token', () => {
  it('asks the token endpoint once, sends the token with every attempt, and reuses it while it is fresh', async () => {
    const s = await setup({ scopes: ['mcp:tools', 'mcp:read'], resource: 'https://mcp.example.test/mcp' });
    for (let i = 0; i < 5; i++) expect(await s.app.call()).toMatchObject({ result: { ok: true } });
    expect(s.endpoint.calls).toHaveLength(1);
    expect(s.endpoint.calls[0]).toMatchObject({ grant: 'client_credentials', scope: 'mcp:tools mcp:read', resource: ['https://mcp.example.test/mcp'] });
    // client_secret_basic: the secret travels only in the token request's Authorization header (form-encoded, RFC 6749 §2.3.1).
    const basic = Buffer.from(s.endpoint.calls[0]?.authorization?.replace(/^Basic /, '') ?? '', 'base64').toString();
    expect(basic.split(':').map(decodeURIComponent)).toEqual(['agent', CLIENT_SECRET]);
    expect(s.peer.seen).toEqual(Array(5).fill(s.endpoint.access(1)));
    expect(s.refreshes).toMatchObject([{ outcome: 'ok', reason: 'initial' }]);
  });
});

describe('oauth: proactive refresh', () => {
  it('refreshes in the background once refreshSkewMs before expiry; requests meanwhile keep the current token', async () => {
    const s = await setup({ refreshSkewMs: 10_000 });
    await s.app.call();
    // expires_in 100 s counts from when the request was sent, minus one second of rounding: expiry at 99 s.
    vi.setSystemTime(T0 + 88_000);
    await s.app.call();
    expect(s.endpoint.calls).toHaveLength(1);
    vi.setSystemTime(T0 + 89_500);
    await s.app.call(); // due: goes out with token 1 and starts the refresh
    await vi.advanceTimersByTimeAsync(0);
    await s.app.call();
    expect(s.endpoint.calls).toHaveLength(2);
    expect(s.peer.seen).toEqual([s.endpoint.access(1), s.endpoint.access(1), s.endpoint.access(1), s.endpoint.access(2)]);
    expect(s.refreshes.map((e) => e.reason)).toEqual(['initial', 'proactive']);
  });

  it('defaults to 60 s ahead, and to half the lifetime for short-lived tokens', async () => {
    const long = new TokenEndpointDouble();
    long.expiresIn = 3600;
    const s = await setup({}, long);
    await s.app.call();
    vi.setSystemTime(T0 + 3599_000 - 60_000 - 1);
    await s.app.call();
    expect(long.calls).toHaveLength(1);
    vi.setSystemTime(T0 + 3599_000 - 60_000);
    await s.app.call();
    await vi.advanceTimersByTimeAsync(0);
    expect(long.calls).toHaveLength(2);

    vi.setSystemTime(T0);
    const short = new TokenEndpointDouble();
    short.expiresIn = 9; // seen as 8 s: refreshed from 4 s on, not from the start
    const t = await setup({}, short);
    await t.app.call();
    vi.setSystemTime(T0 + 3_999);
    await t.app.call();
    expect(short.calls).toHaveLength(1);
    vi.setSystemTime(T0 + 4_000);
    await t.app.call();
    await vi.advanceTimersByTimeAsync(0);
    expect(short.calls).toHaveLength(2);
  });
});

describe('oauth: single-flight', () => {
  it('50 concurrent requests that find the token expired cause exactly one token request', async () => {
    const s = await setup({ refreshSkewMs: 0 });
    await s.app.call();
    vi.setSystemTime(T0 + 99_000);
    let release!: () => void;
    s.endpoint.hold = new Promise((resolve) => (release = resolve));
    const responses = Array.from({ length: 50 }, () => s.app.call());
    await vi.advanceTimersByTimeAsync(0);
    expect(s.endpoint.calls).toHaveLength(2);
    expect(s.peer.seen).toHaveLength(1); // all 50 wait: none went out with the expired token
    release();
    const results = await Promise.all(responses);
    expect(results.every((r) => 'result' in r)).toBe(true);
    expect(s.endpoint.calls).toHaveLength(2);
    expect(s.peer.seen.slice(1)).toEqual(Array(50).fill(s.endpoint.access(2)));
    expect(s.refreshes.map((e) => e.reason)).toEqual(['initial', 'expired']);
  });

  it('a caller that gives up (cancels) leaves the refresh running for the others', async () => {
    const s = await setup({ refreshSkewMs: 0 });
    let release!: () => void;
    s.endpoint.hold = new Promise((resolve) => (release = resolve));
    const first = s.app.call();
    const second = s.app.call();
    await vi.advanceTimersByTimeAsync(0);
    await s.transport.send({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 1, reason: 'user gave up' } });
    release();
    expect(await second).toMatchObject({ result: { ok: true } });
    expect(s.endpoint.calls).toHaveLength(1);
    void first;
  });
});

describe('oauth: reactive refresh on 401', () => {
  it('a 401 (SDK v1 StreamableHTTPError) refreshes and sends the request once more', async () => {
    const s = await setup();
    await s.app.call();
    s.peer.revoked.add(s.endpoint.access(1));
    const response = await s.app.call('tools/call');
    expect(response).toMatchObject({ result: { ok: true } });
    expect(s.peer.seen.slice(1)).toEqual([s.endpoint.access(1), s.endpoint.access(2)]);
    expect(s.refreshes.map((e) => e.reason)).toEqual(['initial', 'rejected']);
  });

  it('the SDK v2 UnauthorizedError counts as a 401 too', async () => {
    const s = await setup();
    s.peer.rejectWith = () => new SdkV2UnauthorizedError('Unauthorized');
    await s.app.call();
    s.peer.revoked.add(s.endpoint.access(1));
    expect(await s.app.call()).toMatchObject({ result: { ok: true } });
    expect(s.endpoint.calls).toHaveLength(2);
  });

  it('N requests rejected with the same token cause one refresh', async () => {
    const s = await setup();
    await s.app.call();
    s.peer.revoked.add(s.endpoint.access(1));
    const results = await Promise.all(Array.from({ length: 20 }, () => s.app.call()));
    expect(results.every((r) => 'result' in r)).toBe(true);
    expect(s.endpoint.calls).toHaveLength(2);
  });

  it('a second 401 with the fresh token ends in a clear Unauthorized error, without a loop', async () => {
    const s = await setup();
    s.peer.rejectWith = () => new SdkV2UnauthorizedError('Unauthorized');
    s.peer.revoked.add(s.endpoint.access(1)).add(s.endpoint.access(2)).add(s.endpoint.access(3));
    const response = await s.app.call('tools/list');
    expect(response).toMatchObject({ error: { code: ErrorCode.Unauthorized, data: { layer: 'oauth', reason: 'token-rejected' } } });
    expect((response as { error: { message: string } }).error.message).toMatch(/rejected the access token .* even after a refresh/);
    expect(s.endpoint.calls).toHaveLength(2);
    // The next request tries the newest token once; being rejected again, it is not refreshed a third time.
    expect(await s.app.call()).toMatchObject({ error: { code: ErrorCode.Unauthorized } });
    expect(s.endpoint.calls).toHaveLength(2);
  });
});

describe('oauth: refresh_token grant, rotation and the store', () => {
  it('uses the stored refresh token, saves each rotated one, and sends the newest next time', async () => {
    const store = new MemoryTokenStore({ refreshToken: 'rt-0-initial-refresh-token' });
    const saves: StoredTokens[] = [];
    const save = store.save.bind(store);
    store.save = (tokens) => {
      saves.push(tokens);
      save(tokens);
    };
    const s = await setup({ grant: 'refresh_token', clientAuth: { method: 'none' }, store, refreshSkewMs: 0 });
    await s.app.call();
    vi.setSystemTime(T0 + 99_000);
    await s.app.call();
    expect(s.endpoint.calls.map((c) => [c.grant, c.refreshToken])).toEqual([
      ['refresh_token', 'rt-0-initial-refresh-token'],
      ['refresh_token', s.endpoint.refresh(1)],
    ]);
    expect(saves.map((t) => t.refreshToken)).toEqual([s.endpoint.refresh(1), s.endpoint.refresh(2)]);
    expect(store.load()).toMatchObject({ accessToken: s.endpoint.access(2), refreshToken: s.endpoint.refresh(2), expiresAt: T0 + 99_000 + 99_000 });
  });

  it('starts from a stored access token that is still good, without a token request', async () => {
    const store = new MemoryTokenStore({ accessToken: 'at-7-stored', expiresAt: T0 + 50_000, refreshToken: 'rt-7-stored-refresh-token' });
    const s = await setup({ grant: 'refresh_token', clientAuth: { method: 'none' }, store });
    await s.app.call();
    expect(s.peer.seen).toEqual(['at-7-stored']);
    expect(s.endpoint.calls).toHaveLength(0);
  });

  it('keeps going when the store cannot save, and says so in a token-store-failed event', async () => {
    const store = new MemoryTokenStore({ refreshToken: 'rt-0-initial-refresh-token' });
    store.save = () => {
      throw new Error(`disk full while writing ${s.endpoint.refresh(1)}`);
    };
    const failures: Error[] = [];
    const s = await setup({ grant: 'refresh_token', clientAuth: { method: 'none' }, store });
    s.transport.events.on('token-store-failed', (event) => failures.push(event.error));
    expect(await s.app.call()).toMatchObject({ result: { ok: true } });
    expect(failures).toHaveLength(1);
    expect(failures[0]?.message).toBe('Saving the tokens to the token store failed: disk full while writing [redacted]');
  });
});

describe('oauth: failures', () => {
  it('invalid_grant ends in an error saying re-authorization is needed, and is not retried', async () => {
    const store = new MemoryTokenStore({ refreshToken: 'rt-0-revoked-refresh-token' });
    const s = await setup({ grant: 'refresh_token', clientAuth: { method: 'none' }, store });
    s.endpoint.script.push('invalid_grant');
    const response = await s.app.call();
    expect(response).toMatchObject({ error: { code: ErrorCode.Unauthorized, data: { layer: 'oauth', reason: 'invalid-grant', oauthError: 'invalid_grant', attempts: 0 } } });
    expect((response as { error: { message: string } }).error.message).toMatch(/^Re-authorization is needed: the identity provider rejected the refresh token/);
    for (let i = 0; i < 5; i++) expect(await s.app.call()).toMatchObject({ error: { data: { reason: 'invalid-grant' } } });
    expect(s.endpoint.calls).toHaveLength(1);
    expect(s.refreshes).toMatchObject([{ outcome: 'failed', reason: 'initial' }]);
    expect(s.peer.seen).toHaveLength(0);
    // Re-authorization saved a new refresh token: the next request recovers.
    store.save({ refreshToken: 'rt-9-after-reauthorization' });
    expect(await s.app.call()).toMatchObject({ result: { ok: true } });
    expect(s.endpoint.calls.at(-1)?.refreshToken).toBe('rt-9-after-reauthorization');
  });

  it('invalid_client is final for a minute, then tried once more', async () => {
    const s = await setup();
    s.endpoint.script.push('invalid_client');
    expect(await s.app.call()).toMatchObject({ error: { data: { reason: 'invalid-client' } } });
    expect(await s.app.call()).toMatchObject({ error: { data: { reason: 'invalid-client' } } });
    expect(s.endpoint.calls).toHaveLength(1);
    vi.setSystemTime(T0 + 60_000);
    expect(await s.app.call()).toMatchObject({ result: { ok: true } });
    expect(s.endpoint.calls).toHaveLength(2);
  });

  it('an unreachable token endpoint is retried with backoff, then the request fails as retryable', async () => {
    const s = await setup();
    s.endpoint.script.push('network', 'unavailable', 'network', 'network');
    const pending = s.app.call();
    await vi.advanceTimersByTimeAsync(0);
    expect(s.endpoint.calls).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(30_000);
    const response = await pending;
    expect(s.endpoint.calls).toHaveLength(4); // one try and maxAttempts (3) retries
    expect(response).toMatchObject({ error: { code: ErrorCode.Unauthorized, data: { reason: 'token-endpoint-unavailable' } } });
    expect((response as { error: { message: string } }).error.message).toMatch(/could not be reached \(4 attempt\(s\), last: fetch failed: ECONNREFUSED\)/);
    // Not sticky: the next request tries again and succeeds.
    expect(await s.app.call()).toMatchObject({ result: { ok: true } });
  });

  it.each([
    [503, 'retried'],
    [429, 'retried'],
    [408, 'retried'],
    [400, 'final'],
    [404, 'final'],
    [501, 'final'],
    [505, 'final'],
  ] as const)('an HTTP %i from the token endpoint is %s, as the table in docs/errors.md says', async (status, expected) => {
    const endpoint = new TokenEndpointDouble();
    const statuses: number[] = [];
    let refuse = true;
    const fetch = (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
      if (!refuse) return endpoint.fetch(input, init);
      refuse = false;
      statuses.push(status);
      return Promise.resolve(new Response(`<html>${status}</html>`, { status, headers: { 'content-type': 'text/html' } }));
    };
    const s = await setup({ fetch }, endpoint);
    const pending = s.app.call();
    await vi.advanceTimersByTimeAsync(30_000);
    const response = await pending;
    expect(statuses).toEqual([status]);
    if (expected === 'retried') {
      expect(response).toMatchObject({ result: { ok: true } });
      expect(endpoint.calls).toHaveLength(1);
    } else {
      expect(response).toMatchObject({ error: { code: ErrorCode.Unauthorized, data: { layer: 'oauth', attempts: 0 } } });
      expect((response as { error: { data: { reason: string } } }).error.data.reason).not.toBe('token-endpoint-unavailable');
      expect(endpoint.calls).toHaveLength(0);
    }
  });

  it('behind its own breaker: a dead identity provider is not hammered', async () => {
    const s = await setup({ retry: { maxRetries: 0 }, breaker: { consecutiveFailures: 3, halfOpenAfterMs: 20_000 } });
    const states: string[] = [];
    s.transport.events.on('breaker-state', (event) => states.push(`${event.key}:${event.to}`));
    s.endpoint.script.push(...Array<'network'>(10).fill('network'));
    for (let i = 0; i < 3; i++) expect(await s.app.call()).toMatchObject({ error: { data: { reason: 'token-endpoint-unavailable' } } });
    expect(s.endpoint.calls).toHaveLength(3);
    for (let i = 0; i < 20; i++) expect(await s.app.call()).toMatchObject({ error: { data: { reason: 'token-endpoint-circuit-open', retryAfterMs: 20_000 } } });
    expect(s.endpoint.calls).toHaveLength(3);
    expect(states).toEqual(['oauth-token-endpoint:open']);
    vi.setSystemTime(T0 + 20_000);
    s.endpoint.script.length = 0;
    expect(await s.app.call()).toMatchObject({ result: { ok: true } });
    expect(s.endpoint.calls).toHaveLength(4);
    expect(states).toEqual(['oauth-token-endpoint:open', 'oauth-token-endpoint:half-open', 'oauth-token-endpoint:closed']);
  });

  it('a response that is not a usable token response is final, and its body never reaches the message', async () => {
    const s = await setup();
    s.endpoint.script.push('garbage');
    const response = await s.app.call();
    expect(response).toMatchObject({ error: { data: { reason: 'invalid-token-response' } } });
    expect((response as { error: { message: string } }).error.message).toMatch(/^The token endpoint https:\/\/idp\.example\.test\/oauth\/token sent a response that could not be used/);
    expect(JSON.stringify(response)).not.toContain(CLIENT_SECRET);
  });
});

describe('oauth: what it publishes and prints', () => {
  it('token-refresh events carry outcome, duration and reason, never a token', async () => {
    const s = await setup({ grant: 'refresh_token', clientAuth: { method: 'client_secret_post', clientSecret: CLIENT_SECRET }, store: new MemoryTokenStore({ refreshToken: 'rt-0-initial-refresh-token' }) });
    await s.app.call();
    s.endpoint.script.push('invalid_grant');
    s.peer.revoked.add(s.endpoint.access(1));
    await s.app.call();
    expect(s.refreshes).toMatchObject([
      { outcome: 'ok', reason: 'initial', durationMs: expect.any(Number) },
      { outcome: 'failed', reason: 'rejected', error: expect.objectContaining({ reason: 'invalid-grant' }) },
    ]);
    const printed = [JSON.stringify(s.refreshes), inspect(s.refreshes, { depth: 10, showHidden: true })].join('\n');
    for (const secret of [...s.endpoint.issued, 'rt-0-initial-refresh-token', CLIENT_SECRET]) expect(printed).not.toContain(secret);
  });

  it('the layer, tokens, stores and per-message headers print as redacted', async () => {
    const s = await setup();
    const token = await s.auth.token();
    const printed = [
      String(token),
      `${token}`,
      JSON.stringify(token),
      inspect(token),
      inspect(s.auth, { depth: 10, showHidden: true }),
      JSON.stringify(s.auth),
      inspect(new MemoryTokenStore({ refreshToken: 'rt-0-initial-refresh-token' })),
    ].join('\n');
    for (const secret of [s.endpoint.access(1), 'rt-0-initial-refresh-token', CLIENT_SECRET]) expect(printed).not.toContain(secret);
    expect(token.reveal()).toBe(s.endpoint.access(1));

    const seen: unknown[] = [];
    const spy = wrap(new ProtectedPeer(), [s.auth, (ctx, next) => (seen.push(ctx.options), next())]);
    const app = new App(spy);
    await spy.start();
    await app.call();
    expect(JSON.stringify(seen)).toContain('"authorization":"[redacted]"');
    expect(inspect(seen, { depth: 10 })).not.toContain(s.endpoint.access(1));
    expect(Object.entries((seen[0] as { headers: Record<string, string> }).headers)).toEqual([['authorization', `Bearer ${s.endpoint.access(1)}`]]);
  });

  it('forwards events to every transport it is attached to', async () => {
    const s = await setup();
    const other = wrap(new ProtectedPeer(), [s.auth]);
    const seen: string[] = [];
    other.events.on('token-refresh', (event) => seen.push(event.reason));
    await s.app.call();
    expect(seen).toEqual(['initial']);
  });
});

describe('oauth: options', () => {
  const base: OAuthOptions = { tokenEndpoint: TOKEN_URL, clientId: 'agent', grant: 'client_credentials', clientAuth: { method: 'client_secret_basic', clientSecret: CLIENT_SECRET } };

  it.each([
    [{ ...base, grant: 'password' }, 'oauth.grant: expected "client_credentials" or "refresh_token", got "password"'],
    [{ ...base, tokenEndpoint: undefined }, 'oauth.issuer: expected an issuer URL (or oauth.tokenEndpoint), got undefined'],
    [{ ...base, issuer: 'http://idp.example.test' }, 'oauth.issuer: expected an https:// URL (http:// only for 127.0.0.1, ::1 or localhost), got "http://idp.example.test/"'],
    [{ ...base, clientId: '' }, 'oauth.clientId: expected a non-empty string, got ""'],
    [{ ...base, clientAuth: undefined }, 'oauth.clientAuth: expected client authentication for the client_credentials grant'],
    [{ ...base, clientAuth: { method: 'none' } }, 'oauth.clientAuth.method: expected a confidential client method for client_credentials, got "none"'],
    [{ ...base, clientAuth: { method: 'client_secret_basic', clientSecret: 42 } }, 'oauth.clientAuth.clientSecret: expected a non-empty string, got 42'],
    [{ ...base, clientAuth: { method: 'magic' } }, 'oauth.clientAuth.method: expected "client_secret_basic"'],
    [{ ...base, refreshSkewMs: -1 }, 'oauth.refreshSkewMs: expected a number >= 0, got -1'],
    [{ ...base, scopes: ['a b'] }, 'oauth.scopes[0]: expected a scope without spaces, got "a b"'],
    [{ ...base, resource: 'https://mcp.example.test/mcp#x' }, 'oauth.resource: expected a URL without a #fragment (RFC 8707)'],
    [{ ...base, store: {} }, 'oauth.store: expected a token store (an object with load() and save()), got an object'],
    [{ ...base, retry: { maxRetries: 1.5 } }, 'oauth.retry.maxRetries: expected an integer >= 0, got 1.5'],
    [{ ...base, retry: { initialDelayMs: 500, maxDelayMs: 100 } }, 'oauth.retry.maxDelayMs: expected a number >= retry.initialDelayMs (500), got 100'],
    [{ ...base, breaker: { consecutiveFailures: 0 } }, 'oauth.breaker.consecutiveFailures: expected an integer >= 1, got 0'],
    [{ ...base, provider: { nothing: true } }, 'oauth.provider: expected an SDK AuthProvider (token()) or OAuthClientProvider'],
    [{ ...base, refreshSkew: 5 }, 'oauth.refreshSkew: expected one of the oauth options'],
    [{ ...base, provider: { token: async () => 'x' } }, 'oauth.tokenEndpoint: expected nothing: an AuthProvider (oauth.provider) obtains its tokens itself'],
  ])('rejects %o', (options, message) => {
    expect(() => oauth(options as OAuthOptions)).toThrow(message);
  });

  it('never echoes a secret in a validation error', () => {
    const messages: string[] = [];
    for (const clientAuth of [
      { method: 'private_key_jwt', privateKey: CLIENT_SECRET },
      { method: 'client_secret_basic', clientSecret: '' },
      { method: 'client_secret_jwt', clientSecret: [CLIENT_SECRET] },
    ]) {
      try {
        oauth({ ...base, clientAuth } as OAuthOptions);
      } catch (error) {
        messages.push((error as Error).message);
      }
    }
    expect(messages).toEqual([
      'oauth.clientAuth.privateKey: expected a private CryptoKey, got "[redacted]"',
      'oauth.clientAuth.clientSecret: expected a non-empty string, got ""',
      'oauth.clientAuth.clientSecret: expected a non-empty string, got an array of 1',
    ]);
  });
});
