/**
 * The SDK v2 glue (`@modelcontextprotocol/server` McpServer): serveAppV2 registers any
 * TestApp (test-app.ts) on a v2 McpServer; createV2Server is the reference fixture
 * (fixture.ts) on it, every handler counting its runs in the Ledger.
 *
 * Two ways to serve the fixture, as with the SDK itself:
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
import { createFixture, type Fixture, type FixtureOptions } from './fixture.ts';
import { Ledger } from './ledger.ts';
import type { TestApp, ToolCall, ToolResult } from './test-app.ts';

type Ctx = {
  mcpReq: {
    _meta?: Record<string, unknown> & { progressToken?: string | number };
    signal: AbortSignal;
    inputResponses?: unknown;
    notify(notification: { method: string; params: Record<string, unknown> }): Promise<void>;
    requestSampling(params: unknown): Promise<{ model: string; content: unknown }>;
    elicitInput(params: unknown): Promise<{ action: string; content?: unknown }>;
  };
};
type Register = (name: string, config: object, handler: (...args: never[]) => unknown) => unknown;

/** A v2 McpServer offering `app` (tools in the app's order, then resources, then prompts). */
export function serveAppV2(app: TestApp): McpServer {
  const server = app.options === undefined ? new McpServer(app.info) : new McpServer(app.info, app.options as never);
  const registerTool = server.registerTool.bind(server) as unknown as Register;
  for (const spec of app.tools) {
    const config = {
      ...(spec.description === undefined ? {} : { description: spec.description }),
      ...(spec.inputSchema === undefined ? {} : { inputSchema: spec.inputSchema }),
      ...(spec.annotations === undefined ? {} : { annotations: spec.annotations }),
    };
    if (spec.inputSchema === undefined) registerTool(spec.name, config, (ctx: Ctx) => spec.run({}, callOf(ctx)));
    else registerTool(spec.name, config, (args: Record<string, unknown>, ctx: Ctx) => spec.run(args, callOf(ctx)));
  }
  for (const resource of app.resources ?? []) {
    if ('uri' in resource) server.registerResource(resource.name, resource.uri, resource.metadata, (uri) => resource.read(uri));
    else server.registerResource(resource.name, new ResourceTemplate(resource.uriTemplate, { list: undefined }), resource.metadata, (uri, variables) => resource.read(uri, variables));
  }
  for (const prompt of app.prompts ?? []) {
    const config = { ...(prompt.description === undefined ? {} : { description: prompt.description }), argsSchema: prompt.argsSchema };
    (server.registerPrompt.bind(server) as unknown as Register)(prompt.name, config, (args: Record<string, string | undefined>) => prompt.get(args));
  }
  return server;
}

function callOf(ctx: Ctx): ToolCall {
  const { mcpReq } = ctx;
  return {
    meta: mcpReq._meta,
    progressToken: mcpReq._meta?.progressToken,
    signal: mcpReq.signal,
    progress: (params) => mcpReq.notify({ method: 'notifications/progress', params: { progressToken: mcpReq._meta?.progressToken, ...params } }),
    sample: (params) => mcpReq.requestSampling(params),
    elicit: (params) => mcpReq.elicitInput(params),
    inputResponse: (key) => acceptedContent(mcpReq.inputResponses as never, key),
    inputRequired: (key, elicit) => inputRequired({ inputRequests: { [key]: inputRequired.elicit(elicit as never) } }) as unknown as ToolResult,
  };
}

export type V2ServerOptions = FixtureOptions<McpServer>;
export type V2Fixture = Fixture<McpServer>;

/** The reference fixture on SDK v2. */
export function createV2Server(options: V2ServerOptions = {}): V2Fixture {
  return createFixture(serveAppV2, options);
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
