/**
 * Every benchmark scenario by name, so that a worker process can build exactly one of
 * its variants (bench/worker.ts). Modules load lazily: a worker pays only for its own.
 */
import type { Variant } from './harness.ts';

export interface Suite {
  variants(): Promise<Variant[]>;
  /** Runs once in the worker before the variant is set up (a global SDK, say). */
  prepare?(): Promise<void>;
}

export const SUITES = {
  'core-raw': { variants: async () => (await import('./core.ts')).coreVariants((await import('./core.ts')).rawVariant) },
  'core-sdk': { variants: async () => (await import('./core.ts')).coreVariants((await import('./core.ts')).sdkVariant) },
  'standard-raw': { variants: async () => (await import('./standard.ts')).standardVariants((await import('./core.ts')).rawVariant) },
  'standard-sdk': { variants: async () => (await import('./standard.ts')).standardVariants((await import('./core.ts')).sdkVariant) },
  websocket: { variants: async () => (await import('./transports.ts')).wsVariants() },
  'websocket-observed': {
    variants: async () => {
      const { wsRoundTrip } = await import('./transports.ts');
      const { observableLayers } = await import('./observability.ts');
      const { standard, wrap } = await import('#mcp-layers');
      return [
        wsRoundTrip('bare WebSocketClientTransport', undefined),
        wsRoundTrip('wrap(t, [logging, tracing, metrics, standard()])', (t) => wrap(t, [...observableLayers(), standard()])),
      ];
    },
    prepare: async () => void (await import('./observability.ts')).startTracingSdk(),
  },
  batching: { variants: async () => (await import('./transports.ts')).batchingVariants() },
  http: { variants: async () => (await import('./transports.ts')).httpVariants() },
  gateway: { variants: async () => (await import('./gateway.ts')).gatewayVariants() },
  // Each variant is a server process of its own (bench/peers.ts), measured in-process by measurePeers.
  'peers-http': { variants: async () => (await import('./peers.ts')).peerVariants('http') },
  'peers-websocket': { variants: async () => (await import('./peers.ts')).peerVariants('websocket') },
  observability: {
    variants: async () => (await import('./observability.ts')).observabilityVariants(),
    prepare: async () => void (await import('./observability.ts')).startTracingSdk(),
  },
  'by-hand': {
    variants: async () => (await import('./by-hand.ts')).byHandVariants(),
    prepare: async () => void (await import('./observability.ts')).startTracingSdk(),
  },
  'by-hand-turns': {
    variants: async () => (await import('./by-hand.ts')).byHandVariantsWithTurns(),
    prepare: async () => void (await import('./observability.ts')).startTracingSdk(),
  },
  'by-hand-layers': {
    variants: async () => (await import('./by-hand.ts')).layerVariants(),
    prepare: async () => void (await import('./observability.ts')).startTracingSdk(),
  },
} satisfies Record<string, Suite>;

export type SuiteName = keyof typeof SUITES;
