/**
 * `mcp-layers worker` in front of a stdio server, on each broker: SDK v1 and v2 clients
 * over NatsClientTransport / RedisClientTransport see exactly what they see over direct
 * stdio to the same server — tools, resources, prompts, progress, sampling and
 * elicitation (server→client requests the worker forwards to the client's inbox and
 * answers back to the child), tool errors, cancellation (the ledger step reads what the
 * child saw). The worker is the real CLI, a child process, with the default stacks on
 * both sides; so is the stdio server, a child of the worker per session.
 *
 * The 2026-07-28 era: each sessionless request gets a child of its own (docs/gateway.md
 * "Worker"), so a negotiating v2 client works end to end, and the server keeps nothing
 * between requests.
 */
import { fileURLToPath } from 'node:url';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Transport } from '#core/transport.ts';
import { wrap } from '#core/wrap.ts';
import { type BrokerServer, describeEachBroker, uniqueService } from '../support/brokers.ts';
import { createV1Client, createV2Client, textOf } from '../support/clients.ts';
import { FIXTURE_SERVER, startTestGateway } from '../support/gateway.ts';
import { cancelSent, comparable as comparableThroughGateway, directRun, type Listener, type Run, scriptRun, type Sdk } from '../support/gateway-transcripts.ts';
import { makeClientTransport } from '../support/http.ts';
import { WebSocketClientTransport } from '#transports/ws/index.ts';
import { parseExposition, select, type Sample, value } from '../support/prom-text.ts';
import { normalizePeerIds } from '../support/tap.ts';
import { killWorkers, startWorkerCli, type WorkerCli } from '../support/worker-cli.ts';


// The script is the gateway suites' (scriptRun); the comparison below differs from theirs: against direct stdio, not a listener.
const script = (sdk: Sdk, transport: Transport, serverSdk: Sdk): Promise<Run> => scriptRun(sdk, transport, serverSdk);

const total = (samples: Sample[], name: string, where: Record<string, string>) => select(samples, name, where).reduce((sum, s) => sum + s.value, 0);

const PROGRESS_STEP = 'tools/call progress';

/**
 * What must be equal. The SDKs drop progress notifications that arrive in the same read
 * as their response over stdio (a known race, test/interop/stdio.test.ts): the progress
 * the SDK reported is left out, and what arrived on the wire is compared instead.
 */
function comparable(run: Run) {
  const log = normalizePeerIds(run.log);
  return {
    steps: run.steps.map((step) => (step.step === PROGRESS_STEP ? { ...step, value: { ok: { result: (step.value as { ok: { result: unknown } }).ok.result } } } : step)),
    errors: run.errors.filter((message) => !message.startsWith('Received a progress notification for an unknown token')),
    sent: log.sent,
    received: log.received,
  };
}

const COMBOS: Array<[Sdk, Sdk]> = [
  ['v1', 'v1'],
  ['v2', 'v1'],
  ['v1', 'v2'],
  ['v2', 'v2'],
];

