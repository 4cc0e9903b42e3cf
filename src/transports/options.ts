/**
 * Option validation for the transports: the shared checks of src/options.ts, plus the
 * two shapes only transports take (a non-empty string, a nested settings object).
 * Every message names the option as the user wrote it.
 */
import { InvalidOptionError } from '../core/errors.ts';

export { booleanOption, durationOption, functionOption, integerOption, optionsObject } from '../core/options.ts';

export function stringOption(name: string, value: unknown, fallback: string): string {
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || value === '') throw new InvalidOptionError(name, 'a non-empty string', value);
  return value;
}

/** A nested settings object (`reconnect`, `heartbeat`...), with its keys checked like the top level's. */
export function settingsObject(name: string, value: unknown, known: readonly string[]): Record<string, unknown> {
  if (value === undefined) return {};
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new InvalidOptionError(name, 'an object', value);
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) throw new InvalidOptionError(`${name}.${key}`, `one of the known options (${known.join(', ')})`, 'an unknown option');
  }
  return value as Record<string, unknown>;
}
