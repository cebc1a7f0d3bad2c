// The conversation machine's transitions and rules, driven through the engine on a manual clock.
import t from 'tap';
import type { DomainEvent, EventType } from '../../actors/events.ts';
import { HOUR_MS, MINUTE_MS } from '../../actors/settings.ts';
import { Simulation } from '../../actors/simulation.ts';
import { group, testSettings } from '../helpers/settings.ts';

const visitor = (id = 'v1') => ({ kind: 'visitor', id }) as const;
const agentAuthor = (id: string) => ({ kind: 'agent', id }) as const;
const types = (events: DomainEvent[]) => events.map((e) => e.type);
const find = <T extends EventType>(events: DomainEvent[], type: T) =>
  events.find((e) => e.type === type) as Extract<DomainEvent, { type: T }> | undefined;

/** A conversation on the direct rule, queued in tv, assigned to alice. */
function assignedToAlice(sim = new Simulation(testSettings())) {
  sim.do({ type: 'SetAgentPresence', agent: 'alice', presence: 'online' });
  sim.do({
    type: 'StartConversation',
    conversation: 'c1',
    visitor: 'v1',
    rule: 'direct',
    message: { text: 'Is the TV in stock?' },
  });
  return sim;
}

t.test(
  'a conversation whose rule has no bot starts straight in the waiting list, with the automatic message first',
  async (t) => {
    const sim = new Simulation(testSettings());
    const events = sim.do({
      type: 'StartConversation',
      conversation: 'c1',
      visitor: 'v1',
      rule: 'direct',
      message: { text: 'Hello' },
    });
    t.same(types(events), [
      'ConversationStarted',
      'MessageAdded',
      'MessageAdded',
      'ConversationQueued',
    ]);
    t.equal(sim.engine.conversation('c1')?.state, 'queued');
    const thread = sim.thread('c1');
    t.equal(thread[0]?.note, 'automatic');
    t.match(thread[0]?.text, /^👋 Hi there! Leave us a message/);
    t.same(thread[1]?.author, visitor());
    t.same(
      thread.map((m) => m.seq),
      [1, 2],
    );
  },
);

t.test(
  'a conversation works with no agent online: it waits, and the visitor sees position and typical reply time',
  async (t) => {
    const sim = new Simulation(testSettings());
    sim.do({ type: 'StartConversation', conversation: 'c1', visitor: 'v1', rule: 'direct' });
    sim.do({ type: 'StartConversation', conversation: 'c2', visitor: 'v2', rule: 'direct' });
    t.equal(sim.engine.conversation('c2')?.state, 'queued');
    t.same(sim.engine.waitingInfo('c2'), { position: 2, typicalReplyMs: 3 * HOUR_MS });
  },
);

t.test(
  'a conversation whose rule has a bot starts in bot: greeting, then the first question',
  async (t) => {
    const sim = new Simulation(testSettings());
    sim.do({ type: 'StartConversation', conversation: 'c1', visitor: 'v1', rule: 'qualify' });
    t.equal(sim.engine.conversation('c1')?.path, 'bot.asking');
    t.same(
      sim.thread('c1').map((m) => m.note),
      ['automatic', 'greeting', 'question'],
    );
    t.match(sim.thread('c1')[2]?.text, 'What is it about? (Order / Product)');
  },
);

t.test('the bot re-asks a question whose answer is not one of its choices', async (t) => {
  const sim = new Simulation(testSettings());
  sim.do({ type: 'StartConversation', conversation: 'c1', visitor: 'v1', rule: 'qualify' });
  const events = sim.do({
    type: 'SendMessage',
    conversation: 'c1',
    author: visitor(),
    message: { text: 'a washing machine' },
  });
  t.notOk(find(events, 'BotAnswerRecorded'));
  t.equal(sim.engine.conversation('c1')?.context.bot.asked, 0);
  t.equal(sim.thread('c1').at(-1)?.note, 'question');
});

t.test('the bot records the answers and escalates to the group the answers name', async (t) => {
  const sim = new Simulation(testSettings());
  sim.do({ type: 'StartConversation', conversation: 'c1', visitor: 'v1', rule: 'qualify' });
  sim.do({
    type: 'SendMessage',
    conversation: 'c1',
    author: visitor(),
    message: { text: ' order ' },
  });
  t.equal(sim.engine.conversation('c1')?.path, 'bot.asking', 'a second question follows');
  const events = sim.do({
    type: 'SendMessage',
    conversation: 'c1',
    author: visitor(),
    message: { text: 'v1@example.com' },
  });
  t.same(sim.engine.conversation('c1')?.context.bot.answers, {
    topic: 'Order',
    email: 'v1@example.com',
  });
  t.match(find(events, 'ConversationQueued'), { group: 'orders', reason: 'escalated' });
  t.equal(sim.engine.conversation('c1')?.context.times.escalatedAt, sim.clock.now());
});

