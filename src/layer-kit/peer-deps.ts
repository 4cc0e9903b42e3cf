/**
 * Optional peer dependencies, loaded when the layer that needs them is built.
 *
 * `import { wrap, retry } from 'mcp-layers'` must work without prom-client, winston or
 * @opentelemetry/api installed, so no module imports them at load time: `tracing()`
 * loads @opentelemetry/api and `metrics()` loads prom-client when they are called.
 * (@opentelemetry/api keeps its state on a global, so this copy and the application's
 * own import see the same registered SDK.)
 */
import { createRequire } from 'node:module';

const load = createRequire(import.meta.url);

/** Loads `name` or throws an error saying what to install and who needs it. */
export function requirePeer<T>(name: string, neededBy: string): T {
  try {
    return load(name) as T;
  } catch (error) {
    if (isMissing(error, name)) {
      throw new Error(`${neededBy} needs the optional peer dependency "${name}": npm install ${name}`, { cause: error });
    }
    throw error;
  }
}

/** Loads `name`, or returns undefined when it is not installed. */
export function tryRequirePeer<T>(name: string): T | undefined {
  try {
    return load(name) as T;
  } catch (error) {
    if (isMissing(error, name)) return undefined;
    throw error;
  }
}

function isMissing(error: unknown, name: string): boolean {
  const { code, message } = error as { code?: unknown; message?: unknown };
  return code === 'MODULE_NOT_FOUND' && typeof message === 'string' && message.includes(`'${name}'`);
}
