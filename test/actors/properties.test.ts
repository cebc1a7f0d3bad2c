// Property-based tests of the engine's invariants (ARCHITECTURE.md rules 3–5): random command
// sequences with agents coming and going, snoozes, wakes, transfers, closes, duplicated commands
// and time jumps, checked after every step.
import fc from 'fast-check';
import t from 'tap';
import { messageIdOf } from '../../actors/conversation.ts';
import type { Command, DomainEvent, Presence } from '../../actors/events.ts';
import { HOUR_MS, MINUTE_MS, type Settings } from '../../actors/settings.ts';
import { Simulation } from '../../actors/simulation.ts';
import { agent, group, rule } from '../helpers/settings.ts';

const settings: Settings = {
  groups: [
    group('tv', {
      cap: 3,
      overflow: { kind: 'group', group: 'orders' },
      snooze: { defaultMs: 2 * HOUR_MS, minMs: MINUTE_MS, maxMs: 10 * HOUR_MS },
    }),
    group('orders', { cap: 2, offlinePolicy: 'return' }),
    group('vip', { cap: 1, overflow: { kind: 'group', group: 'tv' } }),
  ],
  rules: [
    rule('direct', { target: { group: 'tv', byAnswer: [] } }),
    rule('vip', { target: { group: 'vip', byAnswer: [] } }),
    rule('qualify', {
      bot: { questions: [{ id: 'topic', text: 'About?', choices: ['Order', 'Product'] }] },
      target: { group: 'tv', byAnswer: [{ question: 'topic', answer: 'Order', group: 'orders' }] },
    }),
  ],
  agents: [
    agent('alice', ['tv'], 2),
    agent('bob', ['tv', 'orders'], 1),
    agent('carol', ['orders', 'vip'], 2),
    agent('dan', ['vip'], 1),
  ],
  cannedAnswers: [],
};
const AGENTS = settings.agents.map((a) => a.id);
const GROUPS = settings.groups.map((g) => g.id);
const RULES = settings.rules.map((r) => r.id);

/** An operation, chosen blind; it becomes a concrete command against the state at its turn. */
type Op =
  | { op: 'start'; rule: number; visitor: number; withMessage: boolean }
  | { op: 'visitorWrites'; c: number; text: string; reuseId: boolean }
  | { op: 'agentWrites'; c: number; stranger: boolean }
  | { op: 'presence'; a: number; presence: Presence }
  | { op: 'snooze'; c: number; minutes: number | null; stranger: boolean }
  | { op: 'transfer'; c: number; toAgent: number | null; toGroup: number }
  | { op: 'close'; c: number; byVisitor: boolean }
  | { op: 'tag'; c: number; tag: string }
  | { op: 'block'; c: number }
  | { op: 'survey'; c: number; csat: number; nps: number }
  | { op: 'escalate'; c: number }
  | { op: 'visitorPresence'; c: number; online: boolean }
  | { op: 'markRead'; c: number }
  | { op: 'advance'; ms: number }
  | { op: 'duplicate'; back: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      op: fc.constant('start' as const),
      rule: fc.nat(2),
      visitor: fc.nat(5),
      withMessage: fc.boolean(),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      op: fc.constant('visitorWrites' as const),
      c: fc.nat(20),
      text: fc.constantFrom('Order', 'Product', 'hello 👋', 'https://x.example'),
      reuseId: fc.boolean(),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant('agentWrites' as const),
      c: fc.nat(20),
      stranger: fc.boolean(),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      op: fc.constant('presence' as const),
      a: fc.nat(3),
      presence: fc.constantFrom<Presence>('online', 'online', 'away', 'offline'),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant('snooze' as const),
      c: fc.nat(20),
      minutes: fc.option(fc.integer({ min: 0, max: 700 }), { nil: null }),
      stranger: fc.boolean(),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant('transfer' as const),
      c: fc.nat(20),
      toAgent: fc.option(fc.nat(3), { nil: null }),
      toGroup: fc.nat(2),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant('close' as const),
      c: fc.nat(20),
      byVisitor: fc.boolean(),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant('tag' as const),
      c: fc.nat(20),
      tag: fc.constantFrom('a', 'b'),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('block' as const), c: fc.nat(20) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant('survey' as const),
      c: fc.nat(20),
      csat: fc.integer({ min: 0, max: 6 }),
      nps: fc.integer({ min: -1, max: 11 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('escalate' as const), c: fc.nat(20) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant('visitorPresence' as const),
      c: fc.nat(20),
      online: fc.boolean(),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('markRead' as const), c: fc.nat(20) }) },
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant('advance' as const),
      ms: fc.oneof(
        fc.integer({ min: 0, max: 10 * MINUTE_MS }),
        fc.integer({ min: 0, max: 12 * HOUR_MS }),
      ),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant('duplicate' as const),
      back: fc.integer({ min: 1, max: 6 }),
    }),
  },
);