t.test('the bot escalates to the rule’s group when no answer route matches', async (t) => {
  const sim = new Simulation(testSettings());
  sim.do({ type: 'StartConversation', conversation: 'c1', visitor: 'v1', rule: 'qualify' });
  sim.do({
    type: 'SendMessage',
    conversation: 'c1',
    author: visitor(),
    message: { text: 'Product' },
  });
  sim.do({
    type: 'SendMessage',
    conversation: 'c1',
    author: visitor(),
    message: { text: 'x@y.z' },
  });
  t.equal(sim.engine.conversation('c1')?.context.group, 'tv');
});

t.test('an integrator may escalate a conversation before the bot has finished', async (t) => {
  const sim = new Simulation(testSettings());
  sim.do({ type: 'StartConversation', conversation: 'c1', visitor: 'v1', rule: 'qualify' });
  const events = sim.do({ type: 'Escalate', conversation: 'c1' });
  t.match(find(events, 'ConversationQueued'), { group: 'tv' });
});

t.test(
  'escalating into a full waiting list with the default policy parks the conversation with the bot, never drops it',
  async (t) => {
    const sim = new Simulation(
      testSettings({ groups: [group('tv', { cap: 1 }), group('orders')] }),
    );
    sim.do({ type: 'StartConversation', conversation: 'c1', visitor: 'v1', rule: 'direct' });
    const events = sim.do({
      type: 'StartConversation',
      conversation: 'c2',
      visitor: 'v2',
      rule: 'direct',
    });
    t.match(find(events, 'ConversationParked'), { group: 'tv', reason: 'waiting-list-full' });
    t.equal(sim.engine.conversation('c2')?.path, 'bot.parked');
    t.equal(sim.thread('c2').at(-1)?.note, 'full');
    t.equal(sim.engine.group('tv')?.waiting.length, 1);

    // The visitor leaves a message: still full, still parked, the message kept.
    sim.do({
      type: 'SendMessage',
      conversation: 'c2',
      author: visitor('v2'),
      message: { text: 'still there?' },
    });
    t.equal(sim.engine.conversation('c2')?.path, 'bot.parked');
    t.ok(sim.thread('c2').some((m) => m.text === 'still there?'));

    // A seat frees; the next message enters the list.
    sim.do({ type: 'Close', conversation: 'c1', by: { visitor: 'v1' } });
    sim.do({
      type: 'SendMessage',
      conversation: 'c2',
      author: visitor('v2'),
      message: { text: 'hello?' },
    });
    t.equal(sim.engine.conversation('c2')?.state, 'queued');
  },
);

t.test(
  'escalating into a full waiting list with an overflow group goes to that group',
  async (t) => {
    const settings = testSettings({
      groups: [
        group('tv', { cap: 1, overflow: { kind: 'group', group: 'orders' } }),
        group('orders', { cap: 1 }),
      ],
    });
    const sim = new Simulation(settings);
    sim.do({ type: 'StartConversation', conversation: 'c1', visitor: 'v1', rule: 'direct' });
    const second = sim.do({
      type: 'StartConversation',
      conversation: 'c2',
      visitor: 'v2',
      rule: 'direct',
    });
    t.match(find(second, 'ConversationQueued'), { group: 'orders', reason: 'overflowed' });
    const third = sim.do({
      type: 'StartConversation',
      conversation: 'c3',
      visitor: 'v3',
      rule: 'direct',
    });
    t.match(
      find(third, 'ConversationParked'),
      { group: 'tv' },
      'both full: parked at the first group',
    );
  },
);

t.test('queued → assigned when the group hands it to an agent, recording the wait', async (t) => {
  const sim = new Simulation(testSettings());
  sim.do({ type: 'StartConversation', conversation: 'c1', visitor: 'v1', rule: 'direct' });
  sim.advance(10 * MINUTE_MS);
  const events = sim.do({ type: 'SetAgentPresence', agent: 'alice', presence: 'online' });
  t.match(find(events, 'ConversationAssigned'), {
    agent: 'alice',
    waitedMs: 10 * MINUTE_MS,
    wasSnoozed: false,
  });
  const ctx = sim.engine.conversation('c1')!.context;
  t.equal(ctx.agent, 'alice');
  t.same(ctx.assignments, [{ agent: 'alice', at: sim.clock.now(), waitedMs: 10 * MINUTE_MS }]);
  t.same(sim.engine.agent('alice')?.conversations, ['c1']);
  t.same(sim.engine.group('tv')?.waiting, []);
});

