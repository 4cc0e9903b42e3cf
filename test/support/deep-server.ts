/**
 * A stdio server (the SDK's) whose `nest` tool answers structuredContent `depth` levels
 * deep, run as `node --input-type=module -e DEEP_SERVER`; `nest(depth)` is the value it
 * answers. For the core's nesting limit (`maxDepth`) through the gateway and the worker.
 */
export const DEEP_SERVER = `
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { z } from 'zod';
const nest = (depth) => { let value = {}; for (let i = 0; i < depth; i++) value = { a: value }; return value; };
const server = new McpServer({ name: 'deep', version: '1.0.0' });
server.registerTool('nest', { inputSchema: { depth: z.number().int() } }, ({ depth }) => ({ content: [{ type: 'text', text: 'nested' }], structuredContent: nest(depth) }));
process.stdin.once('end', () => process.exit(0));
await server.connect(new StdioServerTransport());
`;

/** The args that run it. */
export const DEEP_SERVER_ARGS = ['--input-type=module', '-e', DEEP_SERVER];

export function nest(depth: number): Record<string, unknown> {
  let value: Record<string, unknown> = {};
  for (let i = 0; i < depth; i++) value = { a: value };
  return value;
}