/** Runs the same operations twice: `sim` gets every duplicate, `reference` never does. */
class Harness {
  readonly sim = new Simulation(settings);
  readonly reference = new Simulation(settings);
  readonly applied: Command[] = [];
  /** Message ids of visitor and agent messages the engine accepted, per conversation, in order. */
  readonly accepted = new Map<string, string[]>();
  #n = 0;
  #lastMessageId = new Map<string, string>();

  conversationAt(i: number): string | undefined {
    const ids = this.sim.engine.conversationIds();
    return ids.length === 0 ? undefined : ids[i % ids.length];
  }

  toCommand(op: Op): Command | undefined {
    const id = `k${++this.#n}`;
    if (op.op === 'start') {
      return {
        type: 'StartConversation',
        id,
        conversation: `c${this.#n}`,
        visitor: `v${op.visitor}`,
        rule: RULES[op.rule]!,
        ...(op.withMessage ? { message: { text: 'first' } } : {}),
      };
    }
    if (op.op === 'presence')
      return { type: 'SetAgentPresence', id, agent: AGENTS[op.a]!, presence: op.presence };
    if (op.op === 'advance' || op.op === 'duplicate') return undefined;
    const c = this.conversationAt(op.c);
    if (c === undefined) return undefined;
    const ctx = this.sim.engine.conversation(c)!.context;
    const assigned = ctx.agent ?? AGENTS[op.c % AGENTS.length]!;
    const stranger = AGENTS[(AGENTS.indexOf(assigned) + 1) % AGENTS.length]!;
    switch (op.op) {
      case 'visitorWrites': {
        const messageId = op.reuseId
          ? (this.#lastMessageId.get(c) ?? `m${this.#n}`)
          : `m${this.#n}`;
        this.#lastMessageId.set(c, messageId);
        const author = { kind: 'visitor', id: ctx.visitor } as const;
        return {
          type: 'SendMessage',
          id,
          conversation: c,
          author,
          message: { id: messageId, text: op.text },
        };
      }
      case 'agentWrites':
        return {
          type: 'SendMessage',
          id,
          conversation: c,
          author: { kind: 'agent', id: op.stranger ? stranger : assigned },
          message: { text: 'reply' },
        };
      case 'snooze':
        return {
          type: 'Snooze',
          id,
          conversation: c,
          agent: op.stranger ? stranger : assigned,
          ...(op.minutes === null ? {} : { durationMs: op.minutes * MINUTE_MS }),
        };
      case 'transfer':
        return {
          type: 'Transfer',
          id,
          conversation: c,
          agent: assigned,
          to: op.toAgent === null ? { group: GROUPS[op.toGroup]! } : { agent: AGENTS[op.toAgent]! },
        };
      case 'close':
        return {
          type: 'Close',
          id,
          conversation: c,
          by: op.byVisitor ? { visitor: ctx.visitor } : { agent: assigned },
          tags: ['done'],
        };
      case 'tag':
        return { type: 'Tag', id, conversation: c, agent: assigned, tags: [op.tag] };
      case 'block':
        return { type: 'BlockVisitor', id, conversation: c, agent: assigned };
      case 'survey':
        return {
          type: 'AnswerSurvey',
          id,
          conversation: c,
          visitor: ctx.visitor,
          csat: op.csat,
          nps: op.nps,
        };
      case 'escalate':
        return { type: 'Escalate', id, conversation: c };
      case 'visitorPresence':
        return { type: 'SetVisitorPresence', id, conversation: c, online: op.online };
      case 'markRead':
        return { type: 'MarkRead', id, conversation: c, visitor: ctx.visitor };
    }
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
    for (const g of GROUPS) {
      const ctx = engine.group(g)!;
      if (ctx.waiting.length + ctx.snoozed.length > ctx.cap)
        throw new Error(`group ${g} holds more than its cap ${ctx.cap}`);
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
