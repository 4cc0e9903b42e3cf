/**
 * mcp-layers: composable layers for any MCP transport.
 *
 *   import { wrap, retry, timeout, circuitBreaker } from 'mcp-layers';
 *
 * The core lives in src/, the layers in middleware/ (which depend on the core, never
 * the reverse); this entry point re-exports both.
 */
export * from './src/core/index.ts';
export * from './middleware/index.ts';
