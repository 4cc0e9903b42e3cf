/**
 * The test server as a real child process speaking MCP over stdio.
 *
 *   node test/support/stdio-server.ts [--sdk v1|v2] [--layers none|zero|observe]
 *
 * --sdk v1   SDK v1 McpServer on its StdioServerTransport (2025 era).
 * --sdk v2   SDK v2 McpServer behind the SDK's serveStdio entry (both eras).
 * --layers   none: the SDK's transport as is; zero: wrap(transport, []);
 *            observe: wrap(transport, observingLayers(...)).
 *
 * On top of the fixture's tools it registers `transport_stats`, which reports the
 * wrapped transport's stats() and what its observing layers saw, so a test in another
 * process can check invariant 5 on the server side (the call itself is the one inbound
 * exchange in flight while it answers).
 */
import { parseArgs } from 'node:util';
import { StdioServerTransport as V2StdioServerTransport } from '@modelcontextprotocol/server/stdio';
import { StdioServerTransport as V1StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import type { Transport } from '#core/transport.ts';
import { wrap, type LayeredTransport } from '#core/wrap.ts';
import { annotations, text } from './fixture.ts';
import { newObservations, observingLayers } from './layers.ts';
import { createV1Server } from './server-v1.ts';
import { serveV2 } from './server-v2.ts';

const { values } = parseArgs({
  options: {
    sdk: { type: 'string', default: 'v1' },
    layers: { type: 'string', default: 'none' },
  },
});
const sdk = values.sdk;
const layers = values.layers;
if ((sdk !== 'v1' && sdk !== 'v2') || (layers !== 'none' && layers !== 'zero' && layers !== 'observe')) {
  console.error(`usage: stdio-server.ts [--sdk v1|v2] [--layers none|zero|observe], got --sdk ${sdk} --layers ${layers}`);
  process.exit(2);
}

const inner: Transport = sdk === 'v1' ? new V1StdioServerTransport() : new V2StdioServerTransport();
const seen = newObservations();
const wrapped: LayeredTransport | undefined =
  layers === 'none' ? undefined : wrap(inner, layers === 'observe' ? observingLayers(seen) : [], { name: 'stdio-server' });
const transport = wrapped ?? inner;

const statsTool = {
  description: "The server-side wrapped transport's stats() and what its layers saw",
  annotations: annotations.ledger,
};
const stats = () => text(JSON.stringify(wrapped === undefined ? { wrapped: false } : { wrapped: true, stats: wrapped.stats(), seen }));

if (sdk === 'v1') {
  const { server } = createV1Server({ extend: (s) => void s.registerTool('transport_stats', statsTool, stats) });
  await server.connect(transport);
} else {
  serveV2(transport, {
    extend: (s) => void s.registerTool('transport_stats', statsTool, stats),
    onerror: (error) => console.error(`stdio-server: ${error.message}`),
  });
}
