/** Every layer, one file each. Layers depend on the core (src/), never the reverse. */
export { tracing, type TracingOptions } from './tracing.ts';
