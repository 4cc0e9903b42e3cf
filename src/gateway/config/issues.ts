/**
 * Turns zod issues into the messages a person fixes a config file by:
 *
 *   upstream.layers[2].retry.maxAttempts: expected an integer >= 1, got "three"
 *   upstream.layers[0]: unknown layer "retyr"; did you mean "retry"? (expected one of standard, retry, …)
 *   downstream.port: expected an integer from 0 to 65535, got 70000
 *
 * A stack entry is a union of one branch per layer; zod reports a failed union as all
 * branches' failures at once, so the entry's key picks the branch the user meant.
 */
import type { z } from 'zod';
import { describe } from '../../core/errors.ts';

export type PathSegment = string | number;

/** One problem in a config: where, and what is wrong. */
export interface ConfigProblem {
  readonly path: readonly PathSegment[];
  readonly message: string;
}

/** `upstream.layers[2].retry.maxAttempts`, `timeout.perMethod["tools/call"]`. */
export function formatPath(path: readonly PathSegment[]): string {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else if (/^[A-Za-z_$][\w$]*$/.test(segment)) out += out === '' ? segment : `.${segment}`;
    else out += `[${JSON.stringify(segment)}]`;
  }
  return out === '' ? '(the top level)' : out;
}

export interface FormatContext {
  /** The raw input, to read values zod did not report and to dispatch stack entries. */
  readonly input: unknown;
  /** Branch names of the stack-entry unions, by side: the layer names, then `when` and `unless`. */
  readonly entryBranches: (side: string) => readonly string[];
  /** Known keys of the object at a path (for unknown-option messages), when known. */
  readonly knownKeys: (path: readonly PathSegment[]) => readonly string[] | undefined;
  /** How to describe a value that came from the environment (never print it). */
  readonly fromEnvironment: (path: readonly PathSegment[]) => string | undefined;
}

type Issue = z.core.$ZodIssue;

export function formatIssues(issues: readonly Issue[], context: FormatContext, prefix: readonly PathSegment[] = []): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  for (const issue of issues) out.push(...formatIssue(issue, context, prefix));
  return out;
}

function formatIssue(issue: Issue, context: FormatContext, prefix: readonly PathSegment[]): ConfigProblem[] {
  const path = [...prefix, ...(issue.path as PathSegment[])];
  const value = 'input' in issue && issue.input !== undefined ? issue.input : valueAt(context.input, path);
  const got = (): string => context.fromEnvironment(path) ?? describe(value);
  switch (issue.code) {
    case 'unrecognized_keys': {
      const known = context.knownKeys(path);
      const hint = (key: string) => {
        const near = known === undefined ? undefined : closest(key, known);
        const list = known === undefined || known.length === 0 ? '' : ` (expected one of ${known.join(', ')})`;
        return `${near === undefined ? '' : `; did you mean "${near}"?`}${list}`;
      };
      return issue.keys.map((key) => ({ path: [...path, key], message: `${formatPath([...path, key])}: unknown option${hint(key)}` }));
    }
    case 'invalid_union': {
      const entry = entryBranch(path, value, context);
      if (entry !== undefined) {
        if (entry.kind === 'problem') return [{ path, message: `${formatPath(path)}: ${entry.message}` }];
        return formatIssues(issue.errors[entry.index] ?? [], context, path);
      }
      return [{ path, message: `${formatPath(path)}: expected ${expectation(issue.message)}, got ${got()}` }];
    }
    case 'invalid_type':
      if (value === undefined) return [{ path, message: `${formatPath(path)}: missing; expected ${expectation(issue.message)}` }];
      return [{ path, message: `${formatPath(path)}: expected ${expectation(issue.message)}, got ${got()}` }];
    case 'custom':
      // Field refinements (a URL) state an expectation; cross-field ones phrase their whole message.
      if (issue.params?.['expected'] === true) return [{ path, message: `${formatPath(path)}: expected ${issue.message}, got ${got()}` }];
      return [{ path, message: `${formatPath(path)}: ${issue.message}` }];
    default:
      return [{ path, message: `${formatPath(path)}: expected ${expectation(issue.message)}, got ${got()}` }];
  }
}