t.test('an agent reply is added to the thread and records the first reply time once', async (t) => {
  const sim = assignedToAlice();
  sim.advance(2 * MINUTE_MS);
  sim.do({
    type: 'SendMessage',
    conversation: 'c1',
    author: agentAuthor('alice'),
    message: {
      text: 'Yes 👍 see https://shop.example/tv',
      attachments: [
        {
          kind: 'image',
          ref: 'https://cdn.example/tv.png',
          mimeType: 'image/png',
          sizeBytes: 2048,
        },
      ],
    },
  });
  const first = sim.clock.now();
  sim.advance(MINUTE_MS);
  sim.do({
    type: 'SendMessage',
    conversation: 'c1',
    author: agentAuthor('alice'),
    message: { text: 'Anything else?' },
  });
  const ctx = sim.engine.conversation('c1')!.context;
  t.equal(ctx.times.firstReplyAt, first);
  const reply = sim.thread('c1').find((m) => m.author.kind === 'agent');
  t.equal(reply?.attachments[0]?.kind, 'image');
  t.equal(reply?.text, 'Yes 👍 see https://shop.example/tv');
});

t.test('only the assigned agent may reply, snooze, transfer, block or close', async (t) => {
  const sim = assignedToAlice();
  const reply = sim.do({
    type: 'SendMessage',
    conversation: 'c1',
    author: agentAuthor('bob'),
    message: { text: 'hi' },
  });
  t.match(find(reply, 'CommandRejected'), { code: 'not-allowed-in-state' });
  for (const cmd of [
    { type: 'Snooze', conversation: 'c1', agent: 'bob' },
    { type: 'Transfer', conversation: 'c1', agent: 'bob', to: { group: 'orders' } },
    { type: 'BlockVisitor', conversation: 'c1', agent: 'bob' },
    { type: 'Close', conversation: 'c1', by: { agent: 'bob' } },
  ] as const) {
    const events = sim.do(cmd);
    t.match(
      find(events, 'CommandRejected'),
      { code: 'not-assigned-agent', commandType: cmd.type },
      cmd.type,
    );
  }
  t.equal(sim.engine.conversation('c1')?.state, 'assigned');
});

t.test(
  'assigned → snoozed for the group default of 5 hours, freeing the agent’s slot and keeping a seat',
  async (t) => {
    const sim = assignedToAlice();
    const events = sim.do({ type: 'Snooze', conversation: 'c1', agent: 'alice' });
    const snoozed = find(events, 'ConversationSnoozed');
    t.match(snoozed, {
      agent: 'alice',
      durationMs: 5 * HOUR_MS,
      until: sim.clock.now() + 5 * HOUR_MS,
    });
    t.equal(sim.engine.conversation('c1')?.state, 'snoozed');
    t.same(sim.engine.agent('alice')?.conversations, []);
    t.same(sim.engine.group('tv')?.snoozed, [{ conversation: 'c1', until: snoozed?.until }]);
  },
);

t.test('a snooze for a chosen duration must be within the group’s bounds', async (t) => {
  const sim = assignedToAlice();
  const tooShort = sim.do({
    type: 'Snooze',
    conversation: 'c1',
    agent: 'alice',
    durationMs: MINUTE_MS,
  });
  t.match(find(tooShort, 'CommandRejected'), { code: 'snooze-out-of-bounds' });
  const tooLong = sim.do({
    type: 'Snooze',
    conversation: 'c1',
    agent: 'alice',
    durationMs: 25 * HOUR_MS,
  });
  t.match(find(tooLong, 'CommandRejected'), { code: 'snooze-out-of-bounds' });
  const ok = sim.do({
    type: 'Snooze',
    conversation: 'c1',
    agent: 'alice',
    durationMs: 30 * MINUTE_MS,
  });
  t.match(find(ok, 'ConversationSnoozed'), { durationMs: 30 * MINUTE_MS });
});

t.test(
  'a snoozed conversation wakes when the visitor writes, with a note saying who snoozed it and for how long',
  async (t) => {
    const sim = assignedToAlice();
    sim.do({ type: 'SetAgentPresence', agent: 'alice', presence: 'away' });
    sim.do({ type: 'Snooze', conversation: 'c1', agent: 'alice' });
    sim.advance(HOUR_MS);
    const events = sim.do({
      type: 'SendMessage',
      conversation: 'c1',
      author: visitor(),
      message: { text: 'Any news?' },
    });
    t.match(find(events, 'ConversationWoken'), {
      by: 'visitor',
      snoozedBy: 'alice',
      snoozedMs: HOUR_MS,
    });
    t.match(find(events, 'ConversationQueued'), { reason: 'woken' });
    const [note, message] = sim.thread('c1').slice(-2);
    t.equal(note?.note, 'snoozed');
    t.equal(
      note?.text,
      'This conversation had been snoozed by Alice for 5 h; it is back because the visitor wrote again.',
    );
    t.equal(message?.text, 'Any news?');
    t.equal(sim.engine.conversation('c1')?.state, 'queued');
    const snoozes = sim.engine.conversation('c1')!.context.snoozes;
    t.match(snoozes[0], { by: 'alice', wokeBy: 'visitor', wokeAt: sim.clock.now() });
  },
);

