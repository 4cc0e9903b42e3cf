/**
 * The gateway suites' usual upstream: the fixture server (fixture.ts) alone, over stdio —
 * built exactly as the in-process reference servers of the gateway tests are
 * (startServer), so a client sees the same server whether it goes through the gateway
 * or not. (stdio-server.ts is the interop suites' child: it adds layers and a stats tool.)
 *
 *   node test/support/gateway-upstream.ts v1|v2
 */
import { StdioServerTransport as V2StdioServerTransport } from '@modelcontextprotocol/server/stdio';
import { StdioServerTransport as V1StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import type { Transport } from '#core/transport.ts';
import { startServer } from './run.ts';

const sdk = process.argv[2] === 'v2' ? 'v2' : 'v1';
const transport: Transport = sdk === 'v1' ? new V1StdioServerTransport() : new V2StdioServerTransport();
// Exit when the client closes stdin, as MCP's stdio shutdown asks (no SIGTERM needed).
process.stdin.once('end', () => process.exit(0));
await startServer(sdk, transport, (error) => process.stderr.write(`gateway-upstream: ${error.message}\n`));
