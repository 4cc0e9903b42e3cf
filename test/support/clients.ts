/**
 * The one test client: SDK v1 (`@modelcontextprotocol/sdk` Client) and v2
 * (`@modelcontextprotocol/client` Client) behind one small interface, so one script
 * drives either. Both declare sampling and elicitation (unless told otherwise) and
 * answer them with the fixture's canned answers, recording what they were asked.
 *
 * Tools, resources and prompts are addressed either way a test reads best: by name
 * (`callTool('echo', { text })`, `readResource(uri)`, `getPrompt('greet', args)`) or in
 * the SDK's own shape (`callTool({ name, arguments })`, `readResource({ uri })`,
 * `getPrompt({ name, arguments })`); both reach the same SDK call.
 *
 * Transports are taken as mcp-layers' structural `Transport` and handed to the SDK's
 * `connect()` unconverted: that a wrapped transport is accepted there is part of what
 * the interop suites prove (see test/interop/sdk-types.test.ts for the type level).
 */
import { Client as V2Client } from '@modelcontextprotocol/client';
import { Client as V1Client } from '@modelcontextprotocol/sdk/client/index.js';
import { CreateMessageRequestSchema, ElicitRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import type { Transport } from '#core/transport.ts';
import { CLIENT_INFO, elicitationAnswer, lastPromptText, samplingAnswer } from './fixture.ts';

export type Sdk = 'v1' | 'v2';
export type Era = 'legacy' | 'modern';

export interface CallOptions {
  signal?: AbortSignal;
  onprogress?: (progress: { progress: number; total?: number; message?: string }) => void;
  timeout?: number;
}

/** A tools/call in the SDK's own shape. */
export interface ToolCallParams {
  name: string;
  arguments?: Record<string, unknown>;
}

/** What the client's handlers were asked by the server (server→client requests). */
export interface ServerAsked {
  sampling: unknown[];
  elicitation: unknown[];
}

export interface TestClient {
  readonly sdk: Sdk;
  readonly asked: ServerAsked;
  /** The SDK's own Client object. */
  readonly raw: unknown;
  connect(transport: Transport): Promise<void>;
  /** The connection's era once connected: `modern` = 2026-07-28 (`server/discover`). */
  era(): Era;
  /** `callTool(name, args?, options?)` or `callTool({ name, arguments }, options?)`. */
  callTool(tool: string | ToolCallParams, argsOrOptions?: Record<string, unknown> | CallOptions, options?: CallOptions): Promise<unknown>;
  listTools(): Promise<{ tools: Array<{ name: string } & Record<string, unknown>> }>;
  listResources(): Promise<unknown>;
  listResourceTemplates(): Promise<unknown>;
  /** `readResource(uri)` or `readResource({ uri })`. */
  readResource(resource: string | { uri: string }): Promise<{ contents: Array<{ uri: string; text?: string }> }>;
  listPrompts(): Promise<unknown>;
  /** `getPrompt(name, args)` or `getPrompt({ name, arguments })`. */
  getPrompt(prompt: string | { name: string; arguments?: Record<string, string> }, args?: Record<string, string>): Promise<{ messages: Array<{ content: unknown }> }>;
  /** completion/complete for a prompt argument. */
  completePrompt(prompt: string, argument: { name: string; value: string }, context?: Record<string, string>): Promise<unknown>;
  ping(): Promise<unknown>;
  getServerVersion(): { name: string; version: string } | undefined;
  close(): Promise<void>;
  /** Set: the SDK Client's onerror reports here (unset, the SDK Client's own is left alone). */
  onerror: ((error: Error) => void) | undefined;
}

export interface ClientOptions {
  /** The clientInfo sent in initialize (default: the fixture's CLIENT_INFO). */
  info?: { name: string; version: string };
  /** The capabilities declared (default: sampling and form elicitation). */
  capabilities?: { sampling?: object; elicitation?: object };
  /**
   * v2 only. `legacy` (the SDK default): the 2025 `initialize` handshake. `auto`: probe
   * with `server/discover` and use 2026-07-28 when the server offers it, else fall back.
   */
  negotiation?: 'legacy' | 'auto';
  /** v2 only: the protocol versions to offer (e.g. ['2025-03-26'] to get an era with batching). */
  protocolVersions?: string[];
}

const CAPABILITIES = { sampling: {}, elicitation: { form: {} } };

export function createClient(sdk: Sdk, options: ClientOptions = {}): TestClient {
  return sdk === 'v1' ? createV1Client(options) : createV2Client(options);
}

/** What both SDK Clients offer under the same names (the adapter calls these as they are). */
interface SdkClient {
  listTools(): Promise<unknown>;
  listResources(): Promise<unknown>;
  listResourceTemplates(): Promise<unknown>;
  readResource(params: { uri: string }): Promise<unknown>;
  listPrompts(): Promise<unknown>;
  getPrompt(params: { name: string; arguments?: Record<string, string> }): Promise<unknown>;
  complete(params: { ref: { type: 'ref/prompt'; name: string }; argument: { name: string; value: string }; context?: { arguments: Record<string, string> } }): Promise<unknown>;
  ping(): Promise<unknown>;
  getServerVersion(): unknown;
  close(): Promise<void>;
}

/** Where the two SDK Clients differ. */
interface SdkGlue {
  connect(transport: Transport): Promise<void>;
  setOnerror(handler: ((error: Error) => void) | undefined): void;
  era(): Era;
  callTool(params: ToolCallParams, options: CallOptions | undefined): Promise<unknown>;
}

export function createV1Client(options: ClientOptions = {}): TestClient {
  const client = new V1Client(options.info ?? CLIENT_INFO, { capabilities: (options.capabilities ?? CAPABILITIES) as never });
  const asked: ServerAsked = { sampling: [], elicitation: [] };
  client.setRequestHandler(CreateMessageRequestSchema, (request) => {
    asked.sampling.push(request.params);
    return samplingAnswer(lastPromptText(request.params));
  });
  if (options.capabilities === undefined || options.capabilities.elicitation !== undefined) {
    client.setRequestHandler(ElicitRequestSchema, (request) => {
      asked.elicitation.push(request.params);
      return elicitationAnswer(request.params.message);
    });
  }
  return adapt('v1', asked, client, {
    connect: (transport) => client.connect(transport),
    setOnerror: (handler) => void (client.onerror = handler),
    era: () => 'legacy',
    // v1 takes a result schema before the options.
    callTool: (params, callOptions) => client.callTool(params, undefined, callOptions as never),
  });
}

export function createV2Client(options: ClientOptions = {}): TestClient {
  const client = new V2Client(options.info ?? CLIENT_INFO, {
    capabilities: (options.capabilities ?? CAPABILITIES) as never,
    versionNegotiation: { mode: options.negotiation ?? 'legacy' },
    ...(options.protocolVersions === undefined ? {} : { supportedProtocolVersions: options.protocolVersions }),
  });
  const asked: ServerAsked = { sampling: [], elicitation: [] };
  client.setRequestHandler('sampling/createMessage', (request) => {
    asked.sampling.push(request.params);
    return samplingAnswer(lastPromptText(request.params));
  });
  if (options.capabilities === undefined || options.capabilities.elicitation !== undefined) {
    client.setRequestHandler('elicitation/create', (request) => {
      asked.elicitation.push(request.params);
      return elicitationAnswer(request.params.message);
    });
  }
  return adapt('v2', asked, client, {
    connect: (transport) => client.connect(transport),
    setOnerror: (handler) => void (client.onerror = handler),
    era: () => (client.getProtocolEra() === 'modern' ? 'modern' : 'legacy'),
    callTool: (params, callOptions) => client.callTool(params, callOptions as never),
  });
}

function adapt(sdk: Sdk, asked: ServerAsked, client: SdkClient, glue: SdkGlue): TestClient {
  let onerror: ((error: Error) => void) | undefined;
  return {
    sdk,
    asked,
    raw: client,
    get onerror() {
      return onerror;
    },
    set onerror(handler) {
      onerror = handler;
      glue.setOnerror(handler === undefined ? undefined : (error) => onerror?.(error));
    },
    connect: (transport) => glue.connect(transport),
    era: () => glue.era(),
    callTool: (tool, argsOrOptions, options) =>
      typeof tool === 'string'
        ? glue.callTool({ name: tool, arguments: argsOrOptions as Record<string, unknown> | undefined }, options)
        : glue.callTool(tool, argsOrOptions as CallOptions | undefined),
    listTools: () => client.listTools() as never,
    listResources: () => client.listResources(),
    listResourceTemplates: () => client.listResourceTemplates(),
    readResource: (resource) => client.readResource(typeof resource === 'string' ? { uri: resource } : resource) as never,
    listPrompts: () => client.listPrompts(),
    getPrompt: (prompt, args) => client.getPrompt(typeof prompt === 'string' ? { name: prompt, arguments: args ?? {} } : prompt) as never,
    completePrompt: (prompt, argument, context) =>
      client.complete({ ref: { type: 'ref/prompt', name: prompt }, argument, ...(context === undefined ? {} : { context: { arguments: context } }) }),
    ping: () => client.ping(),
    getServerVersion: () => client.getServerVersion() as never,
    close: () => client.close(),
  };
}

/** The text of the first content block of a tool result. */
export function textOf(result: unknown): string {
  const content = (result as { content?: Array<{ text?: string }> }).content;
  return content?.[0]?.text ?? '';
}
