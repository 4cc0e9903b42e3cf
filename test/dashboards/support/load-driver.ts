/**
 * A load driver for the dashboards' live test. It runs beside the gateway's demo (`npm run
 * demo`) and produces what a gateway demo does not on its own, so that every metric family
 * gets data — with the same stack shape (an SDK client and an SDK server, both wrapped,
 * over a real loopback transport, with `standard()`, `chaos` and `metrics`), bounded load
 * and injected faults, its registry served at /metrics:
 *
 *   main     SDK v1 clients over mcp-layers/ws (heartbeats, reconnects, permessage-deflate,
 *            batching in 2025-03-26) to SDK v1 servers; standard() + hedging + chaos, with
 *            short error storms (breaker trips), bursts (shedding, queueing), cancellations,
 *            network stalls (missed heartbeats → reconnects) and session churn.
 *   auth     oauth() over Streamable HTTP against a real authorization server
 *            (oidc-provider): short-lived tokens refreshed, a token store that cannot save,
 *            a client whose secret is wrong, and one whose identity provider is down.
 *   peer     a misbehaving peer on an in-memory link: late and unknown responses, and
 *            a message that is not JSON-RPC.
 *   gateway  a small gateway (maxSessions 1) in front of main's server, its registry this
 *            one: sessions open, refused and closed.
 *   broker   mcp-layers/nats against a real nats-server: a worker and a client calling it,
 *            and, every few seconds, a worker process killed (SIGKILL) under a session's
 *            requests — the client loses it and replays the session on a worker of ours,
 *            which gets the requests redelivered (the idempotent one runs, the other is
 *            refused) — plus garbage from a foreign publisher and a request published twice.
 *
 *   node test/dashboards/support/load-driver.ts [--scenarios main,auth,peer,gateway,broker] [--max-ms 90000]
 *
 * Prints one JSON line on stdout, `{"metrics":"http://127.0.0.1:PORT/metrics"}`, once
 * everything runs; stops on SIGTERM/SIGINT or after --max-ms, closing everything it opened.
 * Every loop is bounded (a few workers, a pause between calls): this is a fault demo,
 * not a benchmark.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { Client as ClientV2 } from '@modelcontextprotocol/client';
import { jetstream } from '@nats-io/jetstream';
import { connect as connectNats } from '@nats-io/transport-node';
import { Registry } from 'prom-client';
import { z } from 'zod';
import {
  batching,
  chaos,
  compression,
  concurrency,
  hedging,
  metrics,
  metricsHandler,
  oauth,
  standard,
  timeout,
  type TokenStore,
} from '#middleware/index.ts';
import { EventBus, type Layer, type Transport, when, wrap } from '#core/index.ts';
import { validateConfig } from '#gateway/config/load.ts';
import { Gateway } from '#gateway/gateway.ts';
import { createGatewayLogger } from '#gateway/logger.ts';
import { createFetch } from '#transports/http/index.ts';
import { NatsClientTransport, type NatsServerTransport, serveNats } from '#transports/nats/index.ts';
import { listenWebSocket, WebSocketClientTransport } from '#transports/ws/index.ts';
import { BROKER_WORKER_CHILD } from '../../support/brokers.ts';
import { LineChild } from '../../support/child.ts';
import { SCOPE, startIdentityProvider } from '../../support/identity-provider.ts';
import { startNatsServer } from '../../support/nats-server.ts';
import { serveHttp } from '../../support/protected-mcp.ts';

const SCENARIOS = ['main', 'auth', 'peer', 'gateway', 'broker'] as const;

const { values: args } = parseArgs({
  options: {
    scenarios: { type: 'string', default: SCENARIOS.join(',') },
    'max-ms': { type: 'string', default: '90000' },
    port: { type: 'string', default: '0' },
  },
});
const scenarios = new Set(
  String(args.scenarios)
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== ''),
);
for (const s of scenarios) if (!(SCENARIOS as readonly string[]).includes(s)) throw new Error(`--scenarios: unknown scenario "${s}" (known: ${SCENARIOS.join(', ')})`);
const maxMs = Number(args['max-ms']);

const registry = new Registry();
/** One metrics() layer for every transport in the process, as the gateway does. */
const observe = metrics({ registry });

