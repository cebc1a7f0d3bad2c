// What a worker that died mid-commit leaves behind, given to the next owner's engine: lists that
// name conversations in another state, a stored conversation whose agent lost its slot, a seat
// missing or held twice, an agent removed from the configuration. The engine never throws on
// the world it is given: it rebuilds, admits, and `repair()` mends or reports.
import t from 'tap';
import { Engine } from '../../actors/engine.ts';
import type { DomainEvent } from '../../actors/events.ts';
import type { RoutingGroupContext } from '../../actors/routing-group.ts';
import { MemoryWorld } from '../../actors/world.ts';
import { agent, group, testSettings } from '../helpers/settings.ts';

const T0 = 1_000_000;
let n = 0;
const id = () => `cmd-${++n}`;

/** tv (cap 3) with alice (2 slots) online, and conversations started in it. */
function running(world = new MemoryWorld()) {
  const settings = testSettings({
    groups: [group('tv', { cap: 3 }), group('orders', { cap: 2 })],
    agents: [agent('alice', ['tv'], 2), agent('bob', ['orders'], 1)],
  });
  const engine = new Engine(settings, { world, hosts: ['tv'] });
  engine.step({ type: 'SetAgentPresence', id: id(), agent: 'alice', presence: 'online' }, T0);
  const start = (c: string, at = T0) =>
    engine.step(
      { type: 'StartConversation', id: id(), conversation: c, visitor: `v-${c}`, rule: 'direct' },
      at,
    );
  return { settings, world, engine, start };
}

/** The next owner: a new engine on the same world, loaded from what was stored. */
function nextOwner(
  from: ReturnType<typeof running>,
  stored: string[],
  context?: RoutingGroupContext,
) {
  const engine = new Engine(from.settings, { world: from.world, hosts: ['tv'] });
  const records = stored.map((c) => from.engine.record(c)!);
  engine.hydrate('tv', context ?? from.engine.group('tv'), records);
  return engine;
}

const assigned = (events: readonly DomainEvent[]) =>
  events.flatMap((e) => (e.type === 'ConversationAssigned' ? [[e.conversation, e.agent]] : []));

t.test(
  'a stored list naming conversations that are not waiting is rebuilt from the conversations',
  async (t) => {
    const r = running();
    r.start('a', T0);
    r.start('b', T0 + 1); // alice's two slots: a and b
    r.start('c', T0 + 2); // waits
    // A stale group record: it still lists a and b as waiting, and a conversation never loaded.
    const stale: RoutingGroupContext = {
      id: 'tv',
      waiting: ['a', 'b', 'ghost', 'c'].map((conversation, i) => ({
        conversation,
        readyAt: T0 + i,
        woken: false,
        visitorOnline: true,
        reservedFor: null,
      })),
      snoozed: [{ conversation: 'b', until: T0 + 99 }],
      firstResponses: [1_234],
    };
    const next = nextOwner(r, ['a', 'b', 'c'], stale);
    t.same(
      next.group('tv')?.waiting.map((e) => e.conversation),
      ['c'],
      'only c waits',
    );
    t.same(next.group('tv')?.snoozed, [], 'nobody is snoozed');
    t.same(next.group('tv')?.firstResponses, [1_234], 'the measured reply times are kept');
    // Nothing is handed out twice, and a freed slot goes to c.
    const closed = next.step(
      { type: 'Close', id: id(), conversation: 'a', by: { agent: 'alice' } },
      T0 + 10,
    );
    t.same(assigned(closed.events), [['c', 'alice']]);
  },
);

t.test('a listed conversation that is not in memory is dropped, not handed out', async (t) => {
  const r = running();
  r.start('a');
  r.start('b');
  r.start('c', T0 + 5);
  // Restored as a whole engine state whose list names `c`, with `c` itself missing.
  const state = r.engine.state();
  const { c: _gone, ...others } = state.conversations;
  const restored = Engine.restore(
    r.settings,
    { ...state, conversations: others },
    { world: r.world },
  );
  t.doesNotThrow(() => {
    const out = restored.step(
      { type: 'Close', id: id(), conversation: 'a', by: { agent: 'alice' } },
      T0 + 10,
    );
    t.same(assigned(out.events), [], 'nothing assigned for the missing conversation');
  });
  t.same(restored.group('tv')?.waiting, [], 'and it is no longer listed');
});

t.test(
  'a stored conversation whose agent lost its slot is admitted without taking one',
  async (t) => {
    const r = running();
    r.start('a');
    r.start('b');
    // The world lost a's slot (a commit cut short after its release), and c took it.
    r.world.putAgent('alice', {
      ...r.world.agent('alice')!,
      context: { ...r.world.agent('alice')!.context, conversations: ['b', 'c'] },
    } as never);
    const next = new Engine(r.settings, { world: r.world, hosts: ['tv'] });
    next.hydrate('tv', r.engine.group('tv'), []);
    t.doesNotThrow(() =>
      next.admit({ group: 'tv', conversation: 'a', record: r.engine.record('a')! }, T0 + 5),
    );
    t.equal(next.conversation('a')?.state, 'assigned', 'a is as it was stored');
    t.same(
      r.world.agent('alice')?.context.conversations,
      ['b', 'c'],
      'alice is not pushed past her slots',
    );
    const repaired = next.repair(T0 + 6);
    t.same(
      repaired.unmended,
      [{ conversation: 'a', agent: 'alice' }],
      'repair reports what it cannot mend',
    );
    t.same(repaired.retaken, []);
    // The conversation's own next command settles it: closed, it holds nothing.
    const out = next.step(
      { type: 'Close', id: id(), conversation: 'a', by: { agent: 'alice' } },
      T0 + 7,
    );
    t.ok(out.events.some((e) => e.type === 'ConversationClosed'));
    t.same(r.world.agent('alice')?.context.conversations, ['b', 'c']);
  },
);

