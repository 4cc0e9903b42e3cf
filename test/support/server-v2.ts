/**
 * The feature-complete test server on SDK v2 (`@modelcontextprotocol/server` McpServer).
 * See fixture.ts for what it offers; every handler counts its runs in the Ledger.
 *
 * Two ways to serve it, as with the SDK itself:
 * - `createV2Server().server.connect(transport)`: a hand-wired instance. It speaks the
 *   2025 era only (`initialize`); `server/discover` is answered -32601.
 * - `serveV2(transport)`: the SDK's `serveStdio` entry over any transport. The opening
 *   message picks the era — `server/discover` with a 2026-07-28 envelope pins a modern
 *   instance, `initialize` a legacy one — and one instance is made per connection.
 *
 * v2 only: the `ask` tool uses the 2026-07-28 multi-round-trip flow (`inputRequired`):
 * on a modern connection the *client* fulfils the embedded elicitation and retries
 * `tools/call` with a fresh id; on a 2025 connection the SDK's shim sends a real
 * `elicitation/create` to the client instead. Either way the handler runs twice.
 */
import { acceptedContent, inputRequired, McpServer, ResourceTemplate, type Transport as V2Transport } from '@modelcontextprotocol/server';
import { serveStdio, type StdioServerHandle } from '@modelcontextprotocol/server/stdio';
import {
  annotations,
  ELICIT_SCHEMA,
  FAIL_MESSAGE,
  greetMessages,
  itemText,
  samplingRequestParams,
  schemas,
  SERVER_INFO,
  SLOW_STARTED_MESSAGE,
  STATIC_RESOURCE,
  TEMPLATE_RESOURCE,
  text,
} from './fixture.ts';
import { Ledger } from './ledger.ts';

export interface V2ServerOptions {
  /** Where handler runs and aborts are recorded (default: a new Ledger). */
  ledger?: Ledger;
  /** Extra tools, e.g. the stdio entry's `transport_stats`. */
  extend?: (server: McpServer, ledger: Ledger) => void;
}

export interface V2Fixture {
  server: McpServer;
  ledger: Ledger;
}

export function createV2Server(options: V2ServerOptions = {}): V2Fixture {
  const ledger = options.ledger ?? new Ledger();
  const server = new McpServer(SERVER_INFO, { capabilities: { tools: {}, resources: {}, prompts: {} } });

  server.registerTool('echo', { description: 'Returns its text', inputSchema: schemas.echo, annotations: annotations.echo }, ({ text: value }) => {
    ledger.ran('echo');
    return text(value);
  });

  server.registerTool('add', { description: 'Adds two numbers', inputSchema: schemas.add, annotations: annotations.add }, ({ a, b }) => {
    ledger.ran('add');
    return text(String(a + b));
  });

  server.registerTool('append', { description: 'Appends an item (not idempotent)', inputSchema: schemas.append }, ({ item }) => {
    const count = ledger.ran('append');
    return text(`appended ${item} (#${count})`);
  });

  server.registerTool(
    'progress',
    { description: 'Reports progress', inputSchema: schemas.progress, annotations: annotations.progress },
    async ({ steps }, ctx) => {
      ledger.ran('progress');
      const progressToken = ctx.mcpReq._meta?.progressToken;
      if (progressToken !== undefined) {
        for (let step = 1; step <= steps; step++) {
          await ctx.mcpReq.notify({ method: 'notifications/progress', params: { progressToken, progress: step, total: steps, message: `step ${step}` } });
        }
      }
      return text(`done after ${steps} steps`);
    },
  );

  // Push-style server→client requests exist in the 2025 era only; on a 2026-era request the SDK throws.
  server.registerTool('sample', { description: 'Asks the client to sample', inputSchema: schemas.sample }, async ({ prompt }, ctx) => {
    ledger.ran('sample');
    const answer = await ctx.mcpReq.requestSampling(samplingRequestParams(prompt));
    return text(`${answer.model} said: ${JSON.stringify(answer.content)}`);
  });

  server.registerTool('elicit', { description: 'Asks the client a question', inputSchema: schemas.elicit }, async ({ question }, ctx) => {
    ledger.ran('elicit');
    const answer = await ctx.mcpReq.elicitInput({ message: question, requestedSchema: ELICIT_SCHEMA });
    return text(`${answer.action}: ${JSON.stringify(answer.content)}`);
  });

  server.registerTool('ask', { description: 'Asks the client a question, multi-round-trip style', inputSchema: schemas.elicit }, ({ question }, ctx) => {
    ledger.ran('ask');
    const answer = acceptedContent(ctx.mcpReq.inputResponses, 'answer');
    if (answer === undefined) {
      return inputRequired({ inputRequests: { answer: inputRequired.elicit({ message: question, requestedSchema: ELICIT_SCHEMA }) } });
    }
    return text(`answered: ${JSON.stringify(answer)}`);
  });

  server.registerTool('slow', { description: 'Waits until cancelled' }, async (ctx) => {
    ledger.ran('slow');
    const { signal } = ctx.mcpReq;
    const progressToken = ctx.mcpReq._meta?.progressToken;
    const aborted = new Promise<void>((resolve) => {
      const onAbort = () => {
        ledger.abort('slow', signal.reason);
        resolve();
      };
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    });
    if (progressToken !== undefined) {
      await ctx.mcpReq.notify({ method: 'notifications/progress', params: { progressToken, progress: 0, message: SLOW_STARTED_MESSAGE } });
    }
    await aborted;
    return text('aborted');
  });

  server.registerTool('fail', { description: 'Always fails' }, () => {
    ledger.ran('fail');
    throw new Error(FAIL_MESSAGE);
  });

  server.registerTool('ledger', { description: 'What the server really did', annotations: annotations.ledger }, () => text(JSON.stringify(ledger.snapshot())));

  server.registerResource(STATIC_RESOURCE.name, STATIC_RESOURCE.uri, { mimeType: STATIC_RESOURCE.mimeType }, (uri) => ({
    contents: [{ uri: uri.href, mimeType: STATIC_RESOURCE.mimeType, text: STATIC_RESOURCE.text }],
  }));

  server.registerResource(
    TEMPLATE_RESOURCE.name,
    new ResourceTemplate(TEMPLATE_RESOURCE.uriTemplate, { list: undefined }),
    { mimeType: TEMPLATE_RESOURCE.mimeType },
    (uri, variables) => ({ contents: [{ uri: uri.href, mimeType: TEMPLATE_RESOURCE.mimeType, text: itemText(String(variables['id'])) }] }),
  );

  server.registerPrompt('greet', { description: 'Greets someone', argsSchema: schemas.greet }, (args) => greetMessages(args));

  options.extend?.(server, ledger);
  return { server, ledger };
}

export interface ServedV2 {
  handle: StdioServerHandle;
  ledger: Ledger;
  /** Every instance the entry made (a `server/discover` probe that falls back to `initialize` makes two). */
  instances: McpServer[];
}

/** Serves the fixture through the SDK's era-selecting entry over `transport` (both eras). */
export function serveV2(transport: V2Transport, options: V2ServerOptions & { onerror?: (error: Error) => void } = {}): ServedV2 {
  const ledger = options.ledger ?? new Ledger();
  const instances: McpServer[] = [];
  const handle = serveStdio(
    () => {
      const { server } = createV2Server({ ...options, ledger });
      instances.push(server);
      return server;
    },
    { transport, onerror: options.onerror ?? (() => {}) },
  );
  return { handle, ledger, instances };
}
