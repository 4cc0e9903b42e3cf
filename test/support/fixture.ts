/**
 * The feature set every test server offers, defined once so the SDK v1 and v2 server
 * factories answer byte-for-byte alike. Only the SDK glue differs between them
 * (server-v1.ts, server-v2.ts); what a tool does and returns lives here.
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
 *   ledger    {}               readOnlyHint       returns the Ledger snapshot (for child processes)
 * Resources: a static text resource and a URI template.
 * Prompts:   `greet` with a required and an optional argument.
 */
import * as z from 'zod';

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

/** Raw shapes for SDK v1's `registerPrompt`, which takes a record of field schemas. */
export const greetArgsShape = schemas.greet.shape;

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
