/**
 * The reference test server: the feature set the interop and gateway suites drive,
 * defined once as a TestApp (fixtureApp) so the SDK v1 and v2 servers answer
 * byte-for-byte alike. Only the SDK glue differs between them (server-v1.ts,
 * server-v2.ts: createV1Server, createV2Server, serveV2); what a tool does and returns
 * lives here.
 *
 * Tools
 *   echo      { text }         readOnlyHint       returns the text
 *   add       { a, b }         idempotentHint     returns the sum
 *   append    { item }         (no annotations)   returns how many items were appended: not idempotent
 *   progress  { steps }        readOnlyHint       sends `steps` notifications/progress when asked to
 *   sample    { prompt }                          asks the client sampling/createMessage, returns its answer
 *   elicit    { question }                        asks the client elicitation/create, returns its answer
 *   slow      {}                                  reports progress "started", then waits for its abort signal
 *   fail      {}                                  throws: the client gets an isError result
 *   ask       { question }                        SDK v2 only: multi-round-trip input (`inputRequired`)
 *   ledger    {}               readOnlyHint       returns the Ledger snapshot (for child processes)
 * Resources: a static text resource and a URI template.
 * Prompts:   `greet` with a required and an optional argument.
 */
import * as z from 'zod';
import { Ledger } from './ledger.ts';
import { prompt, type TestApp, tool } from './test-app.ts';

export const SERVER_INFO = { name: 'mcp-layers-test-server', version: '1.0.0' };
export const CLIENT_INFO = { name: 'mcp-layers-test-client', version: '1.0.0' };

export const STATIC_RESOURCE = {
  name: 'readme',
  uri: 'fixture://static/readme',
  mimeType: 'text/plain',
  text: 'The static fixture resource.',
};

export const TEMPLATE_RESOURCE = {
  name: 'item',
  uriTemplate: 'fixture://items/{id}',
  mimeType: 'application/json',
};

export function itemText(id: string): string {
  return JSON.stringify({ id, label: `item ${id}` });
}

export const schemas = {
  echo: z.object({ text: z.string() }),
  add: z.object({ a: z.number(), b: z.number() }),
  append: z.object({ item: z.string() }),
  progress: z.object({ steps: z.number().int().min(0).max(10) }),
  sample: z.object({ prompt: z.string() }),
  elicit: z.object({ question: z.string() }),
  greet: z.object({ name: z.string(), style: z.string().optional() }),
};

export const annotations = {
  echo: { readOnlyHint: true },
  add: { idempotentHint: true },
  progress: { readOnlyHint: true },
  ledger: { readOnlyHint: true },
} as const;

export const SLOW_STARTED_MESSAGE = 'started';
export const FAIL_MESSAGE = 'the fail tool failed on purpose';

/** The JSON Schema the `elicit` tool asks the client to fill in. */
export const ELICIT_SCHEMA = {
  type: 'object' as const,
  properties: { answer: { type: 'string' as const } },
  required: ['answer'],
};

export function text(value: string): { content: Array<{ type: 'text'; text: string }> } {
  return { content: [{ type: 'text', text: value }] };
}

export function greetMessages(args: { name: string; style?: string | undefined }): {
  description: string;
  messages: Array<{ role: 'user'; content: { type: 'text'; text: string } }>;
} {
  const greeting = args.style === 'formal' ? `Good day, ${args.name}.` : `Hi ${args.name}!`;
  return { description: 'A greeting', messages: [{ role: 'user', content: { type: 'text', text: greeting } }] };
}

export function samplingRequestParams(prompt: string): {
  messages: Array<{ role: 'user'; content: { type: 'text'; text: string } }>;
  maxTokens: number;
} {
  return { messages: [{ role: 'user', content: { type: 'text', text: prompt } }], maxTokens: 50 };
}

/** What the test clients' sampling handler answers. */
export function samplingAnswer(prompt: string): { model: string; role: 'assistant'; content: { type: 'text'; text: string } } {
  return { model: 'test-model', role: 'assistant', content: { type: 'text', text: `sampled: ${prompt}` } };
}

/** What the test clients' elicitation handler answers. */
export function elicitationAnswer(message: string): { action: 'accept'; content: { answer: string } } {
  return { action: 'accept', content: { answer: `yes to ${message}` } };
}

/** Reads the text of the last message of a sampling request (as the clients' handlers see it). */
export function lastPromptText(params: unknown): string {
  const messages = (params as { messages?: Array<{ content?: unknown }> }).messages ?? [];
  const content = messages.at(-1)?.content as { type?: string; text?: string } | Array<{ type?: string; text?: string }> | undefined;
  const block = Array.isArray(content) ? content[0] : content;
  return block?.type === 'text' ? (block.text ?? '') : '';
}

