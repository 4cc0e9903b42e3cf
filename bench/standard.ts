/**
 * Issue 3 benchmark: the recommended resilience stack, standard(), against the bare
 * transport in the same run (target: at least 75 % of bare exchanges per second).
 * Nothing fails here: this is the price of the stack on the happy path.
 */
import { standard, wrap } from '#mcp-layers';
import type { MakeVariant } from './core.ts';
import type { Variant } from './harness.ts';

export const standardVariants = (make: MakeVariant): Variant[] => [
  make('bare', undefined),
  make('wrap(t, [])', (t) => wrap(t, [])),
  // One stack per transport, as an application would build it.
  make('wrap(t, [standard()])', (t) => wrap(t, [standard()])),
];
