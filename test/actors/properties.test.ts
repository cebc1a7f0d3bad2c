// Property-based tests of the engine's invariants (ARCHITECTURE.md rules 3–5): random command
// sequences with agents coming and going, snoozes, wakes, transfers, closes, duplicated commands
// and time jumps, checked after every step.
import fc from 'fast-check';
import t from 'tap';
import { messageIdOf } from '../../actors/conversation.ts';
import type { Command, DomainEvent } from '../../actors/events.ts';
import { HOUR_MS } from '../../actors/settings.ts';
import { Simulation } from '../../actors/simulation.ts';
import { AGENTS, CommandMaker, GROUPS, type Op, opArb, settings } from '../helpers/ops.ts';

/** Runs the same operations twice: `sim` gets every duplicate, `reference` never does. */
class Harness {
  readonly sim = new Simulation(settings);
  readonly reference = new Simulation(settings);
  readonly applied: Command[] = [];
  /** Message ids of visitor and agent messages the engine accepted, per conversation, in order. */
  readonly accepted = new Map<string, string[]>();
  readonly #maker = new CommandMaker();

  conversationAt(i: number): string | undefined {
    const ids = this.sim.engine.conversationIds();
    return ids.length === 0 ? undefined : ids[i % ids.length];
  }

  toCommand(op: Op): Command | undefined {
    return this.#maker.toCommand(
      op,
      this.sim.engine.conversationIds(),
      (c) => this.sim.engine.conversation(c)?.context,
    );
  }

  step(op: Op): void {
    if (op.op === 'advance') {
      this.#track(this.sim.advance(op.ms));
      this.reference.advance(op.ms);
      return;
    }
    if (op.op === 'duplicate') {
      const again = this.applied[this.applied.length - op.back];
      if (again) this.sim.run(again); // the reference never sees it
      return;
    }
    const cmd = this.toCommand(op);
    if (!cmd) return;
    this.applied.push(cmd);
    const events = this.sim.run(cmd);
    this.reference.run(cmd);
    this.#track(events);
    if (cmd.type === 'SendMessage' && cmd.author.kind !== 'system') {
      const messageId = messageIdOf(cmd.id, cmd.message);
      const added = events.some((e) => e.type === 'MessageAdded' && e.message.id === messageId);
      const refused = events.some(
        (e) => e.type === 'MessageRefused' || e.type === 'CommandRejected',
      );
      const retry = this.#wasAccepted(cmd.conversation, messageId);
      if (!added && !refused && !retry)
        throw new Error(`message of ${cmd.id} vanished: ${JSON.stringify(events)}`);
    }
  }

  #wasAccepted(conversation: string, messageId: string): boolean {
    return this.accepted.get(conversation)?.includes(messageId) ?? false;
  }

  #track(events: DomainEvent[]): void {
    for (const e of events) {
      if (e.type !== 'MessageAdded') continue;
      const kind = e.message.author.kind;
      if (kind !== 'visitor' && kind !== 'agent') continue;
      const list = this.accepted.get(e.conversation) ?? [];
      list.push(e.message.id);
      this.accepted.set(e.conversation, list);
    }
  }

  /** Every invariant, checked against the engine's state now. Throws with a reason when one breaks. */
  check(): void {
    const { engine, clock } = this.sim;
    const now = clock.now();
    const place = new Map<string, string[]>();
    const put = (c: string, where: string) => place.set(c, [...(place.get(c) ?? []), where]);
    const seats = engine.state().seats;
    for (const g of GROUPS) {
      const ctx = engine.group(g)!;
      const cap = engine.settings.groups.find((x) => x.id === g)!.cap;
      if (ctx.waiting.length + ctx.snoozed.length > cap)
        throw new Error(`group ${g} holds more than its cap ${cap}`);
      const held = [...ctx.waiting, ...ctx.snoozed].map((e) => e.conversation).sort();
      if (JSON.stringify([...(seats[g] ?? [])].sort()) !== JSON.stringify(held))
        throw new Error(
          `group ${g}: shared seats ${JSON.stringify(seats[g])} differ from its list`,
        );
      for (const e of ctx.waiting) put(e.conversation, `waiting:${g}`);
      for (const e of ctx.snoozed) put(e.conversation, `snoozed:${g}`);
    }
    for (const a of AGENTS) {
      const ag = engine.agent(a)!;
      if (ag.conversations.length > ag.slots)
        throw new Error(`agent ${a} holds ${ag.conversations.length} > ${ag.slots}`);
      for (const c of ag.conversations) put(c, `agent:${a}`);
    }
    for (const id of engine.conversationIds()) {
      const view = engine.conversation(id)!;
      const ctx = view.context;
      const where = place.get(id) ?? [];
      const expected =
        view.state === 'queued'
          ? [`waiting:${ctx.group}`]
          : view.state === 'snoozed'
            ? [`snoozed:${ctx.group}`]
            : view.state === 'assigned'
              ? [`agent:${ctx.agent}`]
              : [];
      if (JSON.stringify(where) !== JSON.stringify(expected)) {
        throw new Error(
          `${id} in state ${view.path} is held by ${JSON.stringify(where)}, expected ${JSON.stringify(expected)}`,
        );
      }
      for (const s of ctx.snoozes) {
        if (view.state === 'snoozed' && s.wokeAt === null && s.until <= now)
          throw new Error(`${id} still snoozed past its deadline`);
        if (s.wokeBy === 'timer' && s.wokeAt !== s.until)
          throw new Error(`${id} woke at ${s.wokeAt}, deadline ${s.until}`);
      }
      const thread = this.sim.thread(id);
      thread.forEach((m, i) => {
        if (m.seq !== i + 1)
          throw new Error(`${id}: message ${m.id} has seq ${m.seq} at place ${i + 1}`);
      });
      if (ctx.nextSeq !== thread.length + 1)
        throw new Error(`${id}: thread of ${thread.length} but nextSeq ${ctx.nextSeq}`);
      const kept = thread
        .filter((m) => m.author.kind === 'visitor' || m.author.kind === 'agent')
        .map((m) => m.id);
      if (JSON.stringify(kept) !== JSON.stringify(this.accepted.get(id) ?? [])) {
        throw new Error(`${id}: thread lost or reordered a message`);
      }
    }
    const a = JSON.stringify(this.sim.engine.state());
    const b = JSON.stringify(this.reference.engine.state());
    if (a !== b) throw new Error('a duplicated command changed the state');
  }
}

t.test('invariants hold after every step of 1,000 random command sequences', async (t) => {
  let steps = 0;
  fc.assert(
    fc.property(fc.array(opArb, { minLength: 5, maxLength: 80, size: 'max' }), (ops) => {
      const h = new Harness();
      for (const op of ops) {
        h.step(op);
        h.check();
        steps++;
      }
    }),
    { numRuns: 1000, seed: Number(process.env.PARLEY_PROPERTY_SEED ?? 20261125) },
  );
  t.ok(steps > 10_000, `checked ${steps} steps`);
});

t.test('the invariant checks catch a broken engine', async (t) => {
  // Guard against a property that can never fail: a snooze left past its deadline must be caught.
  const h = new Harness();
  h.step({ op: 'presence', a: 0, presence: 'online' });
  h.step({ op: 'start', rule: 0, visitor: 0, withMessage: true });
  h.step({ op: 'snooze', c: 0, minutes: 60, stranger: false });
  h.sim.clock.advance(2 * HOUR_MS); // the clock moves but no timer is delivered
  t.throws(() => h.check(), /snoozed past its deadline/);
});
