/**
 * The load the live dashboards test scrapes: a child process that serves /metrics while
 * traffic with injected faults runs through the mcp-layers stack.
 *
 * Today that is load-driver.ts (the gateway's stack shape, run in-process). When
 * `npm run demo` (the gateway under demo load with chaos) is on main, `startLoad()`
 * starts it instead as the `mcp-layers-gateway` target, and keeps the driver's
 * `auth,peer` scenarios as a second target for the families a gateway demo does not
 * produce (token refreshes, invalid messages...): each is a `LoadTarget`, and the test
 * only reads `targets`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

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

/** The job the gateway is scraped as in examples/prometheus.yml and MCPGatewayDown. */
export const GATEWAY_JOB = 'mcp-layers-gateway';

const DRIVER = fileURLToPath(new URL('./load-driver.ts', import.meta.url));

export async function startLoad(): Promise<Load> {
  const driver = await startProcess(process.execPath, [DRIVER, '--max-ms', '150000'], GATEWAY_JOB);
  return {
    targets: [driver.target],
    stop: () => driver.stop(),
    output: () => driver.output(),
  };
}

interface Started {
  target: LoadTarget;
  stop(): Promise<void>;
  output(): string;
}

/** Starts a process that prints `{"metrics":"http://host:port/path"}` as its first stdout line once it serves. */
async function startProcess(command: string, args: readonly string[], job: string): Promise<Started> {
  const child: ChildProcess = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-8_000);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  };
  const lines = createInterface({ input: child.stdout! });
  try {
    const first = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no metrics URL from ${args[0]} within 30 s`)), 30_000);
      lines.once('line', (line) => (clearTimeout(timer), resolve(line)));
      void exited.then(() => (clearTimeout(timer), reject(new Error(`${args[0]} exited before serving: ${stderr.trim()}`))));
    });
    const url = new URL((JSON.parse(first) as { metrics: string }).metrics);
    lines.close();
    child.stdout?.resume();
    return { target: { job, address: url.host, metricsPath: url.pathname }, stop, output: () => stderr };
  } catch (error) {
    await stop();
    throw error;
  }
}