/** The reference server's tools, resources and prompts; every handler counts its runs in `ledger`. */
export function fixtureApp(ledger: Ledger): TestApp {
  return {
    info: SERVER_INFO,
    options: { capabilities: { tools: {}, resources: {}, prompts: {} } },
    tools: [
      tool({ name: 'echo', description: 'Returns its text', inputSchema: schemas.echo, annotations: annotations.echo, run: ({ text: value }) => {
        ledger.ran('echo');
        return text(value);
      } }),
      tool({ name: 'add', description: 'Adds two numbers', inputSchema: schemas.add, annotations: annotations.add, run: ({ a, b }) => {
        ledger.ran('add');
        return text(String(a + b));
      } }),
      tool({ name: 'append', description: 'Appends an item (not idempotent)', inputSchema: schemas.append, run: ({ item }) => {
        const count = ledger.ran('append');
        return text(`appended ${item} (#${count})`);
      } }),
      tool({ name: 'progress', description: 'Reports progress', inputSchema: schemas.progress, annotations: annotations.progress, run: async ({ steps }, call) => {
        ledger.ran('progress');
        if (call.progressToken !== undefined) {
          for (let step = 1; step <= steps; step++) await call.progress({ progress: step, total: steps, message: `step ${step}` });
        }
        return text(`done after ${steps} steps`);
      } }),
      // Push-style server→client requests exist in the 2025 era only; on a 2026-era request the v2 SDK throws.
      tool({ name: 'sample', description: 'Asks the client to sample', inputSchema: schemas.sample, run: async ({ prompt: asked }, call) => {
        ledger.ran('sample');
        const answer = await call.sample(samplingRequestParams(asked));
        return text(`${answer.model} said: ${JSON.stringify(answer.content)}`);
      } }),
      tool({ name: 'elicit', description: 'Asks the client a question', inputSchema: schemas.elicit, run: async ({ question }, call) => {
        ledger.ran('elicit');
        const answer = await call.elicit({ message: question, requestedSchema: ELICIT_SCHEMA });
        return text(`${answer.action}: ${JSON.stringify(answer.content)}`);
      } }),
      tool({ name: 'ask', description: 'Asks the client a question, multi-round-trip style', inputSchema: schemas.elicit, only: 'v2', run: ({ question }, call) => {
        ledger.ran('ask');
        const answer = call.inputResponse('answer');
        if (answer === undefined) return call.inputRequired('answer', { message: question, requestedSchema: ELICIT_SCHEMA });
        return text(`answered: ${JSON.stringify(answer)}`);
      } }),
      {
        name: 'slow',
        description: 'Waits until cancelled',
        run: async (_args, call) => {
          ledger.ran('slow');
          const { signal } = call;
          const aborted = new Promise<void>((resolve) => {
            const onAbort = () => {
              ledger.abort('slow', signal.reason);
              resolve();
            };
            if (signal.aborted) onAbort();
            else signal.addEventListener('abort', onAbort, { once: true });
          });
          if (call.progressToken !== undefined) await call.progress({ progress: 0, message: SLOW_STARTED_MESSAGE });
          await aborted;
          return text('aborted');
        },
      },
      {
        name: 'fail',
        description: 'Always fails',
        run: () => {
          ledger.ran('fail');
          throw new Error(FAIL_MESSAGE);
        },
      },
      { name: 'ledger', description: 'What the server really did', annotations: annotations.ledger, run: () => text(JSON.stringify(ledger.snapshot())) },
    ],
    resources: [
      {
        name: STATIC_RESOURCE.name,
        uri: STATIC_RESOURCE.uri,
        metadata: { mimeType: STATIC_RESOURCE.mimeType },
        read: (uri: URL) => ({ contents: [{ uri: uri.href, mimeType: STATIC_RESOURCE.mimeType, text: STATIC_RESOURCE.text }] }),
      },
      {
        name: TEMPLATE_RESOURCE.name,
        uriTemplate: TEMPLATE_RESOURCE.uriTemplate,
        metadata: { mimeType: TEMPLATE_RESOURCE.mimeType },
        read: (uri, variables) => ({ contents: [{ uri: uri.href, mimeType: TEMPLATE_RESOURCE.mimeType, text: itemText(String(variables['id'])) }] }),
      },
    ],
    prompts: [prompt({ name: 'greet', description: 'Greets someone', argsSchema: schemas.greet, get: (args) => greetMessages(args) })],
  };
}

export interface FixtureOptions<Server> {
  /** Where handler runs and aborts are recorded (default: a new Ledger). */
  ledger?: Ledger;
  /** Extra tools, e.g. the stdio entry's `transport_stats`. */
  extend?: (server: Server, ledger: Ledger) => void;
}

export interface Fixture<Server> {
  server: Server;
  ledger: Ledger;
}

/** The reference fixture served by one SDK's glue (`serve`: serveAppV1 or serveAppV2). */
export function createFixture<Server>(serve: (app: TestApp) => Server, options: FixtureOptions<Server> = {}): Fixture<Server> {
  const ledger = options.ledger ?? new Ledger();
  const server = serve(fixtureApp(ledger));
  options.extend?.(server, ledger);
  return { server, ledger };
}
