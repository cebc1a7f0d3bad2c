// What an engine shares with the engines of other workers: the agents (presence and the
// conversations each holds), the seats of every routing group's waiting list, and blocked
// visitors. On NATS these are KV entries changed by compare-and-set; here, an interface the
// engine reads and writes synchronously, and an in-memory version for one process.
import type { SnapshotFrom } from 'xstate';
import type { agentMachine } from './agent.ts';

export type AgentSnapshot = SnapshotFrom<typeof agentMachine>;

/** The shared state. Every write is of a whole value, so a host can turn it into a compare-and-set. */
export interface World {
  agent(id: string): AgentSnapshot | undefined;
  putAgent(id: string, snapshot: AgentSnapshot): void;
  /** The conversations holding a seat of the group's waiting list (waiting, snoozed, or on their way in). */
  seats(group: string): readonly string[];
  putSeats(group: string, conversations: readonly string[]): void;
  isBlocked(visitor: string): boolean;
  block(visitor: string): void;
  blockedVisitors(): readonly string[];
}

/** The world of a single process: plain maps. */
export class MemoryWorld implements World {
  readonly #agents = new Map<string, AgentSnapshot>();
  readonly #seats = new Map<string, readonly string[]>();
  readonly #blocked = new Set<string>();

  agent(id: string): AgentSnapshot | undefined {
    return this.#agents.get(id);
  }

  putAgent(id: string, snapshot: AgentSnapshot): void {
    this.#agents.set(id, snapshot);
  }

  seats(group: string): readonly string[] {
    return this.#seats.get(group) ?? [];
  }

  putSeats(group: string, conversations: readonly string[]): void {
    this.#seats.set(group, conversations);
  }

  isBlocked(visitor: string): boolean {
    return this.#blocked.has(visitor);
  }

  block(visitor: string): void {
    this.#blocked.add(visitor);
  }

  blockedVisitors(): string[] {
    return [...this.#blocked].sort();
  }
}
