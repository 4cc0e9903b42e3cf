/**
 * Keeps messages in the order they entered the stack, in both directions.
 *
 * Inbound, each message takes a slot when it arrives from the peer and reaches the
 * application only after every earlier slot has been delivered or released: a
 * progress notification is never overtaken by its request's response, and a response
 * never by a notification the peer sent after it. Outbound, each message takes a slot
 * when the application calls send() and is written only in that order: an
 * application's response is not overtaken by the notification it sent next. Both are
 * what the application and the peer would see without the stack.
 *
 * Layers that finish within the same turn of the event loop (no timers, no I/O)
 * therefore keep exact order. A slot whose message is held longer (a retry backing
 * off, a request queued by a concurrency limit) must not stall everything behind it:
 * at the end of the turn those slots are detached, and deliver whenever they are ready.
 */

import { AsyncResource } from 'node:async_hooks';

type Run = () => void;

const PENDING = 0;
const READY = 1;
const RELEASED = 2;
const DETACHED = 3;

export class Slot {
  state = PENDING;
  run: Run | undefined = undefined;
}

// Captured at load so fake timers in tests cannot freeze delivery: the valve measures
// turns of the event loop, not time.
const endOfTurn: (fn: () => void) => void = globalThis.setImmediate.bind(globalThis);

export class Order {
  // Slots from #head to #tail; passed entries are cleared, and the array is reused rather
  // than emptied, so a busy session does not allocate a new backing store per message.
  #queue: Array<Slot | undefined> = [];
  #head = 0;
  #tail = 0;
  #valveArmed = false;
  readonly #onError: (error: unknown) => void;

  constructor(onError: (error: unknown) => void) {
    this.#onError = onError;
  }

  admit(): Slot {
    const slot = new Slot();
    this.#queue[this.#tail++] = slot;
    return slot;
  }

  /**
   * True when `slot` may go right now (first in line, or out of the line already). The
   * caller then sends its message itself and calls `release(slot)`, which lets the
   * ones behind it go: the common path without a closure.
   */
  isNext(slot: Slot): boolean {
    return slot.state === DETACHED || slot.state === RELEASED || (slot.state === PENDING && this.#queue[this.#head] === slot);
  }

  /** The slot's message is ready to go on; runs now or when its turn comes. */
  deliver(slot: Slot, run: Run): void {
    if (slot.state === DETACHED || slot.state === RELEASED) {
      // Out of the queue already: it goes now, out of order rather than never.
      slot.state = RELEASED;
      this.#run(run);
      return;
    }
    if (slot.state !== PENDING) return;
    slot.state = READY;
    if (this.#queue[this.#head] === slot) {
      slot.run = run;
    } else {
      // It will run later, from whatever released the slots before it: keep the async
      // context it was delivered in (the exchange's span, for handlers that trace).
      slot.run = AsyncResource.bind(run);
    }
    this.#flush();
  }

  /** The slot's message will not go on (dropped, shed, answered by a layer, retried). */
  release(slot: Slot): void {
    if (slot.state === PENDING) {
      slot.state = RELEASED;
      this.#flush();
    } else if (slot.state === DETACHED) {
      slot.state = RELEASED;
    }
  }

  /** Runs everything ready and detaches the rest (on close). */
  drain(): void {
    this.#detachPending();
    this.#flush();
  }

  get size(): number {
    return this.#tail - this.#head;
  }

  #flush(): void {
    const queue = this.#queue;
    while (this.#head < this.#tail) {
      const slot = queue[this.#head] as Slot;
      if (slot.state === PENDING) break;
      queue[this.#head++] = undefined;
      if (slot.state === READY) {
        slot.state = RELEASED;
        const run = slot.run as Run;
        slot.run = undefined;
        this.#run(run);
      }
    }
    if (this.#head === this.#tail) {
      this.#head = 0;
      this.#tail = 0;
      // After a burst, back to a small array (invariant 5: memory returns to its baseline).
      if (queue.length > 1024) this.#queue = [];
    } else {
      if (this.#head > 1024 && this.#head * 2 > this.#tail) {
        this.#queue = queue.slice(this.#head, this.#tail);
        this.#tail -= this.#head;
        this.#head = 0;
      }
      if (this.size > 1) this.#armValve();
    }
  }

  #armValve(): void {
    if (this.#valveArmed) return;
    this.#valveArmed = true;
    endOfTurn(() => {
      this.#valveArmed = false;
      this.#detachPending();
      this.#flush();
    });
  }

  /** Pending slots stop holding back the queue; they deliver whenever ready. */
  #detachPending(): void {
    const queue = this.#queue;
    for (let i = this.#head; i < this.#tail; i++) {
      const slot = queue[i] as Slot;
      if (slot.state === PENDING) slot.state = DETACHED;
    }
  }

  #run(run: Run): void {
    try {
      run();
    } catch (error) {
      this.#onError(error);
    }
  }
}
