/**
 * Fake-timer helpers. Layers read the clock and schedule timers at call time, so
 * vitest's fake timers drive every backoff, deadline and breaker; these helpers also
 * let promise chains and the core's end-of-turn ordering valve (which uses the real
 * setImmediate on purpose) run between steps.
 */
import { vi } from 'vitest';

// Captured before any test fakes timers: one real turn of the event loop.
const realSetImmediate = globalThis.setImmediate.bind(globalThis);
export const realTurn = (): Promise<void> => new Promise((resolve) => realSetImmediate(resolve));

/** Runs due fake timers and lets every promise chain settle. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) {
    await vi.advanceTimersByTimeAsync(0);
    await realTurn();
  }
}

/** Advances fake time by `ms`, settling promises along the way. */
export async function advance(ms: number): Promise<void> {
  await vi.advanceTimersByTimeAsync(ms);
  await settle();
}
