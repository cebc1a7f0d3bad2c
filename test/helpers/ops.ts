// Random operations on the engine for property tests: the settings they run on, the operations
// (chosen blind), and how each becomes a concrete command against the state at its turn.
import fc from 'fast-check';
import type { ConversationContext } from '../../actors/conversation.ts';
import type { Command, Presence } from '../../actors/events.ts';
import { HOUR_MS, MINUTE_MS, type Settings } from '../../actors/settings.ts';
import { agent, group, rule } from './settings.ts';

export const settings: Settings = {
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
export const AGENTS = settings.agents.map((a) => a.id);
export const GROUPS = settings.groups.map((g) => g.id);
export const RULES = settings.rules.map((r) => r.id);

/** An operation, chosen blind; it becomes a concrete command against the state at its turn. */
export type Op =
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

export const opArb: fc.Arbitrary<Op> = fc.oneof(
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

/** Turns operations into commands, numbering them. */
export class CommandMaker {
  #n = 0;
  #lastMessageId = new Map<string, string>();

  toCommand(
    op: Op,
    ids: readonly string[],
    contextOf: (id: string) => ConversationContext | undefined,
  ): Command | undefined {
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
    const c = ids.length === 0 ? undefined : ids[op.c % ids.length];
    if (c === undefined) return undefined;
    const ctx = contextOf(c);
    if (!ctx) return undefined;
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
}
