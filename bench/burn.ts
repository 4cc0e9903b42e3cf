/**
 * The CPU-bound tool's work: a fixed number of rounds of integer arithmetic the JIT cannot
 * skip, and how many rounds make `ms` milliseconds on this machine. A fixed amount of
 * work rather than a loop until a clock says `ms`: on a shared machine a loop on the wall
 * clock that is preempted ends having had less of the CPU (workers sharing one core would
 * seem to scale past the cores), and the thread's CPU clock advances in scheduler ticks
 * (4 ms here), too coarse for 2 ms.
 */

/** `rounds` steps of xorshift32; returns the state so that the work is not dead code. */
export function burn(rounds: number): number {
  let x = 2463534242;
  for (let i = 0; i < rounds; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
  }
  return x >>> 0;
}

/**
 * How many rounds take `ms` of CPU: the fastest of a few timed runs after a warm-up (the
 * fastest is the one least interrupted by other processes). At most ~40 runs of `ms`.
 */
export function calibrate(ms: number): number {
  let rounds = 100_000;
  for (let i = 0; i < 5; i++) burn(rounds);
  let best = Number.POSITIVE_INFINITY;
  for (let i = 0; i < 40; i++) {
    const start = performance.now();
    burn(rounds);
    const took = performance.now() - start;
    best = Math.min(best, took);
    // Until a run takes about `ms`, scale the run up; then keep it and take the fastest.
    if (took < ms / 2) {
      rounds *= 2;
      best = Number.POSITIVE_INFINITY;
    }
  }
  return Math.round((rounds * ms) / best);
}