describeEachBroker('test/gateway/worker-transcript.test.ts', (b) => `mcp-layers worker over ${b.title} in front of a stdio server`, (kind) => {
  let broker: BrokerServer | undefined;
  const workers = new Map<Sdk, { cli: WorkerCli; service: string }>();
  beforeAll(async () => {
    broker = await kind.start();
    for (const serverSdk of ['v1', 'v2'] as const) {
      const service = uniqueService(`worker-${serverSdk}`);
      const cli = await startWorkerCli(['--upstream', `${broker.url}/${service}`, '--log-level', 'warn', '--', process.execPath, FIXTURE_SERVER, serverSdk]);
      workers.set(serverSdk, { cli, service });
    }
  });
  afterAll(async () => {
    await Promise.all([...workers.values()].map(({ cli }) => cli.kill('SIGTERM')));
    await killWorkers();
    await broker?.stop();
  });

  it.each(COMBOS)('an SDK %s client, a stdio server on SDK %s: the transcript of direct stdio', async (sdk, serverSdk) => {
    const { cli, service } = workers.get(serverSdk)!;
    const transport = kind.client({ servers: broker!.url, service });
    const through = await script(sdk, wrap(transport, [], { events: transport.events }), serverSdk);
    const direct = await script(sdk, new StdioClientTransport({ command: process.execPath, args: [FIXTURE_SERVER, serverSdk], stderr: 'ignore' }), serverSdk);

    expect(through.steps.find((s) => s.step === 'tools/call echo (readOnlyHint)')?.value).toEqual({ ok: expect.objectContaining({ content: [{ type: 'text', text: 'hello' }] }) });
    expect(comparable(through)).toEqual(comparable(direct));
    // Server→client requests really went through: the client's handlers were asked.
    const asked = through.steps.find((s) => s.step === 'what the server asked the client')?.value as { sampling: unknown[]; elicitation: unknown[] };
    expect(asked.sampling.length).toBeGreaterThan(0);
    expect(asked.elicitation.length).toBeGreaterThan(0);
    // The cancellation reached the child: its ledger saw the abort.
    expect(JSON.stringify(through.steps.find((s) => s.step === 'ledger after cancellation')?.value)).toContain('slow');
    expect(cli.logs.filter((r) => r['level'] === 'error')).toEqual([]);
  });

  // The whole path of docs/scale-out.md: client → gateway (broker upstream) → broker → the worker CLI → its stdio child.
  it.each([
    ['v1', 'v1', 'http'],
    ['v2', 'v2', 'websocket'],
  ] as Array<[Sdk, Sdk, Listener]>)('an SDK %s client through a gateway in front of the worker (a stdio server on SDK %s), over %s: what it sees connected to the server directly', async (sdk, serverSdk, listener) => {
    const { cli, service } = workers.get(serverSdk)!;
    const gw = await startTestGateway({ upstream: { url: `${broker!.url}/${service}` } });
    try {
      const transport: Transport = listener === 'http' ? makeClientTransport(sdk, gw.http) : new WebSocketClientTransport(gw.ws);
      const cancelled = listener === 'http' ? cancelSent(gw.gateway.upstreamEvents) : undefined;
      const through = await scriptRun(sdk, transport, serverSdk, cancelled === undefined ? undefined : () => cancelled);
      const reference = await directRun(sdk, serverSdk, listener);
      expect(comparableThroughGateway(through)).toEqual(comparableThroughGateway(reference));
      expect(comparableThroughGateway(through).progressBeforeResponse).toEqual([1, 2, 3]);
      const asked = through.steps.find((s) => s.step === 'what the server asked the client')?.value as { sampling: unknown[]; elicitation: unknown[] };
      expect(asked.sampling.length).toBeGreaterThan(0);
      expect(asked.elicitation.length).toBeGreaterThan(0);
      expect(JSON.stringify(through.steps.find((s) => s.step === 'ledger after cancellation')?.value)).toContain('slow');
      expect(gw.logs.filter((r) => r['level'] === 'error')).toEqual([]);
      expect(cli.logs.filter((r) => r['level'] === 'error')).toEqual([]);
    } finally {
      await gw.stop(0);
    }
  });

  it('a negotiating v2 client in front of a 2025-only server falls back to a session', async () => {
    const { service } = workers.get('v1')!;
    const c = createV2Client({ negotiation: 'auto' });
    await c.connect(kind.client({ servers: broker!.url, service }));
    try {
      expect(c.era()).toBe('legacy');
      expect(textOf(await c.callTool('echo', { text: 'fell back' }))).toBe('fell back');
    } finally {
      await c.close();
    }
  });

  it('/metrics shows the worker gauges and the stacks\' families; /healthz and /readyz answer 200', async () => {
    const { cli, service } = workers.get('v1')!;
    const transport = kind.client({ servers: broker!.url, service });
    const c = createV1Client();
    await c.connect(transport);
    try {
      expect(textOf(await c.callTool('echo', { text: 'metrics' }))).toBe('metrics');
      const samples = parseExposition(await (await fetch(`${cli.base}/metrics`)).text());
      // One session held, with its child; nothing in flight between calls.
      expect(value(samples, 'mcp_layers_worker_sessions')).toBeGreaterThanOrEqual(1);
      expect(value(samples, 'mcp_layers_worker_children')).toBeGreaterThanOrEqual(1);
      expect(value(samples, 'mcp_layers_worker_in_flight')).toBe(0);
      // The default stacks' metrics layers: the broker side as a server, the child side as a client.
      expect(total(samples, 'mcp_server_operation_duration_seconds_count', { transport: 'downstream', mcp_method_name: 'tools/call' })).toBeGreaterThanOrEqual(1);
      expect(total(samples, 'mcp_client_operation_duration_seconds_count', { transport: 'upstream', mcp_method_name: 'tools/call' })).toBeGreaterThanOrEqual(1);
      const health = await fetch(`${cli.base}/healthz`);
      expect([health.status, await health.json()]).toEqual([200, { status: 'ok' }]);
      const ready = await fetch(`${cli.base}/readyz`);
      expect(ready.status).toBe(200);
      expect(await ready.json()).toMatchObject({ status: 'ready', sessions: expect.any(Number), inFlight: 0 });
      expect((await fetch(`${cli.base}/mcp`)).status).toBe(404);
    } finally {
      await c.close();
    }
  });
});

