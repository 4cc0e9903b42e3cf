/**
 * The option toolkit names an option where the user wrote it: a factory built at a place
 * (a stage of standard(), a gateway config entry) reports `<place>.<option>`, places nest,
 * and outside any place the factory's own names stand.
 */
import { describe, expect, it } from 'vitest';
import { InvalidOptionError } from '#core/errors.ts';
import { integerOption, isOptionError, optionProblem, optionsAt, settingsObject } from '#core/options.ts';
import { standard } from '#middleware/standard.ts';
import { retry } from '#middleware/retry/retry.ts';

const thrown = (build: () => unknown): unknown => {
  try {
    build();
  } catch (error) {
    return error;
  }
  return undefined;
};

describe('optionsAt', () => {
  it('names the options of a factory built at a place by that place, nested places included', () => {
    expect(() => optionsAt('upstream.layers[2].retry', 'retry', () => retry({ maxAttempts: 0 }))).toThrow(
      new InvalidOptionError('upstream.layers[2].retry.maxAttempts', 'an integer >= 1', 0),
    );
    expect(() => optionsAt('upstream.layers[0].standard', 'standard', () => standard({ retry: { maxAttempts: 0 } }))).toThrow(
      'upstream.layers[0].standard.retry.maxAttempts: expected an integer >= 1, got 0',
    );
    expect(() => optionsAt('x.standard', 'standard', () => standard({ attemptTimeout: { attemptMs: 0 } }))).toThrow('x.standard.attemptTimeout.attemptMs: expected a duration in milliseconds >= 1, got 0');
  });

  it('leaves names outside the factory alone, and ends with the build', () => {
    expect(() => optionsAt('a.retry', 'retry', () => integerOption('retryBudget.size', 0, 1, 1))).toThrow('retryBudget.size: expected an integer >= 1, got 0');
    expect(() => optionsAt('a.retry', 'retry', () => settingsObject('retry[0]', 5))).toThrow('a.retry[0]: expected an object, got 5');
    expect(thrown(() => optionsAt('a.retry', 'retry', () => {
      throw new Error('boom');
    }))).toMatchObject({ message: 'boom' });
    expect(() => retry({ maxAttempts: 0 })).toThrow(/^retry\.maxAttempts: /);
  });

  it('says which errors are its own: their message names the option already', () => {
    const problem = optionsAt('gw.logging', 'logging', () => optionProblem('logging.levels', 'unknown record "x"'));
    expect(problem.message).toBe('gw.logging.levels: unknown record "x"');
    expect(isOptionError(problem)).toBe(true);
    expect(isOptionError(thrown(() => retry({ maxAttempts: 0 })))).toBe(true);
    expect(isOptionError(new TypeError('logging.levels: a look-alike'))).toBe(false);
  });
});
