// Dispatch through the engine: who gets a waiting conversation and when, the cap of the waiting
// list and its overflow, and what an agent going offline does to the conversations they hold.
import fc from 'fast-check';
import t from 'tap';
import type { DomainEvent, EventType, Presence } from '../../actors/events.ts';
import { MINUTE_MS, type RoutingGroupSettings, type Settings } from '../../actors/settings.ts';
import { type CommandInput, Simulation } from '../../actors/simulation.ts';
import { agent, rule, testSettings } from '../helpers/settings.ts';

// ---------------------------------------------------------------------------------------------
// Helpers

/** testSettings with a direct rule to each group and the groups changed as given. */
function settings(
  over: {
    tv?: Partial<Omit<RoutingGroupSettings, 'id'>>;
    orders?: Partial<Omit<RoutingGroupSettings, 'id'>>;
  } & Partial<Settings> = {},
): Settings {
  const base = testSettings();
  const { tv, orders, ...rest } = over;
  return {
    ...base,
    groups: base.groups.map((g) =>
      g.id === 'tv' ? { ...g, ...tv } : g.id === 'orders' ? { ...g, ...orders } : g,
    ),
    rules: [...base.rules, rule('to-orders', { target: { group: 'orders', byAnswer: [] } })],
    ...rest,
  };
}

function start(
  sim: Simulation,
  conversation: string,
  over: Partial<Extract<CommandInput, { type: 'StartConversation' }>> = {},
): DomainEvent[] {
  return sim.do({
    type: 'StartConversation',
    conversation,
    visitor: `v-${conversation}`,
    rule: 'direct',
    ...over,
  });
}

const setPresence = (sim: Simulation, agentId: string, presence: Presence) =>
  sim.do({ type: 'SetAgentPresence', agent: agentId, presence });

const close = (sim: Simulation, conversation: string, agentId: string) =>
  sim.do({ type: 'Close', conversation, by: { agent: agentId } });

const reply = (sim: Simulation, conversation: string, agentId: string, text = 'Hello!') =>
  sim.do({
    type: 'SendMessage',
    conversation,
    author: { kind: 'agent', id: agentId },
    message: { text },
  });

const visitorWrites = (sim: Simulation, conversation: string, text = 'Anyone?') =>
  sim.do({
    type: 'SendMessage',
    conversation,
    author: { kind: 'visitor', id: `v-${conversation}` },
    message: { text },
  });

const waiting = (sim: Simulation, groupId: string) =>
  sim.engine.waitingList(groupId).map((e) => e.conversation);

const holding = (sim: Simulation, agentId: string) => [
  ...(sim.engine.agent(agentId)?.conversations ?? []),
];

const agentOf = (sim: Simulation, conversation: string) =>
  sim.engine.conversation(conversation)?.context.agent ?? null;

const stateOf = (sim: Simulation, conversation: string) =>
  sim.engine.conversation(conversation)?.path;

const ofType = <T extends EventType>(events: readonly DomainEvent[], type: T) =>
  events.filter((e): e is Extract<DomainEvent, { type: T }> => e.type === type);

const assigned = (events: readonly DomainEvent[]) =>
  ofType(events, 'ConversationAssigned').map((e) => [e.conversation, e.agent]);

// ---------------------------------------------------------------------------------------------
// Who gets a conversation

t.test(
  'a conversation waits while no agent is online and goes to the first one online',
  async (t) => {
    const sim = new Simulation(settings());
    const started = start(sim, 'c1');
    t.same(
      ofType(started, 'ConversationQueued').map((e) => [e.group, e.reason]),
      [['tv', 'escalated']],
    );
    t.same(assigned(started), []);
    t.same(waiting(sim, 'tv'), ['c1']);
    t.equal(stateOf(sim, 'c1'), 'queued');

    sim.advance(7 * MINUTE_MS);
    const events = setPresence(sim, 'alice', 'online');
    t.same(
      events.map((e) => e.type),
      ['AgentPresenceChanged', 'ConversationAssigned'],
      'handed out in the same step as the agent comes online',
    );
    const [a] = ofType(events, 'ConversationAssigned');
    t.equal(a?.agent, 'alice');
    t.equal(a?.waitedMs, 7 * MINUTE_MS);
    t.same(waiting(sim, 'tv'), []);
    t.same(holding(sim, 'alice'), ['c1']);
    t.equal(stateOf(sim, 'c1'), 'assigned');
  },
);

t.test('a conversation that starts while an agent is online goes to them at once', async (t) => {
  const sim = new Simulation(settings());
  setPresence(sim, 'alice', 'online');
  const events = start(sim, 'c1');
  t.same(assigned(events), [['c1', 'alice']]);
  t.equal(ofType(events, 'ConversationAssigned')[0]?.waitedMs, 0);
});