let stopping = false;
const cleanups: Array<() => Promise<unknown> | unknown> = [];
const loops: Array<Promise<void>> = [];

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/** Runs `body` again and again until the driver stops, `gapMs` apart; failures are the point. */
function loop(gapMs: number, body: () => Promise<unknown>): void {
  loops.push(
    (async () => {
      while (!stopping) {
        try {
          await body();
        } catch {
          // Injected faults reach the application as errors: expected.
        }
        await pause(gapMs);
      }
    })(),
  );
}

// --- the MCP server behind the stack ------------------------------------------------

const BIG = 'mcp-layers dashboards: a result large enough to be worth compressing. '.repeat(40);

function demoServer(): McpServer {
  const server = new McpServer({ name: 'dashboards-demo', version: '1.0.0' });
  const work = (ms: number, signal: AbortSignal) =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(resolve, ms);
      signal.addEventListener('abort', () => (clearTimeout(timer), reject(signal.reason)), { once: true });
    });
  const text = (value: string) => ({ content: [{ type: 'text' as const, text: value }] });
  server.registerTool('lookup', { inputSchema: { key: z.string() }, annotations: { readOnlyHint: true } }, async ({ key }, extra) => {
    await work(2 + Math.random() * 18, extra.signal);
    return text(`${key} = ${key.length}`);
  });
  server.registerTool('report', { inputSchema: {}, annotations: { readOnlyHint: true } }, async () => text(BIG));
  server.registerTool('slow', { inputSchema: { ms: z.number() }, annotations: { readOnlyHint: true } }, async ({ ms }, extra) => {
    await work(ms, extra.signal);
    return text('done');
  });
  server.registerTool('create_note', { inputSchema: { title: z.string() } }, async ({ title }) => text(`created ${title}`));
  server.registerTool('flaky', { inputSchema: {}, annotations: { readOnlyHint: true } }, async () => ({ ...text('the tool failed'), isError: Math.random() < 0.5 }));
  server.registerResource('readme', 'demo://readme', { mimeType: 'text/plain' }, async (uri) => ({ contents: [{ uri: uri.href, text: 'read me' }] }));
  server.registerPrompt('review', { argsSchema: { topic: z.string() } }, ({ topic }) => ({ messages: [{ role: 'user', content: { type: 'text', text: `Review ${topic}` } }] }));
  return server;
}

// --- main: the gateway's shape over WebSocket -----------------------------------------

