/**
 * Validation of layer options at construction. Every check throws an
 * InvalidOptionError whose message names the option as the user wrote it
 * (`retry.maxAttempts: expected an integer >= 1, got "three"`), so a typo or a wrong
 * unit fails loudly when the stack is built, never while traffic flows.
 */
import type { Context } from './context.ts';
import { InvalidOptionError } from './errors.ts';

/** The options object of a layer (undefined means all defaults); rejects unknown keys (typos). */
export function optionsObject<T extends object>(value: T | undefined, prefix: string, known: readonly string[]): Partial<T> {
  if (value === undefined) return {};
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidOptionError(prefix, 'an options object', value);
  }
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) throw new InvalidOptionError(`${prefix}.${key}`, `one of the known options (${known.join(', ')})`, 'an unknown option');
  }
  return value;
}

/** An integer within [min, max]. */
export function integerOption(option: string, value: unknown, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new InvalidOptionError(option, max === Number.MAX_SAFE_INTEGER ? `an integer >= ${min}` : `an integer from ${min} to ${max}`, value);
  }
  return value;
}

/** A duration in milliseconds: a finite number >= min (0 unless told). */
export function durationOption(option: string, value: unknown, fallback: number, min = 0): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min) {
    throw new InvalidOptionError(option, `a duration in milliseconds >= ${min}`, value);
  }
  return value;
}

/** A number strictly between 0 and 1 (a failure ratio, a probability that is never certain). */
export function openRatioOption(option: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !(value > 0 && value < 1)) {
    throw new InvalidOptionError(option, 'a number between 0 and 1 (exclusive)', value);
  }
  return value;
}

/** A probability in [0, 1]. */
export function rateOption(option: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !(value >= 0 && value <= 1)) {
    throw new InvalidOptionError(option, 'a probability from 0 to 1', value);
  }
  return value;
}

/** A finite number >= min. */
export function numberOption(option: string, value: unknown, fallback: number, min: number, max = Infinity): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    throw new InvalidOptionError(option, max === Infinity ? `a number >= ${min}` : `a number from ${min} to ${max}`, value);
  }
  return value;
}

export function booleanOption(option: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw new InvalidOptionError(option, 'true or false', value);
  return value;
}

/** One of a fixed set of strings. */
export function choiceOption<const C extends string>(option: string, value: unknown, fallback: C, choices: readonly C[]): C {
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || !choices.includes(value as C)) {
    throw new InvalidOptionError(option, `one of ${choices.map((c) => JSON.stringify(c)).join(', ')}`, value);
  }
  return value as C;
}

/** An optional function. */
export function functionOption<F extends (...args: never[]) => unknown>(option: string, value: unknown): F | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'function') throw new InvalidOptionError(option, 'a function', value);
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
  throw new InvalidOptionError(option, 'true, false, or a function (ctx) => boolean | undefined', value);
}