t.test('away and offline agents receive nothing', async (t) => {
  const sim = new Simulation(settings());
  setPresence(sim, 'alice', 'away');
  setPresence(sim, 'bob', 'online');
  setPresence(sim, 'bob', 'offline');
  const events = [...start(sim, 'c1'), ...start(sim, 'c2')];
  t.same(assigned(events), []);
  t.same(waiting(sim, 'tv'), ['c1', 'c2']);
  t.same(holding(sim, 'alice'), []);
  t.same(holding(sim, 'bob'), []);

  const back = setPresence(sim, 'alice', 'online');
  t.same(assigned(back), [
    ['c1', 'alice'],
    ['c2', 'alice'],
  ]);
  t.same(holding(sim, 'bob'), []);
});

t.test('an agent only receives conversations of their own groups', async (t) => {
  const sim = new Simulation(settings());
  setPresence(sim, 'carol', 'online'); // orders only
  start(sim, 'c-tv');
  t.same(holding(sim, 'carol'), []);
  t.same(waiting(sim, 'tv'), ['c-tv']);
  start(sim, 'c-orders', { rule: 'to-orders' });
  t.same(holding(sim, 'carol'), ['c-orders']);
});

t.test(
  'the head of the waiting list goes to the online agent with the fewest conversations',
  async (t) => {
    const sim = new Simulation(settings());
    setPresence(sim, 'alice', 'online');
    start(sim, 'c1'); // alice, the only one online
    sim.advance(MINUTE_MS);
    setPresence(sim, 'bob', 'online');
    start(sim, 'c2');
    t.equal(agentOf(sim, 'c2'), 'bob');
    close(sim, 'c2', 'bob');
    sim.advance(MINUTE_MS);
    // bob holds 0 and was assigned last; alice holds 1 and has been idle longer, and sorts first.
    t.same(assigned(start(sim, 'c3')), [['c3', 'bob']]);
  },
);

t.test('between agents as loaded, the one whose last assignment is oldest gets it', async (t) => {
  const sim = new Simulation(settings());
  setPresence(sim, 'bob', 'online');
  start(sim, 'c1'); // bob
  sim.advance(MINUTE_MS);
  setPresence(sim, 'alice', 'online');
  start(sim, 'c2'); // alice, who holds fewer
  t.equal(agentOf(sim, 'c2'), 'alice');
  sim.advance(MINUTE_MS);
  // One each; bob's last assignment is the older, though alice's id sorts first.
  t.same(assigned(start(sim, 'c3')), [['c3', 'bob']]);
  sim.advance(MINUTE_MS);
  t.same(assigned(start(sim, 'c4')), [['c4', 'alice']]);
});

t.test('an agent never assigned goes before one assigned long ago', async (t) => {
  const sim = new Simulation(settings());
  setPresence(sim, 'alice', 'online');
  start(sim, 'c1');
  close(sim, 'c1', 'alice');
  sim.advance(5 * 60 * MINUTE_MS);
  setPresence(sim, 'bob', 'online');
  t.same(assigned(start(sim, 'c2')), [['c2', 'bob']]);
});

t.test('an agent of two groups takes the longest-waiting head across the groups', async (t) => {
  const sim = new Simulation(settings({ agents: [agent('bob', ['tv', 'orders'], 1)] }));
  start(sim, 'orders-1', { rule: 'to-orders' });
  sim.advance(2 * MINUTE_MS);
  start(sim, 'tv-1');
  sim.advance(2 * MINUTE_MS);
  start(sim, 'orders-2', { rule: 'to-orders' });
  sim.advance(MINUTE_MS);

  // tv comes first in the settings, but orders-1 has waited longest.
  t.same(assigned(setPresence(sim, 'bob', 'online')), [['orders-1', 'bob']]);
  // Then tv-1 has waited longer than orders-2, though orders-2 heads the group bob just served.
  t.same(assigned(close(sim, 'orders-1', 'bob')), [['tv-1', 'bob']]);
  t.same(assigned(close(sim, 'tv-1', 'bob')), [['orders-2', 'bob']]);
});

// ---------------------------------------------------------------------------------------------
// Slots

t.test('nobody holds more conversations than their slots; the rest wait', async (t) => {
  const sim = new Simulation(settings({ tv: { cap: 10 }, orders: { cap: 10 } }));
  for (const a of ['alice', 'bob', 'carol']) setPresence(sim, a, 'online');
  for (let i = 1; i <= 6; i++) {
    start(sim, `tv-${i}`);
    start(sim, `orders-${i}`, { rule: 'to-orders' });
  }
  t.equal(holding(sim, 'alice').length, 2);
  t.equal(holding(sim, 'bob').length, 2);
  t.equal(holding(sim, 'carol').length, 1);
  t.equal(waiting(sim, 'tv').length + waiting(sim, 'orders').length, 12 - 5);
  for (const a of ['alice', 'bob', 'carol']) {
    const info = sim.engine.agent(a)!;
    t.ok(info.conversations.length <= info.slots, `${a} within slots`);
  }
});

