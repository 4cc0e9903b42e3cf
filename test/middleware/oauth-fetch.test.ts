/**
 * auth.fetch(): the Authorization header on every HTTP request, and the refresh-and-
 * replay-once on a 401, against a real HTTP server on 127.0.0.1.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { oauth } from '#middleware/oauth/oauth.ts';
import { bearerError } from '#middleware/oauth/authorized-fetch.ts';
import { UnauthorizedError } from '#middleware/oauth/unauthorized.ts';
import { CLIENT_SECRET, TOKEN_URL, TokenEndpointDouble } from './support/oauth.ts';

interface Seen {
  method: string;
  authorization: string | undefined;
  custom: string | undefined;
  body: string;
}

let server: Server;
let url: string;
const seen: Seen[] = [];
/** Tokens the server refuses, and how. */
const refused = new Map<string, { status: number; challenge?: string }>();

beforeAll(async () => {
  server = createServer(async (req: IncomingMessage, res) => {
    let body = '';
    for await (const chunk of req) body += String(chunk);
    const authorization = req.headers.authorization;
    seen.push({ method: req.method ?? '', authorization, custom: req.headers['x-custom'] as string | undefined, body });
    const refusal = refused.get(authorization?.replace(/^Bearer /, '') ?? '');
    if (refusal !== undefined) {
      res.writeHead(refusal.status, refusal.challenge === undefined ? {} : { 'www-authenticate': refusal.challenge }).end('{"error":"nope"}');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ echo: body }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

function setup() {
  seen.length = 0;
  refused.clear();
  const endpoint = new TokenEndpointDouble();
  const auth = oauth({
    tokenEndpoint: TOKEN_URL,
    clientId: 'agent',
    clientAuth: { method: 'client_secret_basic', clientSecret: CLIENT_SECRET },
    grant: 'client_credentials',
    fetch: endpoint.fetch,
  });
  return { auth, endpoint, fetch: auth.fetch() };
}

describe('auth.fetch()', () => {
  it('authorizes every request and keeps the caller’s headers', async () => {
    const s = setup();
    await s.fetch(url, { method: 'POST', headers: { 'x-custom': 'kept', authorization: 'Bearer stale' }, body: '{"a":1}' });
    await s.fetch(new URL(url), { method: 'GET', headers: new Headers({ accept: 'text/event-stream' }) });
    await s.fetch(new Request(url, { method: 'DELETE' }));
    expect(seen.map((r) => [r.method, r.authorization])).toEqual([
      ['POST', `Bearer ${s.endpoint.access(1)}`],
      ['GET', `Bearer ${s.endpoint.access(1)}`],
      ['DELETE', `Bearer ${s.endpoint.access(1)}`],
    ]);
    expect(seen[0]?.custom).toBe('kept');
    expect(s.endpoint.calls).toHaveLength(1);
  });

  it('on a 401 with error="invalid_token" refreshes and sends the same request once more', async () => {
    const s = setup();
    await s.auth.token();
    refused.set(s.endpoint.access(1), { status: 401, challenge: 'Bearer realm="mcp", error="invalid_token", error_description="expired"' });
    const response = await s.fetch(url, { method: 'POST', body: '{"jsonrpc":"2.0","id":1,"method":"ping"}' });
    expect(response.status).toBe(200);
    expect(seen.map((r) => [r.authorization, r.body])).toEqual([
      [`Bearer ${s.endpoint.access(1)}`, '{"jsonrpc":"2.0","id":1,"method":"ping"}'],
      [`Bearer ${s.endpoint.access(2)}`, '{"jsonrpc":"2.0","id":1,"method":"ping"}'],
    ]);
  });

  it('replays a Request object’s body too', async () => {
    const s = setup();
    await s.auth.token();
    refused.set(s.endpoint.access(1), { status: 401 });
    const response = await s.fetch(new Request(url, { method: 'POST', body: 'payload' }));
    expect(response.status).toBe(200);
    expect(seen.map((r) => r.body)).toEqual(['payload', 'payload']);
  });

  it('concurrent requests rejected with the same token share one refresh', async () => {
    const s = setup();
    await s.auth.token();
    refused.set(s.endpoint.access(1), { status: 401, challenge: 'Bearer error="invalid_token"' });
    const responses = await Promise.all(Array.from({ length: 10 }, (_, i) => s.fetch(url, { method: 'POST', body: String(i) })));
    expect(responses.map((r) => r.status)).toEqual(Array(10).fill(200));
    expect(s.endpoint.calls).toHaveLength(2);
  });

  it('leaves alone a 401 a new token cannot fix, a 403, and a body it cannot send twice', async () => {
    const s = setup();
    await s.auth.token();
    refused.set(s.endpoint.access(1), { status: 401, challenge: 'Bearer error="invalid_request"' });
    expect((await s.fetch(url)).status).toBe(401);
    refused.set(s.endpoint.access(1), { status: 403, challenge: 'Bearer error="insufficient_scope", scope="mcp:admin"' });
    expect((await s.fetch(url)).status).toBe(403);
    refused.set(s.endpoint.access(1), { status: 401 });
    const stream = new ReadableStream({
      start(controller) {
        controller.enqueue(new TextEncoder().encode('streamed'));
        controller.close();
      },
    });
    expect((await s.fetch(url, { method: 'POST', body: stream, duplex: 'half' } as RequestInit)).status).toBe(401);
    expect(s.endpoint.calls).toHaveLength(1);
  });

  it('a second 401 ends in an UnauthorizedError, not a loop', async () => {
    const s = setup();
    await s.auth.token();
    for (const n of [1, 2, 3]) refused.set(s.endpoint.access(n), { status: 401, challenge: 'Bearer error="invalid_token"' });
    const error = await s.fetch(`${url}?session=abc`, { method: 'POST', body: 'x' }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(UnauthorizedError);
    expect((error as UnauthorizedError).reason).toBe('token-rejected');
    expect((error as Error).message).toBe(
      `${url} rejected the access token with HTTP 401 (invalid_token) even after a refresh; check that the token is meant for this server (resource / audience) and carries the scopes it needs`,
    );
    expect(seen).toHaveLength(2);
    expect(s.endpoint.calls).toHaveLength(2);
  });

  it('keeps the symbols the base fetch carries (mcp-layers/http wire control)', () => {
    const s = setup();
    const marker = Symbol.for('mcp-layers.wire-control');
    const base = Object.assign((input: string | URL | Request, init?: RequestInit) => fetch(input, init), { [marker]: { kind: 'http-client' } });
    expect((s.auth.fetch(base) as unknown as Record<symbol, unknown>)[marker]).toEqual({ kind: 'http-client' });
  });
});

describe('bearerError()', () => {
  it.each([
    [null, undefined],
    ['Bearer', undefined],
    ['Bearer realm="mcp"', undefined],
    ['Bearer error="invalid_token"', 'invalid_token'],
    ['bearer error=invalid_token, error_description="x"', 'invalid_token'],
    ['Bearer realm="a, b", error="insufficient_scope", scope="x y"', 'insufficient_scope'],
    ['Basic realm="x", Bearer error="invalid_token"', 'invalid_token'],
    ['Bearer realm="mcp", DPoP error="invalid_dpop_proof", algs="ES256"', undefined],
    ['DPoP error="use_dpop_nonce"', undefined],
  ])('%s → %s', (header, expected) => {
    expect(bearerError(header)).toBe(expected);
  });
});
