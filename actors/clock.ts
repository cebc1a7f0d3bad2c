// The clock the engine is given. Actors never read the system time: the host passes a clock, and
// tests pass a manual one to run hours of product time in milliseconds.

export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
}

/** A clock that moves only when told to. */
export class ManualClock implements Clock {
  #now: number;

  constructor(start = Date.UTC(2026, 0, 5, 9, 0, 0)) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  advance(ms: number): number {
    if (!(ms >= 0)) throw new RangeError(`a clock cannot go back (advance by ${ms})`);
    this.#now += ms;
    return this.#now;
  }

  set(t: number): number {
    if (t < this.#now) throw new RangeError(`a clock cannot go back (from ${this.#now} to ${t})`);
    this.#now = t;
    return this.#now;
  }
}