t.test('closing a conversation pulls the next waiting one into the freed slot', async (t) => {
  const sim = new Simulation(settings());
  setPresence(sim, 'alice', 'online');
  start(sim, 'c1');
  start(sim, 'c2');
  sim.advance(1_000);
  start(sim, 'c3');
  sim.advance(1_000);
  start(sim, 'c4');
  t.same(holding(sim, 'alice'), ['c1', 'c2']);
  t.same(waiting(sim, 'tv'), ['c3', 'c4']);
  const events = close(sim, 'c1', 'alice');
  t.same(assigned(events), [['c3', 'alice']]);
  t.same(holding(sim, 'alice'), ['c2', 'c3']);
  t.same(waiting(sim, 'tv'), ['c4']);
});

t.test('snoozing a conversation pulls the next waiting one into the freed slot', async (t) => {
  const sim = new Simulation(settings());
  setPresence(sim, 'alice', 'online');
  start(sim, 'c1');
  start(sim, 'c2');
  start(sim, 'c3');
  const events = sim.do({ type: 'Snooze', conversation: 'c1', agent: 'alice' });
  t.same(
    events.map((e) => e.type),
    ['ConversationSnoozed', 'ConversationAssigned'],
  );
  t.same(assigned(events), [['c3', 'alice']]);
  t.same(holding(sim, 'alice'), ['c2', 'c3']);
  t.same(
    sim.engine.group('tv')?.snoozed.map((s) => s.conversation),
    ['c1'],
  );
});

t.test(
  'transferring a conversation away pulls the next waiting one into the freed slot',
  async (t) => {
    const sim = new Simulation(settings());
    setPresence(sim, 'alice', 'online');
    start(sim, 'c1');
    start(sim, 'c2');
    start(sim, 'c3');
    const toGroup = sim.do({
      type: 'Transfer',
      conversation: 'c1',
      agent: 'alice',
      to: { group: 'orders' },
    });
    t.same(assigned(toGroup), [['c3', 'alice']]);
    t.same(waiting(sim, 'orders'), ['c1'], 'nobody of orders is online');

    start(sim, 'c4');
    const toAgent = sim.do({
      type: 'Transfer',
      conversation: 'c2',
      agent: 'alice',
      to: { agent: 'bob' },
    });
    t.equal(agentOf(sim, 'c2'), 'bob', 'bob had a free slot, so he has it at once');
    t.same(assigned(toAgent), [
      ['c2', 'bob'],
      ['c4', 'alice'],
    ]);
    t.same(holding(sim, 'alice'), ['c3', 'c4']);
  },
);

// ---------------------------------------------------------------------------------------------
// Order among waiting conversations

t.test('a woken conversation goes before others of the same age', async (t) => {
  const sim = new Simulation(
    settings({ tv: { orderingWindowMs: 10 * MINUTE_MS }, agents: [agent('alice', ['tv'], 1)] }),
  );
  setPresence(sim, 'alice', 'online');
  start(sim, 'snoozy');
  sim.do({ type: 'Snooze', conversation: 'snoozy', agent: 'alice', durationMs: 5 * MINUTE_MS });
  start(sim, 'busy'); // takes alice's slot
  sim.advance(MINUTE_MS);
  start(sim, 'patient');
  const woken = sim.advance(4 * MINUTE_MS);
  t.same(
    ofType(woken, 'ConversationQueued').map((e) => [e.conversation, e.reason]),
    [['snoozy', 'woken']],
  );
  t.same(waiting(sim, 'tv'), ['snoozy', 'patient'], 'woken first though it became ready later');
  t.same(assigned(close(sim, 'busy', 'alice')), [['snoozy', 'alice']]);
});

t.test('a woken conversation does not pass one of an older window', async (t) => {
  const sim = new Simulation(
    settings({ tv: { orderingWindowMs: 10 * MINUTE_MS }, agents: [agent('alice', ['tv'], 1)] }),
  );
  setPresence(sim, 'alice', 'online');
  start(sim, 'snoozy');
  sim.do({ type: 'Snooze', conversation: 'snoozy', agent: 'alice', durationMs: 30 * MINUTE_MS });
  start(sim, 'busy');
  sim.advance(MINUTE_MS);
  start(sim, 'patient');
  sim.advance(29 * MINUTE_MS);
  t.equal(stateOf(sim, 'snoozy'), 'queued');
  t.same(waiting(sim, 'tv'), ['patient', 'snoozy']);
  t.same(assigned(close(sim, 'busy', 'alice')), [['patient', 'alice']]);
});

