/**
 * The exchange's deadline, shared between layers through `ctx.state`.
 *
 * A total timeout knows when the exchange must be over; the layers inside it use that
 * to avoid work that cannot finish in time: retry does not start a backoff that would
 * end after the deadline (it gives up at once with the failure it has), and hedging
 * does not launch a hedge past it. Times are `performance.now()` values.
 */
import type { Context } from '../core/context.ts';

const DEADLINE = Symbol('mcp-layers.deadline');

/** The earliest deadline any layer set for this exchange, or undefined. */
export function deadlineOf(ctx: Context): number | undefined {
  return ctx.state.get(DEADLINE) as number | undefined;
}

/** Records a deadline for the exchange; an earlier one already set wins. */
export function setDeadline(ctx: Context, at: number): void {
  const current = ctx.state.get(DEADLINE) as number | undefined;
  if (current === undefined || at < current) ctx.state.set(DEADLINE, at);
}
