/**
 * The SDK v1 glue (`@modelcontextprotocol/sdk` McpServer): serveAppV1 registers any
 * TestApp (test-app.ts) on a v1 McpServer; createV1Server is the reference fixture
 * (fixture.ts) on it, every handler counting its runs in the Ledger.
 */
import { McpServer, ResourceTemplate } from '@modelcontextprotocol/sdk/server/mcp.js';
import { createFixture, type Fixture, type FixtureOptions } from './fixture.ts';
import type { TestApp, ToolCall } from './test-app.ts';

type Extra = {
  _meta?: Record<string, unknown> & { progressToken?: string | number };
  signal: AbortSignal;
  requestId: string | number;
  sendNotification(notification: { method: string; params: Record<string, unknown> }): Promise<void>;
};
type Register = (name: string, config: object, handler: (...args: never[]) => unknown) => unknown;

/** A v1 McpServer offering `app` (tools in the app's order, then resources, then prompts). */
export function serveAppV1(app: TestApp): McpServer {
  const server = app.options === undefined ? new McpServer(app.info) : new McpServer(app.info, app.options as never);
  const registerTool = server.registerTool.bind(server) as unknown as Register;
  for (const spec of app.tools) {
    if (spec.only === 'v2') continue;
    const config = {
      ...(spec.description === undefined ? {} : { description: spec.description }),
      ...(spec.inputSchema === undefined ? {} : { inputSchema: spec.inputSchema }),
      ...(spec.annotations === undefined ? {} : { annotations: spec.annotations }),
    };
    if (spec.inputSchema === undefined) registerTool(spec.name, config, (extra: Extra) => spec.run({}, callOf(server, extra)));
    else registerTool(spec.name, config, (args: Record<string, unknown>, extra: Extra) => spec.run(args, callOf(server, extra)));
  }
  for (const resource of app.resources ?? []) {
    if ('uri' in resource) server.registerResource(resource.name, resource.uri, resource.metadata, (uri) => resource.read(uri));
    else server.registerResource(resource.name, new ResourceTemplate(resource.uriTemplate, { list: undefined }), resource.metadata, (uri, variables) => resource.read(uri, variables));
  }
  for (const prompt of app.prompts ?? []) {
    // v1's registerPrompt takes a record of field schemas.
    const config = { ...(prompt.description === undefined ? {} : { description: prompt.description }), argsSchema: prompt.argsSchema.shape };
    (server.registerPrompt.bind(server) as unknown as Register)(prompt.name, config, (args: Record<string, string | undefined>) => prompt.get(args));
  }
  return server;
}

function callOf(server: McpServer, extra: Extra): ToolCall {
  const progressToken = extra._meta?.progressToken;
  const related = { relatedRequestId: extra.requestId };
  const v2Only = (): never => {
    throw new Error('multi-round-trip input is SDK v2 only');
  };
  return {
    meta: extra._meta,
    progressToken,
    signal: extra.signal,
    progress: (params) => extra.sendNotification({ method: 'notifications/progress', params: { progressToken, ...params } }),
    sample: (params, options) => server.server.createMessage(params, options?.related === false ? undefined : related),
    elicit: (params) => server.server.elicitInput(params, related),
    inputResponse: v2Only,
    inputRequired: v2Only,
  };
}

export type V1ServerOptions = FixtureOptions<McpServer>;
export type V1Fixture = Fixture<McpServer>;

/** The reference fixture on SDK v1. */
export function createV1Server(options: V1ServerOptions = {}): V1Fixture {
  return createFixture(serveAppV1, options);
}