t.test('an online visitor goes before offline visitors of the same age', async (t) => {
  const sim = new Simulation(
    settings({ tv: { orderingWindowMs: 10 * MINUTE_MS }, agents: [agent('alice', ['tv'], 1)] }),
  );
  setPresence(sim, 'alice', 'online');
  start(sim, 'busy');
  sim.advance(MINUTE_MS);
  start(sim, 'gone', { visitorOnline: false });
  sim.advance(MINUTE_MS);
  start(sim, 'here', { visitorOnline: true });
  sim.advance(10 * MINUTE_MS);
  start(sim, 'next-window', { visitorOnline: true });
  t.same(waiting(sim, 'tv'), ['here', 'gone', 'next-window']);

  sim.do({ type: 'SetVisitorPresence', conversation: 'here', online: false });
  t.same(waiting(sim, 'tv'), ['gone', 'here', 'next-window'], 'both offline: the earliest');
  sim.do({ type: 'SetVisitorPresence', conversation: 'here', online: true });
  t.same(assigned(close(sim, 'busy', 'alice')), [['here', 'alice']]);
});

// ---------------------------------------------------------------------------------------------
// What the waiting visitor sees

t.test(
  'the position shown to a waiting visitor moves up as conversations are handed out',
  async (t) => {
    const sim = new Simulation(settings({ tv: { cap: 10 } }));
    for (const c of ['c1', 'c2', 'c3', 'c4']) {
      start(sim, c);
      sim.advance(1_000);
    }
    t.same(
      ['c1', 'c2', 'c3', 'c4'].map((c) => sim.engine.waitingInfo(c)?.position),
      [1, 2, 3, 4],
    );
    setPresence(sim, 'alice', 'online'); // takes c1 and c2
    t.equal(sim.engine.waitingInfo('c1')?.position, null, 'handed out: no longer in line');
    t.equal(sim.engine.waitingInfo('c3')?.position, 1);
    t.equal(sim.engine.waitingInfo('c4')?.position, 2);
    setPresence(sim, 'bob', 'online'); // takes c3 and c4
    t.equal(sim.engine.waitingInfo('c4')?.position, null);
    start(sim, 'c5');
    t.equal(sim.engine.waitingInfo('c5')?.position, 1);
  },
);

t.test(
  'the typical reply time shown is the group figure until first replies are measured',
  async (t) => {
    const sim = new Simulation(settings({ tv: { cap: 10, typicalReplyMs: 3 * 60 * MINUTE_MS } }));
    start(sim, 'c1');
    start(sim, 'c2');
    start(sim, 'c3');
    t.equal(sim.engine.waitingInfo('c3')?.typicalReplyMs, 3 * 60 * MINUTE_MS);
    sim.advance(10 * MINUTE_MS);
    setPresence(sim, 'alice', 'online');
    t.equal(sim.engine.waitingInfo('c3')?.typicalReplyMs, 3 * 60 * MINUTE_MS, 'no reply yet');

    reply(sim, 'c1', 'alice'); // 10 min after it was escalated
    t.equal(sim.engine.waitingInfo('c3')?.typicalReplyMs, 10 * MINUTE_MS);
    reply(sim, 'c1', 'alice', 'a second reply is not a first response');
    t.same(sim.engine.group('tv')?.firstResponses, [10 * MINUTE_MS]);

    sim.advance(20 * MINUTE_MS);
    reply(sim, 'c2', 'alice'); // 30 min
    t.equal(sim.engine.waitingInfo('c3')?.typicalReplyMs, 20 * MINUTE_MS, 'median of 10 and 30');
    t.equal(sim.engine.waitingInfo('c3')?.position, 1);
  },
);

t.test('the typical reply time of one group is not moved by replies in another', async (t) => {
  const sim = new Simulation(settings({ orders: { typicalReplyMs: 2 * 60 * MINUTE_MS } }));
  setPresence(sim, 'alice', 'online');
  start(sim, 'tv-1');
  sim.advance(5 * MINUTE_MS);
  reply(sim, 'tv-1', 'alice');
  start(sim, 'orders-1', { rule: 'to-orders' });
  t.equal(sim.engine.waitingInfo('orders-1')?.typicalReplyMs, 2 * 60 * MINUTE_MS);
  t.equal(sim.engine.waitingInfo('tv-1')?.typicalReplyMs, 5 * MINUTE_MS);
});

// ---------------------------------------------------------------------------------------------
// Transfers to a busy agent

