// Outcomes that arrive later (JetStream's PubAcks for the events of a unit of work), kept in the
// order their work was started: a host applies the next batch while the last one's events wait
// for their acknowledgements, and what must follow their storage (the batch's ack, a checkpoint)
// runs once everything started before it has succeeded, and never after a failure.

export class InOrder {
  #tail: Promise<void> = Promise.resolve();
  /** Settles once every outcome added so far has, failed or not. */
  #all: Promise<unknown> = Promise.resolve();
  #pending = 0;
  #failed = false;
  readonly #onFail: (error: unknown) => void;

  /** `onFail` is called once, with the first failure. */
  constructor(onFail: (error: unknown) => void) {
    this.#onFail = onFail;
  }

  /** Outcomes added and not yet in (counting one in only once every earlier one is). */
  get pending(): number {
    return this.#pending;
  }

  /** Adds the outcome of work already started. */
  add(outcome: Promise<void>): void {
    this.#pending++;
    this.#all = Promise.allSettled([this.#all, outcome]);
    this.#chain(
      Promise.all([this.#tail, outcome]).then(() => {
        this.#pending--;
      }),
    );
  }

  /** Runs `step` once every outcome added so far is in and succeeded. */
  after(step: () => void): void {
    this.#chain(this.#tail.then(step));
  }

  /** Settles once every outcome added so far is in; rejects after a failure, at once. */
  settled(): Promise<void> {
    return this.#tail;
  }

  /**
   * Resolves once every outcome added so far is in, each one, even after a failure: work still
   * under way (publications that may yet be stored) is over.
   */
  async drained(): Promise<void> {
    await this.#all;
  }

  #chain(next: Promise<void>): void {
    next.catch((error: unknown) => {
      if (this.#failed) return;
      this.#failed = true;
      this.#onFail(error);
    });
    this.#tail = next;
  }
}
