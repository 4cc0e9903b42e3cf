/**
 * Name patterns for policies as data: `*` matches any run of characters, `?` one
 * character, everything else is literal (`tools/call`, `search_*`, `file://docs/*`).
 */
import { invalidOption } from './options.ts';

export type NameMatcher = (name: string) => boolean;

const never: NameMatcher = () => false;

/** Compiles patterns once; the returned matcher is what runs per message. */
export function globMatcher(patterns: string | readonly string[], option: string): NameMatcher {
  const list = typeof patterns === 'string' ? [patterns] : patterns;
  if (!Array.isArray(list)) throw invalidOption(option, 'a string or an array of strings', patterns);
  if (list.length === 0) return never;
  const exact = new Set<string>();
  const regexps: RegExp[] = [];
  list.forEach((pattern: unknown, i) => {
    if (typeof pattern !== 'string' || pattern === '') {
      throw invalidOption(`${option}[${i}]`, 'a non-empty name pattern', pattern);
    }
    if (!/[*?]/.test(pattern)) exact.add(pattern);
    else regexps.push(globToRegExp(pattern));
  });
  if (regexps.length === 0) return (name) => exact.has(name);
  return (name) => exact.has(name) || regexps.some((re) => re.test(name));
}

function globToRegExp(pattern: string): RegExp {
  const source = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${source}$`, 's');
}
