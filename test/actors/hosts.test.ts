// Engines that host different routing groups and share one world, as workers on NATS will:
// conversations handed over between them, seats and slots that hold across them.
import fc from 'fast-check';
import t from 'tap';
import type { DomainEvent, EventType } from '../../actors/events.ts';
import { Cluster } from '../helpers/cluster.ts';
import { AGENTS, CommandMaker, GROUPS, opArb, settings as opSettings } from '../helpers/ops.ts';
import { group, testSettings } from '../helpers/settings.ts';

const find = <T extends EventType>(events: DomainEvent[], type: T) =>
  events.find((e) => e.type === type) as Extract<DomainEvent, { type: T }> | undefined;
const visitor = (id = 'v1') => ({ kind: 'visitor', id }) as const;

t.test(
  'a bot answer that routes to a group hosted elsewhere hands the conversation over',
  async (t) => {
    const c = new Cluster(testSettings(), [['tv'], ['orders']]);
    const [tv, orders] = c.engines;
    c.do({ type: 'StartConversation', conversation: 'c1', visitor: 'v1', rule: 'qualify' });
    t.ok(tv!.conversation('c1'), 'it starts where its rule’s group is hosted');
    c.do({
      type: 'SendMessage',
      conversation: 'c1',
      author: visitor(),
      message: { text: 'Order' },
    });
    const events = c.do({
      type: 'SendMessage',
      conversation: 'c1',
      author: visitor(),
      message: { text: 'a@b.c' },
    });
    t.match(find(events, 'ConversationQueued'), { group: 'orders' });
    t.notOk(tv!.conversation('c1'), 'the first engine let it go');
    t.equal(orders!.conversation('c1')?.state, 'queued');
    t.same(
      orders!.group('orders')?.waiting.map((e) => e.conversation),
      ['c1'],
    );
    t.same(c.world.seats('orders'), ['c1']);
    t.equal(c.handovers, 1);
    t.equal(orders!.conversation('c1')?.context.nextSeq, 7, 'the thread numbering travels with it');
  },
);

t.test(
  'a transfer to a group hosted elsewhere, then an assignment there by an agent of both groups',
  async (t) => {
    const c = new Cluster(testSettings(), [['tv'], ['orders']]);
    c.do({ type: 'SetAgentPresence', agent: 'alice', presence: 'online' });
    c.do({ type: 'StartConversation', conversation: 'c1', visitor: 'v1', rule: 'direct' });
    t.equal(c.conversation('c1')?.context.agent, 'alice');
    c.do({ type: 'Transfer', conversation: 'c1', agent: 'alice', to: { group: 'orders' } });
    t.equal(c.conversation('c1')?.state, 'queued');
    t.same(c.world.agent('alice')?.context.conversations, [], 'alice’s slot is free');
    const events = c.do({ type: 'SetAgentPresence', agent: 'bob', presence: 'online' });
    t.match(find(events, 'ConversationAssigned'), {
      conversation: 'c1',
      agent: 'bob',
      group: 'orders',
    });
    t.ok(c.engines[1]!.conversation('c1'));
  },
);

t.test(
  'an agent’s slots hold across engines: a slot taken in one is seen by the other',
  async (t) => {
    const settings = testSettings({
      rules: [
        ...testSettings().rules,
        { ...testSettings().rules[0]!, id: 'to-orders', target: { group: 'orders', byAnswer: [] } },
      ],
    });
    const c = new Cluster(settings, [['tv'], ['orders']]);
    c.do({ type: 'SetAgentPresence', agent: 'bob', presence: 'online' }); // bob: tv and orders, 2 slots
    c.do({ type: 'StartConversation', conversation: 't1', visitor: 'v1', rule: 'direct' });
    c.do({ type: 'StartConversation', conversation: 'o1', visitor: 'v2', rule: 'to-orders' });
    c.do({ type: 'StartConversation', conversation: 'o2', visitor: 'v3', rule: 'to-orders' });
    t.same([...(c.world.agent('bob')?.context.conversations ?? [])].sort(), ['o1', 't1']);
    t.equal(c.conversation('o2')?.state, 'queued', 'the third waits: bob is full');
    c.do({ type: 'Close', conversation: 't1', by: { agent: 'bob' } });
    t.equal(
      c.conversation('o2')?.context.agent,
      'bob',
      'a slot freed in tv’s engine serves orders',
    );
  },
);