t.test(
  'a conversation transferred to an agent with no free slot waits reserved for them',
  async (t) => {
    const sim = new Simulation(settings({ tv: { cap: 5 } }));
    setPresence(sim, 'bob', 'online');
    start(sim, 'b1');
    start(sim, 'b2');
    setPresence(sim, 'alice', 'online');
    start(sim, 'a1');
    t.same(holding(sim, 'bob'), ['b1', 'b2']);
    t.same(holding(sim, 'alice'), ['a1']);

    const events = sim.do({
      type: 'Transfer',
      conversation: 'a1',
      agent: 'alice',
      to: { agent: 'bob' },
    });
    t.same(
      ofType(events, 'ConversationQueued').map((e) => [e.group, e.reason, e.reservedFor]),
      [['tv', 'transferred', 'bob']],
    );
    t.same(assigned(events), [], 'alice has a free slot, but it is not hers any more');
    t.same(waiting(sim, 'tv'), ['a1']);
    t.same(holding(sim, 'alice'), []);

    sim.advance(MINUTE_MS);
    start(sim, 'c-new');
    t.equal(agentOf(sim, 'c-new'), 'alice', 'a later conversation goes past the reserved one');
    t.same(waiting(sim, 'tv'), ['a1']);

    close(sim, 'c-new', 'alice');
    t.same(waiting(sim, 'tv'), ['a1'], 'a slot freed by another agent does not take it');

    const freed = close(sim, 'b1', 'bob');
    t.same(assigned(freed), [['a1', 'bob']]);
    t.same(holding(sim, 'bob'), ['b2', 'a1']);
    t.equal(sim.engine.conversation('a1')?.context.reservedFor, null);
  },
);

// ---------------------------------------------------------------------------------------------
// Agents going offline

t.test("under policy 'keep' an agent going offline keeps their conversations", async (t) => {
  const sim = new Simulation(settings({ tv: { offlinePolicy: 'keep' } }));
  setPresence(sim, 'alice', 'online');
  start(sim, 'c1');
  start(sim, 'c2');
  setPresence(sim, 'bob', 'online');
  const events = setPresence(sim, 'alice', 'offline');
  t.same(
    events.map((e) => e.type),
    ['AgentPresenceChanged'],
  );
  t.same(holding(sim, 'alice'), ['c1', 'c2']);
  t.same(holding(sim, 'bob'), []);
  t.equal(stateOf(sim, 'c1'), 'assigned');
});

t.test("under policy 'return' an agent going offline returns their conversations", async (t) => {
  const sim = new Simulation(settings({ tv: { offlinePolicy: 'return' } }));
  setPresence(sim, 'alice', 'online');
  start(sim, 'c1');
  start(sim, 'c2');
  const events = setPresence(sim, 'alice', 'offline');
  t.same(
    ofType(events, 'ConversationReturned').map((e) => [e.conversation, e.agent, e.reason]),
    [
      ['c1', 'alice', 'agent-offline'],
      ['c2', 'alice', 'agent-offline'],
    ],
  );
  t.same(
    ofType(events, 'ConversationQueued').map((e) => [e.conversation, e.reason]),
    [
      ['c1', 'returned'],
      ['c2', 'returned'],
    ],
  );
  t.same(holding(sim, 'alice'), []);
  t.same(waiting(sim, 'tv'), ['c1', 'c2']);

  t.same(
    assigned(setPresence(sim, 'bob', 'online')),
    [
      ['c1', 'bob'],
      ['c2', 'bob'],
    ],
    'the next online agent picks them up',
  );
});

t.test('returned conversations go straight to another online agent with free slots', async (t) => {
  const sim = new Simulation(settings({ tv: { offlinePolicy: 'return' } }));
  setPresence(sim, 'alice', 'online');
  start(sim, 'c1');
  setPresence(sim, 'bob', 'online');
  const events = setPresence(sim, 'alice', 'offline');
  t.same(assigned(events), [['c1', 'bob']]);
});

t.test(
  "under policy 'return' conversations that find no free seat stay with the agent",
  async (t) => {
    const sim = new Simulation(settings({ tv: { offlinePolicy: 'return' } })); // tv cap 3
    setPresence(sim, 'alice', 'online');
    start(sim, 'c1');
    start(sim, 'c2');
    start(sim, 'c3');
    start(sim, 'c4');
    t.same(waiting(sim, 'tv'), ['c3', 'c4']);
    const events = setPresence(sim, 'alice', 'offline');
    t.same(
      ofType(events, 'ConversationReturned').map((e) => e.conversation),
      ['c1'],
    );
    t.same(holding(sim, 'alice'), ['c2']);
    t.equal(stateOf(sim, 'c2'), 'assigned');
    t.equal(sim.engine.group('tv')?.waiting.length, 3, 'the cap holds');
  },
);

t.test('the policy of each conversation’s own group applies', async (t) => {
  const sim = new Simulation(
    settings({ tv: { offlinePolicy: 'return' }, orders: { offlinePolicy: 'keep' } }),
  );
  setPresence(sim, 'bob', 'online');
  start(sim, 'tv-1');
  start(sim, 'orders-1', { rule: 'to-orders' });
  setPresence(sim, 'bob', 'offline');
  t.same(holding(sim, 'bob'), ['orders-1']);
  t.same(waiting(sim, 'tv'), ['tv-1']);
});

