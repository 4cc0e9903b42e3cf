/**
 * A scripted stdio MCP server whose tools/list results carry the 2026-07-28 cache hints
 * (SEP-2549: `ttlMs`, `cacheScope`) — no SDK server sends them yet — and which says how
 * often it was listed, so a test sees whether a list reached it.
 *
 *   node test/support/hinted-lists-server.ts [--ttl MS] [--scope public|private] [--list-changed] [--pages N]
 *
 * Tools: `listed` (how many tools/list requests it answered), `change` (adds a tool and
 * sends notifications/tools/list_changed), `echo`, `exit` (exits with code 3, as a
 * crashing server would).
 */
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: { ttl: { type: 'string' }, scope: { type: 'string' }, 'list-changed': { type: 'boolean', default: false }, pages: { type: 'string', default: '1' } },
});
const ttlMs = values.ttl === undefined ? undefined : Number(values.ttl);
const pages = Number(values.pages);
let listed = 0;
const tools: Array<{ name: string; description: string; inputSchema: { type: 'object'; properties: Record<string, object> } }> = ['listed', 'change', 'echo', 'exit'].map((name) => ({
  name,
  description: `the ${name} tool`,
  inputSchema: { type: 'object', properties: { text: { type: 'string' } } },
}));

type Message = { id?: number | string; method?: string; params?: Record<string, unknown> };
const write = (message: object) => process.stdout.write(`${JSON.stringify({ jsonrpc: '2.0', ...message })}\n`);
const text = (value: string) => ({ content: [{ type: 'text', text: value }] });

function answer(message: Message): object | undefined {
  switch (message.method) {
    case 'initialize':
      return {
        protocolVersion: message.params?.['protocolVersion'],
        capabilities: { tools: values['list-changed'] ? { listChanged: true } : {} },
        serverInfo: { name: 'hinted-lists', version: '1.0.0' },
      };
    case 'ping':
      return {};
    case 'tools/list': {
      listed++;
      const page = typeof message.params?.['cursor'] === 'string' ? Number(message.params['cursor']) : 0;
      const size = Math.ceil(tools.length / pages);
      return {
        tools: tools.slice(page * size, (page + 1) * size),
        ...(page + 1 < pages ? { nextCursor: String(page + 1) } : {}),
        ...(ttlMs === undefined ? {} : { ttlMs }),
        ...(values.scope === undefined ? {} : { cacheScope: values.scope }),
      };
    }
    case 'tools/call': {
      const name = message.params?.['name'];
      const args = (message.params?.['arguments'] ?? {}) as { text?: string };
      if (name === 'listed') return text(String(listed));
      if (name === 'echo') return text(`hinted: ${args.text ?? ''}`);
      if (name === 'exit') {
        process.stderr.write('hinted-lists: exiting on request\n');
        process.exit(3);
      }
      if (name === 'change') {
        tools.push({ name: `added-${tools.length}`, description: 'added', inputSchema: { type: 'object', properties: {} } });
        setImmediate(() => write({ method: 'notifications/tools/list_changed' }));
        return text('changed');
      }
      return undefined;
    }
    default:
      return undefined;
  }
}

const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  const message = JSON.parse(line) as Message;
  if (message.id === undefined || message.method === undefined) return;
  const result = answer(message);
  if (result === undefined) write({ id: message.id, error: { code: -32601, message: `Method not found: ${message.method}` } });
  else write({ id: message.id, result });
});
lines.on('close', () => process.exit(0));
