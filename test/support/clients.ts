/**
 * Test clients on SDK v1 (`@modelcontextprotocol/sdk` Client) and v2
 * (`@modelcontextprotocol/client` Client) behind one small interface, so one scenario
 * script drives either. Both declare sampling and elicitation and answer them with the
 * fixture's canned answers, recording what they were asked.
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

export type Era = 'legacy' | 'modern';

export interface CallOptions {
  signal?: AbortSignal;
  onprogress?: (progress: unknown) => void;
  timeout?: number;
}

/** What the client's handlers were asked by the server (server→client requests). */
export interface ServerAsked {
  sampling: unknown[];
  elicitation: unknown[];
}

export interface TestClient {
  readonly sdk: 'v1' | 'v2';
  readonly asked: ServerAsked;
  connect(transport: Transport): Promise<void>;
  /** The connection's era once connected: `modern` = 2026-07-28 (`server/discover`). */
  era(): Era;
  callTool(name: string, args?: Record<string, unknown>, options?: CallOptions): Promise<unknown>;
  listTools(): Promise<unknown>;
  listResources(): Promise<unknown>;
  listResourceTemplates(): Promise<unknown>;
  readResource(uri: string): Promise<unknown>;
  listPrompts(): Promise<unknown>;
  getPrompt(name: string, args: Record<string, string>): Promise<unknown>;
  /** completion/complete for a prompt argument. */
  completePrompt(prompt: string, argument: { name: string; value: string }, context?: Record<string, string>): Promise<unknown>;
  ping(): Promise<unknown>;
  close(): Promise<void>;
  onerror: ((error: Error) => void) | undefined;
}

const CAPABILITIES = { sampling: {}, elicitation: { form: {} } };

export function createV1Client(): TestClient {
  const client = new V1Client(CLIENT_INFO, { capabilities: CAPABILITIES });
  const asked: ServerAsked = { sampling: [], elicitation: [] };
  client.setRequestHandler(CreateMessageRequestSchema, (request) => {
    asked.sampling.push(request.params);
    return samplingAnswer(lastPromptText(request.params));
  });
  client.setRequestHandler(ElicitRequestSchema, (request) => {
    asked.elicitation.push(request.params);
    return elicitationAnswer(request.params.message);
  });
  const adapter: TestClient = {
    sdk: 'v1',
    asked,
    onerror: undefined,
    connect: (transport) => {
      client.onerror = (error) => adapter.onerror?.(error);
      return client.connect(transport);
    },
    era: () => 'legacy',
    callTool: (name, args, options) => client.callTool({ name, arguments: args }, undefined, options),
    listTools: () => client.listTools(),
    listResources: () => client.listResources(),
    listResourceTemplates: () => client.listResourceTemplates(),
    readResource: (uri) => client.readResource({ uri }),
    listPrompts: () => client.listPrompts(),
    getPrompt: (name, args) => client.getPrompt({ name, arguments: args }),
    completePrompt: (prompt, argument, context) =>
      client.complete({ ref: { type: 'ref/prompt', name: prompt }, argument, ...(context === undefined ? {} : { context: { arguments: context } }) }),
    ping: () => client.ping(),
    close: () => client.close(),
  };
  return adapter;
}

export interface V2ClientOptions {
  /**
   * `legacy` (the SDK default): the 2025 `initialize` handshake. `auto`: probe with
   * `server/discover` and use 2026-07-28 when the server offers it, else fall back.
   */
  negotiation?: 'legacy' | 'auto';
}

export function createV2Client(options: V2ClientOptions = {}): TestClient {
  const client = new V2Client(CLIENT_INFO, {
    capabilities: CAPABILITIES,
    versionNegotiation: { mode: options.negotiation ?? 'legacy' },
  });
  const asked: ServerAsked = { sampling: [], elicitation: [] };
  client.setRequestHandler('sampling/createMessage', (request) => {
    asked.sampling.push(request.params);
    return samplingAnswer(lastPromptText(request.params));
  });
  client.setRequestHandler('elicitation/create', (request) => {
    asked.elicitation.push(request.params);
    return elicitationAnswer(request.params.message);
  });
  const adapter: TestClient = {
    sdk: 'v2',
    asked,
    onerror: undefined,
    connect: (transport) => {
      client.onerror = (error) => adapter.onerror?.(error);
      return client.connect(transport);
    },
    era: () => (client.getProtocolEra() === 'modern' ? 'modern' : 'legacy'),
    callTool: (name, args, options) => client.callTool({ name, arguments: args }, options),
    listTools: () => client.listTools(),
    listResources: () => client.listResources(),
    listResourceTemplates: () => client.listResourceTemplates(),
    readResource: (uri) => client.readResource({ uri }),
    listPrompts: () => client.listPrompts(),
    getPrompt: (name, args) => client.getPrompt({ name, arguments: args }),
    completePrompt: (prompt, argument, context) =>
      client.complete({ ref: { type: 'ref/prompt', name: prompt }, argument, ...(context === undefined ? {} : { context: { arguments: context } }) }),
    ping: () => client.ping(),
    close: () => client.close(),
  };
  return adapter;
}

