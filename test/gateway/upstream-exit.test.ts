/**
 * A stdio upstream that exits says why (docs/gateway.md "Errors"): a child that exits
 * before it answers anything did not start — the client gets -32054 upstream-unavailable
 * with the exit code or signal and the child's last stderr lines (bounded, redacted), and
 * the log says the same; one that dies under a request in flight is -32000 with the same
 * data.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketClientTransport } from '#transports/ws/index.ts';
import { closeAll, DEMO_SERVER, startTestGateway, type TestGateway } from '../support/gateway.ts';

let gw: TestGateway | undefined;
const clients: Client[] = [];
afterEach(() => closeAll(clients, gw).then(() => (gw = undefined)));

/** A server that fails at once: two stderr lines (one with a secret in it), exit code 3. */
const FAILING = `process.stderr.write('loading config\\nboom: Authorization: Bearer s3cr3t-t0ken\\n'); process.exit(3);`;

async function connectError(url: string): Promise<McpError> {
  const client = new Client({ name: 'exit-test', version: '1.0.0' });
  clients.push(client);
  const transport = url.startsWith('ws') ? new WebSocketClientTransport(url, { reconnect: false }) : new StreamableHTTPClientTransport(new URL(url));
  const error = await client.connect(transport).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(McpError);
  return error as McpError;
}

describe('an upstream child that exits as it starts', () => {
  for (const listener of ['http', 'websocket'] as const) {
    it(`answers initialize with -32054 upstream-unavailable, its exit code and last stderr lines, over ${listener}`, async () => {
      gw = await startTestGateway({ upstream: { command: process.execPath, args: ['-e', FAILING], stderr: 'ignore' } });
      const error = await connectError(listener === 'http' ? gw.http : gw.ws);
      expect(error.code).toBe(-32054);
      expect(error.message).toMatch(/The upstream server exited with code 3 before it answered initialize; its last stderr line: boom: Authorization: \[REDACTED\]/);
      expect(error.data).toMatchObject({ layer: 'gateway', reason: 'upstream-unavailable', exitCode: 3, signal: null, stderr: ['loading config', 'boom: Authorization: [REDACTED]'] });
      const closed = await gw.waitForLog((r) => r['event'] === 'session-close');
      expect(closed).toMatchObject({ reason: 'upstream-failed', exit_code: 3, signal: null, stderr: ['loading config', 'boom: Authorization: [REDACTED]'] });
      expect(String(closed['message'])).toMatch(/session closed \(upstream-failed\): the upstream server exited with code 3/);
      expect(JSON.stringify(gw.logs)).not.toContain('s3cr3t');
    });
  }
});

describe('an upstream child killed under a request in flight', () => {
  it('answers the request with -32000 naming the signal (restart: false; supervised-child.test.ts has the restarts)', async () => {
    gw = await startTestGateway({ upstream: { command: process.execPath, args: [DEMO_SERVER], restart: false } });
    const client = new Client({ name: 'exit-test', version: '1.0.0' });
    clients.push(client);
    await client.connect(new StreamableHTTPClientTransport(new URL(gw.http)));
    const [session] = gw.gateway.sessions;
    const pid = (session?.upstream?.inner as { pid?: number } | undefined)?.pid as number;
    // Killed when its first progress notification arrives: the call is surely in flight then.
    let killed = false;
    const call = client
      .callTool({ name: 'slow_report', arguments: { steps: 50, stepMs: 100 } }, undefined, {
        onprogress: () => {
          if (killed) return;
          killed = true;
          process.kill(pid, 'SIGKILL');
        },
      })
      .then(
        () => undefined,
        (e: unknown) => e as McpError,
      );
    const error = await call;
    expect(error?.code).toBe(-32000);
    expect(error?.message).toMatch(/The upstream server was killed by SIGKILL while tools\/call was in flight; it may or may not have completed/);
    expect(error?.data).toMatchObject({ reason: 'upstream-exited', exitCode: null, signal: 'SIGKILL' });
  });
});
