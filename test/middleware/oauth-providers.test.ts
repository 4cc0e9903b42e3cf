/**
 * The SDKs' own auth objects as token sources: v2 AuthProvider, and the v1 / v2
 * OAuthClientProvider (typed with the SDKs' own interfaces, so a type change breaks here).
 */
import type { AuthProvider, OAuthClientProvider as V2OAuthClientProvider } from '@modelcontextprotocol/client';
import type { OAuthClientProvider as V1OAuthClientProvider } from '@modelcontextprotocol/sdk/client/auth.js';
import type { OAuthClientInformationMixed, OAuthClientMetadata, OAuthTokens } from '@modelcontextprotocol/sdk/shared/auth.js';
import { describe, expect, it } from 'vitest';
import { oauth, type OAuthOptions } from '#middleware/oauth/oauth.ts';
import { ErrorCode } from '#core/errors.ts';
import type { LayerEvents } from '#core/events.ts';
import { wrap } from '#core/wrap.ts';
import { App, CLIENT_SECRET, ProtectedPeer, TOKEN_URL, TokenEndpointDouble } from './support/oauth.ts';

async function setup(options: OAuthOptions) {
  const peer = new ProtectedPeer();
  const transport = wrap(peer, [oauth(options)]);
  const app = new App(transport);
  const refreshes: Array<LayerEvents['token-refresh']> = [];
  transport.events.on('token-refresh', (event) => refreshes.push(event));
  await transport.start();
  return { peer, app, refreshes };
}

/** A v2 AuthProvider that hands out at-N tokens and moves to the next on onUnauthorized(). */
class CountingAuthProvider implements AuthProvider {
  n = 1;
  unauthorized = 0;
  lastServerUrl: URL | undefined;
  async token(): Promise<string | undefined> {
    return `at-${this.n}-from-the-provider`;
  }
  async onUnauthorized(context: { serverUrl: URL }): Promise<void> {
    this.unauthorized++;
    this.lastServerUrl = context.serverUrl;
    await new Promise((resolve) => setImmediate(resolve));
    this.n++;
  }
}

describe('oauth({ provider: AuthProvider }) — SDK v2', () => {
  it('sends the provider’s token; N requests rejected together cause one onUnauthorized()', async () => {
    const provider = new CountingAuthProvider();
    const s = await setup({ provider, resource: 'https://mcp.example.test/mcp' });
    await s.app.call();
    s.peer.revoked.add('at-1-from-the-provider');
    const results = await Promise.all(Array.from({ length: 10 }, () => s.app.call()));
    expect(results.every((r) => 'result' in r)).toBe(true);
    expect(provider.unauthorized).toBe(1);
    expect(provider.lastServerUrl?.href).toBe('https://mcp.example.test/mcp');
    expect(s.peer.seen.at(-1)).toBe('at-2-from-the-provider');
    expect(s.refreshes).toMatchObject([{ outcome: 'ok', reason: 'rejected' }]);
  });

  it('a provider that keeps giving rejected tokens ends in an Unauthorized error, once', async () => {
    const provider = new CountingAuthProvider();
    const s = await setup({ provider, resource: 'https://mcp.example.test/mcp' });
    for (let n = 1; n < 5; n++) s.peer.revoked.add(`at-${n}-from-the-provider`);
    expect(await s.app.call()).toMatchObject({ error: { code: ErrorCode.Unauthorized, data: { reason: 'token-rejected' } } });
    expect(provider.unauthorized).toBe(1);
  });

  it('a provider without onUnauthorized, or without a token, says so', async () => {
    const s = await setup({ provider: { token: async () => 'at-1-fixed-token-value' } });
    s.peer.revoked.add('at-1-fixed-token-value');
    const rejected = await s.app.call();
    expect(rejected).toMatchObject({ error: { data: { reason: 'token-rejected' } } });
    expect((rejected as { error: { message: string } }).error.message).toMatch(/cannot refresh it \(it has no onUnauthorized\)/);
    const t = await setup({ provider: { token: async () => undefined } });
    expect(await t.app.call()).toMatchObject({ error: { message: 'Authorization is needed: the AuthProvider has no token', data: { reason: 'no-token' } } });
  });
});

