/** Every layer, one file each. Layers depend on the core (src/), never the reverse. */
export { batching, BATCHING_PROTOCOL_VERSIONS, type BatchingOptions } from './batching.ts';
export { compression, type CompressionOptions } from './compression.ts';
