/**
 * Config entries → layer instances: each entry calls the factory it names with the
 * options it holds (plus what only the gateway has: its logger, its metrics registry).
 *
 * The factories validate as they always do; what they refuse — rules that span several
 * options, such as `backoff.maxDelayMs >= initialDelayMs` or options a breaker kind does
 * not take — names the entry's path in the file, because each factory is built at that
 * place (optionsAt, src/core/options.ts):
 *
 *   upstream.layers[1].retry.backoff.maxDelayMs: expected at least retry.backoff.initialDelayMs (500), got 100
 *
 * Layers are built once per gateway and shared by every session, so a breaker, a
 * concurrency limit or a retry budget covers the upstream as a whole.
 */
import { resolve } from 'node:path';
import type { Registry } from 'prom-client';
import type { LayerEntry, LayerName, LayerOptionsOf, Side, UnlessEntry, WhenEntry } from './config/layers.ts';
import { formatPath, type PathSegment } from './config/issues.ts';
import { brand } from '../core/brand.ts';
import { McpLayersError, SetupErrorCode, type SetupErrorCodeValue } from '../core/errors.ts';
import type { Layer } from '../core/layer.ts';
import { isOptionError, optionsAt } from '../core/options.ts';
import { compileMatch, type Match, when } from '../core/when.ts';
import {
  batching,
  chaos,
  circuitBreaker,
  compression,
  concurrency,
  FileTokenStore,
  hedging,
  logging,
  type LogSink,
  metrics,
  oauth,
  type OAuthLayer,
  type OAuthOptions,
  retry,
  standard,
  timeout,
  tracing,
} from '../../middleware/index.ts';

export interface StackContext {
  readonly side: Side;
  /** The config section that holds the stack, for the paths problems name (default: the side; `worker` for the worker's, `["upstreams", name]` for one of several). */
  readonly section?: string | readonly PathSegment[];
  /** The logger `logging` entries write to. */
  readonly logger: LogSink;
  /** The registry `metrics` entries register in (served at /metrics). */
  readonly registry: Registry;
  /** Relative file paths (token stores) resolve against this. */
  readonly baseDir: string;
}

export interface BuiltStack {
  readonly layers: Layer[];
  /** The oauth layer, when the upstream stack has one: the upstream transport is wired to it. */
  readonly oauth: OAuthLayer | undefined;
  /** Every layer instance by kind (e.g. the demo reads breaker state). */
  readonly instances: ReadonlyArray<{ readonly name: LayerName; readonly layer: Layer; readonly path: string }>;
}

/** The problems only a factory could see, each with the config path it belongs to (the gateway reports them as a ConfigError). */
export class StackProblemsError extends McpLayersError<SetupErrorCodeValue> {
  static {
    brand(this, 'error.StackProblemsError');
  }

  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(SetupErrorCode.InvalidConfig, problems.join('\n'), { layer: 'gateway', reason: 'invalid-config' });
    this.problems = problems;
  }
}

/** Builds one side's stack; throws StackProblemsError listing every entry a factory refused. */
export function buildStack(entries: readonly LayerEntry[], context: StackContext): BuiltStack {
  const problems: string[] = [];
  const instances: Array<{ name: LayerName; layer: Layer; path: string }> = [];
  let found: OAuthLayer | undefined;

  const buildList = (list: readonly LayerEntry[], path: readonly PathSegment[], inWhen: boolean): Layer[] => {
    const layers: Layer[] = [];
    list.forEach((entry, i) => {
      const at = [...path, i];
      if ('when' in entry || 'unless' in entry) {
        const conditional = entry as WhenEntry | UnlessEntry;
        const inner = buildList(conditional.layers, [...at, 'layers'], true);
        const where = formatPath([...at, 'when' in conditional ? 'when' : 'unless']);
        try {
          layers.push(
            optionsAt(where, 'when(match)', () => {
              if ('when' in conditional) return when(conditional.when as Match, ...inner);
              const selected = compileMatch(conditional.unless as Match);
              return { ...when((ctx) => !selected(ctx), ...inner), name: 'unless' };
            }),
          );
        } catch (error) {
          problems.push(problemAt(where, error));
        }
        return;
      }
      const name = Object.keys(entry)[0] as LayerName;
      const options = (entry as Record<string, unknown>)[name];
      if (name === 'oauth') {
        if (inWhen) return void problems.push(`${formatPath(at)}.oauth: expected at the top level of upstream.layers (the upstream connection itself is authorized, not some of its exchanges)`);
        if (found !== undefined) return void problems.push(`${formatPath(at)}.oauth: expected one oauth layer per stack, got a second`);
      }
      const where = `${formatPath(at)}.${name}`;
      try {
        const layer = optionsAt(where, name, () => create(name, options, context));
        if (name === 'oauth') found = layer as OAuthLayer;
        instances.push({ name, layer, path: formatPath(at) });
        layers.push(layer);
      } catch (error) {
        problems.push(problemAt(where, error));
      }
    });
    return layers;
  };

  const section = context.section ?? context.side;
  const layers = buildList(entries, [...(typeof section === 'string' ? [section] : section), 'layers'], false);
  if (problems.length > 0) throw new StackProblemsError(problems);
  return { layers, oauth: found, instances };
}

function create(name: LayerName, given: unknown, context: StackContext): Layer {
  switch (name) {
    case 'standard':
      return standard(given as LayerOptionsOf<'standard'>);
    case 'retry':
      return retry(given as LayerOptionsOf<'retry'>);
    case 'timeout':
      return timeout(given as LayerOptionsOf<'timeout'>);
    case 'circuitBreaker':
      return circuitBreaker(given as LayerOptionsOf<'circuitBreaker'>);
    case 'concurrency':
      return concurrency(given as LayerOptionsOf<'concurrency'>);
    case 'hedging':
      return hedging(given as LayerOptionsOf<'hedging'>);
    case 'chaos':
      return chaos(given as LayerOptionsOf<'chaos'>);
    case 'batching':
      return batching(given as LayerOptionsOf<'batching'>);
    case 'compression':
      return compression(given as LayerOptionsOf<'compression'>);
    case 'tracing':
      return tracing(given as LayerOptionsOf<'tracing'>);
    case 'metrics':
      return metrics({ ...(given as LayerOptionsOf<'metrics'>), registry: context.registry });
    case 'logging':
      return logging({ ...(given as LayerOptionsOf<'logging'>), logger: context.logger });
    case 'oauth': {
      const { store, ...rest } = given as LayerOptionsOf<'oauth'>;
      const options: OAuthOptions = { ...(rest as OAuthOptions) };
      if (store !== undefined) options.store = new FileTokenStore(resolve(context.baseDir, store.file));
      return oauth(options);
    }
  }
}

/** An option error names its place already; anything else a factory threw (a bug, a file it could not use) is placed under the entry. */
function problemAt(where: string, error: unknown): string {
  if (isOptionError(error)) return error.message;
  return `${where}: ${error instanceof Error ? error.message : String(error)}`;
}
