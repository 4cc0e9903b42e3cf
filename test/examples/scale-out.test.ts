/**
 * docs/scale-out.md "Two replicas on one machine", run as a newcomer runs it: a NATS
 * server with JetStream, two `mcp-layers worker` processes in front of the reference
 * server, two `mcp-layers gateway` replicas on the broker, and the round-robin balancer
 * of examples/scale-out/balancer.ts in front — every request to the next replica, with no
 * session affinity. An SDK client through the balancer keeps one session across both
 * replicas, and goes on when one of them stops.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI } from '../support/gateway.ts';
import { NATS_SERVER, NATS_SKIP_MESSAGE, type NatsServer, startNatsServer } from '../support/nats-server.ts';
import { start, type Started } from './run.ts';

const require = createRequire(import.meta.url);
const EVERYTHING = join(dirname(require.resolve('@modelcontextprotocol/server-everything/package.json')), 'dist', 'index.js');

if (NATS_SERVER === undefined) console.warn(NATS_SKIP_MESSAGE);

describe.skipIf(NATS_SERVER === undefined)('two gateway replicas and two workers on NATS behind a round-robin balancer (docs/scale-out.md)', () => {
  let nats: NatsServer;
  const processes: Started[] = [];
  const run = (args: string[]) => {
    const started = start(args);
    processes.push(started);
    return started;
  };

  beforeAll(async () => {
    nats = await startNatsServer();
  });
  afterAll(async () => {
    for (const p of processes) if (p.process.exitCode === null && p.process.signalCode === null) p.process.kill('SIGKILL');
    await Promise.all(processes.map((p) => p.exited));
    await nats?.stop();
  });

  it('keeps one session across both replicas, each request to the next one, and goes on when one replica stops', async () => {
    const broker = `${nats.url}/everything`;
    const workers = [0, 1].map(() => run([CLI, 'worker', '--upstream', broker, '--listen', '127.0.0.1:0', '--', process.execPath, EVERYTHING, 'stdio']));
    await Promise.all(workers.map((w) => w.line(/^SIGTERM or Ctrl-C drains the worker/)));
    const gateways = [0, 1].map(() => run([CLI, 'gateway', '--upstream', broker, '--listen', '127.0.0.1:0', '--transports', 'http']));
    const urls = await Promise.all(gateways.map(async (g) => (await g.line(/^ {2}MCP +(http:\/\/127\.0\.0\.1:\d+\/mcp)/))[1] as string));
    const metrics = await Promise.all(gateways.map(async (g) => (await g.line(/^ {2}metrics +(http:\/\/\S+)/))[1] as string));
    const balancer = run(['examples/scale-out/balancer.ts', '--listen', '127.0.0.1:0', ...urls.map((u) => new URL(u).origin)]);
    const [, front] = await balancer.line(/^balancer listening on (http:\/\/127\.0\.0\.1:\d+),/);

    const client = new Client({ name: 'newcomer', version: '1.0.0' });
    const transport = new StreamableHTTPClientTransport(new URL(`${front}/mcp`));
    await client.connect(transport);
    const sessionId = transport.sessionId;
    expect(sessionId).toBeDefined();
    expect((await client.listTools()).tools.map((t) => t.name)).toContain('echo');
    for (let i = 0; i < 6; i++) {
      expect(await client.callTool({ name: 'echo', arguments: { message: `hi ${i}` } })).toMatchObject({ content: [{ type: 'text', text: `Echo: hi ${i}` }] });
    }
    // Both replicas hold the one session: the one that opened it, and the one that adopted it.
    for (const url of metrics) expect(await (await fetch(url)).text()).toMatch(/^mcp_layers_gateway_sessions\{listener="http"\} 1$/m);
    expect(transport.sessionId).toBe(sessionId);

    // One replica drains and stops: the balancer routes around it, the session goes on.
    gateways[0]!.process.kill('SIGTERM');
    expect(await gateways[0]!.exited).toBe(0);
    for (let i = 0; i < 4; i++) {
      expect(await client.callTool({ name: 'echo', arguments: { message: `after ${i}` } })).toMatchObject({ content: [{ type: 'text', text: `Echo: after ${i}` }] });
    }
    expect(transport.sessionId).toBe(sessionId);
    await client.close();
  });
});
