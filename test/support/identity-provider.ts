/**
 * A real OAuth 2.0 / OpenID Connect authorization server for the e2e tests: oidc-provider,
 * in-process on 127.0.0.1, with the client_credentials and refresh_token grants,
 * refresh-token rotation, revocation, and JWT access tokens (RFC 9068) for any MCP server
 * on 127.0.0.1 named as the resource (RFC 8707) that live `accessTokenTtl` seconds.
 *
 * It records every token it issues (so the tests can search logs for them) and counts
 * token requests. Refresh tokens are minted in-process, standing in for a user who went
 * through the interactive authorization-code flow once.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as jose from 'jose';
import * as oauth from 'oauth4webapi';
import Provider, { type KoaContextWithOIDC } from 'oidc-provider';

export const SCOPE = 'mcp:tools';

export interface IdentityProvider {
  readonly issuer: string;
  readonly clientId: string;
  readonly clientSecret: string;
  /** Token requests received (any grant, any outcome). */
  readonly tokenRequests: number;
  /** Every access token and refresh token issued or minted, in order. */
  readonly issued: readonly string[];
  /** Verifies a JWT access token for `audience` like a resource server would. */
  verify(token: string, audience: string): Promise<jose.JWTPayload>;
  /** A refresh token for a user who authorized `clientId` for `resource` (as the authorization-code flow would leave). */
  mintRefreshToken(resource: string): Promise<string>;
  /** Revokes a refresh token through the revocation endpoint (RFC 7009), as the user or an admin would. */
  revoke(refreshToken: string): Promise<void>;
  /** Resolves when the token request count reaches `n`. */
  tokenRequestsReach(n: number): Promise<void>;
  close(): Promise<void>;
}

export async function startIdentityProvider(options: { accessTokenTtl: number }): Promise<IdentityProvider> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const clientId = 'mcp-agent';
  const clientSecret = `secret-${randomBytes(18).toString('base64url')}`;
  const { privateKey, publicKey } = await jose.generateKeyPair('RS256', { extractable: true });
  const jwk = { ...(await jose.exportJWK(privateKey)), alg: 'RS256', use: 'sig', kid: 'test-key' };
  const issued: string[] = [];
  let tokenRequests = 0;
  const waiters: Array<{ n: number; resolve: () => void }> = [];

  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: clientId,
        client_secret: clientSecret,
        grant_types: ['client_credentials', 'refresh_token', 'authorization_code'],
        redirect_uris: ['http://127.0.0.1/callback'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
    jwks: { keys: [jwk] },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true, allowedPolicy: async () => true },
      resourceIndicators: {
        enabled: true,
        defaultResource: async () => undefined as unknown as string,
        useGrantedResource: async () => true,
        // Any MCP server on the loopback interface is a resource server with short-lived JWT access tokens.
        getResourceServerInfo: async (_ctx, resourceIndicator) => {
          if (!resourceIndicator.startsWith('http://127.0.0.1:')) throw new Error(`unknown resource ${resourceIndicator}`);
          return { scope: SCOPE, audience: resourceIndicator, accessTokenTTL: options.accessTokenTtl, accessTokenFormat: 'jwt' as const, jwt: { sign: { alg: 'RS256' } } };
        },
      },
    },
    scopes: ['openid', 'offline_access', SCOPE],
    findAccount: async (_ctx, id) => ({ accountId: id, claims: async () => ({ sub: id }) }),
    rotateRefreshToken: true,
    ttl: { ClientCredentials: options.accessTokenTtl, AccessToken: options.accessTokenTtl, RefreshToken: 3600, Grant: 3600, IdToken: 3600, Session: 3600, Interaction: 600 },
  });
  // Quiet and deterministic: no warnings about the development adapter on the console.
  provider.on('server_error', () => {});
  provider.use(async (ctx: KoaContextWithOIDC, next: () => Promise<void>) => {
    const isToken = ctx.path === '/token' && ctx.method === 'POST';
    if (isToken) tokenRequests++;
    await next();
    if (isToken) {
      const body = ctx.body as { access_token?: unknown; refresh_token?: unknown } | undefined;
      if (typeof body?.access_token === 'string') issued.push(body.access_token);
      if (typeof body?.refresh_token === 'string') issued.push(body.refresh_token);
      for (const w of waiters.filter((w) => tokenRequests >= w.n)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  });
  server.on('request', provider.callback());

  const as: oauth.AuthorizationServer = { issuer, token_endpoint: `${issuer}/token`, revocation_endpoint: `${issuer}/token/revocation` };
  const insecure = { [oauth.allowInsecureRequests]: true };

  return {
    issuer,
    clientId,
    clientSecret,
    get tokenRequests() {
      return tokenRequests;
    },
    issued,
    async verify(token, audience) {
      const { payload } = await jose.jwtVerify(token, publicKey, { issuer, audience, typ: 'at+jwt' });
      return payload;
    },
    async mintRefreshToken(resource) {
      const grant = new provider.Grant({ accountId: 'user-1', clientId });
      grant.addOIDCScope('openid offline_access');
      grant.addResourceScope(resource, SCOPE);
      const grantId = await grant.save();
      const client = await provider.Client.find(clientId);
      const token = new provider.RefreshToken({ client, accountId: 'user-1', grantId, scope: 'openid offline_access', resource, gty: 'authorization_code' } as never);
      const value = await token.save();
      issued.push(value);
      return value;
    },
    async revoke(refreshToken) {
      const response = await oauth.revocationRequest(as, { client_id: clientId }, oauth.ClientSecretBasic(clientSecret), refreshToken, insecure);
      await oauth.processRevocationResponse(response);
    },
    tokenRequestsReach(n) {
      return tokenRequests >= n ? Promise.resolve() : new Promise<void>((resolve) => waiters.push({ n, resolve }));
    },
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