/** The fixture behind the SDK v2 stdio entry, which serves both eras (2025 and 2026-07-28). */
const BOTH_ERAS = fileURLToPath(new URL('../support/stdio-server.ts', import.meta.url));

describeEachBroker('test/gateway/worker-transcript.test.ts', (b) => `mcp-layers worker over ${b.title}: the 2026-07-28 era`, (kind) => {
  let broker: BrokerServer | undefined;
  let worker: { cli: WorkerCli; service: string } | undefined;
  beforeAll(async () => {
    broker = await kind.start();
    const service = uniqueService('worker-modern');
    worker = { cli: await startWorkerCli(['--upstream', `${broker.url}/${service}`, '--log-level', 'warn', '--', process.execPath, BOTH_ERAS, '--sdk', 'v2']), service };
  });
  afterAll(async () => {
    await worker?.cli.kill('SIGTERM');
    await killWorkers();
    await broker?.stop();
  });

  it('a negotiating v2 client gets 2026-07-28 end to end, each request served by a child of its own', async () => {
    const { cli, service } = worker!;
    const c = createV2Client({ negotiation: 'auto' });
    await c.connect(kind.client({ servers: broker!.url, service }));
    try {
      expect(c.era()).toBe('modern');
      expect(await c.callTool('add', { a: 2, b: 3 })).toMatchObject({ content: [{ type: 'text', text: '5' }] });
      expect(await c.callTool('ask', { question: 'continue?' })).toMatchObject({ content: [{ type: 'text', text: expect.stringContaining('yes to continue?') }] });
      // Nothing is kept between requests: the ledger tool runs in a fresh child, which ran nothing else.
      const ledger = JSON.parse(textOf(await c.callTool('ledger', {}))) as { runs: Record<string, number> };
      expect(ledger.runs['add'] ?? 0).toBe(0);
    } finally {
      await c.close();
    }
    const samples = parseExposition(await (await fetch(`${cli.base}/metrics`)).text());
    // server/discover, add, ask (two rounds), ledger: a child each, each stopped once answered.
    expect(value(samples, 'mcp_layers_worker_session_closes_total', { reason: 'downstream-closed' })).toBeGreaterThanOrEqual(4);
    expect(value(samples, 'mcp_layers_worker_sessions')).toBe(0);
  });
});
