/**
 * Which requests are safe to send twice (docs/architecture.md#invariant-3).
 *
 * By default: `ping`, every `*\/list`, `resources/read`, `prompts/get`,
 * `completion/complete`, `server/discover` (a pure read in the 2026-07-28 protocol), and
 * `tools/call` for tools the server annotated `readOnlyHint` or `idempotentHint` in a
 * `tools/list` result that passed through this transport. Configuration can add tools
 * (`idempotentTools`) and veto them (`nonIdempotentTools`); a veto always wins over an
 * annotation, because annotations are the server's claims, not guarantees.
 */
import { globMatcher } from './glob.ts';
import type { JSONRPCParams } from './jsonrpc.ts';

const SAFE_METHODS = new Set(['ping', 'resources/read', 'prompts/get', 'completion/complete', 'server/discover']);

export interface IdempotencyOptions {
  /** Tool names (globs: `search_*`) that are safe to retry whatever their annotations say. */
  idempotentTools?: readonly string[] | undefined;
  /** Tool names (globs) that are never retried, whatever their annotations say. */
  nonIdempotentTools?: readonly string[] | undefined;
}

interface Exchange {
  readonly method: string;
  readonly tool: string | undefined;
}

export class Idempotency {
  /** Tool name → safe to repeat, learned from `tools/list` annotations. */
  readonly #learned = new Map<string, boolean>();
  readonly #allow: (name: string) => boolean;
  readonly #deny: (name: string) => boolean;

  constructor(options: IdempotencyOptions = {}) {
    this.#allow = globMatcher(options.idempotentTools ?? [], 'idempotentTools');
    this.#deny = globMatcher(options.nonIdempotentTools ?? [], 'nonIdempotentTools');
  }

  isIdempotent(exchange: Exchange): boolean {
    const { method } = exchange;
    if (method === 'tools/call') {
      const tool = exchange.tool;
      if (tool === undefined || this.#deny(tool)) return false;
      return this.#allow(tool) || this.#learned.get(tool) === true;
    }
    return SAFE_METHODS.has(method) || method.endsWith('/list');
  }

  /** Records the annotations of a `tools/list` result page. */
  learn(result: JSONRPCParams | { [key: string]: unknown }): void {
    const tools = result['tools'];
    if (!Array.isArray(tools)) return;
    for (const tool of tools) {
      if (typeof tool !== 'object' || tool === null) continue;
      const { name, annotations } = tool as { name?: unknown; annotations?: unknown };
      if (typeof name !== 'string') continue;
      const hints = typeof annotations === 'object' && annotations !== null ? (annotations as Record<string, unknown>) : {};
      this.#learned.set(name, hints['readOnlyHint'] === true || hints['idempotentHint'] === true);
    }
  }

  /** The server's tools changed: forget what we learned until the next `tools/list`. */
  forget(): void {
    this.#learned.clear();
  }

  /** How many tools have learned annotations (bounded by what the server lists). */
  get size(): number {
    return this.#learned.size;
  }
}
