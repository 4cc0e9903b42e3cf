/**
 * WebSocketClientTransport and credentials: the `onunauthorized` hook (an upgrade refused
 * with 401, a close with an unauthorized code such as 4401) and `reconnect()` (a new
 * connection carrying renewed handshake headers). The oauth layer builds on both.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { afterEach, describe, expect, it } from 'vitest';
import { wrap } from '#core/index.ts';
import { UnauthorizedError } from '#middleware/oauth/unauthorized.ts';
import { AuthenticationError, listenWebSocket, type McpWebSocketServer, WebSocketClientTransport } from '#transports/ws/index.ts';

const cleanup: Array<() => unknown> = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

interface Server {
  wss: McpWebSocketServer;
  /** Authorization header values the server accepts. */
  accepted: Set<string>;
  /** Authorization header of every upgrade, accepted or not. */
  upgrades: Array<string | undefined>;
  initializes: number;
}

async function server(): Promise<Server> {
  const state = { accepted: new Set<string>(), upgrades: [] as Array<string | undefined>, initializes: 0 };
  const wss = await listenWebSocket({
    authenticate: (request) => {
      const authorization = request.headers.authorization;
      state.upgrades.push(authorization);
      if (authorization === undefined || !state.accepted.has(authorization)) {
        throw new AuthenticationError('the token is not valid', { status: 401, headers: { 'www-authenticate': 'Bearer error="invalid_token"' } });
      }
      return { token: authorization };
    },
    onconnection: async (transport) => {
      const mcp = new McpServer({ name: 'protected', version: '1.0.0' });
      mcp.server.oninitialized = () => state.initializes++;
      await mcp.connect(wrap(transport, []));
    },
  });
  cleanup.push(() => wss.close());
  return Object.assign(state, { wss });
}

/** Credentials that change when renewed: token-1, token-2... */
function credentials() {
  const c = {
    n: 1,
    renewals: [] as Array<{ status?: number; code?: number; reason?: string }>,
    fail: undefined as Error | undefined,
    headers: async () => ({ authorization: `Bearer token-${c.n}` }),
    onunauthorized: async (event: { status?: number; code?: number; reason?: string }) => {
      c.renewals.push(event);
      if (c.fail !== undefined) throw c.fail;
      c.n++;
    },
  };
  return c;
}

async function connect(s: Server, options: ConstructorParameters<typeof WebSocketClientTransport>[1]) {
  const transport = new WebSocketClientTransport(s.wss.url, { reconnect: { initialDelayMs: 10, maxDelayMs: 50 }, ...options });
  const client = new Client({ name: 'client', version: '1.0.0' });
  const errors: Error[] = [];
  client.onerror = (e) => errors.push(e);
  const closed = new Promise<void>((resolve) => (client.onclose = resolve));
  cleanup.push(() => client.close());
  return { transport, client, errors, closed, connected: client.connect(transport) };
}