t.test(
  'under policy return, a conversation reserved for an agent waits while they are offline and goes to them when back',
  async (t) => {
    const sim = new Simulation(settings({ tv: { offlinePolicy: 'return', cap: 5 } }));
    setPresence(sim, 'bob', 'online');
    start(sim, 'b1');
    start(sim, 'b2');
    setPresence(sim, 'alice', 'online');
    start(sim, 'a1');
    sim.do({ type: 'Transfer', conversation: 'a1', agent: 'alice', to: { agent: 'bob' } });
    t.same(waiting(sim, 'tv'), ['a1']);
    const events = setPresence(sim, 'bob', 'offline');
    t.same(
      ofType(events, 'ConversationAssigned').filter((e) => e.agent === 'bob'),
      [],
      'bob is offline: he receives nothing',
    );
    t.same(holding(sim, 'bob'), []);
    t.same(waiting(sim, 'tv'), ['a1'], 'still reserved for bob');
    setPresence(sim, 'bob', 'online');
    t.same(holding(sim, 'bob'), ['a1']);
  },
);

// ---------------------------------------------------------------------------------------------
// The cap and its overflow

t.test('the waiting list never exceeds its cap', async (t) => {
  const sim = new Simulation(settings()); // tv cap 3, overflow bot
  const events: DomainEvent[] = [];
  for (let i = 1; i <= 6; i++) events.push(...start(sim, `c${i}`));
  t.same(waiting(sim, 'tv'), ['c1', 'c2', 'c3']);
  t.same(
    ofType(events, 'ConversationParked').map((e) => e.conversation),
    ['c4', 'c5', 'c6'],
  );
  t.equal(sim.engine.group('tv')?.waiting.length, 3);
});

t.test('snoozed conversations hold seats of the cap', async (t) => {
  const sim = new Simulation(settings({ agents: [agent('alice', ['tv'], 3)] })); // tv cap 3
  setPresence(sim, 'alice', 'online');
  start(sim, 'c1');
  start(sim, 'c2');
  start(sim, 'c3');
  sim.do({ type: 'Snooze', conversation: 'c1', agent: 'alice' });
  sim.do({ type: 'Snooze', conversation: 'c2', agent: 'alice' });
  start(sim, 'c4'); // to alice's free slot: no seat needed
  setPresence(sim, 'alice', 'away');
  start(sim, 'c5'); // the third seat
  t.same(waiting(sim, 'tv'), ['c5']);
  const parked = start(sim, 'c6');
  t.same(
    ofType(parked, 'ConversationParked').map((e) => e.conversation),
    ['c6'],
    'two snoozed and one waiting fill a cap of 3',
  );
  const refused = sim.do({ type: 'Snooze', conversation: 'c3', agent: 'alice' });
  t.same(
    ofType(refused, 'CommandRejected').map((e) => e.code),
    ['waiting-list-full'],
  );
  t.equal(stateOf(sim, 'c3'), 'assigned');
});

t.test("an escalation into a full group follows overflow { kind: 'group' }", async (t) => {
  const sim = new Simulation(settings({ tv: { overflow: { kind: 'group', group: 'orders' } } }));
  for (const c of ['c1', 'c2', 'c3']) start(sim, c);
  const events = start(sim, 'c4');
  t.same(
    ofType(events, 'ConversationQueued').map((e) => [e.group, e.reason]),
    [['orders', 'overflowed']],
  );
  t.same(ofType(events, 'ConversationParked'), []);
  t.same(waiting(sim, 'orders'), ['c4']);
  t.equal(sim.engine.conversation('c4')?.context.group, 'orders');
  t.equal(sim.engine.group('tv')?.waiting.length, 3);

  setPresence(sim, 'carol', 'online'); // orders only
  t.equal(agentOf(sim, 'c4'), 'carol', 'an agent of the overflow group serves it');
});

t.test('an overflow group that is full too follows its own policy', async (t) => {
  const sim = new Simulation(
    settings({
      tv: { overflow: { kind: 'group', group: 'orders' }, fullMessage: 'TV is full.' },
      orders: { overflow: { kind: 'bot' }, fullMessage: 'Orders are full.' },
    }),
  );
  for (let i = 1; i <= 5; i++) start(sim, `c${i}`); // 3 in tv, 2 overflowed to orders
  t.same(waiting(sim, 'orders'), ['c4', 'c5']);
  const events = start(sim, 'c6');
  t.same(ofType(events, 'ConversationQueued'), []);
  t.same(
    ofType(events, 'ConversationParked').map((e) => e.group),
    ['tv'],
    'parked at the group its rule targets, where it tries first again',
  );
  t.equal(stateOf(sim, 'c6'), 'bot.parked');
  t.equal(sim.thread('c6').at(-1)?.text, 'TV is full.');
  t.equal(waiting(sim, 'tv').length + waiting(sim, 'orders').length, 5);
});