t.test('a place the world lost is taken again by repair while it is free', async (t) => {
  const r = running();
  r.start('a');
  r.start('w', T0 + 1);
  r.start('x', T0 + 2); // waits: alice has two slots (a, w)
  const alice = r.world.agent('alice')!;
  r.world.putAgent('alice', {
    ...alice,
    context: { ...alice.context, conversations: ['w'] },
  } as never);
  r.world.putSeats('tv', []);
  const next = nextOwner(r, ['a', 'w', 'x']);
  const repaired = next.repair(T0 + 3);
  t.same(
    [...repaired.retaken].sort((p, q) => p.conversation.localeCompare(q.conversation)),
    [
      { conversation: 'a', agent: 'alice' },
      { conversation: 'x', group: 'tv' },
    ],
  );
  t.same([...r.world.agent('alice')!.context.conversations].sort(), ['a', 'w']);
  t.same(r.world.seats('tv'), ['x']);
});

t.test(
  'seats held without their conversation are released, and the list takes others',
  async (t) => {
    const r = running();
    r.engine.step({ type: 'SetAgentPresence', id: id(), agent: 'alice', presence: 'offline' }, T0);
    for (const c of ['a', 'b']) r.start(c);
    r.engine.step({ type: 'Close', id: id(), conversation: 'a', by: { visitor: 'v-a' } }, T0 + 1);
    r.engine.step({ type: 'Close', id: id(), conversation: 'b', by: { visitor: 'v-b' } }, T0 + 1);
    // The releases were cut short: the world still seats both closed conversations, and a third.
    r.world.putSeats('tv', ['a', 'b', 'other']);
    const next = nextOwner(r, ['a', 'b']);
    const parked = next.step(
      { type: 'StartConversation', id: id(), conversation: 'p', visitor: 'vp', rule: 'direct' },
      T0 + 2,
    );
    t.ok(
      parked.events.some((e) => e.type === 'ConversationParked'),
      'the leftovers fill the list',
    );
    const repaired = next.repair(T0 + 3);
    t.same(
      repaired.released,
      [
        { conversation: 'a', group: 'tv' },
        { conversation: 'b', group: 'tv' },
      ],
      'the closed ones let go of their seats; the one not in memory is not judged',
    );
    t.same(r.world.seats('tv'), ['other']);
    const queued = next.step({ type: 'Escalate', id: id(), conversation: 'p' }, T0 + 4);
    t.ok(
      queued.events.some((e) => e.type === 'ConversationQueued'),
      'the parked conversation gets in once its visitor tries again',
    );
  },
);

t.test(
  'a cap raised on a full list lets the next conversation in (the engine rebuilt live)',
  async (t) => {
    const r = running();
    r.engine.step({ type: 'SetAgentPresence', id: id(), agent: 'alice', presence: 'offline' }, T0);
    for (const c of ['a', 'b', 'c']) r.start(c);
    const full = r.start('d');
    t.ok(
      full.events.some((e) => e.type === 'ConversationParked'),
      'cap 3: the fourth is parked',
    );
    const raised = {
      ...r.settings,
      groups: r.settings.groups.map((g) => (g.id === 'tv' ? { ...g, cap: 5 } : g)),
    };
    const live = new Engine(raised, { world: r.world, hosts: ['tv'] });
    live.hydrate(
      'tv',
      r.engine.group('tv'),
      ['a', 'b', 'c', 'd'].map((c) => r.engine.record(c)!),
    );
    let out: ReturnType<Engine['step']> | undefined;
    t.doesNotThrow(() => {
      out = live.step(
        { type: 'StartConversation', id: id(), conversation: 'e', visitor: 'v-e', rule: 'direct' },
        T0 + 1,
      );
    });
    t.ok(
      out?.events.some((e) => e.type === 'ConversationQueued' && e.conversation === 'e'),
      'queued: the raised cap has room',
    );
    t.equal(live.group('tv')?.waiting.length, 4);
  },
);

t.test(
  'a conversation held by an agent no longer configured is closed without a throw',
  async (t) => {
    const r = running();
    r.start('a');
    const without = { ...r.settings, agents: r.settings.agents.filter((a) => a.id !== 'alice') };
    const world = new MemoryWorld(); // the new world has no record of alice
    world.putSeats('tv', []);
    const next = new Engine(without, { world, hosts: ['tv'] });
    next.hydrate('tv', undefined, [r.engine.record('a')!]);
    t.doesNotThrow(() =>
      next.step({ type: 'Close', id: id(), conversation: 'a', by: { visitor: 'v-a' } }, T0 + 1),
    );
    t.equal(next.conversation('a')?.state, 'closed');
  },
);