t.test('a timer delivered before its deadline does not wake the conversation', async (t) => {
  const sim = assignedToAlice();
  sim.do({ type: 'Snooze', conversation: 'c1', agent: 'alice', durationMs: 4 * HOUR_MS });
  const until = sim.engine.conversation('c1')!.context.snoozes[0]!.until;
  sim.advance(MINUTE_MS);
  t.same(sim.do({ type: 'SnoozeExpired', conversation: 'c1', until }), []);
  t.equal(sim.engine.conversation('c1')?.state, 'snoozed');
});

t.test(
  'a snoozed conversation wakes when its deadline passes, and comes back to an agent marked as snoozed before',
  async (t) => {
    const sim = assignedToAlice();
    sim.do({ type: 'Snooze', conversation: 'c1', agent: 'alice', durationMs: 2 * HOUR_MS });
    const before = sim.advance(2 * HOUR_MS - 1);
    t.same(before, [], 'nothing before the deadline');
    const events = sim.advance(1);
    t.match(find(events, 'ConversationWoken'), { by: 'timer', snoozedMs: 2 * HOUR_MS });
    t.match(find(events, 'ConversationAssigned'), { agent: 'alice', wasSnoozed: true });
    t.match(
      sim.thread('c1').at(-1)?.text,
      /snoozed by Alice for 2 h; it is back because the snooze period is over/,
    );
  },
);

t.test('a late or stale timer does nothing', async (t) => {
  const sim = assignedToAlice();
  sim.do({ type: 'Snooze', conversation: 'c1', agent: 'alice', durationMs: HOUR_MS });
  const until = sim.engine.conversation('c1')!.context.snoozes[0]!.until;
  sim.do({ type: 'SendMessage', conversation: 'c1', author: visitor(), message: { text: 'back' } });
  const late = sim.do({ type: 'SnoozeExpired', conversation: 'c1', until });
  t.same(late, [], 'the visitor already woke it');
  // Snoozed again: the old deadline is stale, the new one holds.
  sim.do({ type: 'Snooze', conversation: 'c1', agent: 'alice', durationMs: 3 * HOUR_MS });
  const stale = sim.do({ type: 'SnoozeExpired', conversation: 'c1', until });
  t.same(stale, []);
  t.equal(sim.engine.conversation('c1')?.state, 'snoozed');
});

t.test(
  'a snooze is refused when the group has no free seat, so a wake can never break the cap',
  async (t) => {
    const sim = new Simulation(
      testSettings({ groups: [group('tv', { cap: 1 }), group('orders')] }),
    );
    sim.do({ type: 'SetAgentPresence', agent: 'alice', presence: 'online' });
    sim.do({ type: 'StartConversation', conversation: 'c1', visitor: 'v1', rule: 'direct' });
    sim.do({ type: 'StartConversation', conversation: 'c2', visitor: 'v2', rule: 'direct' });
    sim.do({ type: 'StartConversation', conversation: 'c3', visitor: 'v3', rule: 'direct' });
    t.equal(sim.engine.conversation('c3')?.state, 'queued', 'alice has two slots; c3 waits');
    const events = sim.do({ type: 'Snooze', conversation: 'c1', agent: 'alice' });
    t.match(find(events, 'CommandRejected'), { code: 'waiting-list-full' });
    t.equal(sim.engine.conversation('c1')?.state, 'assigned');
  },
);

t.test(
  'a transfer to an offline agent with a free slot assigns it to them at once: it waits on their panel',
  async (t) => {
    const sim = assignedToAlice();
    const events = sim.do({
      type: 'Transfer',
      conversation: 'c1',
      agent: 'alice',
      to: { agent: 'carol' },
    });
    t.match(find(events, 'ConversationTransferred'), { from: 'alice', to: { agent: 'carol' } });
    t.match(find(events, 'ConversationAssigned'), { agent: 'carol', waitedMs: 0 });
    t.equal(sim.engine.agent('carol')?.presence, 'offline');
    t.same(sim.engine.agent('carol')?.conversations, ['c1']);
    t.same(sim.engine.agent('alice')?.conversations, []);
    t.same(sim.engine.conversation('c1')?.context.transfers, [
      { at: sim.clock.now(), from: 'alice', to: { agent: 'carol' } },
    ]);
  },
);

t.test(
  'a transfer to an agent with no free slot waits in the group reserved for that agent',
  async (t) => {
    const sim = assignedToAlice();
    // carol has one slot: fill it with a transfer, then transfer another conversation to her.
    sim.do({ type: 'StartConversation', conversation: 'c2', visitor: 'v2', rule: 'direct' });
    sim.do({ type: 'Transfer', conversation: 'c1', agent: 'alice', to: { agent: 'carol' } });
    const events = sim.do({
      type: 'Transfer',
      conversation: 'c2',
      agent: 'alice',
      to: { agent: 'carol' },
    });
    t.match(find(events, 'ConversationQueued'), {
      group: 'tv',
      reason: 'transferred',
      reservedFor: 'carol',
    });
    t.equal(
      sim.engine.conversation('c2')?.state,
      'queued',
      'alice, online with free slots, does not take it',
    );
    sim.do({ type: 'Close', conversation: 'c1', by: { agent: 'carol' } });
    t.same(
      sim.engine.agent('carol')?.conversations,
      ['c2'],
      'it goes to carol when her slot frees',
    );
  },
);

