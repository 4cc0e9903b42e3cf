/**
 * A small MCP server over stdio, wrapped with layers on its own side: the server behind
 * `npm start` and `npm run demo`, and the "wrapped server" example.
 *
 *   node examples/demo-server.ts          (speaks MCP on stdin/stdout)
 *
 * Tools: echo, add, lookup (read-only, a few ms of work), slow_report (progress
 * notifications), create_note (not idempotent), summarize (asks the client to sample),
 * confirm (asks the client to elicit). Resources: notes://index, notes://note/{id}.
 * Prompt: review_note.
 *
 * In your own code import from 'mcp-layers': here `#mcp-layers` (package.json
 * imports) names the same entry points in this repository.
 */
import { McpServer, ResourceTemplate } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { z } from 'zod';
import { concurrency, type Middleware, wrap } from '#mcp-layers';

const notes = new Map<string, { title: string; body: string }>([['1', { title: 'Welcome', body: 'Notes live in memory, one set per server process.' }]]);
const text = (value: string) => ({ content: [{ type: 'text' as const, text: value }] });
const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => (clearTimeout(timer), reject(signal.reason)), { once: true });
  });

const server = new McpServer({ name: 'mcp-layers-demo-server', version: '1.0.0' });

server.registerTool('echo', { description: 'Returns the text', inputSchema: { text: z.string() }, annotations: { readOnlyHint: true } }, async ({ text: t }) => text(t));
server.registerTool('add', { description: 'Adds two numbers', inputSchema: { a: z.number(), b: z.number() }, annotations: { readOnlyHint: true } }, async ({ a, b }) => text(String(a + b)));
server.registerTool(
  'lookup',
  { description: 'Looks a key up (takes a few milliseconds)', inputSchema: { key: z.string() }, annotations: { readOnlyHint: true } },
  async ({ key }, extra) => {
    await sleep(2 + Math.random() * 18, extra.signal);
    return text(`${key} = ${key.length * 7}`);
  },
);
server.registerTool(
  'slow_report',
  { description: 'Builds a report, reporting progress', inputSchema: { steps: z.number().int().min(1).max(50).default(5), stepMs: z.number().int().min(0).max(5_000).default(200) }, annotations: { readOnlyHint: true } },
  async ({ steps, stepMs }, extra) => {
    const token = extra._meta?.progressToken;
    for (let step = 1; step <= steps; step++) {
      await sleep(stepMs, extra.signal);
      if (token !== undefined) await extra.sendNotification({ method: 'notifications/progress', params: { progressToken: token, progress: step, total: steps, message: `step ${step} of ${steps}` } });
    }
    return text(`report ready after ${steps} steps`);
  },
);
server.registerTool('create_note', { description: 'Creates a note (not idempotent)', inputSchema: { title: z.string(), body: z.string() } }, async ({ title, body }) => {
  const id = String(notes.size + 1);
  notes.set(id, { title, body });
  return text(`created note ${id}`);
});
server.registerTool('summarize', { description: 'Asks the client\'s model for a summary (sampling)', inputSchema: { text: z.string() } }, async ({ text: input }) => {
  const answer = await server.server.createMessage({ messages: [{ role: 'user', content: { type: 'text', text: `Summarize: ${input}` } }], maxTokens: 100 });
  return text(answer.content.type === 'text' ? answer.content.text : `(${answer.content.type})`);
});
server.registerTool('confirm', { description: 'Asks the user to confirm (elicitation)', inputSchema: { action: z.string() } }, async ({ action }) => {
  const answer = await server.server.elicitInput({ message: `Really ${action}?`, requestedSchema: { type: 'object', properties: { confirm: { type: 'boolean' } }, required: ['confirm'] } });
  return text(answer.action === 'accept' && answer.content?.['confirm'] === true ? `${action}: confirmed` : `${action}: declined`);
});

server.registerResource('index', 'notes://index', { mimeType: 'application/json' }, async (uri) => ({
  contents: [{ uri: uri.href, mimeType: 'application/json', text: JSON.stringify([...notes].map(([id, n]) => ({ id, title: n.title }))) }],
}));
server.registerResource('note', new ResourceTemplate('notes://note/{id}', { list: undefined }), { mimeType: 'text/plain' }, async (uri, { id }) => {
  const note = notes.get(String(id));
  return { contents: [{ uri: uri.href, mimeType: 'text/plain', text: note === undefined ? 'no such note' : `${note.title}\n\n${note.body}` }] };
});
server.registerPrompt('review_note', { description: 'Review a note', argsSchema: { id: z.string() } }, async ({ id }) => ({
  messages: [{ role: 'user', content: { type: 'text', text: `Please review note ${id}: ${notes.get(id)?.body ?? '(missing)'}` } }],
}));

/** With MCP_DEMO_TRACE=1, one line per exchange on stderr (stdout carries the protocol). */
const timing: Middleware = async (ctx, next) => {
  const started = performance.now();
  try {
    await next();
  } finally {
    if (process.env['MCP_DEMO_TRACE'] === '1') process.stderr.write(`demo-server ${ctx.direction} ${ctx.method}${ctx.target ? ` ${ctx.target}` : ''} ${(performance.now() - started).toFixed(1)} ms\n`);
  }
};

// A stdio server's life ends with its stdin (MCP's stdio shutdown: the client closes it first).
// Ctrl-C in a terminal signals the whole process group — this child too — but it is meant for
// the gateway, which drains what is in flight and then closes our stdin: wait for that.
process.stdin.once('end', () => process.exit(0));
process.on('SIGINT', () => {});

// The server's own stack: at most 32 requests at once (the rest are shed with -32051), and timing.
await server.connect(wrap(new StdioServerTransport(), [concurrency({ maxInFlight: 32, direction: 'inbound' }), timing], { name: 'demo-server' }));