t.test('an overflow into a full group hosted elsewhere parks the conversation', async (t) => {
  const settings = testSettings({
    groups: [
      group('tv', { cap: 1, overflow: { kind: 'group', group: 'orders' } }),
      group('orders', { cap: 1 }),
    ],
  });
  const c = new Cluster(settings, [['tv'], ['orders']]);
  c.do({ type: 'StartConversation', conversation: 'c1', visitor: 'v1', rule: 'direct' });
  const second = c.do({
    type: 'StartConversation',
    conversation: 'c2',
    visitor: 'v2',
    rule: 'direct',
  });
  t.match(find(second, 'ConversationQueued'), { group: 'orders', reason: 'overflowed' });
  const third = c.do({
    type: 'StartConversation',
    conversation: 'c3',
    visitor: 'v3',
    rule: 'direct',
  });
  t.match(find(third, 'ConversationParked'), { group: 'tv' });
  t.same(c.world.seats('tv'), ['c1']);
  t.same(c.world.seats('orders'), ['c2']);
});

t.test(
  'an agent going offline returns only the conversations of return-policy groups, in every engine',
  async (t) => {
    const settings = testSettings({
      groups: [
        group('tv', { offlinePolicy: 'keep' }),
        group('orders', { offlinePolicy: 'return' }),
      ],
      rules: [
        ...testSettings().rules,
        { ...testSettings().rules[0]!, id: 'to-orders', target: { group: 'orders', byAnswer: [] } },
      ],
    });
    const c = new Cluster(settings, [['tv'], ['orders']]);
    c.do({ type: 'SetAgentPresence', agent: 'bob', presence: 'online' });
    c.do({ type: 'StartConversation', conversation: 't1', visitor: 'v1', rule: 'direct' });
    c.do({ type: 'StartConversation', conversation: 'o1', visitor: 'v2', rule: 'to-orders' });
    const events = c.do({ type: 'SetAgentPresence', agent: 'bob', presence: 'offline' });
    t.match(find(events, 'ConversationReturned'), { conversation: 'o1', agent: 'bob' });
    t.same(c.world.agent('bob')?.context.conversations, ['t1']);
    t.equal(c.conversation('o1')?.state, 'queued');
  },
);

t.test(
  'caps, slots and seats hold with groups split across engines, under random commands, and need no repair',
  async (t) => {
    let steps = 0;
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 5, maxLength: 60, size: 'max' }), (ops) => {
        const c = new Cluster(opSettings, [['tv'], ['orders', 'vip']]);
        const maker = new CommandMaker();
        for (const op of ops) {
          steps++;
          if (op.op === 'advance') c.advance(op.ms);
          else if (op.op !== 'duplicate') {
            const ids = c.engines.flatMap((e) => e.conversationIds()).sort();
            const cmd = maker.toCommand(op, ids, (id) => c.conversation(id)?.context);
            if (cmd) c.run(cmd);
          }
          const hosted = c.engines.flatMap((e) => e.conversationIds());
          if (new Set(hosted).size !== hosted.length)
            throw new Error('a conversation is hosted twice');
          for (const g of GROUPS) {
            const cap = opSettings.groups.find((x) => x.id === g)!.cap;
            const seats = c.world.seats(g);
            if (seats.length > cap) throw new Error(`${g} holds ${seats.length} seats > ${cap}`);
            const host = c.engines.find((e) => e.group(g))!;
            const list = host.group(g)!;
            const held = [...list.waiting, ...list.snoozed].map((e) => e.conversation).sort();
            if (JSON.stringify([...seats].sort()) !== JSON.stringify(held)) {
              throw new Error(
                `${g}: seats ${JSON.stringify(seats)} but list ${JSON.stringify(held)}`,
              );
            }
          }
          for (const a of AGENTS) {
            const ag = c.world.agent(a)!;
            if (ag.context.conversations.length > ag.context.slots)
              throw new Error(`${a} over slots`);
            for (const id of ag.context.conversations) {
              if (c.conversation(id)?.context.agent !== a)
                throw new Error(`${a} holds ${id} not assigned to them`);
            }
          }
          // With no crash, the repair of places held without their conversation finds none.
          for (const e of c.engines) {
            const repaired = e.repair(c.clock.now());
            const { released, retaken, unmended, events } = repaired;
            if (released.length + retaken.length + unmended.length + events.length > 0) {
              throw new Error(`repair changed something: ${JSON.stringify(repaired)}`);
            }
          }
          for (const id of hosted) {
            const view = c.conversation(id)!;
            for (const s of view.context.snoozes) {
              if (view.state === 'snoozed' && s.wokeAt === null && s.until <= c.clock.now()) {
                throw new Error(`${id} snoozed past its deadline`);
              }
            }
          }
        }
      }),
      { numRuns: 300, seed: 424242 },
    );
    t.ok(steps > 5000, `checked ${steps} steps`);
  },
);