/** Our field types phrase expectations ("an integer >= 1"); zod's own messages are reworded. */
function expectation(message: string): string {
  const zod = /^Invalid input: expected (\w+), received \w+$/.exec(message);
  if (zod !== undefined && zod !== null) return article(zod[1] as string);
  if (message === 'Invalid input') return 'a valid value';
  return message;
}

function article(type: string): string {
  switch (type) {
    case 'object':
      return 'an object';
    case 'array':
      return 'a list';
    case 'string':
      return 'a string';
    case 'number':
      return 'a number';
    case 'boolean':
      return 'true or false';
    default:
      return type;
  }
}

type EntryChoice = { kind: 'branch'; index: number } | { kind: 'problem'; message: string };

/** For an entry of a `layers` list: the branch its key names, or why it names none. */
function entryBranch(path: readonly PathSegment[], value: unknown, context: FormatContext): EntryChoice | undefined {
  if (path.length < 2 || typeof path[path.length - 1] !== 'number' || path[path.length - 2] !== 'layers') return undefined;
  const side = String(path[0]);
  const branches = context.entryBranches(side);
  const layers = branches.filter((b) => b !== 'when' && b !== 'unless');
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { kind: 'problem', message: `expected a layer ({ <name>: <options> }), got ${describe(value)}` };
  }
  const keys = Object.keys(value);
  if (keys.includes('when')) return { kind: 'branch', index: branches.indexOf('when') };
  if (keys.includes('unless')) return { kind: 'branch', index: branches.indexOf('unless') };
  if (keys.length === 0) return { kind: 'problem', message: `expected a layer ({ <name>: <options> }), got an empty object (layers: ${layers.join(', ')})` };
  if (keys.length > 1) {
    return { kind: 'problem', message: `expected one layer per entry ({ <name>: <options> }), got ${keys.length} keys (${keys.join(', ')}); write each layer as its own list item` };
  }
  const key = keys[0] as string;
  const index = branches.indexOf(key);
  if (index >= 0) return { kind: 'branch', index };
  const other = context.entryBranches(side === 'upstream' || side === 'upstreams' ? 'downstream' : 'upstream');
  if (other.includes(key)) return { kind: 'problem', message: `the ${key} layer belongs in the other side's stack; here the layers are ${layers.join(', ')}` };
  const near = closest(key, branches);
  return { kind: 'problem', message: `unknown layer "${key}"${near === undefined ? '' : `; did you mean "${near}"?`} (expected one of ${layers.join(', ')}, or when / unless)` };
}

export function valueAt(root: unknown, path: readonly PathSegment[]): unknown {
  let value = root;
  for (const segment of path) {
    if (typeof value !== 'object' || value === null) return undefined;
    value = (value as Record<PropertyKey, unknown>)[segment];
  }
  return value;
}

/** The closest name within a small edit distance (a shared start counts in its favour), for "did you mean". */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  const lower = word.toLowerCase();
  let best: string | undefined;
  let bestScore = Math.max(2, Math.floor(word.length / 3)) + 0.5;
  for (const candidate of candidates) {
    const other = candidate.toLowerCase();
    let prefix = 0;
    while (prefix < lower.length && lower[prefix] === other[prefix]) prefix++;
    const score = distance(lower, other) - Math.min(prefix, 4) / 2;
    if (score < bestScore) {
      best = candidate;
      bestScore = score;
    }
  }
  return best;
}

function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0] as number;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const current = row[j] as number;
      row[j] = Math.min((row[j] as number) + 1, (row[j - 1] as number) + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1));
      previous = current;
    }
  }
  return row[b.length] as number;
}
