// One unit of work at a time in a worker: its hosts share one view of the world (agents, seats),
// whose staged changes are committed or rolled back as a whole.

export type Lock = <T>(work: () => Promise<T>) => Promise<T>;

/** A lock that runs the works given to it one after the other, in the order given. */
export function createLock(): Lock {
  let tail: Promise<unknown> = Promise.resolve();
  return <T>(work: () => Promise<T>): Promise<T> => {
    const run = tail.then(work, work);
    tail = run.catch(() => undefined);
    return run;
  };
}