async function startMain(): Promise<string> {
  const sockets = new Set<Socket>();
  const wss = await listenWebSocket({
    heartbeat: { intervalMs: 400, timeoutMs: 400 },
    onconnection: async (transport, request) => {
      sockets.add(request.socket);
      request.socket.once('close', () => sockets.delete(request.socket));
      const server = demoServer();
      // The server's own stack: metrics, and an inbound limit that sheds what exceeds it.
      await server.connect(wrap(transport, [observe, concurrency({ maxInFlight: 6, direction: 'inbound' })], { name: 'demo-server' }) as Transport as never);
    },
  });
  cleanups.push(() => wss.close());

  // Built once and shared by every client session, like the gateway's upstream stack: one
  // breaker, one limit and one retry budget for the upstream as a whole.
  const resilience = standard({
    concurrency: { maxInFlight: 8, maxQueued: 4 },
    totalTimeout: 3_000,
    retry: { maxAttempts: 3, backoff: { initialDelayMs: 10, maxDelayMs: 60 }, budget: { percent: 0.1, ttlMs: 2_000, minPerSecond: 1 } },
    circuitBreaker: { breaker: 'consecutive', consecutiveFailures: 5, halfOpenAfterMs: 400 },
    attemptTimeout: 150,
  });
  const hedge = when({ method: 'tools/call', tool: 'lookup' }, hedging({ delayMs: 15 }));
  const faults = chaos({ seed: 7, errorRate: 0.05, dropRate: 0.02, disconnectRate: 0.01, latency: { delayMs: [30, 90], rate: 0.1 } });
  // Error storms: everything fails for a moment, so the breaker opens, rejects and recovers.
  const storm = chaos({ seed: 11, errorRate: 1, enabled: false });
  const clientStack = (): Layer[] => [observe, resilience, hedge, compression({ encodings: ['deflate'], minBytes: 256 }), batching({ maxMessages: 16 }), faults, storm];
  const wsOptions = { heartbeat: { intervalMs: 400, timeoutMs: 400 }, reconnect: { initialDelayMs: 20, maxDelayMs: 200 } } as const;

  async function connectV1(name: string): Promise<Client> {
    const client = new Client({ name, version: '1.0.0' });
    await client.connect(wrap(new WebSocketClientTransport(wss.url, wsOptions), clientStack(), { name: 'demo-client' }) as Transport as never);
    return client;
  }
  /** A v2 client that negotiates 2025-03-26, the one era with JSON-RPC batches. */
  async function connectBatching(name: string): Promise<ClientV2> {
    const client = new ClientV2({ name, version: '1.0.0' }, { supportedProtocolVersions: ['2025-03-26'] } as never);
    await client.connect(wrap(new WebSocketClientTransport(wss.url, wsOptions), clientStack(), { name: 'demo-client' }) as Transport as never);
    return client;
  }

  const long = [await connectV1('worker-1'), await connectV1('worker-2')];
  const batched = await connectBatching('batching');
  cleanups.push(() => Promise.allSettled([...long, batched].map((c) => c.close())));

  let n = 0;
  for (const client of long) {
    loop(5, async () => {
      n++;
      const pick = n % 10;
      if (pick < 5) return client.callTool({ name: 'lookup', arguments: { key: `k${n % 17}` } });
      if (pick === 5) return client.callTool({ name: 'report', arguments: {} });
      if (pick === 6) return client.callTool({ name: 'flaky', arguments: {} });
      if (pick === 7) return client.callTool({ name: 'create_note', arguments: { title: `n${n}` } });
      if (pick === 8) return client.readResource({ uri: 'demo://readme' });
      return client.getPrompt({ name: 'review', arguments: { topic: 'dashboards' } });
    });
  }
  // Batches: calls issued in the same turn of the event loop go out as one JSON-RPC array.
  loop(150, () => Promise.allSettled([1, 2, 3, 4].map((i) => batched.callTool({ name: 'lookup', arguments: { key: `b${i}` } }))));
  // Bursts above the concurrency limit (8 running + 4 queued): some wait, some are shed.
  loop(700, () => Promise.allSettled(Array.from({ length: 16 }, (_, i) => long[0]!.callTool({ name: 'slow', arguments: { ms: 40 + i } }))));
  // The application gives up on a slow call: the request is cancelled on the wire.
  loop(400, async () => {
    const abort = new AbortController();
    setTimeout(() => abort.abort(new Error('the user moved on')), 30).unref();
    await long[1]!.callTool({ name: 'slow', arguments: { ms: 300 } }, undefined, { signal: abort.signal });
  });
  // Error storms every few seconds.
  loop(2_500, async () => {
    storm.enabled = true;
    await pause(250);
    storm.enabled = false;
  });
  // Network stalls: the server stops reading one connection; heartbeats go unanswered on
  // both sides, the connection is dropped and the client reconnects (handshake replayed).
  loop(3_000, async () => {
    const socket = [...sockets][0];
    socket?.pause();
  });
  // Session churn: short sessions open and close, so session durations are observed.
  loop(1_000, async () => {
    const client = await connectV1('short-lived');
    try {
      await client.listTools();
      await client.callTool({ name: 'lookup', arguments: { key: 'churn' } });
    } finally {
      await client.close();
    }
  });
  return wss.url;
}

// --- auth: oauth() against a real authorization server ----------------------------------

