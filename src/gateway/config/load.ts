/**
 * Reading a gateway config: YAML or JSON text → environment variables substituted →
 * validated against src/gateway/config/gateway.ts. Every problem is reported at once, each with
 * its path, the expectation, what was found and the line it is on; nothing is started
 * from a config that has one.
 *
 * `${NAME}` in a string value is replaced by the environment variable NAME
 * (`${NAME:-fallback}` when unset or empty; `$${` writes a literal `${`), so secrets stay
 * out of the file. A substituted value is never printed in an error.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { LineCounter, parseDocument, type Node as YamlNode } from 'yaml';
import type { z } from 'zod';
import { brand } from '../../core/brand.ts';
import { McpLayersError, SetupErrorCode, type SetupErrorCodeValue } from '../../core/errors.ts';
import { type GatewayConfig, gatewayConfig } from './gateway.ts';
import { type ConfigProblem, formatIssues, formatPath, type PathSegment } from './issues.ts';
import { layerNamesFor } from './layers.ts';

/** A config that cannot be used. `problems` are one line each; the message lists them all. */
export class ConfigError extends McpLayersError<SetupErrorCodeValue> {
  static {
    brand(this, 'error.ConfigError');
  }

  readonly problems: readonly string[];
  readonly source: string;
  constructor(source: string, problems: readonly string[]) {
    super(SetupErrorCode.InvalidConfig, `invalid configuration in ${source}:\n${problems.map((p) => `  ${p}`).join('\n')}`, { layer: 'gateway', reason: 'invalid-config' });
    this.source = source;
    this.problems = problems;
  }
}

export interface LoadedConfig {
  readonly config: GatewayConfig;
  /** Where it came from (a file path, or a label for configs given in code). */
  readonly source: string;
  /** Relative paths in the config (upstream.cwd, token store files) are resolved against this. */
  readonly baseDir: string;
}

/** Reads and validates a config file; throws ConfigError listing every problem. */
export function loadConfigFile(path: string, env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new ConfigError(path, [code === 'ENOENT' ? 'the file does not exist' : `the file cannot be read: ${(error as Error).message}`]);
  }
  return parseConfigText(text, path, env, dirname(resolve(path)));
}

/** Parses YAML (or JSON, which is YAML) text and validates it. */
export function parseConfigText(text: string, source: string, env: NodeJS.ProcessEnv = process.env, baseDir = process.cwd()): LoadedConfig {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      source,
      doc.errors.map((e) => {
        const at = e.linePos?.[0];
        const text = (e.message.split('\n')[0] as string).replace(/ at line \d+, column \d+:?$/, '');
        return `${at === undefined ? '' : `line ${at.line}, column ${at.col}: `}${text}`;
      }),
    );
  }
  /** The line of the deepest node that exists along `path`. */
  const lineOf = (path: readonly PathSegment[]): number | undefined => {
    for (let end = path.length; end >= 0; end--) {
      const node = (end === 0 ? doc.contents : doc.getIn(path.slice(0, end), true)) as YamlNode | null | undefined;
      const offset = node?.range?.[0];
      if (offset !== undefined) return lineCounter.linePos(offset).line;
    }
    return undefined;
  };
  return validateConfig(doc.toJS({ maxAliasCount: 100 }) ?? {}, source, { env, baseDir, lineOf });
}

export interface ValidateOptions {
  env?: NodeJS.ProcessEnv;
  baseDir?: string;
  /** Substitute `${NAME}` (default true; false for a config that was substituted already). */
  substitute?: boolean;
  /** Line numbers for messages (set when the config came from a file). */
  lineOf?: (path: readonly PathSegment[]) => number | undefined;
}

/** Validates a config value (from a file, or written in code); throws ConfigError. */
export function validateConfig(value: unknown, source = 'the configuration', options: ValidateOptions = {}): LoadedConfig {
  const fromEnvironment = new Map<string, string>();
  const envProblems: ConfigProblem[] = [];
  const substituted = options.substitute === false ? value : substitute(value, [], options.env ?? process.env, fromEnvironment, envProblems);
  const problems: ConfigProblem[] = [...envProblems];
  if (problems.length === 0) {
    const result = gatewayConfig.safeParse(substituted, { reportInput: true });
    if (result.success) return { config: result.data, source, baseDir: options.baseDir ?? process.cwd() };
    problems.push(
      ...formatIssues(result.error.issues, {
        input: substituted,
        // A stack's side is its section's: the client-side upstream, or a server-side one (downstream, worker).
        entryBranches: (section) => [...layerNamesFor(section === 'upstream' || section === 'upstreams' ? 'upstream' : 'downstream'), 'when', 'unless'],
        knownKeys: (path) => keysAt(gatewayConfig, path, substituted),
        fromEnvironment: (path) => {
          const name = fromEnvironment.get(formatPath(path));
          return name === undefined ? undefined : `the value of \${${name}}`;
        },
      }),
    );
  }
  throw new ConfigError(source, withLines(problems, options.lineOf));
}

