/**
 * when(match, ...layers): run `layers` only for the exchanges `match` selects, so
 * per-method and per-tool policies are data:
 *
 *   when({ method: 'tools/call', tool: 'slow_*' }, timeout({ attemptMs: 120_000 }))
 *
 * Patterns are globs (`*`, `?`). Every field given must match; a list matches any of
 * its patterns. Other exchanges skip straight to the next layer.
 */
import { compose } from './compose.ts';
import type { Context, ExchangeKind } from './context.ts';
import { describe } from './errors.ts';
import { invalidOption, optionProblem } from './options.ts';
import type { Direction } from './events.ts';
import { globMatcher, type NameMatcher } from './glob.ts';
import type { Layer, LayerLike } from './layer.ts';

export interface Match {
  /** JSON-RPC method: `tools/call`, `resources/*`. */
  method?: string | readonly string[];
  /** Tool name of a `tools/call`. */
  tool?: string | readonly string[];
  /** Prompt name of a `prompts/get`. */
  prompt?: string | readonly string[];
  /** Resource URI of a `resources/read` / `subscribe` / `unsubscribe`. */
  resource?: string | readonly string[];
  direction?: Direction;
  kind?: ExchangeKind;
}

export type Matcher = Match | ((ctx: Context) => boolean);

const MATCH_KEYS = new Set(['method', 'tool', 'prompt', 'resource', 'direction', 'kind']);

export function when(match: Matcher, ...layers: LayerLike[]): Layer {
  const test = compileMatch(match);
  const inner = compose(layers, 'when');
  return {
    name: 'when',
    handle: (ctx, next) => (test(ctx) ? inner.handle(ctx, next) : next()),
    attach: inner.attach,
  };
}

export function compileMatch(match: Matcher): (ctx: Context) => boolean {
  if (typeof match === 'function') return match;
  if (typeof match !== 'object' || match === null) {
    throw invalidOption('when(match)', 'a match object or a function (ctx) => boolean', match);
  }
  for (const key of Object.keys(match)) {
    if (!MATCH_KEYS.has(key)) {
      throw optionProblem('when(match)', `unknown field "${key}"; expected one of ${[...MATCH_KEYS].join(', ')}`);
    }
  }
  const tests: Array<(ctx: Context) => boolean> = [];
  const names = (key: 'method' | 'tool' | 'prompt' | 'resource'): NameMatcher | undefined =>
    match[key] === undefined ? undefined : globMatcher(match[key], `when(match).${key}`);
  const method = names('method');
  const tool = names('tool');
  const prompt = names('prompt');
  const resource = names('resource');
  if (match.direction !== undefined) {
    if (match.direction !== 'outbound' && match.direction !== 'inbound') {
      throw invalidOption('when(match).direction', '"outbound" or "inbound"', match.direction);
    }
    const direction = match.direction;
    tests.push((ctx) => ctx.direction === direction);
  }
  if (match.kind !== undefined) {
    if (match.kind !== 'request' && match.kind !== 'notification') {
      throw invalidOption('when(match).kind', '"request" or "notification"', match.kind);
    }
    const kind = match.kind;
    tests.push((ctx) => ctx.kind === kind);
  }
  if (method) tests.push((ctx) => method(ctx.method));
  if (tool) tests.push((ctx) => ctx.method === 'tools/call' && ctx.target !== undefined && tool(ctx.target));
  if (prompt) tests.push((ctx) => ctx.method === 'prompts/get' && ctx.target !== undefined && prompt(ctx.target));
  if (resource) {
    tests.push((ctx) => ctx.method.startsWith('resources/') && ctx.target !== undefined && resource(ctx.target));
  }
  if (tests.length === 0) throw optionProblem('when(match)', `the match selects everything (${describe(match)} has no fields); pass the layers directly instead`);
  return (ctx) => tests.every((t) => t(ctx));
}