async function startAuth(): Promise<void> {
  const idp = await startIdentityProvider({ accessTokenTtl: 3 });
  cleanups.push(() => idp.close());
  const server = await serveHttp(idp);
  cleanups.push(() => server.close());
  const fetch = createFetch();
  cleanups.push(() => fetch.close());

  // A store that cannot write (a read-only volume): tokens stay in memory, and every save fails.
  const readOnlyStore: TokenStore = {
    load: () => undefined,
    save: () => {
      throw new Error('EROFS: read-only file system');
    },
  };
  const common = { clientId: idp.clientId, grant: 'client_credentials', scopes: [SCOPE], resource: server.url, retry: { maxRetries: 0 } } as const;
  const deadPort = await unusedPort();
  const clients = {
    // Short-lived tokens refreshed ahead of expiry; saving them fails.
    refreshing: oauth({ ...common, issuer: idp.issuer, clientAuth: { method: 'client_secret_basic', clientSecret: idp.clientSecret }, store: readOnlyStore }),
    // A rotated secret nobody deployed: every token request is refused (invalid_client).
    'wrong-secret': oauth({ ...common, issuer: idp.issuer, clientAuth: { method: 'client_secret_basic', clientSecret: 'not-the-secret' } }),
    // The identity provider is down: token requests fail until the token endpoint's breaker opens.
    'idp-down': oauth({
      ...common,
      tokenEndpoint: `http://127.0.0.1:${deadPort}/token`,
      clientAuth: { method: 'client_secret_basic', clientSecret: idp.clientSecret },
      breaker: { consecutiveFailures: 2, halfOpenAfterMs: 1_000 },
    }),
  };
  for (const [name, auth] of Object.entries(clients)) {
    let client: Client | undefined;
    loop(name === 'refreshing' ? 200 : 400, async () => {
      if (client === undefined) {
        // A fresh session each time the last one could not start (initialize failed with -32053).
        const fresh = new Client({ name, version: '1.0.0' });
        const transport = wrap(new StreamableHTTPClientTransport(new URL(server.url), { fetch: auth.fetch(fetch) }) as unknown as Transport, [observe, auth], { name: `auth-${name}` });
        try {
          await fresh.connect(transport as never);
        } catch (error) {
          await fresh.close().catch(() => {});
          throw error;
        }
        client = fresh;
      }
      return client.callTool({ name: 'work', arguments: { ms: 1 } });
    });
    cleanups.push(() => client?.close());
  }
}

// --- gateway: sessions a gateway opens, refuses and closes --------------------------------

async function startGateway(upstream: string): Promise<void> {
  // A named client whose bucket holds one request a second, and one outside its tools allow-list: the client families.
  const clients = [
    { name: 'load-first', token: 'load-first-token', rateLimit: { rate: 1, burst: 1 } },
    { name: 'load-second', token: 'load-second-token', tools: ['nothing-of-its-upstream'] },
  ];
  const config = (idleTimeoutMs: number) => ({
    upstream: { url: upstream, layers: [{ metrics: {} }] },
    downstream: { port: 0, transports: ['websocket'], maxSessions: 1, idleTimeoutMs, clients, layers: [{ metrics: {} }] },
    observability: { logs: { level: 'error' }, metrics: { processMetrics: false } },
  });
  const loaded = validateConfig(config(600_000), 'the load driver\'s gateway');
  const gateway = await Gateway.start(loaded, { logger: createGatewayLogger({ level: 'error', format: 'json' }), registry });
  cleanups.push(() => gateway.shutdown(1_000));
  // The reload families: one reload applied, then one refused (its stdio command is nowhere), which keeps generation 2.
  await gateway.reload('api', validateConfig(config(300_000), 'the load driver\'s gateway'));
  await gateway.reload('api', validateConfig({ ...config(300_000), upstream: { command: 'mcp-layers-load-no-such-command' } }, 'the load driver\'s gateway'));
  const url = gateway.urls.websocket as string;
  loop(1_000, async () => {
    const as = (token: string) => new WebSocketClientTransport(url, { reconnect: false, headers: { authorization: `Bearer ${token}` } }) as Transport as never;
    const first = new Client({ name: 'gateway-first', version: '1.0.0' });
    await first.connect(as('load-first-token'));
    try {
      // Over the gateway's maxSessions: refused.
      const second = new Client({ name: 'gateway-second', version: '1.0.0' });
      await second.connect(as('load-second-token')).catch(() => {});
      // Its bucket spent on initialize, the first call is over its rate limit.
      await first.callTool({ name: 'lookup', arguments: { key: 'via-gateway' } }).catch(() => {});
    } finally {
      await first.close();
    }
    // Alone, the second client reaches the upstream, but not a tool its allow-list leaves out.
    const denied = new Client({ name: 'gateway-denied', version: '1.0.0' });
    await denied.connect(as('load-second-token'));
    try {
      await denied.callTool({ name: 'lookup', arguments: { key: 'not-allowed' } }).catch(() => {});
    } finally {
      await denied.close();
    }
  });
}

// --- federation: several upstreams behind one gateway (per-upstream rows, the list cache) ---

