/**
 * The feature-complete test server on SDK v1 (`@modelcontextprotocol/sdk` McpServer).
 * See fixture.ts for what it offers; every handler counts its runs in the Ledger.
 */
import { McpServer, ResourceTemplate } from '@modelcontextprotocol/sdk/server/mcp.js';
import {
  annotations,
  ELICIT_SCHEMA,
  FAIL_MESSAGE,
  greetArgsShape,
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

export interface V1ServerOptions {
  /** Where handler runs and aborts are recorded (default: a new Ledger). */
  ledger?: Ledger;
  /** Extra tools, e.g. the stdio entry's `transport_stats`. */
  extend?: (server: McpServer, ledger: Ledger) => void;
}

export interface V1Fixture {
  server: McpServer;
  ledger: Ledger;
}

export function createV1Server(options: V1ServerOptions = {}): V1Fixture {
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
    async ({ steps }, extra) => {
      ledger.ran('progress');
      const progressToken = extra._meta?.progressToken;
      if (progressToken !== undefined) {
        for (let step = 1; step <= steps; step++) {
          await extra.sendNotification({ method: 'notifications/progress', params: { progressToken, progress: step, total: steps, message: `step ${step}` } });
        }
      }
      return text(`done after ${steps} steps`);
    },
  );

  server.registerTool('sample', { description: 'Asks the client to sample', inputSchema: schemas.sample }, async ({ prompt }, extra) => {
    ledger.ran('sample');
    const answer = await server.server.createMessage(samplingRequestParams(prompt), { relatedRequestId: extra.requestId });
    return text(`${answer.model} said: ${JSON.stringify(answer.content)}`);
  });

  server.registerTool('elicit', { description: 'Asks the client a question', inputSchema: schemas.elicit }, async ({ question }, extra) => {
    ledger.ran('elicit');
    const answer = await server.server.elicitInput({ message: question, requestedSchema: ELICIT_SCHEMA }, { relatedRequestId: extra.requestId });
    return text(`${answer.action}: ${JSON.stringify(answer.content)}`);
  });

  server.registerTool('slow', { description: 'Waits until cancelled' }, async (extra) => {
    ledger.ran('slow');
    const progressToken = extra._meta?.progressToken;
    const aborted = new Promise<void>((resolve) => {
      const onAbort = () => {
        ledger.abort('slow', extra.signal.reason);
        resolve();
      };
      if (extra.signal.aborted) onAbort();
      else extra.signal.addEventListener('abort', onAbort, { once: true });
    });
    if (progressToken !== undefined) {
      await extra.sendNotification({ method: 'notifications/progress', params: { progressToken, progress: 0, message: SLOW_STARTED_MESSAGE } });
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

  server.registerPrompt('greet', { description: 'Greets someone', argsSchema: greetArgsShape }, (args) => greetMessages(args));

  options.extend?.(server, ledger);
  return { server, ledger };
}
