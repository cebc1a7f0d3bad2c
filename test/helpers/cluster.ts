// Several engines sharing one world, each hosting some routing groups: the routing of commands
// and handovers that the NATS runtime does, in one process, for tests of the engine's side of it.
import { ManualClock } from '../../actors/clock.ts';
import { Engine } from '../../actors/engine.ts';
import type { Command, DomainEvent } from '../../actors/events.ts';
import { targetGroup } from '../../actors/routing.ts';
import type { Settings } from '../../actors/settings.ts';
import { advanceDelivering } from '../../actors/simulation.ts';
import { MemoryWorld } from '../../actors/world.ts';

export class Cluster {
  readonly clock = new ManualClock();
  readonly world = new MemoryWorld();
  readonly engines: Engine[];
  readonly events: DomainEvent[] = [];
  /** Handovers passed from one engine to another. */
  handovers = 0;
  #n = 0;

  constructor(
    readonly settings: Settings,
    hosts: readonly (readonly string[])[],
  ) {
    this.engines = hosts.map(
      (groups) => new Engine(settings, { world: this.world, hosts: groups }),
    );
  }

  /** The engine hosting a conversation, or, for a new one, the group its rule targets first. */
  engineFor(command: Command): Engine {
    if (command.type === 'SetAgentPresence') return this.engines[0]!;
    if (command.type === 'StartConversation') {
      const rule = this.settings.rules.find((r) => r.id === command.rule);
      const group = rule ? targetGroup(rule, {}) : this.settings.groups[0]!.id;
      return this.engines.find((e) => e.group(group)) ?? this.engines[0]!;
    }
    return this.engines.find((e) => e.conversation(command.conversation)) ?? this.engines[0]!;
  }

  run(command: Command): DomainEvent[] {
    const now = this.clock.now();
    const engine = this.engineFor(command);
    const before =
      command.type === 'SetAgentPresence' ? this.world.agent(command.agent)?.value : undefined;
    let result = engine.step(command, now);
    const events = [...result.events];
    // Other engines learn of the agent's change as a host watching the agents bucket would.
    if (command.type === 'SetAgentPresence') {
      const wentOffline =
        before !== 'offline' && this.world.agent(command.agent)?.value === 'offline';
      for (const other of this.engines) {
        if (other === engine) continue;
        const r = other.agentChanged(command.agent, wentOffline, now);
        events.push(...r.events);
        result = { events: result.events, handovers: [...result.handovers, ...r.handovers] };
      }
    }
    const pending = [...result.handovers];
    for (let quiet = false; !quiet; ) {
      while (pending.length > 0) {
        const h = pending.shift()!;
        this.handovers++;
        const target = this.engines.find((e) => e.group(h.group));
        if (!target) throw new Error(`no engine hosts ${h.group}`);
        const r = target.admit(h, now);
        events.push(...r.events);
        pending.push(...r.handovers);
      }
      // A slot freed or a seat moved in one engine may let another hand out a waiting conversation.
      quiet = true;
      for (const other of this.engines) {
        const r = other.agentChanged('', false, now);
        if (r.events.length > 0 || r.handovers.length > 0) quiet = false;
        events.push(...r.events);
        pending.push(...r.handovers);
      }
    }
    this.events.push(...events);
    return events;
  }

  do(command: Record<string, unknown> & { type: Command['type'] }): DomainEvent[] {
    return this.run({ id: `c-${++this.#n}`, ...command } as Command);
  }

  /** Moves time on, delivering each engine's snooze deadlines at their own time. */
  advance(ms: number): DomainEvent[] {
    const deadlines = () => this.engines.flatMap((e) => e.snoozeDeadlines());
    return advanceDelivering(this.clock, ms, deadlines, (c) => this.run(c));
  }

  conversation(id: string) {
    for (const e of this.engines) {
      const c = e.conversation(id);
      if (c) return c;
    }
    return undefined;
  }
}