async function startFederation(upstream: string): Promise<void> {
  const member = { url: upstream, layers: [{ metrics: {} }] };
  const loaded = validateConfig(
    {
      upstreams: { first: member, second: member },
      downstream: { port: 0, transports: ['websocket'], layers: [] },
      observability: { logs: { level: 'error' }, metrics: { processMetrics: false } },
    },
    "the load driver's federation",
  );
  const gateway = await Gateway.start(loaded, { logger: createGatewayLogger({ level: 'error', format: 'json' }), registry });
  cleanups.push(() => gateway.shutdown(1_000));
  const client = new Client({ name: 'federation-client', version: '1.0.0' });
  await client.connect(new WebSocketClientTransport(gateway.urls.websocket as string, { reconnect: false }) as Transport as never);
  cleanups.push(() => client.close());
  loop(500, async () => {
    // The second list of a session is a cache hit.
    await client.listTools();
    await client.callTool({ name: 'first__lookup', arguments: { key: 'via-first' } });
    await client.callTool({ name: 'second__lookup', arguments: { key: 'via-second' } });
  });
}

// --- broker: mcp-layers/nats, with a worker killed under a session every few seconds -----

async function startBroker(): Promise<void> {
  const nats = await startNatsServer();
  cleanups.push(() => nats.stop());
  const dir = mkdtempSync(join(tmpdir(), 'mcp-layers-dashboards-broker-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  // One bus for every worker of the process, and every session wrapped on it (as
  // docs/scale-out.md shows): a worker's own events — joining and leaving, garbage —
  // reach the layers as long as one session of any of them is wrapped.
  const workerBus = new EventBus();
  const serve = (service: string, server: () => McpServer) =>
    serveNats({
      servers: nats.url,
      service,
      storage: 'memory',
      events: workerBus,
      // As the killed worker's (broker-worker-child.ts): its requests move within a second.
      ackWaitMs: 1_000,
      onsession: async (transport: NatsServerTransport) => {
        await server().connect(wrap(transport, [observe], { name: 'broker-worker', events: transport.events }) as Transport as never);
      },
    });
  const connectClient = async (service: string, name: string) => {
    const client = new Client({ name, version: '1.0.0' });
    const transport = new NatsClientTransport({ servers: nats.url, service, heartbeat: { intervalMs: 200, timeoutMs: 200 } });
    await client.connect(wrap(transport, [observe], { name: 'broker-client' }) as Transport as never);
    return client;
  };

  // Steady traffic: requests on the stream, answers on the client's inbox.
  const steady = await serve('dashboards', demoServer);
  cleanups.push(() => steady.close());
  const client = await connectClient('dashboards', 'broker-steady');
  cleanups.push(() => client.close());
  let n = 0;
  loop(50, () => client.callTool({ name: 'lookup', arguments: { key: `broker-${n++ % 7}` } }));

  // A worker process killed with requests in hand, on a service of its own each time (so
  // that it is the only worker when the session opens).
  let cycle = 0;
  loop(2_000, async () => {
    const service = `dashboards-failover-${++cycle}`;
    const victim = new LineChild(BROKER_WORKER_CHILD, ['nats', nats.url, service, `victim-${cycle}`, '1', join(dir, 'runs.log')]);
    const opened: Array<{ close(): Promise<unknown> }> = [];
    try {
      await victim.waitFor('READY');
      const caller = await connectClient(service, 'broker-failover');
      opened.push(caller);
      await caller.listTools(); // teaches the client that read is idempotent
      const survivor = await serve(service, failoverServer);
      opened.push(survivor);
      const calls = [caller.callTool({ name: 'read', arguments: { key: 'k' } }), caller.callTool({ name: 'write', arguments: { key: 'k' } })];
      await Promise.all([victim.waitFor('RAN read'), victim.waitFor('RAN write')]);
      await victim.kill('SIGKILL');
      // read is redelivered and runs on the survivor; write is refused with one error.
      await Promise.allSettled(calls);

      // A foreign publisher's bytes on the service's requests subject.
      const foreign = await connectNats({ servers: nats.url });
      await jetstream(foreign).publish(`mcp.${service}.req`, '{"truncated": ');
      await foreign.close();

      // One request published twice with one wire id: the stream's window drops the second.
      const bare = new NatsClientTransport({ servers: nats.url, service, heartbeat: false });
      const wrapped = wrap(bare, [observe], { name: 'broker-client' });
      await wrapped.start();
      opened.push(wrapped);
      bare.onmessage = () => {}; // its answer is ours, not the wrap's: it sent nothing
      const twice = { jsonrpc: '2.0', id: `twice-${cycle}`, method: 'tools/call', params: { name: 'read', arguments: { key: 'twice' } } } as const;
      await bare.send(twice);
      await bare.send(twice);
    } finally {
      await victim.kill('SIGKILL');
      for (const c of opened.reverse()) await c.close().catch(() => {});
    }
  });
}

/** The tools of broker-worker-child.ts, answering at once: the survivor of a killed worker. */
function failoverServer(): McpServer {
  const server = new McpServer({ name: 'dashboards-failover', version: '1.0.0' });
  const text = (value: string) => ({ content: [{ type: 'text' as const, text: value }] });
  server.registerTool('write', { inputSchema: { key: z.string() } }, async ({ key }) => text(`wrote ${key}`));
  server.registerTool('read', { inputSchema: { key: z.string() }, annotations: { readOnlyHint: true } }, async ({ key }) => text(`read ${key}`));
  return server;
}

// --- peer: a misbehaving peer on an in-memory link --------------------------------------

async function startPeer(): Promise<void> {
  const [near, far] = InMemoryTransport.createLinkedPair();
  const client = new Client({ name: 'peer-client', version: '1.0.0' });
  const answer = (message: JSONRPCMessage, result: Record<string, unknown>, delayMs = 0) => {
    if (!('id' in message) || !('method' in message)) return;
    const id = message.id;
    setTimeout(() => void far.send({ jsonrpc: '2.0', id, result }).catch(() => {}), delayMs).unref();
  };
  far.onmessage = (message) => {
    if (!('method' in message)) return;
    if (message.method === 'initialize') return answer(message, { protocolVersion: '2025-06-18', capabilities: { tools: {} }, serverInfo: { name: 'misbehaving', version: '0' } });
    // It answers, but only after the client's deadline: a late response, dropped.
    if (message.method === 'tools/call') return answer(message, { content: [] }, 120);
  };
  await far.start();
  await client.connect(wrap(near, [observe, timeout({ attemptMs: 60 })], { name: 'misbehaving-peer' }) as Transport as never);
  cleanups.push(() => client.close());
  loop(1_000, async () => {
    await client.callTool({ name: 'anything', arguments: {} }).catch(() => {});
    // A response to a request nobody made, and a message that is not JSON-RPC at all.
    await far.send({ jsonrpc: '2.0', id: 'never-sent', result: {} });
    await far.send({ jsonrpc: '1.0', method: 'oops' } as unknown as JSONRPCMessage);
  });
}

async function unusedPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

// --- run ------------------------------------------------------------------------------

const endpoint: Server = createServer(metricsHandler(registry));
await new Promise<void>((resolve) => endpoint.listen(Number(args.port), '127.0.0.1', resolve));
cleanups.push(() => new Promise((resolve) => endpoint.close(resolve)));

async function stop(): Promise<void> {
  if (stopping) return;
  stopping = true;
  await Promise.allSettled(loops);
  for (const cleanup of cleanups.reverse()) {
    try {
      await cleanup();
    } catch {
      // Closing what already failed.
    }
  }
  endpoint.closeAllConnections();
  process.exit(0);
}
process.on('SIGTERM', () => void stop());
process.on('SIGINT', () => void stop());
setTimeout(() => void stop(), maxMs).unref();
// Peers misbehave on purpose; their errors are reported to onerror and are not ours to print.
process.on('unhandledRejection', () => {});

const upstream = scenarios.has('main') ? await startMain() : undefined;
if (scenarios.has('auth')) await startAuth();
if (scenarios.has('peer')) await startPeer();
if (scenarios.has('broker')) await startBroker();
if (scenarios.has('gateway')) {
  if (upstream === undefined) throw new Error('--scenarios: gateway needs main (its upstream)');
  await startGateway(upstream);
  await startFederation(upstream);
}
// Keeps the process alive until stopped (every timer above is unref'd).
const keepAlive = setInterval(() => {}, 1 << 30);
cleanups.unshift(() => clearInterval(keepAlive));
process.stdout.write(`${JSON.stringify({ metrics: `http://127.0.0.1:${(endpoint.address() as AddressInfo).port}/metrics` })}\n`);