t.test(
  'a transfer to a routing group enters its waiting list, and is refused when that list is full',
  async (t) => {
    const sim = assignedToAlice();
    const events = sim.do({
      type: 'Transfer',
      conversation: 'c1',
      agent: 'alice',
      to: { group: 'orders' },
    });
    t.match(find(events, 'ConversationQueued'), {
      group: 'orders',
      reason: 'transferred',
      reservedFor: null,
    });
    t.equal(sim.engine.conversation('c1')?.context.group, 'orders');

    const full = new Simulation(
      testSettings({ groups: [group('tv'), group('orders', { cap: 1 })] }),
    );
    assignedToAlice(full);
    full.do({ type: 'StartConversation', conversation: 'c2', visitor: 'v2', rule: 'qualify' });
    full.do({
      type: 'SendMessage',
      conversation: 'c2',
      author: visitor('v2'),
      message: { text: 'order' },
    });
    full.do({
      type: 'SendMessage',
      conversation: 'c2',
      author: visitor('v2'),
      message: { text: 'a@b.c' },
    });
    t.equal(full.engine.group('orders')?.waiting.length, 1);
    const refused = full.do({
      type: 'Transfer',
      conversation: 'c1',
      agent: 'alice',
      to: { group: 'orders' },
    });
    t.match(find(refused, 'CommandRejected'), { code: 'waiting-list-full' });
    t.equal(full.engine.conversation('c1')?.context.agent, 'alice');
  },
);

t.test('a transfer to an unknown agent or group is refused', async (t) => {
  const sim = assignedToAlice();
  t.match(
    find(
      sim.do({ type: 'Transfer', conversation: 'c1', agent: 'alice', to: { agent: 'zed' } }),
      'CommandRejected',
    ),
    {
      code: 'unknown-agent',
    },
  );
  t.match(
    find(
      sim.do({ type: 'Transfer', conversation: 'c1', agent: 'alice', to: { group: 'nope' } }),
      'CommandRejected',
    ),
    {
      code: 'unknown-group',
    },
  );
});

t.test('tags may be set while the conversation is active and at close', async (t) => {
  const sim = assignedToAlice();
  const tagged = sim.do({ type: 'Tag', conversation: 'c1', agent: 'alice', tags: ['tv', 'stock'] });
  t.match(find(tagged, 'ConversationTagged'), { tags: ['tv', 'stock'] });
  const closed = sim.do({
    type: 'Close',
    conversation: 'c1',
    by: { agent: 'alice' },
    tags: ['stock', 'sale'],
  });
  t.match(find(closed, 'ConversationClosed'), {
    by: 'agent',
    agent: 'alice',
    tags: ['tv', 'stock', 'sale'],
  });
  const after = sim.do({ type: 'Tag', conversation: 'c1', agent: 'alice', tags: ['late'] });
  t.match(find(after, 'CommandRejected'), { code: 'not-allowed-in-state' });
});

t.test('an agent outside the conversation’s group may not tag it', async (t) => {
  const sim = assignedToAlice();
  const events = sim.do({ type: 'Tag', conversation: 'c1', agent: 'carol', tags: ['x'] });
  t.match(find(events, 'CommandRejected'), { code: 'not-assigned-agent' });
});

t.test('the visitor may end the conversation in any open state', async (t) => {
  for (const setup of ['bot', 'queued', 'assigned', 'snoozed'] as const) {
    const sim = new Simulation(testSettings());
    if (setup === 'bot')
      sim.do({ type: 'StartConversation', conversation: 'c1', visitor: 'v1', rule: 'qualify' });
    else assignedToAlice(sim);
    if (setup === 'queued')
      sim.do({ type: 'SetAgentPresence', agent: 'alice', presence: 'offline' });
    if (setup === 'queued')
      sim.do({ type: 'Transfer', conversation: 'c1', agent: 'alice', to: { group: 'tv' } });
    if (setup === 'snoozed') sim.do({ type: 'Snooze', conversation: 'c1', agent: 'alice' });
    t.equal(sim.engine.conversation('c1')?.state, setup, `set up in ${setup}`);
    const events = sim.do({ type: 'Close', conversation: 'c1', by: { visitor: 'v1' } });
    t.match(find(events, 'ConversationClosed'), { by: 'visitor' }, `closed from ${setup}`);
    t.same(sim.engine.group('tv')?.waiting, [], 'no seat left behind');
    t.same(sim.engine.group('tv')?.snoozed, []);
    t.same(sim.engine.agent('alice')?.conversations, []);
  }
});

