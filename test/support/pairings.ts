/**
 * The pairings of an official SDK Client and an official SDK McpServer that the interop
 * suites run the scenario script over: in process (test/interop/in-memory.test.ts) and
 * through each broker (test/transports/brokers/transcript.test.ts).
 */
import { createV1Client, createV2Client } from './clients.ts';
import type { Pairing } from './run.ts';

export const SDK_PAIRINGS: readonly Pairing[] = [
  { name: 'SDK v1 Client ↔ SDK v1 McpServer', client: createV1Client, server: 'v1', era: 'legacy', link: 'v1' },
  { name: 'SDK v2 Client ↔ SDK v2 McpServer, 2025 era (connect)', client: () => createV2Client(), server: 'v2', era: 'legacy', link: 'v2' },
  {
    name: 'SDK v2 Client ↔ SDK v2 McpServer, 2026-07-28 era (server/discover, serveStdio entry)',
    client: () => createV2Client({ negotiation: 'auto' }),
    server: 'v2-entry',
    era: 'modern',
    link: 'v2',
  },
  { name: 'SDK v1 Client ↔ SDK v2 McpServer (serveStdio entry)', client: createV1Client, server: 'v2-entry', era: 'legacy', link: 'v1' },
  {
    name: 'SDK v2 Client (auto negotiation) ↔ SDK v1 McpServer: the probe falls back to initialize',
    client: () => createV2Client({ negotiation: 'auto' }),
    server: 'v1',
    era: 'legacy',
    link: 'v2',
  },
];
