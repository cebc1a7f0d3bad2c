// The agent actor on its own: presence and its announcements, and the slots it never exceeds.
import t from 'tap';
import { initialTransition, type SnapshotFrom, transition } from 'xstate';
import { type AgentMachineEvent, agentMachine } from '../../actors/agent.ts';
import type { AgentEvent, Presence } from '../../actors/events.ts';
import { agent } from '../helpers/settings.ts';

type Snapshot = SnapshotFrom<typeof agentMachine>;

const start = (slots = 2) => initialTransition(agentMachine, agent('alice', ['tv'], slots))[0];

function step(s: Snapshot, event: AgentMachineEvent): [Snapshot, AgentEvent[]] {
  const [after, actions] = transition(agentMachine, s, event);
  // Emitted events come back as executable actions of type xstate.emit (as the engine reads them).
  const emitted = (actions as readonly { type: string; params?: unknown }[])
    .filter((a) => a.type === 'xstate.emit')
    .map((a) => (a.params as { event: AgentEvent }).event);
  return [after, emitted];
}

const presence = (p: Presence, at = 1): AgentMachineEvent => ({
  type: 'presence',
  presence: p,
  at,
});

t.test('an agent starts offline with no conversations', async (t) => {
  const s = start();
  t.equal(s.value, 'offline');
  t.same(s.context.conversations, []);
  t.equal(s.context.lastAssignedAt, null);
});

t.test('every change of presence emits AgentPresenceChanged once', async (t) => {
  const moves: [Presence, Presence][] = [
    ['offline', 'online'],
    ['online', 'away'],
    ['away', 'offline'],
    ['offline', 'away'],
    ['away', 'online'],
    ['online', 'offline'],
  ];
  let s = start();
  let at = 100;
  for (const [from, to] of moves) {
    t.equal(s.value, from);
    const [after, emitted] = step(s, presence(to, at));
    t.equal(after.value, to, `${from} → ${to}`);
    t.same(
      emitted,
      [{ type: 'AgentPresenceChanged', agent: 'alice', presence: to, at }],
      `${from} → ${to} is announced once, at its time`,
    );
    s = after;
    at += 100;
  }
});

t.test('setting the presence an agent already has emits nothing', async (t) => {
  for (const p of ['online', 'away'] as const) {
    const [s] = step(start(), presence(p));
    const [again, emitted] = step(s, presence(p, 2));
    t.equal(again.value, p);
    t.same(emitted, [], `${p} again`);
  }
  const [offline, emitted] = step(start(), presence('offline'));
  t.equal(offline.value, 'offline');
  t.same(emitted, [], 'offline again');
});

t.test('an agent takes conversations up to their slots', async (t) => {
  let [s] = step(start(2), presence('online'));
  [s] = step(s, { type: 'take', conversation: 'c1', at: 10 });
  [s] = step(s, { type: 'take', conversation: 'c2', at: 20 });
  t.same(s.context.conversations, ['c1', 'c2']);
  t.equal(s.context.lastAssignedAt, 20, 'the time of the latest assignment is kept');
});

t.test('a take beyond the slots changes nothing', async (t) => {
  let [s] = step(start(1), presence('online'));
  [s] = step(s, { type: 'take', conversation: 'c1', at: 10 });
  const [after] = step(s, { type: 'take', conversation: 'c2', at: 20 });
  t.same(after.context, s.context);
  t.same(after.context.conversations, ['c1']);
  t.equal(after.context.lastAssignedAt, 10, 'a refused take is not an assignment');
});

t.test('a release frees a slot for the next take', async (t) => {
  let [s] = step(start(1), presence('online'));
  [s] = step(s, { type: 'take', conversation: 'c1', at: 10 });
  [s] = step(s, { type: 'release', conversation: 'c1' });
  t.same(s.context.conversations, []);
  [s] = step(s, { type: 'take', conversation: 'c2', at: 30 });
  t.same(s.context.conversations, ['c2']);
});

t.test('a release takes out only the conversation it names', async (t) => {
  let [s] = step(start(3), presence('online'));
  for (const c of ['c1', 'c2', 'c3']) [s] = step(s, { type: 'take', conversation: c, at: 1 });
  [s] = step(s, { type: 'release', conversation: 'c2' });
  t.same(s.context.conversations, ['c1', 'c3']);
  [s] = step(s, { type: 'release', conversation: 'unknown' });
  t.same(s.context.conversations, ['c1', 'c3']);
});

t.test('presence changes keep the conversations the agent holds', async (t) => {
  let [s] = step(start(2), presence('online'));
  [s] = step(s, { type: 'take', conversation: 'c1', at: 1 });
  [s] = step(s, presence('away', 2));
  [s] = step(s, presence('offline', 3));
  t.same(s.context.conversations, ['c1']);
});