t.test('another visitor may not end or write in someone else’s conversation', async (t) => {
  const sim = assignedToAlice();
  t.match(
    find(sim.do({ type: 'Close', conversation: 'c1', by: { visitor: 'v2' } }), 'CommandRejected'),
    {
      code: 'not-assigned-agent',
    },
  );
  t.match(
    find(
      sim.do({
        type: 'SendMessage',
        conversation: 'c1',
        author: visitor('v2'),
        message: { text: 'x' },
      }),
      'CommandRejected',
    ),
    { code: 'not-the-visitor' },
  );
});

t.test('after close the visitor answers the survey once, within range', async (t) => {
  const sim = assignedToAlice();
  sim.do({ type: 'Close', conversation: 'c1', by: { agent: 'alice' } });
  const bad = sim.do({ type: 'AnswerSurvey', conversation: 'c1', visitor: 'v1', csat: 6 });
  t.match(find(bad, 'CommandRejected'), { code: 'survey-out-of-range' });
  const empty = sim.do({ type: 'AnswerSurvey', conversation: 'c1', visitor: 'v1' });
  t.match(find(empty, 'CommandRejected'), { code: 'survey-out-of-range' });
  const other = sim.do({ type: 'AnswerSurvey', conversation: 'c1', visitor: 'v2', csat: 1 });
  t.match(find(other, 'CommandRejected'), { code: 'not-the-visitor' });
  const ok = sim.do({
    type: 'AnswerSurvey',
    conversation: 'c1',
    visitor: 'v1',
    csat: 4,
    nps: 0,
    comment: 'ok',
  });
  t.match(find(ok, 'SurveyAnswered'), { csat: 4, nps: 0, comment: 'ok' });
  const again = sim.do({ type: 'AnswerSurvey', conversation: 'c1', visitor: 'v1', csat: 5 });
  t.match(find(again, 'CommandRejected'), { code: 'survey-answered' });
  t.same(sim.engine.conversation('c1')?.context.survey, {
    csat: 4,
    nps: 0,
    comment: 'ok',
    at: sim.clock.now(),
  });
});

t.test('the survey cannot be answered before the conversation is closed', async (t) => {
  const sim = assignedToAlice();
  const events = sim.do({ type: 'AnswerSurvey', conversation: 'c1', visitor: 'v1', csat: 5 });
  t.match(find(events, 'CommandRejected'), { code: 'not-allowed-in-state' });
});

t.test('a visitor writing in a closed conversation is refused visibly', async (t) => {
  const sim = assignedToAlice();
  sim.do({ type: 'Close', conversation: 'c1', by: { agent: 'alice' } });
  const events = sim.do({
    type: 'SendMessage',
    conversation: 'c1',
    author: visitor(),
    message: { text: 'hi' },
  });
  t.match(find(events, 'MessageRefused'), { reason: 'conversation-closed' });
});

t.test(
  'a blocked visitor’s later messages are refused visibly, in every conversation, and they cannot start one',
  async (t) => {
    const sim = assignedToAlice();
    sim.do({ type: 'StartConversation', conversation: 'c2', visitor: 'v1', rule: 'qualify' });
    const blocked = sim.do({
      type: 'BlockVisitor',
      conversation: 'c1',
      agent: 'alice',
      reason: 'abuse',
    });
    t.match(find(blocked, 'VisitorBlocked'), { visitor: 'v1', agent: 'alice', reason: 'abuse' });
    const before = sim.thread('c1').length;
    const refused = sim.do({
      type: 'SendMessage',
      conversation: 'c1',
      author: visitor(),
      message: { text: 'spam' },
    });
    t.match(find(refused, 'MessageRefused'), { reason: 'visitor-blocked', author: visitor() });
    t.equal(sim.thread('c1').length, before);
    const inBot = sim.do({
      type: 'SendMessage',
      conversation: 'c2',
      author: visitor(),
      message: { text: 'Order' },
    });
    t.match(find(inBot, 'MessageRefused'), { reason: 'visitor-blocked' });
    t.equal(sim.engine.conversation('c2')?.context.bot.asked, 0, 'the bot did not take the answer');
    const start = sim.do({
      type: 'StartConversation',
      conversation: 'c3',
      visitor: 'v1',
      rule: 'direct',
    });
    t.match(find(start, 'CommandRejected'), { code: 'visitor-blocked' });
    t.notOk(sim.engine.conversation('c3'));
    // The agent still replies and closes.
    const reply = sim.do({
      type: 'SendMessage',
      conversation: 'c1',
      author: agentAuthor('alice'),
      message: { text: 'bye' },
    });
    t.ok(find(reply, 'MessageAdded'));
  },
);