t.test('overflow groups that point at each other park rather than loop', async (t) => {
  const sim = new Simulation(
    settings({
      tv: { overflow: { kind: 'group', group: 'orders' } },
      orders: { overflow: { kind: 'group', group: 'tv' } },
    }),
  );
  for (let i = 1; i <= 6; i++) start(sim, `c${i}`);
  t.equal(stateOf(sim, 'c6'), 'bot.parked');
  t.equal(waiting(sim, 'tv').length + waiting(sim, 'orders').length, 5);
});

t.test(
  "an escalation into a full group with overflow { kind: 'bot' } is parked, not dropped",
  async (t) => {
    const sim = new Simulation(
      settings({ tv: { fullMessage: 'We are all busy, come back later.' } }),
    );
    for (const c of ['c1', 'c2', 'c3']) start(sim, c);
    const events = start(sim, 'c4', { message: { text: 'My TV is broken' } });
    const [parked] = ofType(events, 'ConversationParked');
    t.match(parked, { conversation: 'c4', group: 'tv', reason: 'waiting-list-full' });
    t.equal(stateOf(sim, 'c4'), 'bot.parked');
    t.ok(sim.engine.conversation('c4'), 'the conversation is kept');
    const thread = sim.thread('c4');
    t.same(
      thread.map((m) => [m.author.kind, m.text]),
      [
        ['system', sim.engine.settings.groups[0]!.automaticMessage],
        ['visitor', 'My TV is broken'],
        ['bot', 'We are all busy, come back later.'],
      ],
    );
    t.equal(thread[2]?.note, 'full');
    t.same(waiting(sim, 'tv'), ['c1', 'c2', 'c3']);
  },
);

t.test('a bot escalation into a full group parks with that group’s full message', async (t) => {
  const sim = new Simulation(settings({ orders: { fullMessage: 'Orders desk is full.' } }));
  start(sim, 'o1', { rule: 'to-orders' });
  start(sim, 'o2', { rule: 'to-orders' });
  start(sim, 'q', { rule: 'qualify' });
  visitorWrites(sim, 'q', ' order ');
  const events = visitorWrites(sim, 'q', 'q@example.com');
  t.same(
    ofType(events, 'ConversationParked').map((e) => e.group),
    ['orders'],
  );
  t.equal(sim.thread('q').at(-1)?.text, 'Orders desk is full.');
});

t.test(
  'a parked conversation enters the waiting list when the visitor writes after a seat freed',
  async (t) => {
    const sim = new Simulation(settings());
    for (const c of ['c1', 'c2', 'c3', 'late']) start(sim, c);
    t.equal(stateOf(sim, 'late'), 'bot.parked');

    const stillFull = visitorWrites(sim, 'late', 'Hello?');
    t.equal(ofType(stillFull, 'ConversationParked').length, 1, 'still full: parked again');
    t.equal(stateOf(sim, 'late'), 'bot.parked');

    setPresence(sim, 'alice', 'online'); // takes c1 and c2: two seats free
    t.equal(stateOf(sim, 'late'), 'bot.parked', 'a freed seat alone does not move it');
    sim.advance(MINUTE_MS);
    const events = visitorWrites(sim, 'late', 'Still there?');
    t.same(
      ofType(events, 'ConversationQueued').map((e) => [e.group, e.reason]),
      [['tv', 'escalated']],
    );
    t.same(waiting(sim, 'tv'), ['c3', 'late']);
    t.equal(sim.engine.waitingInfo('late')?.position, 2);
    const thread = sim.thread('late');
    t.equal(thread.at(-1)?.text, 'Still there?', 'what the visitor wrote is kept');
  },
);

// ---------------------------------------------------------------------------------------------
// Invariants under any sequence of commands