function withLines(problems: readonly ConfigProblem[], lineOf: ValidateOptions['lineOf']): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const problem of problems) {
    const line = lineOf?.(problem.path);
    const text = line === undefined ? problem.message : `${problem.message} (line ${line})`;
    if (!seen.has(text)) {
      seen.add(text);
      out.push(text);
    }
  }
  return out;
}

const VARIABLE = /\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/** Replaces `${NAME}` in every string; remembers which paths came from the environment. */
function substitute(value: unknown, path: PathSegment[], env: NodeJS.ProcessEnv, from: Map<string, string>, problems: ConfigProblem[]): unknown {
  if (typeof value === 'string') {
    if (!value.includes('${')) return value;
    let used: string | undefined;
    const out = value.replace(VARIABLE, (match, name: string | undefined, fallback: string | undefined) => {
      if (match === '$${') return '${';
      const name_ = name as string;
      used = name_;
      const found = env[name_];
      if (found !== undefined && found !== '') return found;
      if (fallback !== undefined) return fallback;
      problems.push({ path: [...path], message: `${formatPath(path)}: the environment variable ${name_} is not set (write \${${name_}:-default} for a fallback)` });
      return '';
    });
    if (used !== undefined) from.set(formatPath(path), used);
    return out;
  }
  if (Array.isArray(value)) return value.map((item, i) => substitute(item, [...path, i], env, from, problems));
  if (typeof value === 'object' && value !== null) {
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) out[key] = substitute(item, [...path, key], env, from, problems);
    return out;
  }
  return value;
}

/** The option names of the object schema at `path` (for "unknown option" messages). */
function keysAt(root: z.ZodType, path: readonly PathSegment[], input: unknown): string[] | undefined {
  let schema: z.ZodType | undefined = root;
  let value: unknown = input;
  for (const segment of path) {
    schema = step(schema, segment, value);
    if (schema === undefined) return undefined;
    value = typeof value === 'object' && value !== null ? (value as Record<PropertyKey, unknown>)[segment] : undefined;
  }
  const shape = objectShape(schema, value);
  return shape === undefined ? undefined : Object.keys(shape).filter((key) => key !== '$schema');
}

interface Def {
  type: string;
  innerType?: z.ZodType;
  in?: z.ZodType;
  shape?: Record<string, z.ZodType>;
  element?: z.ZodType;
  valueType?: z.ZodType;
  options?: z.ZodType[];
  items?: z.ZodType[];
}

const defOf = (schema: z.ZodType): Def => (schema as unknown as { _zod: { def: Def } })._zod.def;

function unwrap(schema: z.ZodType): z.ZodType {
  let current = schema;
  for (;;) {
    const def = defOf(current);
    if ((def.type === 'optional' || def.type === 'nullable' || def.type === 'default' || def.type === 'readonly') && def.innerType !== undefined) current = def.innerType;
    else if (def.type === 'pipe' && def.in !== undefined) current = def.in;
    else return current;
  }
}

/** The object shape of a schema; for a union, the branch whose keys the value uses. */
function objectShape(schema: z.ZodType, value: unknown): Record<string, z.ZodType> | undefined {
  const def = defOf(unwrap(schema));
  if (def.type === 'object') return def.shape;
  if (def.type === 'union' && def.options !== undefined) {
    const keys = typeof value === 'object' && value !== null ? Object.keys(value) : [];
    let fallback: Record<string, z.ZodType> | undefined;
    for (const option of def.options) {
      const shape = objectShape(option, value);
      if (shape === undefined) continue;
      fallback ??= shape;
      if (keys.some((key) => key in shape)) return shape;
    }
    return fallback;
  }
  return undefined;
}

function step(schema: z.ZodType, segment: PathSegment, value: unknown): z.ZodType | undefined {
  const inner = unwrap(schema);
  const def = defOf(inner);
  switch (def.type) {
    case 'array':
      return def.element;
    case 'record':
      return def.valueType;
    case 'tuple':
      return typeof segment === 'number' ? def.items?.[segment] : undefined;
    default: {
      const shape = objectShape(inner, value);
      return shape?.[segment];
    }
  }
}