t.test('every message has an id, an author, a gapless sequence number and a time', async (t) => {
  const sim = assignedToAlice();
  sim.advance(MINUTE_MS);
  sim.do({
    type: 'SendMessage',
    conversation: 'c1',
    author: agentAuthor('alice'),
    message: { id: 'm-a', text: 'hi' },
  });
  sim.do({
    type: 'SendMessage',
    conversation: 'c1',
    author: { kind: 'system' },
    message: { text: 'note' },
  });
  const thread = sim.thread('c1');
  t.same(
    thread.map((m) => m.seq),
    thread.map((_, i) => i + 1),
  );
  t.equal(new Set(thread.map((m) => m.id)).size, thread.length, 'ids are unique');
  t.same(
    thread.map((m) => m.author.kind),
    ['system', 'visitor', 'agent', 'system'],
  );
  t.equal(thread[2]?.id, 'm-a', 'the client’s id is kept');
  t.equal(thread[2]?.at, sim.clock.now());
});

t.test('a command applied twice changes nothing the second time', async (t) => {
  const sim = assignedToAlice();
  const cmd = { type: 'Snooze', id: 'snooze-1', conversation: 'c1', agent: 'alice' } as const;
  t.ok(find(sim.run(cmd), 'ConversationSnoozed'));
  const state = JSON.stringify(sim.engine.state());
  t.same(sim.run(cmd), []);
  t.equal(JSON.stringify(sim.engine.state()), state);
});

t.test('a message retried with the same client id is added once', async (t) => {
  const sim = assignedToAlice();
  const send = (id: string) =>
    sim.do({
      type: 'SendMessage',
      id,
      conversation: 'c1',
      author: visitor(),
      message: { id: 'client-7', text: 'hello' },
    });
  t.ok(find(send('try-1'), 'MessageAdded'));
  t.same(send('try-2'), [], 'a retry under another command id');
  t.equal(sim.thread('c1').filter((m) => m.id === 'client-7').length, 1);
});

t.test('a command for an unknown conversation is refused with a reason', async (t) => {
  const sim = new Simulation(testSettings());
  const events = sim.do({ type: 'Snooze', conversation: 'nope', agent: 'alice' });
  t.match(find(events, 'CommandRejected'), { code: 'unknown-conversation', conversation: 'nope' });
  const rule = sim.do({
    type: 'StartConversation',
    conversation: 'c1',
    visitor: 'v1',
    rule: 'nope',
  });
  t.match(find(rule, 'CommandRejected'), { code: 'unknown-rule' });
  const again = new Simulation(testSettings());
  again.do({
    type: 'StartConversation',
    id: 's1',
    conversation: 'c1',
    visitor: 'v1',
    rule: 'direct',
  });
  t.same(
    again.do({
      type: 'StartConversation',
      id: 's1',
      conversation: 'c1',
      visitor: 'v1',
      rule: 'direct',
    }),
    [],
  );
  t.match(
    find(
      again.do({ type: 'StartConversation', conversation: 'c1', visitor: 'v9', rule: 'direct' }),
      'CommandRejected',
    ),
    {
      code: 'conversation-exists',
    },
  );
});

t.test(
  'handling time accrues only while assigned and not snoozed; resolution time counts from escalation',
  async (t) => {
    const sim = new Simulation(testSettings());
    sim.do({ type: 'StartConversation', conversation: 'c1', visitor: 'v1', rule: 'direct' });
    sim.advance(10 * MINUTE_MS); // waiting
    sim.do({ type: 'SetAgentPresence', agent: 'alice', presence: 'online' });
    sim.advance(3 * MINUTE_MS); // handled
    sim.do({ type: 'Snooze', conversation: 'c1', agent: 'alice', durationMs: HOUR_MS });
    sim.advance(HOUR_MS); // snoozed, then woken and assigned at once
    sim.advance(4 * MINUTE_MS); // handled
    sim.do({ type: 'Transfer', conversation: 'c1', agent: 'alice', to: { agent: 'bob' } });
    sim.advance(5 * MINUTE_MS); // handled by bob
    const events = sim.do({ type: 'Close', conversation: 'c1', by: { agent: 'bob' } });
    const closed = find(events, 'ConversationClosed');
    t.equal(closed?.handlingMs, 12 * MINUTE_MS);
    t.equal(closed?.resolutionMs, 10 * MINUTE_MS + 3 * MINUTE_MS + HOUR_MS + 9 * MINUTE_MS);
    const ctx = sim.engine.conversation('c1')!.context;
    t.equal(ctx.assignments.length, 3, 'alice, alice after the wake, bob');
    t.equal(ctx.snoozes.length, 1);
    t.equal(ctx.transfers.length, 1);
    t.equal(ctx.times.closedAt, sim.clock.now());
  },
);

