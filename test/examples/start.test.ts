/** `npm start` (examples/start.ts): the gateway on its embedded config, until Ctrl-C. */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketClientTransport } from '#transports/ws/index.ts';
import { start, type Started } from './run.ts';

let running: Started | undefined;
afterEach(() => {
  if (running?.process.exitCode === null) running.process.kill('SIGKILL');
});

describe('npm start (examples/start.ts)', () => {
  it('prints its endpoints and how to connect, serves SDK clients over HTTP and WebSocket, and exits 0 on SIGINT', async () => {
    running = start(['examples/start.ts'], { PORT: '0' });
    const [, http] = await running.line(/^ {2}MCP +(http:\/\/127\.0\.0\.1:\d+\/mcp)/);
    const [, ws] = await running.line(/(ws:\/\/127\.0\.0\.1:\d+\/mcp)/);
    await running.line(/^Ctrl-C stops the gateway/);
    expect(running.stdout.join('\n')).toContain(`await new Client({ name: 'my-app', version: '1.0.0' }).connect(new StreamableHTTPClientTransport(new URL('${http}')));`);
    expect(running.stdout.join('\n')).toMatch(/metrics +http:\/\/127\.0\.0\.1:\d+\/metrics/);

    // The snippet it prints works as printed.
    const client = new Client({ name: 'my-app', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(http as string)));
    expect(await client.callTool({ name: 'add', arguments: { a: 2, b: 3 } })).toEqual({ content: [{ type: 'text', text: '5' }] });
    const overWs = new Client({ name: 'my-app', version: '1.0.0' });
    await overWs.connect(new WebSocketClientTransport(ws as string, { reconnect: false }));
    expect(await overWs.callTool({ name: 'echo', arguments: { text: 'hi' } })).toEqual({ content: [{ type: 'text', text: 'hi' }] });
    await client.close();
    await overWs.close();

    running.process.kill('SIGINT');
    expect(await running.exited).toBe(0);
    expect(running.stderr.join('\n')).toMatch(/gateway stopped/);
  });
});