describe('WebSocketClientTransport onunauthorized', () => {
  it('an upgrade refused with 401 at start: renews the credentials and connects again', async () => {
    const s = await server();
    s.accepted.add('Bearer token-2');
    const c = credentials();
    const { client, connected } = await connect(s, { headers: c.headers, onunauthorized: c.onunauthorized });
    await connected;
    await client.ping();
    expect(c.renewals).toEqual([{ status: 401 }]);
    expect(s.upgrades).toEqual(['Bearer token-1', 'Bearer token-2']);
  });

  it('a close with 4401: renews, reconnects at once with the new credentials, and restores the session', async () => {
    const s = await server();
    s.accepted.add('Bearer token-1').add('Bearer token-2');
    const c = credentials();
    const { client, transport, connected } = await connect(s, { headers: c.headers, onunauthorized: c.onunauthorized });
    await connected;
    const reconnected = new Promise<void>((resolve) => transport.events.on('reconnect', (e) => e.outcome === 'connected' && resolve()));
    const scheduled = new Promise<number>((resolve) => transport.events.on('reconnect', (e) => e.outcome === 'scheduled' && resolve(e.delayMs)));
    for (const connection of s.wss.connections) void connection.close(4401, 'token expired');
    expect(await scheduled).toBe(0);
    await reconnected;
    await client.ping();
    expect(c.renewals).toEqual([{ code: 4401, reason: 'token expired' }]);
    expect(s.upgrades).toEqual(['Bearer token-1', 'Bearer token-2']);
    expect(s.initializes).toBe(2); // the handshake was replayed on the new connection
  });

  it('a hook that fails ends the transport with its error, without another attempt', async () => {
    const s = await server();
    s.accepted.add('Bearer token-1');
    const c = credentials();
    const { transport, errors, closed, connected } = await connect(s, { headers: c.headers, onunauthorized: c.onunauthorized });
    await connected;
    c.fail = new Error('Re-authorization is needed: the refresh token was revoked');
    for (const connection of s.wss.connections) void connection.close(4401, 'token revoked');
    await closed;
    expect(transport.state).toBe('closed');
    expect(errors.map((e) => e.message)).toContainEqual(expect.stringMatching(/gave up reconnecting to .*: Re-authorization is needed: the refresh token was revoked$/));
    expect(s.upgrades).toEqual(['Bearer token-1']);
  });

  it('renews once: a 401 with the renewed credentials too ends the transport (no loop)', async () => {
    const s = await server();
    s.accepted.add('Bearer token-1');
    const c = credentials();
    const { errors, closed, connected } = await connect(s, { headers: c.headers, onunauthorized: c.onunauthorized });
    await connected;
    s.accepted.clear();
    for (const connection of s.wss.connections) void connection.close(4401, 'token expired');
    await closed;
    expect(c.renewals).toHaveLength(1);
    expect(s.upgrades).toEqual(['Bearer token-1', 'Bearer token-2']);
    expect(errors.at(-1)?.message).toMatch(/gave up reconnecting .* refused the WebSocket upgrade: HTTP 401/);
  });

  it('without a hook a 4401 reconnects with the same credentials, and a 401 ends it as before', async () => {
    const s = await server();
    s.accepted.add('Bearer token-1');
    const c = credentials();
    const { closed, connected } = await connect(s, { headers: c.headers });
    await connected;
    s.accepted.clear();
    for (const connection of s.wss.connections) void connection.close(4401, 'token expired');
    await closed;
    expect(s.upgrades).toEqual(['Bearer token-1', 'Bearer token-1']);
  });

  it('headers() failing for good (not retryable) ends the reconnection at once', async () => {
    const s = await server();
    s.accepted.add('Bearer token-1');
    let fail = false;
    const headers = async () => {
      if (fail) throw new UnauthorizedError('Re-authorization is needed: the refresh token was revoked', { reason: 'invalid-grant' });
      return { authorization: 'Bearer token-1' };
    };
    const { transport, errors, closed, connected } = await connect(s, { headers });
    await connected;
    let attempts = 0;
    transport.events.on('reconnect', (e) => e.outcome === 'failed' && attempts++);
    fail = true;
    for (const connection of s.wss.connections) void connection.close(1012, 'service restart');
    await closed;
    expect(attempts).toBe(1);
    expect(errors.at(-1)?.message).toMatch(/gave up reconnecting to .*: Re-authorization is needed/);
  });

  it('validates unauthorizedCloseCodes and onunauthorized', () => {
    expect(() => new WebSocketClientTransport('ws://127.0.0.1:1/mcp', { unauthorizedCloseCodes: [4401, 99] })).toThrow(
      'WebSocketClientTransport.unauthorizedCloseCodes: expected an array of close codes (1000-4999), got an array of 2',
    );
    expect(() => new WebSocketClientTransport('ws://127.0.0.1:1/mcp', { onunauthorized: 'refresh' as never })).toThrow('WebSocketClientTransport.onunauthorized: expected a function, got "refresh"');
  });
});

describe('WebSocketClientTransport reconnect()', () => {
  it('replaces the connection at once with fresh headers; the session goes on', async () => {
    const s = await server();
    s.accepted.add('Bearer token-1').add('Bearer token-2');
    const c = credentials();
    const { client, transport, connected } = await connect(s, { headers: c.headers });
    await connected;
    c.n = 2;
    const renewed = transport.reconnect('renewing the access token');
    const during = client.ping(); // queued while reconnecting, sent once the new connection is ready
    await renewed;
    expect(transport.state).toBe('open');
    await during;
    await client.ping();
    expect(s.upgrades).toEqual(['Bearer token-1', 'Bearer token-2']);
    expect(s.initializes).toBe(2);
  });

  it('does nothing when not open, and refuses without the reconnect option', async () => {
    const s = await server();
    s.accepted.add('Bearer token-1');
    const idle = new WebSocketClientTransport(s.wss.url, {});
    await idle.reconnect();
    expect(idle.state).toBe('idle');
    const c = credentials();
    const { transport, connected } = await connect(s, { headers: c.headers, reconnect: false });
    await connected;
    await expect(transport.reconnect()).rejects.toThrow('reconnect() needs the reconnect option (it is false)');
  });
});
