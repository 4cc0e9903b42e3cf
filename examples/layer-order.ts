/**
 * Why the order of layers matters — run it: `node examples/layer-order.ts`
 *
 * The same two layers, retry and timeout, around a server whose `lookup` tool hangs
 * on its first two calls. Layers run first-is-outermost, so:
 *
 *   [retry, timeout]  each attempt gets its own 300 ms; a hung attempt is cancelled on
 *                     the wire and retried — the third attempt answers.
 *   [timeout, retry]  one 300 ms deadline for everything: the first attempt hangs
 *                     through all of it, retry never gets a turn, the call fails.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { retry, timeout, wrap, type LayerLike } from '#mcp-layers';

async function run(label: string, layers: LayerLike[]): Promise<void> {
  let calls = 0;
  const server = new McpServer({ name: 'sometimes-hangs', version: '1.0.0' });
  server.registerTool('lookup', { annotations: { readOnlyHint: true } }, async (extra) => {
    calls++;
    // The first two calls hang until the client cancels them.
    if (calls <= 2) await new Promise((resolve) => extra.signal.addEventListener('abort', resolve, { once: true }));
    return { content: [{ type: 'text', text: `answered on call ${calls}` }] };
  });
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  await server.connect(serverSide);
  const client = new Client({ name: 'example', version: '1.0.0' });
  await client.connect(wrap(clientSide, layers));
  await client.listTools(); // teaches the stack that lookup is read-only, hence safe to retry

  const started = performance.now();
  const outcome = await client.callTool({ name: 'lookup', arguments: {} }).then(
    (result) => (result.content as Array<{ text: string }>)[0]?.text,
    (error: Error) => `failed: ${error.message}`,
  );
  console.log(`${label.padEnd(18)} ${outcome} — after ${Math.round(performance.now() - started)} ms; the server ran it ${calls}×`);
  await client.close();
}

await run('[retry, timeout]', [retry({ maxAttempts: 3, backoff: { initialDelayMs: 10, maxDelayMs: 20 } }), timeout({ attemptMs: 300 })]);
await run('[timeout, retry]', [timeout({ attemptMs: 300 }), retry({ maxAttempts: 3, backoff: { initialDelayMs: 10, maxDelayMs: 20 } })]);
