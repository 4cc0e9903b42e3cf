/**
 * What the core refuses from the upstream server still answers the client's request, at
 * once, with an error that says what was refused and why (docs/architecture.md "Bad
 * input"); what the SDK itself accepts passes through the gateway untouched.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocketClientTransport } from '#transports/ws/index.ts';
import { DEEP_SERVER_ARGS, nest } from '../support/deep-server.ts';
import { startTestGateway, type TestGateway } from '../support/gateway.ts';

/**
 * A server written by hand, since the SDK's never puts a "__proto__" key on the wire: it
 * answers every tools/call with one in its structuredContent.
 */
const POISONING_SERVER = `
const write = (text) => process.stdout.write(text + '\\n');
let buffer = '';
process.stdin.on('data', (chunk) => {
  buffer += chunk;
  let at;
  while ((at = buffer.indexOf('\\n')) >= 0) {
    const message = JSON.parse(buffer.slice(0, at));
    buffer = buffer.slice(at + 1);
    if (message.id === undefined) continue;
    if (message.method === 'initialize') write(JSON.stringify({ jsonrpc: '2.0', id: message.id, result: { protocolVersion: message.params.protocolVersion, capabilities: { tools: {} }, serverInfo: { name: 'poison', version: '1' } } }));
    else if (message.method === 'tools/call') write('{"jsonrpc":"2.0","id":' + JSON.stringify(message.id) + ',"result":{"content":[],"structuredContent":{"__proto__":{"polluted":true}}}}');
    else write(JSON.stringify({ jsonrpc: '2.0', id: message.id, result: {} }));
  }
});
process.stdin.once('end', () => process.exit(0));
`;

let gw: TestGateway;
let poisoning: TestGateway;
beforeAll(async () => {
  gw = await startTestGateway({ upstream: { command: process.execPath, args: DEEP_SERVER_ARGS } });
  poisoning = await startTestGateway({ upstream: { command: process.execPath, args: ['-e', POISONING_SERVER] } });
});
afterAll(() => Promise.all([gw.stop(0), poisoning.stop(0)]));

async function connect(listener: 'http' | 'websocket', through = gw): Promise<Client> {
  const client = new Client({ name: 'deep-test', version: '1.0.0' });
  await client.connect(listener === 'http' ? new StreamableHTTPClientTransport(new URL(through.http)) : new WebSocketClientTransport(through.ws, { reconnect: false }));
  return client;
}

const failure = (promise: Promise<unknown>) =>
  promise.then(
    () => undefined,
    (error: unknown) => error as McpError,
  );

for (const listener of ['http', 'websocket'] as const) {
  describe(`through the gateway over ${listener}`, () => {
    it('a 62-levels-deep result reaches the client as the server sent it', async () => {
      const client = await connect(listener);
      const result = await client.callTool({ name: 'nest', arguments: { depth: 62 } });
      expect(result.structuredContent).toEqual(nest(62));
      await client.close();
    });

    it('a result deeper than the limit ends the call at once with -32600 naming the depth, the limit and the path', async () => {
      const client = await connect(listener);
      // The SDK's own 60 s timeout is what a hang would end in; the refusal must come first.
      const error = await failure(client.callTool({ name: 'nest', arguments: { depth: 1200 } }, undefined, { timeout: 20_000 }));
      expect(error).toBeInstanceOf(McpError);
      expect(error?.code).toBe(-32600);
      expect(error?.message).toMatch(/too deep \(\d+ levels, limit 1000\) at \$\.result\.structuredContent\.a\.a/);
      expect(error?.message).not.toMatch(/__proto__/);
      // The session goes on.
      expect((await client.callTool({ name: 'nest', arguments: { depth: 3 } })).structuredContent).toEqual(nest(3));
      await client.close();
    });

    it('a result with a "__proto__" key ends the call at once with an error that says so', async () => {
      const client = await connect(listener, poisoning);
      const error = await failure(client.callTool({ name: 'poison', arguments: {} }, undefined, { timeout: 20_000 }));
      expect(error?.code).toBe(-32600);
      expect(error?.message).toMatch(/forbidden "__proto__" key at \$\.result\.structuredContent/);
      await client.close();
    });
  });
}

describe('with upstream.maxDepth and downstream.maxDepth set', () => {
  let limited: TestGateway;
  beforeAll(async () => {
    limited = await startTestGateway({ upstream: { command: process.execPath, args: DEEP_SERVER_ARGS, maxDepth: 20 }, downstream: { maxDepth: 16 } });
  });
  afterAll(() => limited.stop(0));

  it("refuses a server's result deeper than upstream.maxDepth, and a client's request deeper than downstream.maxDepth, each naming its limit", async () => {
    const client = await connect('http', limited);
    const tooDeepResult = await failure(client.callTool({ name: 'nest', arguments: { depth: 25 } }, undefined, { timeout: 20_000 }));
    expect(tooDeepResult?.code).toBe(-32600);
    expect(tooDeepResult?.message).toMatch(/too deep \(\d+ levels, limit 20\) at \$\.result\.structuredContent\.a/);
    const tooDeepRequest = await failure(client.callTool({ name: 'nest', arguments: { depth: 1, extra: nest(20) } }, undefined, { timeout: 20_000 }));
    expect(tooDeepRequest?.code).toBe(-32600);
    expect(tooDeepRequest?.message).toMatch(/too deep \(\d+ levels, limit 16\) at \$\.params\.arguments\.extra\.a/);
    // Within both limits the call goes through, and the session goes on.
    expect((await client.callTool({ name: 'nest', arguments: { depth: 10 } })).structuredContent).toEqual(nest(10));
    await client.close();
  });
});