/** What the SDK's interactive flow leaves behind: a registration and tokens (opaque, expiry unknown). */
class StoredOAuthClientProvider implements V1OAuthClientProvider {
  tokensValue: OAuthTokens | undefined = { access_token: 'at-0-from-the-flow', token_type: 'Bearer', expires_in: 3600, refresh_token: 'rt-0-from-the-flow' };
  saved: OAuthTokens[] = [];
  invalidated: string[] = [];
  get redirectUrl(): string {
    return 'http://127.0.0.1/callback';
  }
  get clientMetadata(): OAuthClientMetadata {
    return { redirect_uris: ['http://127.0.0.1/callback'], client_name: 'test' };
  }
  clientInformation(): OAuthClientInformationMixed {
    return { client_id: 'registered-client', client_secret: CLIENT_SECRET };
  }
  tokens(): OAuthTokens | undefined {
    return this.tokensValue;
  }
  saveTokens(tokens: OAuthTokens): void {
    this.saved.push(tokens);
    this.tokensValue = tokens;
  }
  redirectToAuthorization(): void {
    throw new Error('not interactive');
  }
  saveCodeVerifier(): void {}
  codeVerifier(): string {
    return 'verifier';
  }
  invalidateCredentials(scope: 'all' | 'client' | 'tokens' | 'verifier' | 'discovery'): void {
    this.invalidated.push(scope);
    if (scope === 'tokens' || scope === 'all') this.tokensValue = undefined;
  }
  discoveryState() {
    return { authorizationServerUrl: 'https://idp.example.test', authorizationServerMetadata: { issuer: 'https://idp.example.test', token_endpoint: TOKEN_URL, authorization_endpoint: 'https://idp.example.test/authorize', response_types_supported: ['code'] } };
  }
}

describe('oauth({ provider: OAuthClientProvider }) — SDK v1', () => {
  it('starts with the provider’s tokens, refreshes them on a 401 and saves the rotated ones back', async () => {
    const provider = new StoredOAuthClientProvider();
    const endpoint = new TokenEndpointDouble();
    const s = await setup({ provider, fetch: endpoint.fetch, resource: 'https://mcp.example.test/mcp' });
    await s.app.call();
    expect(endpoint.calls).toHaveLength(0);
    s.peer.revoked.add('at-0-from-the-flow');
    expect(await s.app.call()).toMatchObject({ result: { ok: true } });
    expect(endpoint.calls).toMatchObject([{ grant: 'refresh_token', refreshToken: 'rt-0-from-the-flow', resource: ['https://mcp.example.test/mcp'] }]);
    // The registration's secret authenticates the client (client_secret_basic).
    expect(endpoint.calls[0]?.authorization).toMatch(/^Basic /);
    expect(provider.saved).toMatchObject([{ access_token: endpoint.access(1), refresh_token: endpoint.refresh(1), token_type: 'Bearer' }]);
    // expires_in 100 from the endpoint, less the second taken off for rounding, less the time since.
    expect(provider.saved[0]?.expires_in).toBeGreaterThanOrEqual(98);
    expect(provider.saved[0]?.expires_in).toBeLessThanOrEqual(99);
    expect(s.peer.seen.at(-1)).toBe(endpoint.access(1));
  });

  it('invalid_grant: the provider drops its tokens (invalidateCredentials) and the error asks for re-authorization', async () => {
    const provider = new StoredOAuthClientProvider();
    const endpoint = new TokenEndpointDouble();
    endpoint.script.push('invalid_grant');
    const s = await setup({ provider, fetch: endpoint.fetch });
    await s.app.call();
    s.peer.revoked.add('at-0-from-the-flow');
    const response = await s.app.call();
    expect(response).toMatchObject({ error: { code: ErrorCode.Unauthorized, data: { reason: 'invalid-grant' } } });
    expect((response as { error: { message: string } }).error.message).toMatch(/^Re-authorization is needed/);
    expect(provider.invalidated).toEqual(['tokens']);
    expect(await s.app.call()).toMatchObject({ error: { data: { reason: 'invalid-grant' } } });
    expect(endpoint.calls).toHaveLength(1);
  });

  it('accepts the v2 OAuthClientProvider type as well', () => {
    const v2: V2OAuthClientProvider = new StoredOAuthClientProvider() as unknown as V2OAuthClientProvider;
    expect(() => oauth({ provider: v2, fetch: new TokenEndpointDouble().fetch })).not.toThrow();
    expect(() => oauth({ provider: new StoredOAuthClientProvider(), store: { load: () => undefined, save: () => {} } })).toThrow(
      'oauth.store: expected nothing: the OAuthClientProvider (oauth.provider) keeps the tokens',
    );
  });
});
