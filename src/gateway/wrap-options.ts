/**
 * What a config section says about the wrap() of each session's transport, beside its
 * stack: which tools may be sent twice (upstream sections) and how deeply a peer's
 * message may nest (`maxDepth`, on every side). Read here once for the gateway, its
 * federation members and the worker; `connectionOf` leaves these keys out of what
 * identifies an upstream, so changing them in a reload does not rebuild it.
 */
import type { WrapOptions } from '../core/wrap.ts';

export interface WrapSettings {
  readonly idempotentTools?: readonly string[] | undefined;
  readonly nonIdempotentTools?: readonly string[] | undefined;
  readonly maxDepth?: number | undefined;
}

export const WRAP_SETTING_KEYS = ['idempotentTools', 'nonIdempotentTools', 'maxDepth'] as const satisfies ReadonlyArray<keyof WrapSettings>;

export function wrapOptionsOf(section: WrapSettings | undefined): Pick<WrapOptions, (typeof WRAP_SETTING_KEYS)[number]> {
  const options: Pick<WrapOptions, (typeof WRAP_SETTING_KEYS)[number]> = {};
  if (section?.idempotentTools !== undefined) options.idempotentTools = section.idempotentTools;
  if (section?.nonIdempotentTools !== undefined) options.nonIdempotentTools = section.nonIdempotentTools;
  if (section?.maxDepth !== undefined) options.maxDepth = section.maxDepth;
  return options;
}
