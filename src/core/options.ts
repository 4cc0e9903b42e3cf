/**
 * Validation of layer options at construction. Every check throws an
 * InvalidOptionError whose message names the option where the user wrote it
 * (`retry.maxAttempts: expected an integer >= 1, got "three"`), so a typo or a wrong
 * unit fails loudly when the stack is built, never while traffic flows.
 *
 * A factory names its options from its own name (`retry.maxAttempts`). When it is built
 * for options written elsewhere — a stage of standard(), an entry of a gateway config —
 * the builder says where with `optionsAt('standard.retry', 'retry', () => retry(o))`,
 * and every error made here while it runs names `standard.retry.maxAttempts`: the
 * message is right when it is made, never rewritten afterwards. Factories check their
 * options synchronously, so the place is set exactly while they do.
 */
import type { Context } from './context.ts';
import { InvalidOptionError } from './errors.ts';

/** Where the options being checked were written: the factory's own name, and the path the user wrote in its place. */
interface Place {
  readonly name: string;
  readonly path: string;
}

let place: Place | undefined;

/** Errors made here with a message of their own (not "expected …, got …"): they name their option already. */
const placed = new WeakSet<Error>();

/**
 * Builds with every option the factory names `name…` reported as `path…`:
 * `optionsAt('upstream.layers[1].retry', 'retry', build)` turns `retry.backoff.maxDelayMs`
 * into `upstream.layers[1].retry.backoff.maxDelayMs`. Places nest (a gateway entry holding
 * standard(), whose stages are layers). The messages' references to sibling options keep
 * the factory's own names (`expected at least retry.backoff.initialDelayMs`).
 */
export function optionsAt<T>(path: string, name: string, build: () => T): T {
  const outer = place;
  place = { name, path: optionPath(path) };
  try {
    return build();
  } finally {
    place = outer;
  }
}

/** An option's name where the user wrote it. */
export function optionPath(option: string): string {
  if (place === undefined) return option;
  const { name, path } = place;
  const rest = option.slice(name.length);
  // `retry.x` and `retry[0]` are the factory's; `retryBudget.x` is another name.
  return option.startsWith(name) && !/^[\w$]/.test(rest) ? `${path}${rest}` : option;
}

/** The error for an invalid option, named where the user wrote it. */
export function invalidOption(option: string, expected: string, got: unknown): InvalidOptionError {
  return new InvalidOptionError(optionPath(option), expected, got);
}

/** An option error that a sentence says better than "expected …, got …" (`logging.levels: unknown record "x"; …`). */
export function optionProblem(option: string, problem: string): TypeError {
  const error = new TypeError(`${optionPath(option)}: ${problem}`);
  placed.add(error);
  return error;
}

/** True for the errors of this toolkit: their message names the option where the user wrote it. */
export function isOptionError(error: unknown): error is TypeError {
  return error instanceof InvalidOptionError || (error instanceof TypeError && placed.has(error));
}

/** The options object of a layer (undefined means all defaults); rejects unknown keys (typos). */
export function optionsObject<T extends object>(value: T | undefined, prefix: string, known: readonly string[]): Partial<T> {
  if (value === undefined) return {};
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw invalidOption(prefix, 'an options object', value);
  }
  unknownKeys(prefix, value, known);
  return value;
}

/**
 * A nested settings object (`retry.backoff`, `reconnect`, `heartbeat`…). With `known`, its
 * keys are checked like a layer's own; without, any key is left to the caller.
 */
export function settingsObject(option: string, value: unknown, known?: readonly string[]): Record<string, unknown> {
  if (value === undefined) return {};
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalidOption(option, 'an object', value);
  if (known !== undefined) unknownKeys(option, value, known);
  return value as Record<string, unknown>;
}

/** A non-empty string. */
export function stringOption(option: string, value: unknown, fallback: string): string {
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || value === '') throw invalidOption(option, 'a non-empty string', value);
  return value;
}

function unknownKeys(option: string, value: object, known: readonly string[]): void {
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) throw invalidOption(`${option}.${key}`, `one of the known options (${known.join(', ')})`, 'an unknown option');
  }
}

/** An integer within [min, max]. */
export function integerOption(option: string, value: unknown, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw invalidOption(option, max === Number.MAX_SAFE_INTEGER ? `an integer >= ${min}` : `an integer from ${min} to ${max}`, value);
  }
  return value;
}

/** A duration in milliseconds: a finite number >= min (0 unless told). */
export function durationOption(option: string, value: unknown, fallback: number, min = 0): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min) {
    throw invalidOption(option, `a duration in milliseconds >= ${min}`, value);
  }
  return value;
}

/** A number strictly between 0 and 1 (a failure ratio, a probability that is never certain). */
export function openRatioOption(option: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !(value > 0 && value < 1)) {
    throw invalidOption(option, 'a number between 0 and 1 (exclusive)', value);
  }
  return value;
}

/** A probability in [0, 1]. */
export function rateOption(option: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !(value >= 0 && value <= 1)) {
    throw invalidOption(option, 'a probability from 0 to 1', value);
  }
  return value;
}

/** A finite number >= min. */
export function numberOption(option: string, value: unknown, fallback: number, min: number, max = Infinity): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    throw invalidOption(option, max === Infinity ? `a number >= ${min}` : `a number from ${min} to ${max}`, value);
  }
  return value;
}

export function booleanOption(option: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw invalidOption(option, 'true or false', value);
  return value;
}

/** One of a fixed set of strings. */
export function choiceOption<const C extends string>(option: string, value: unknown, fallback: C, choices: readonly C[]): C {
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || !choices.includes(value as C)) {
    throw invalidOption(option, `one of ${choices.map((c) => JSON.stringify(c)).join(', ')}`, value);
  }
  return value as C;
}

/** An optional function. */
export function functionOption<F extends (...args: never[]) => unknown>(option: string, value: unknown): F | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'function') throw invalidOption(option, 'a function', value);
  return value as F;
}

/**
 * The `idempotent` option of retry and hedging as a function: true or false declares
 * every request through the layer, a function decides per exchange; undefined (from
 * the function or for an absent option) means "ask `ctx.idempotent`".
 */
export function idempotentOption(value: unknown, option: string): (ctx: Context) => boolean | undefined {
  if (value === undefined) return () => undefined;
  if (typeof value === 'boolean') return () => value;
  if (typeof value === 'function') return value as (ctx: Context) => boolean | undefined;
  throw invalidOption(option, 'true, false, or a function (ctx) => boolean | undefined', value);
}
