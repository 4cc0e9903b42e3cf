/**
 * A gateway whose upstream is a service's workers on a broker (`upstream.url:
 * nats://HOST:PORT/SERVICE`, `redis://HOST:PORT/SERVICE`): SDK v1 and v2 clients over
 * Streamable HTTP and WebSocket see through gateway → broker → worker (an SDK McpServer
 * per session) exactly what they see connected to the same server directly — tools,
 * resources, prompts, progress, sampling, elicitation, cancellation. Every session
 * shares the gateway's one broker connection; the downstream Mcp-Session-Id names the
 * broker session; a bad broker URL is a config error naming `upstream.url`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateConfig } from '#gateway/config/load.ts';
import { checkGateway } from '#gateway/gateway.ts';
import { type BrokerServer, describeEachBroker, fixtureWorker, type FixtureWorker, uniqueService } from '../support/brokers.ts';
import { makeClientTransport } from '../support/http.ts';
import { startTestGateway, type TestGateway } from '../support/gateway.ts';
import { cancelSent, comparable, directRun, type Listener, scriptRun, type Sdk } from '../support/gateway-transcripts.ts';
import { WebSocketClientTransport } from '#transports/ws/index.ts';
import { createV1Client } from '../support/clients.ts';
import type { Transport } from '#core/transport.ts';

describe('a broker upstream in the config', () => {
  const problems = (upstream: Record<string, unknown>) => {
    try {
      return checkGateway(validateConfig({ upstream }, 'test config'));
    } catch (error) {
      return [(error as Error).message];
    }
  };

  it('names the service as the URL path, and says so naming upstream.url when it is missing or not a name', () => {
    expect(problems({ url: 'nats://127.0.0.1:4222/tools' })).toEqual([]);
    expect(problems({ url: 'redis://127.0.0.1:6379/tools', broker: { heartbeat: { intervalMs: 1000 }, recover: false, prefix: 'mcp2' } })).toEqual([]);
    expect(problems({ url: 'rediss://127.0.0.1:6379/tools' })).toEqual([]);
    const [missing] = problems({ url: 'nats://127.0.0.1:4222' });
    expect(missing).toContain('upstream.url');
    expect(missing).toContain('nats://127.0.0.1:4222/SERVICE');
    expect(problems({ url: 'redis://127.0.0.1:6379/a/b' }).join('\n')).toMatch(/upstream\.url: .*redis:\/\/127\.0\.0\.1:6379\/SERVICE/);
  });

  it('refuses options that do not apply, each named where it was written', () => {
    expect(problems({ url: 'nats://127.0.0.1:4222/tools', headers: { a: 'b' } }).join('\n')).toMatch(/upstream\.headers: applies only to an http\(s\) or ws\(s\) upstream/);
    expect(problems({ url: 'https://example.com/mcp', broker: {} }).join('\n')).toMatch(/upstream\.broker: applies only to a nats:\/\/ or redis\(s\):\/\/ upstream/);
    expect(problems({ command: 'node', broker: {} }).join('\n')).toMatch(/upstream\.broker: applies only to a remote upstream/);
    expect(problems({ url: 'nats://127.0.0.1:4222/tools', broker: { heartbeat: { intervalMs: 0 } } }).join('\n')).toMatch(/upstream\.broker\.heartbeat/);
    expect(problems({ url: 'nats://127.0.0.1:4222/tools', broker: { prefix: 'a.b' } }).join('\n')).toMatch(/upstream\.broker\.prefix/);
    expect(problems({ url: 'nats://127.0.0.1:4222/tools', broker: { retries: 3 } }).join('\n')).toMatch(/upstream\.broker/);
  });

  it('a gateway whose broker cannot be reached does not start, and says why without the credentials', async () => {
    const error = await startTestGateway({ upstream: { url: 'nats://someone:hunter2@127.0.0.1:1/tools', broker: { connectOptions: { timeout: 500, maxReconnectAttempts: 0 } } } }).catch((e: unknown) => e as Error);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toContain('upstream.url: could not connect to the broker');
    expect((error as Error).message).not.toContain('hunter2');
  });
});

describeEachBroker('test/gateway/broker-upstream.test.ts', (b) => `a gateway in front of workers on ${b.title}`, (kind) => {
  let broker: BrokerServer | undefined;
  beforeAll(async () => {
    broker = await kind.start();
  });
  afterAll(async () => {
    await broker?.stop();
  });

  async function setup(serverSdk: Sdk): Promise<{ gw: TestGateway; served: FixtureWorker; service: string; close(): Promise<void> }> {
    const service = uniqueService('gw');
    const served = await fixtureWorker(kind, broker!.url, service, serverSdk);
    const gw = await startTestGateway({ upstream: { url: `${broker!.url}/${service}` } });
    return {
      gw,
      served,
      service,
      close: async () => {
        await gw.stop(0);
        await served.close();
      },
    };
  }

  const combos: Array<[Sdk, Sdk, Listener]> = [
    ['v1', 'v1', 'http'],
    ['v2', 'v1', 'http'],
    ['v1', 'v1', 'websocket'],
    ['v2', 'v1', 'websocket'],
    ['v2', 'v2', 'http'],
    ['v1', 'v2', 'websocket'],
  ];
  it.each(combos)('an SDK %s client of an SDK %s server over %s sees what it sees connected to the server directly', async (sdk, serverSdk, listener) => {
    const { gw, served, close } = await setup(serverSdk);
    try {
      const transport: Transport = listener === 'http' ? makeClientTransport(sdk, gw.http) : new WebSocketClientTransport(gw.ws);
      const cancelled = listener === 'http' ? cancelSent(gw.gateway.upstreamEvents) : undefined;
      const through = await scriptRun(sdk, transport, serverSdk, cancelled === undefined ? undefined : () => cancelled);
      const reference = await directRun(sdk, serverSdk, listener);
      expect(comparable(through)).toEqual(comparable(reference));
      expect(comparable(through).progressBeforeResponse).toEqual([1, 2, 3]);
      const asked = through.steps.find((s) => s.step === 'what the server asked the client')?.value as { sampling: unknown[]; elicitation: unknown[] };
      expect(asked.sampling.length).toBeGreaterThan(0);
      expect(asked.elicitation.length).toBeGreaterThan(0);
      // One session on the worker, one server instance for it.
      expect(served.instances).toBe(1);
      expect(served.serverErrors).toEqual([]);
      expect(gw.logs.filter((r) => r['level'] === 'error')).toEqual([]);
    } finally {
      await close();
    }
  });

  it('the downstream Mcp-Session-Id is the broker session, and every session shares the gateway\'s one connection', async () => {
    const { gw, served, close } = await setup('v1');
    const clients = [createV1Client(), createV1Client(), createV1Client()];
    try {
      for (const c of clients) await c.connect(makeClientTransport('v1', gw.http));
      for (const c of clients) expect(await c.callTool('add', { a: 1, b: 2 })).toMatchObject({ content: [{ type: 'text', text: '3' }] });
      expect(served.worker.sessions).toBe(3);
      const sessions = [...gw.gateway.sessions];
      expect(sessions).toHaveLength(3);
      for (const session of sessions) {
        expect(session.sessionId).toMatch(/^[0-9a-f-]{36}$/);
        expect(session.upstream?.sessionId).toBe(session.sessionId);
      }
      // Redis lists its clients by name: the gateway's two (commands, pub/sub), none per session. (The test's
      // nats-server has no monitoring port to ask; there the transports take the connection option the same way.)
      if (kind.name === 'redis') expect(await gatewayConnections(broker!.url)).toBe(2);
    } finally {
      await Promise.all(clients.map((c) => c.close()));
      await close();
    }
  });
});

/** The gateway's connections to a Redis server, by the names it gives them (CLIENT LIST). */
async function gatewayConnections(url: string): Promise<number> {
  const { createClient } = await import('@redis/client');
  const c = createClient({ url });
  await c.connect();
  try {
    const list = String(await c.sendCommand(['CLIENT', 'LIST']));
    return list.trim().split('\n').filter((line) => / name=mcp-layers-(gateway|client)/.test(line)).length;
  } finally {
    await c.close();
  }
}