t.test(
  'the visitor’s unread count counts agent and bot messages since they last read',
  async (t) => {
    const sim = assignedToAlice();
    const unread = () => sim.engine.conversation('c1')!.context.unread;
    t.equal(unread(), 0, 'the automatic message does not count');
    sim.do({
      type: 'SendMessage',
      conversation: 'c1',
      author: agentAuthor('alice'),
      message: { text: 'one' },
    });
    sim.do({
      type: 'SendMessage',
      conversation: 'c1',
      author: agentAuthor('alice'),
      message: { text: 'two' },
    });
    t.equal(unread(), 2);
    const read = sim.do({ type: 'MarkRead', conversation: 'c1', visitor: 'v1' });
    t.match(find(read, 'MessagesRead'), { upToSeq: 4 });
    t.equal(unread(), 0);
    t.match(
      find(sim.do({ type: 'MarkRead', conversation: 'c1', visitor: 'v2' }), 'CommandRejected'),
      { code: 'not-the-visitor' },
    );
  },
);

t.test('the visitor’s presence is recorded and shown with the assignment', async (t) => {
  const sim = new Simulation(testSettings());
  sim.do({ type: 'StartConversation', conversation: 'c1', visitor: 'v1', rule: 'direct' });
  const left = sim.do({ type: 'SetVisitorPresence', conversation: 'c1', online: false });
  t.match(find(left, 'VisitorPresenceChanged'), { online: false });
  t.same(
    sim.do({ type: 'SetVisitorPresence', conversation: 'c1', online: false }),
    [],
    'no change, no event',
  );
  t.equal(sim.engine.group('tv')?.waiting[0]?.visitorOnline, false);
  const events = sim.do({ type: 'SetAgentPresence', agent: 'alice', presence: 'online' });
  t.match(find(events, 'ConversationAssigned'), { visitorOnline: false });
});

t.test('the engine state restored from JSON goes on exactly as the original', async (t) => {
  const sim = assignedToAlice();
  sim.do({ type: 'Snooze', conversation: 'c1', agent: 'alice', durationMs: HOUR_MS });
  const { Engine } = await import('../../actors/engine.ts');
  const copy = Engine.restore(sim.engine.settings, JSON.parse(JSON.stringify(sim.engine.state())));
  const at = sim.clock.now() + HOUR_MS;
  const cmd = { type: 'SnoozeExpired', id: 'timer-1', conversation: 'c1', until: at } as const;
  t.same(copy.apply(cmd, at), sim.engine.apply(cmd, at));
  t.same(copy.state(), sim.engine.state());
});

t.test(
  'the pages the visitor views are kept, the last 20 only, and refused once closed',
  async (t) => {
    const sim = new Simulation(testSettings());
    sim.do({ type: 'StartConversation', conversation: 'c1', visitor: 'v1', rule: 'direct' });
    const viewed = sim.do({
      type: 'RecordPageView',
      conversation: 'c1',
      url: 'https://shop.example/tv/1',
      title: 'TV 1',
    });
    t.same(types(viewed), ['PageViewed']);
    t.match(find(viewed, 'PageViewed'), {
      visitor: 'v1',
      page: { url: 'https://shop.example/tv/1', title: 'TV 1', at: sim.clock.now() },
    });
    for (let i = 2; i <= 25; i++) {
      sim.clock.advance(1_000);
      sim.do({
        type: 'RecordPageView',
        conversation: 'c1',
        url: `https://shop.example/tv/${i}`,
        title: '',
      });
    }
    const pages = sim.engine.conversation('c1')?.context.pages ?? [];
    t.equal(pages.length, 20, 'bounded');
    t.equal(pages[0]?.url, 'https://shop.example/tv/6', 'the oldest kept');
    t.equal(pages.at(-1)?.url, 'https://shop.example/tv/25', 'the current page last');

    sim.do({ type: 'Close', conversation: 'c1', by: { visitor: 'v1' } });
    const after = sim.do({
      type: 'RecordPageView',
      conversation: 'c1',
      url: 'https://x.example/',
      title: '',
    });
    t.match(find(after, 'CommandRejected'), { code: 'not-allowed-in-state' });
    t.equal(
      sim.engine.conversation('c1')?.context.pages?.length,
      20,
      'the trail stays after the close',
    );
  },
);

t.test('a conversation stored before page views existed records its first one', async (t) => {
  const sim = new Simulation(testSettings());
  sim.do({ type: 'StartConversation', conversation: 'c1', visitor: 'v1', rule: 'direct' });
  const state = JSON.parse(JSON.stringify(sim.engine.state()));
  delete state.conversations.c1.context.pages;
  const { Engine } = await import('../../actors/engine.ts');
  const old = Engine.restore(sim.engine.settings, state);
  const cmd = {
    type: 'RecordPageView',
    id: 'p1',
    conversation: 'c1',
    url: 'https://a/',
    title: 'A',
  } as const;
  t.match(old.apply(cmd, 5), [
    { type: 'PageViewed', page: { url: 'https://a/', title: 'A', at: 5 } },
  ]);
  t.same(old.conversation('c1')?.context.pages, [{ url: 'https://a/', title: 'A', at: 5 }]);
});
