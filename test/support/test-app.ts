/**
 * What a test server is, whatever its SDK: a TestApp names the server, and lists its
 * tools, resources and prompts with handlers that see one SDK-neutral ToolCall. The
 * only SDK glue is serveAppV1 (server-v1.ts) and serveAppV2 (server-v2.ts); every test
 * server — the reference fixture (fixture.ts) and the small apps (apps.ts) — is a
 * TestApp served by one of them, so v1 and v2 answer alike by construction.
 */
import type * as z from 'zod';

export type ToolResult = { content: Array<{ type: 'text'; text: string }>; isError?: boolean };

/** One tools/call as the handler sees it, on either SDK. */
export interface ToolCall {
  /** The request's `_meta`. */
  readonly meta: Record<string, unknown> | undefined;
  readonly progressToken: string | number | undefined;
  /** Fires when the client cancels the call (or the connection ends). */
  readonly signal: AbortSignal;
  /** Sends notifications/progress for this call's token (callers check there is one). */
  progress(params: { progress: number; total?: number; message?: string }): Promise<void>;
  /**
   * sampling/createMessage to the client. On SDK v1 it is sent as related to this call
   * (on its response stream) unless `related: false`; SDK v2 always relates it.
   */
  sample(params: SamplingParams, options?: { related?: boolean }): Promise<{ model: string; content: unknown }>;
  /** elicitation/create to the client, related to this call. */
  elicit(params: { message: string; requestedSchema: ElicitSchema }): Promise<{ action: string; content?: unknown }>;
  /** SDK v2 only (2026-07-28 multi-round-trip): the accepted answer to input `key`, if the client sent one. */
  inputResponse(key: string): unknown;
  /** SDK v2 only: the result that asks the client for input `key` (the client retries the call). */
  inputRequired(key: string, elicit: { message: string; requestedSchema: ElicitSchema }): ToolResult;
}

export interface SamplingParams {
  messages: Array<{ role: 'user'; content: { type: 'text'; text: string } }>;
  maxTokens: number;
}

export interface ElicitSchema {
  type: 'object';
  properties: Record<string, { type: 'string' }>;
  required?: string[];
}

export interface ToolSpec {
  name: string;
  description?: string;
  /** Absent: the tool takes no arguments (its handler gets `{}`). */
  inputSchema?: z.ZodObject;
  annotations?: { readOnlyHint?: boolean; idempotentHint?: boolean };
  /** Registered on SDK v2 servers only. */
  only?: 'v2';
  run(args: Record<string, unknown>, call: ToolCall): ToolResult | Promise<ToolResult>;
}

export type ResourceContents = { contents: Array<{ uri: string; mimeType?: string; text: string }> };

export type ResourceSpec =
  | { name: string; uri: string; metadata: { mimeType?: string; description?: string }; read(uri: URL): ResourceContents | Promise<ResourceContents> }
  | { name: string; uriTemplate: string; metadata: { mimeType?: string; description?: string }; read(uri: URL, variables: Record<string, string | string[]>): ResourceContents };

export interface PromptSpec {
  name: string;
  description?: string;
  argsSchema: z.ZodObject;
  get(args: Record<string, string | undefined>): { description?: string; messages: Array<{ role: 'user'; content: { type: 'text'; text: string } }> };
}

export interface TestApp {
  info: { name: string; version: string };
  /** The SDK McpServer's options (capabilities; v2: supportedProtocolVersions). Absent: none passed. */
  options?: { capabilities?: Record<string, unknown>; supportedProtocolVersions?: string[] };
  tools: ToolSpec[];
  resources?: ResourceSpec[];
  prompts?: PromptSpec[];
}

/** A tool whose handler's arguments are typed from its schema. */
export function tool<S extends z.ZodObject>(spec: Omit<ToolSpec, 'inputSchema' | 'run'> & { inputSchema: S; run(args: z.infer<S>, call: ToolCall): ToolResult | Promise<ToolResult> }): ToolSpec {
  return spec as unknown as ToolSpec;
}

/** A prompt whose arguments are typed from its schema. */
export function prompt<S extends z.ZodObject>(spec: Omit<PromptSpec, 'argsSchema' | 'get'> & { argsSchema: S; get: (args: z.infer<S>) => ReturnType<PromptSpec['get']> }): PromptSpec {
  return spec as unknown as PromptSpec;
}

/** Resolves when `signal` aborts (at once if it already has). */
export function aborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });
}
