/**
 * Waiting that ends the moment the wait stops mattering.
 *
 * cockatiel's retry sleeps through cancellation (its delay ignores the abort signal),
 * and a bulkhead queue or a half-open breaker keeps callers waiting until *it*
 * decides. A layer must stop waiting at once when the exchange is cancelled or the
 * transport closes (`ctx.signal`), so every wait in the layers goes through here.
 * Timers are unref'd (a pending backoff never keeps the process alive) and are looked
 * up at call time, so fake timers in tests drive them.
 */

/** Resolves after `ms`, or rejects with `signal.reason` as soon as `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  if (ms <= 0) return Promise.resolve();
  return new Promise<void>((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject((signal as AbortSignal).reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    unref(timer);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Settles like `promise`, or rejects with `signal.reason` as soon as `signal` aborts,
 * whichever comes first. The abandoned promise's later rejection is swallowed: it
 * belongs to a wait nobody is watching any more (a bulkhead queue entry, a half-open
 * breaker's queue) and ends on its own.
 */
export function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    promise.catch(noop);
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      promise.catch(noop);
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}

/** Lets the process exit while `timer` is pending (real and fake timers alike). */
export function unref(timer: unknown): void {
  (timer as { unref?: () => void } | undefined)?.unref?.();
}

function noop(): void {}
