/**
 * Field types for configuration files, on zod 4. Each one carries the expectation a
 * person reads when the value is wrong — the same words the layer factories use
 * (`an integer >= 1`, `a duration in milliseconds >= 0`) — so a config error reads
 * `upstream.layers[2].retry.maxAttempts: expected an integer >= 1, got "three"`
 * (issues.ts puts path, expectation and value together), and a description
 * that editors show from the JSON Schema (`mcp-layers schema`).
 */
import { z } from 'zod';

/** An integer within [min, max]. */
export function integer(min: number, max?: number) {
  const expected = max === undefined ? `an integer >= ${min}` : `an integer from ${min} to ${max}`;
  const schema = z.int({ error: expected }).min(min, { error: expected });
  return max === undefined ? schema : schema.max(max, { error: expected });
}

/** A duration in milliseconds: a finite number >= min. */
export function duration(min = 0) {
  const expected = `a duration in milliseconds >= ${min}`;
  return z.number({ error: expected }).min(min, { error: expected });
}

/** A finite number within [min, max]. */
export function number(min: number, max?: number) {
  const expected = max === undefined ? `a number >= ${min}` : `a number from ${min} to ${max}`;
  const schema = z.number({ error: expected }).min(min, { error: expected });
  return max === undefined ? schema : schema.max(max, { error: expected });
}

/** A number strictly between 0 and 1 (a failure ratio): the factories' openRatioOption. */
export function openRatio() {
  const expected = 'a number between 0 and 1 (exclusive)';
  return z.number({ error: expected }).gt(0, { error: expected }).lt(1, { error: expected });
}

/** A probability in [0, 1]. */
export function rate() {
  return number(0, 1).meta({ description: 'A probability from 0 to 1.' });
}

export function boolean() {
  return z.boolean({ error: 'true or false' });
}

/** A non-empty string. */
export function text(expected = 'a non-empty string') {
  return z.string({ error: expected }).min(1, { error: expected });
}

/** One of a fixed set of strings. */
export function choice<const T extends readonly [string, ...string[]]>(values: T) {
  return z.enum(values, { error: `one of ${values.map((v) => JSON.stringify(v)).join(', ')}` });
}

/** A name pattern (`*`, `?`) or a list of them. */
export function patterns(what: string) {
  const one = text(`a non-empty ${what} pattern`);
  return z.union([one, z.array(one, { error: `a ${what} pattern or a list of them` })], { error: `a ${what} pattern or a list of them` });
}

/** A list of non-empty strings. */
export function names(what: string) {
  return z.array(text(`a non-empty ${what}`), { error: `a list of ${what}s` });
}

/** A key → value object whose keys are free (env variables, headers). */
export function stringMap(what: string) {
  return z.record(z.string(), z.string({ error: `a string ${what}` }), { error: `an object of ${what}s` });
}

/** An options object that refuses unknown keys (a typo must not pass silently). */
export function options<T extends z.ZodRawShape>(shape: T, description?: string) {
  const schema = z.strictObject(shape, { error: 'an options object' });
  return description === undefined ? schema : schema.meta({ description });
}

/** An http(s) or ws(s) URL. */
export function url(schemes: readonly string[], what = 'URL') {
  const expected = `an absolute ${what} (${schemes.map((s) => `${s}://`).join(', ')})`;
  return z.string({ error: expected }).refine(
    (value) => {
      try {
        return schemes.includes(new URL(value).protocol.slice(0, -1));
      } catch {
        return false;
      }
    },
    { error: expected, params: { expected: true } },
  );
}

/** A secret (a token): a non-empty string whose value no problem ever prints, not even a mistyped one. */
export function secret(what: string) {
  return z.custom<string>((value) => typeof value === 'string' && value.length > 0, { error: `expected ${what} (a non-empty string; not shown: it is a secret)` }).meta({ type: 'string', minLength: 1 } as never);
}