/** The first rule of dispatch the engine's state breaks, in words; null when all hold. */
function brokenRule(sim: Simulation, s: Settings): string | null {
  const state = sim.engine.state();
  for (const g of s.groups) {
    const ctx = state.groups[g.id]!;
    if (ctx.waiting.length + ctx.snoozed.length > g.cap) return `${g.id} is over its cap`;
    for (const e of ctx.waiting) {
      const c = sim.engine.conversation(e.conversation)!;
      if (c.state !== 'queued' || c.context.group !== g.id) {
        return `${e.conversation} waits in ${g.id} but is ${c.path} in ${c.context.group}`;
      }
      if (e.visitorOnline !== c.context.visitorOnline) {
        return `${e.conversation}'s visitor presence is stale in ${g.id}`;
      }
    }
  }
  for (const a of s.agents) {
    const held = state.agents[a.id]!.context.conversations;
    if (held.length > a.slots) return `${a.id} holds more than their slots`;
    for (const c of held) {
      if (agentOf(sim, c) !== a.id) return `${a.id} holds ${c}, which is not assigned to them`;
    }
  }
  for (const id of sim.engine.conversationIds()) {
    const c = sim.engine.conversation(id)!;
    const seats = s.groups.filter((g) =>
      [...state.groups[g.id]!.waiting, ...state.groups[g.id]!.snoozed].some(
        (e) => e.conversation === id,
      ),
    ).length;
    const expected = c.state === 'queued' || c.state === 'snoozed' ? 1 : 0;
    if (seats !== expected) return `${id} (${c.path}) holds ${seats} seats`;
    const holders = s.agents.filter((a) =>
      state.agents[a.id]!.context.conversations.includes(id),
    ).length;
    if (holders !== (c.state === 'assigned' ? 1 : 0))
      return `${id} (${c.path}) has ${holders} agents`;
  }
  const free = (id: string) => {
    const a = state.agents[id]!;
    return a.context.conversations.length < a.context.slots;
  };
  for (const g of s.groups) {
    for (const e of state.groups[g.id]!.waiting) {
      const couldTake =
        e.reservedFor === null
          ? s.agents.some(
              (a) =>
                a.groups.includes(g.id) && state.agents[a.id]!.presence === 'online' && free(a.id),
            )
          : free(e.reservedFor);
      if (couldTake) return `${e.conversation} waits in ${g.id} though an agent could take it`;
    }
  }
  return null;
}

t.test(
  'under any commands, caps and slots hold and no free agent leaves a conversation waiting',
  async (t) => {
    const base = settings({ tv: { offlinePolicy: 'return' } });
    const convIds = ['c1', 'c2', 'c3', 'c4', 'c5', 'c6', 'c7', 'c8'];
    const agentIds = ['alice', 'bob', 'carol'];
    const command = fc.oneof(
      fc.record({
        kind: fc.constant('start' as const),
        c: fc.constantFrom(...convIds),
        rule: fc.constantFrom('direct', 'to-orders', 'qualify'),
        online: fc.boolean(),
      }),
      fc.record({
        kind: fc.constant('presence' as const),
        a: fc.constantFrom(...agentIds),
        p: fc.constantFrom<Presence>('online', 'away', 'offline'),
      }),
      fc.record({ kind: fc.constant('close' as const), c: fc.constantFrom(...convIds) }),
      fc.record({ kind: fc.constant('snooze' as const), c: fc.constantFrom(...convIds) }),
      fc.record({
        kind: fc.constant('write' as const),
        c: fc.constantFrom(...convIds),
        text: fc.constantFrom('Order', 'Product', 'me@example.com'),
      }),
      fc.record({
        kind: fc.constant('visitor' as const),
        c: fc.constantFrom(...convIds),
        online: fc.boolean(),
      }),
      fc.record({
        kind: fc.constant('transfer' as const),
        c: fc.constantFrom(...convIds),
        to: fc.constantFrom(...agentIds, 'tv', 'orders'),
      }),
      fc.record({
        kind: fc.constant('advance' as const),
        ms: fc.integer({ min: 0, max: 6 * 3_600_000 }),
      }),
    );

    const run = fc.check(
      fc.property(fc.array(command, { maxLength: 40 }), (commands) => {
        const sim = new Simulation(base);
        const broken: string[] = [];
        for (const cmd of commands) {
          const holder = (c: string) => agentOf(sim, c) ?? 'alice';
          switch (cmd.kind) {
            case 'start':
              start(sim, cmd.c, { rule: cmd.rule, visitorOnline: cmd.online });
              break;
            case 'presence':
              setPresence(sim, cmd.a, cmd.p);
              break;
            case 'close':
              close(sim, cmd.c, holder(cmd.c));
              break;
            case 'snooze':
              sim.do({ type: 'Snooze', conversation: cmd.c, agent: holder(cmd.c) });
              break;
            case 'write':
              visitorWrites(sim, cmd.c, cmd.text);
              break;
            case 'visitor':
              sim.do({ type: 'SetVisitorPresence', conversation: cmd.c, online: cmd.online });
              break;
            case 'transfer':
              sim.do({
                type: 'Transfer',
                conversation: cmd.c,
                agent: holder(cmd.c),
                to: agentIds.includes(cmd.to) ? { agent: cmd.to } : { group: cmd.to },
              });
              break;
            case 'advance':
              sim.advance(cmd.ms);
              break;
          }
          const rule = brokenRule(sim, base);
          if (rule !== null) broken.push(`after ${JSON.stringify(cmd)}: ${rule}`);
        }
        if (broken.length > 0) throw new Error(broken.join('\n'));
      }),
      { numRuns: Number(process.env.PARLEY_PROPERTY_RUNS ?? 300) },
    );
    t.notOk(run.failed, fc.defaultReportMessage(run) ?? 'every rule holds after every command');
  },
);
