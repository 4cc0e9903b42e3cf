/**
 * mcp-layers: composable layers for any MCP transport.
 *
 *   import { wrap, retry, timeout, circuitBreaker } from 'mcp-layers';
 *
 * The core lives in src/core/, the layers in middleware/ (which depend on the core,
 * never the reverse). Each of the two entry points below names what it publishes one by
 * one, so nothing leaks by accident; test/package/surface.test.ts holds the list.
 */
export * from './src/core/index.ts';
export * from './middleware/index.ts';
