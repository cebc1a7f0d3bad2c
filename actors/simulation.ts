// The engine on a manual clock with an in-memory timer index and threads built from its events:
// what tests, the demo and the property checks drive. The real host is lib/worker.
import { ManualClock } from './clock.ts';
import { Engine, type EngineOptions } from './engine.ts';
import type { Command, DomainEvent, Message } from './events.ts';
import type { Settings } from './settings.ts';

let counter = 0;

/**
 * Moves `clock` forward by `ms`; each snooze deadline reached on the way (the earliest of
 * `deadlines()`, asked again after every delivery) is sent through `run` at its own time.
 */
export function advanceDelivering(
  clock: ManualClock,
  ms: number,
  deadlines: () => readonly { conversation: string; until: number }[],
  run: (command: Command) => DomainEvent[],
): DomainEvent[] {
  const end = clock.now() + ms;
  const out: DomainEvent[] = [];
  for (;;) {
    const next = [...deadlines()].sort((a, b) => a.until - b.until)[0];
    if (!next || next.until > end) break;
    clock.set(Math.max(clock.now(), next.until));
    const { conversation, until } = next;
    out.push(
      ...run({ type: 'SnoozeExpired', id: `timer:${conversation}:${until}`, conversation, until }),
    );
  }
  clock.set(end);
  return out;
}

/** A command without its id: the simulation gives it a fresh one unless one is given. */
export type CommandInput = Command extends infer C
  ? C extends Command
    ? Omit<C, 'id'> & { id?: string }
    : never
  : never;

export class Simulation {
  readonly clock: ManualClock;
  readonly engine: Engine;
  /** Every event, in the order the engine produced them. */
  readonly events: DomainEvent[] = [];
  /** Each conversation's thread, as a reader of MessageAdded events sees it. */
  readonly threads = new Map<string, Message[]>();

  constructor(settings: Settings, options: EngineOptions & { start?: number } = {}) {
    this.clock = new ManualClock(options.start);
    this.engine = new Engine(settings, options);
  }

  /** Applies a command now and returns its events. */
  run(command: Command): DomainEvent[] {
    return this.#record(this.engine.apply(command, this.clock.now()));
  }

  /** Builds and applies a command with a fresh id. */
  do(command: CommandInput): DomainEvent[] {
    return this.run({ ...command, id: command.id ?? `cmd-${++counter}` } as Command);
  }

  /**
   * Moves the clock forward by `ms`, delivering each snooze deadline on the way at its own time,
   * as the timer index of a worker does.
   */
  advance(ms: number): DomainEvent[] {
    return advanceDelivering(
      this.clock,
      ms,
      () => this.engine.snoozeDeadlines(),
      (c) => this.run(c),
    );
  }

  thread(conversation: string): Message[] {
    return this.threads.get(conversation) ?? [];
  }

  #record(events: DomainEvent[]): DomainEvent[] {
    for (const e of events) {
      this.events.push(e);
      if (e.type === 'MessageAdded') {
        const thread = this.threads.get(e.conversation) ?? [];
        thread.push(e.message);
        this.threads.set(e.conversation, thread);
      }
    }
    return events;
  }
}
