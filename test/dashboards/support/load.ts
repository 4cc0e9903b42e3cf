/**
 * The load the live dashboards test scrapes: child processes that serve /metrics while
 * traffic with injected faults runs through the mcp-layers stack.
 *
 * - The gateway's own demo (`examples/demo.ts`, `npm run demo`: the gateway in front of
 *   the demo server, chaos upstream with an outage that opens the breaker, hedging,
 *   compression downstream, SDK clients over HTTP and WebSocket at a bounded rate) is the
 *   `mcp-layers-gateway` target: the real gateway under the demo load.
 * - load-driver.ts runs beside it as `mcp-layers-extras`, for what a gateway demo does not
 *   produce on its own: token refreshes against a real authorization server, heartbeats
 *   and reconnects, batching, shedding and cancellations, a misbehaving peer, a gateway
 *   refusing sessions over its maxSessions, the broker transports over a real nats-server
 *   (a worker killed under a session's requests: redeliveries, a replayed session).
 *
 * The test reads only `targets`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { freePort, poll } from './prometheus.ts';

export interface LoadTarget {
  /** The Prometheus job it is scraped as. */
  readonly job: string;
  /** host:port */
  readonly address: string;
  readonly metricsPath: string;
}

export interface Load {
  readonly targets: readonly LoadTarget[];
  /** Stops every process of the load; waits for them to exit. */
  stop(): Promise<void>;
  /** What the processes wrote on stderr (last lines), for failure messages. */
  output(): string;
}

/** The job the gateway is scraped as in examples/gateway/prometheus.yml and MCPGatewayDown. */
export const GATEWAY_JOB = 'mcp-layers-gateway';
const EXTRAS_JOB = 'mcp-layers-extras';

const DRIVER = fileURLToPath(new URL('./load-driver.ts', import.meta.url));
const GATEWAY_DEMO = fileURLToPath(new URL('../../../examples/demo.ts', import.meta.url));
/** Every process of the load ends on its own after this long, whatever happens to the test. */
const MAX_SECONDS = 150;

export function startLoad(): Promise<Load> {
  return loadOf(async (started) => {
    // Side by side: each takes a few seconds to start.
    const results = await Promise.allSettled([startGatewayDemo(), startDriver(EXTRAS_JOB)]);
    for (const result of results) if (result.status === 'fulfilled') started.push(result.value);
    const failed = results.find((r) => r.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
    return started;
  });
}

async function loadOf(start: (started: Started[]) => Promise<Started[]>): Promise<Load> {
  const started: Started[] = [];
  const load: Load = {
    get targets() {
      return started.map((s) => s.target);
    },
    stop: async () => {
      await Promise.allSettled(started.map((s) => s.stop()));
    },
    output: () => started.map((s) => s.output()).join('\n'),
  };
  try {
    for (const s of await start(started)) if (!started.includes(s)) started.push(s);
  } catch (error) {
    await load.stop();
    throw error;
  }
  return load;
}

interface Started {
  target: LoadTarget;
  stop(): Promise<void>;
  output(): string;
}

interface Child {
  process: ChildProcess;
  exited: Promise<void>;
  stop(): Promise<void>;
  stderr(): string;
}

function launch(args: readonly string[]): Child {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-8_000);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    process: child,
    exited,
    stderr: () => stderr,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** load-driver.ts prints `{"metrics":"http://host:port/path"}` as its first line once it serves. */
async function startDriver(job: string): Promise<Started> {
  const child = launch([DRIVER, '--max-ms', String(MAX_SECONDS * 1000)]);
  const lines = createInterface({ input: child.process.stdout! });
  try {
    const first = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the load driver printed no metrics URL within 30 s')), 30_000);
      lines.once('line', (line) => (clearTimeout(timer), resolve(line)));
      void child.exited.then(() => (clearTimeout(timer), reject(new Error(`the load driver exited before serving: ${child.stderr().trim()}`))));
    });
    lines.close();
    child.process.stdout?.resume();
    const url = new URL((JSON.parse(first) as { metrics: string }).metrics);
    return { target: { job, address: url.host, metricsPath: url.pathname }, stop: child.stop, output: child.stderr };
  } catch (error) {
    await child.stop();
    throw error;
  }
}

/** `npm run demo` on a port of our choosing; ready when its /metrics answers. */
async function startGatewayDemo(): Promise<Started> {
  const port = await freePort();
  const child = launch([GATEWAY_DEMO, '--duration', String(MAX_SECONDS), '--port', String(port), '--plain']);
  child.process.stdout?.resume(); // its one-line-per-second summary is for people
  const metrics = `http://127.0.0.1:${port}/metrics`;
  let exited = false;
  void child.exited.then(() => (exited = true));
  try {
    await poll('the gateway demo to serve /metrics', 30_000, async () => {
      if (exited) throw new Error(`npm run demo exited: ${child.stderr().trim()}`);
      const response = await fetch(metrics).catch(() => undefined);
      return response?.ok === true ? true : undefined;
    });
    return { target: { job: GATEWAY_JOB, address: `127.0.0.1:${port}`, metricsPath: '/metrics' }, stop: child.stop, output: child.stderr };
  } catch (error) {
    await child.stop();
    throw error;
  }
}
