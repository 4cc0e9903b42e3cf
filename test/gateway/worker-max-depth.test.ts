/**
 * `mcp-layers worker` with `worker.maxDepth` and `upstream.maxDepth`, on each broker: a
 * client's request nested deeper than the first is answered -32600 naming the limit, a
 * server's result deeper than the second ends the call with -32600 naming its limit, and
 * the session goes on (docs/gateway.md "Worker").
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, expect, it } from 'vitest';
import { describeEachBroker, uniqueService } from '../support/brokers.ts';
import { createV1Client } from '../support/clients.ts';
import { DEEP_SERVER_ARGS, nest } from '../support/deep-server.ts';
import { brokerForWorkers, startWorkerCli } from '../support/worker-cli.ts';

const failure = (promise: Promise<unknown>) =>
  promise.then(
    () => undefined,
    (error: unknown) => error as McpError,
  );

const dir = mkdtempSync(join(tmpdir(), 'mcp-layers-worker-depth-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describeEachBroker('test/gateway/worker-max-depth.test.ts', (b) => `mcp-layers worker over ${b.title}: maxDepth`, (kind) => {
  const broker = brokerForWorkers(kind);

  it("refuses a client's request deeper than worker.maxDepth and a server's result deeper than upstream.maxDepth, each naming its limit", async () => {
    const service = uniqueService('depth');
    const config = join(dir, `${service}.json`);
    writeFileSync(
      config,
      JSON.stringify({ worker: { broker: `${broker.url}/${service}`, maxDepth: 16 }, upstream: { command: process.execPath, args: DEEP_SERVER_ARGS, maxDepth: 20 } }),
    );
    await startWorkerCli(['--config', config]);
    const client = createV1Client();
    await client.connect(kind.client({ servers: broker.url, service }));
    try {
      const tooDeepResult = await failure(client.callTool('nest', { depth: 25 }));
      expect(tooDeepResult).toBeInstanceOf(McpError);
      expect(tooDeepResult?.code).toBe(-32600);
      expect(tooDeepResult?.message).toMatch(/too deep \(\d+ levels, limit 20\) at \$\.result\.structuredContent\.a/);
      const tooDeepRequest = await failure(client.callTool('nest', { depth: 1, extra: nest(20) }));
      expect(tooDeepRequest?.code).toBe(-32600);
      expect(tooDeepRequest?.message).toMatch(/too deep \(\d+ levels, limit 16\) at \$\.params\.arguments\.extra\.a/);
      expect(await client.callTool('nest', { depth: 10 })).toMatchObject({ structuredContent: nest(10) });
    } finally {
      await client.close().catch(() => {});
    }
  });
});
