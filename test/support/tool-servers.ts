/**
 * Real MCP servers (SDK v1 and v2 McpServer) with tools that count their executions
 * and hang on demand, connected to a real SDK Client through a FaultyLink whose client
 * side is wrapped in the layers under test.
 */
import { Client as ClientV1 } from '@modelcontextprotocol/sdk/client/index.js';
import { McpServer as McpServerV1 } from '@modelcontextprotocol/sdk/server/mcp.js';
import { Client as ClientV2 } from '@modelcontextprotocol/client';
import { McpServer as McpServerV2 } from '@modelcontextprotocol/server';
import { z } from 'zod';
import type { LayerLike } from '#core/layer.ts';
import { wrap, type WrapOptions } from '#core/wrap.ts';
import { FaultyLink } from './faulty-link.ts';

/** What the tools did, for assertions. */
export class ToolLedger {
  readonly executions = new Map<string, number>();
  /** Executions whose request the client cancelled while they ran. */
  readonly aborted = new Map<string, number>();
  /** How many of the next executions of a tool hang until cancelled. */
  readonly hang = new Map<string, number>();

  count(tool: string): number {
    return this.executions.get(tool) ?? 0;
  }

  /** Runs one execution of `tool`: counts it, and hangs if asked to. */
  async run(tool: string, signal: AbortSignal | undefined): Promise<{ content: Array<{ type: 'text'; text: string }> }> {
    const n = this.count(tool) + 1;
    this.executions.set(tool, n);
    const hangs = this.hang.get(tool) ?? 0;
    if (hangs > 0) {
      this.hang.set(tool, hangs - 1);
      await new Promise<void>((resolve) => {
        if (signal === undefined) return;
        signal.addEventListener('abort', () => resolve(), { once: true });
      });
      this.aborted.set(tool, (this.aborted.get(tool) ?? 0) + 1);
    }
    return { content: [{ type: 'text', text: `${tool} #${n}` }] };
  }
}

const TOOLS = [
  // No annotations: may have side effects, never sent twice.
  { name: 'charge', annotations: {} },
  { name: 'lookup', annotations: { readOnlyHint: true } },
  { name: 'upsert', annotations: { idempotentHint: true } },
] as const;

export function serverV1(ledger: ToolLedger): McpServerV1 {
  const server = new McpServerV1({ name: 'tools-v1', version: '1.0.0' });
  for (const tool of TOOLS) {
    server.registerTool(tool.name, { inputSchema: { n: z.number().optional() }, annotations: tool.annotations }, (_args, extra) =>
      ledger.run(tool.name, extra.signal),
    );
  }
  return server;
}

export function serverV2(ledger: ToolLedger): McpServerV2 {
  const server = new McpServerV2({ name: 'tools-v2', version: '1.0.0' });
  for (const tool of TOOLS) {
    server.registerTool(tool.name, { inputSchema: z.object({ n: z.number().optional() }), annotations: tool.annotations }, () => ledger.run(tool.name, undefined));
  }
  return server;
}

/** A v1 client and server through a fault-injecting link; the client's transport is wrapped in `layers`. */
export async function connectV1(layers: LayerLike[], options?: WrapOptions) {
  const ledger = new ToolLedger();
  const link = new FaultyLink();
  const server = serverV1(ledger);
  await server.connect(link.server);
  const transport = wrap(link.client, layers, options);
  const client = new ClientV1({ name: 'resilience-test', version: '1.0.0' });
  await client.connect(transport);
  return { ledger, link, server, transport, client };
}

export async function connectV2(layers: LayerLike[], options?: WrapOptions) {
  const ledger = new ToolLedger();
  const link = new FaultyLink();
  const server = serverV2(ledger);
  await server.connect(link.server);
  const transport = wrap(link.client, layers, options);
  const client = new ClientV2({ name: 'resilience-test', version: '1.0.0' });
  await client.connect(transport);
  return { ledger, link, server, transport, client };
}
