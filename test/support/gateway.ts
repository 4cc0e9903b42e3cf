/**
 * A gateway in the test process (port 0, on 127.0.0.1) with its log records captured,
 * and the fixture over stdio (gateway-upstream.ts) as the usual upstream.
 */
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import type { GatewayConfig } from '#gateway/config/gateway.ts';
import { validateConfig } from '#gateway/config/load.ts';
import { Gateway } from '#gateway/gateway.ts';
import { createGatewayLogger } from '#gateway/logger.ts';

export const FIXTURE_SERVER = fileURLToPath(new URL('./gateway-upstream.ts', import.meta.url));
export const DEMO_SERVER = fileURLToPath(new URL('../../examples/demo-server.ts', import.meta.url));
export const CLI = fileURLToPath(new URL('../../src/gateway/cli/main.ts', import.meta.url));

/** The fixture server as a stdio upstream (a child per session). */
export function fixtureUpstream(sdk: 'v1' | 'v2' = 'v1'): GatewayConfig['upstream'] {
  return { command: process.execPath, args: [FIXTURE_SERVER, sdk] };
}

export interface TestGateway {
  readonly gateway: Gateway;
  readonly http: string;
  readonly ws: string;
  readonly base: string;
  /** Every log record, parsed. */
  readonly logs: Array<Record<string, unknown>>;
  /** Resolves with the first log record (already written or still to come) that matches. */
  waitForLog(matches: (record: Record<string, unknown>) => boolean): Promise<Record<string, unknown>>;
  stop(drainTimeoutMs?: number): Promise<void>;
}

export async function startTestGateway(config: Omit<GatewayConfig, 'downstream'> & { downstream?: GatewayConfig['downstream'] }, level = 'warn'): Promise<TestGateway> {
  const logs: Array<Record<string, unknown>> = [];
  const waiting = new Set<{ matches: (record: Record<string, unknown>) => boolean; resolve: (record: Record<string, unknown>) => void }>();
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) {
        if (line.trim() === '') continue;
        const record = JSON.parse(line) as Record<string, unknown>;
        logs.push(record);
        for (const waiter of waiting) {
          if (!waiter.matches(record)) continue;
          waiting.delete(waiter);
          waiter.resolve(record);
        }
      }
      done();
    },
  });
  const waitForLog = (matches: (record: Record<string, unknown>) => boolean) =>
    new Promise<Record<string, unknown>>((resolve) => {
      const seen = logs.find(matches);
      if (seen !== undefined) resolve(seen);
      else waiting.add({ matches, resolve });
    });
  const loaded = validateConfig({ ...config, downstream: { port: 0, ...config.downstream } }, 'test config');
  const gateway = await Gateway.start(loaded, { logger: createGatewayLogger({ level: level as 'warn', format: 'json', stream }) });
  const urls = gateway.urls;
  return {
    gateway,
    http: urls.http ?? '',
    ws: urls.websocket ?? '',
    base: urls.metrics.replace(/\/metrics$/, ''),
    logs,
    waitForLog,
    stop: (drainTimeoutMs) => gateway.shutdown(drainTimeoutMs),
  };
}

/** After a test: closes the clients it opened, then stops its gateway (clients first, so nothing is left to drain). */
export async function closeAll(clients: Array<{ close(): Promise<unknown> }>, gateway: TestGateway | undefined): Promise<void> {
  await Promise.all(clients.splice(0).map((c) => c.close().catch(() => {})));
  await gateway?.stop(0);
}

/** Whether a process (an upstream child) still exists. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
