// The engine's story end to end through NATS subjects, as an integrator drives it, with a real
// nats-server and a real worker.
import t from 'tap';
import { runtimeSettings, startRuntime } from '../helpers/runtime.ts';

const is =
  (
    type: string,
    conversation?: string,
    more: (e: Record<string, unknown>) => boolean = () => true,
  ) =>
  (e: { type: string }) =>
    e.type === type &&
    (conversation === undefined ||
      (e as { conversation?: string }).conversation === conversation) &&
    more(e as unknown as Record<string, unknown>);

t.test(
  'an integrator runs a conversation through NATS: start, assign, reply, snooze, wake, close',
  async (t) => {
    const { worker, it } = await startRuntime(t);
    t.same(worker.hosted(), ['_agent', 'orders', 'tv'], 'a single worker hosts every group');

    await it.send({ type: 'SetAgentPresence', agent: 'alice', presence: 'online' });
    await it.waitFor(is('AgentPresenceChanged'), 10_000, 'alice online');
    await it.send({
      type: 'StartConversation',
      conversation: 'c1',
      visitor: 'v1',
      rule: 'direct',
      message: { text: 'Hello' },
    });
    const assigned = await it.waitFor(is('ConversationAssigned', 'c1'), 10_000, 'the assignment');
    t.match(assigned, { agent: 'alice', group: 'tv' });

    await it.send({
      type: 'SendMessage',
      conversation: 'c1',
      author: { kind: 'agent', id: 'alice' },
      message: { text: 'Hi! 👋' },
    });
    await it.waitFor(
      is('MessageAdded', 'c1', (e) => (e.message as { text: string }).text === 'Hi! 👋'),
    );

    await it.send({ type: 'Snooze', conversation: 'c1', agent: 'alice', durationMs: 300 });
    const snoozed = (await it.waitFor(is('ConversationSnoozed', 'c1'))) as { until: number };
    const woken = (await it.waitFor(is('ConversationWoken', 'c1'), 5_000, 'the wake')) as {
      at: number;
      by: string;
    };
    t.equal(woken.by, 'timer');
    t.ok(woken.at >= snoozed.until, 'not before its deadline');
    t.ok(Date.now() - snoozed.until < 1_000, 'woken within a second of the deadline');
    await it.waitFor(
      is('ConversationAssigned', 'c1', (e) => e.wasSnoozed === true),
      5_000,
      'back to alice',
    );

    await it.send({ type: 'Close', conversation: 'c1', by: { agent: 'alice' }, tags: ['done'] });
    await it.waitFor(is('ConversationClosed', 'c1'));
    await it.send({ type: 'AnswerSurvey', conversation: 'c1', visitor: 'v1', csat: 5 });
    await it.waitFor(is('SurveyAnswered', 'c1'), 5_000, 'the survey of a closed conversation');

    const thread = it.of('c1').flatMap((e) => (e.type === 'MessageAdded' ? [e.message.seq] : []));
    t.same(
      thread,
      thread.map((_, i) => i + 1),
      'the thread is numbered without gaps',
    );
  },
);

t.test(
  'a malformed command is refused without stopping the group; a duplicate is harmless',
  async (t) => {
    const { it } = await startRuntime(t);

    await it.js.publish('parley.cmd.tv.c9', '{"type":"Snooze","conversation":"c9"', {
      msgID: 'bad-1',
    });
    await it.js.publish(
      'parley.cmd.tv.c9',
      JSON.stringify({ type: 'Teleport', id: 'bad-2', conversation: 'c9' }),
    );
    const id = await it.send({
      type: 'StartConversation',
      conversation: 'c9',
      visitor: 'v9',
      rule: 'direct',
    });
    await it.waitFor(is('ConversationQueued', 'c9'), 10_000, 'the group goes on after bad input');
    // The same command again, under a new message id so JetStream does not drop it: applied once.
    await it.js.publish(
      'parley.cmd.tv.c9',
      JSON.stringify({
        type: 'StartConversation',
        id,
        conversation: 'c9',
        visitor: 'v9',
        rule: 'direct',
      }),
    );
    await it.send({
      type: 'SendMessage',
      conversation: 'c9',
      author: { kind: 'visitor', id: 'v9' },
      message: { text: 'after' },
    });
    await it.waitFor(
      is('MessageAdded', 'c9', (e) => (e.message as { text: string }).text === 'after'),
    );
    t.equal(it.of('c9').filter((e) => e.type === 'ConversationStarted').length, 1, 'started once');
    t.equal(it.of('c9').filter((e) => e.type === 'CommandRejected').length, 0);
  },
);

t.test(
  'a reused conversation id is refused, and an early SnoozeExpired from outside does nothing',
  async (t) => {
    const { it } = await startRuntime(t);

    await it.send({ type: 'StartConversation', conversation: 'r1', visitor: 'v1', rule: 'direct' });
    await it.send({ type: 'Close', conversation: 'r1', by: { visitor: 'v1' } });
    await it.waitFor(is('ConversationClosed', 'r1'));
    // Closed conversations leave the worker's memory; the id is still taken, in any group.
    await it.send({ type: 'StartConversation', conversation: 'r1', visitor: 'v2', rule: 'direct' });
    await it.send(
      { type: 'StartConversation', conversation: 'r1', visitor: 'v3', rule: 'direct' },
      'orders',
    );
    await it.waitFor(is('CommandRejected', 'r1'));
    await it.waitFor(
      (e) =>
        e.type === 'CommandRejected' &&
        it.events.filter((x) => x.type === 'CommandRejected').length === 2,
      10_000,
      'both refused',
    );
    t.same(
      it
        .of('r1')
        .filter((e) => e.type === 'CommandRejected')
        .map((e) => (e as { code: string }).code),
      ['conversation-exists', 'conversation-exists'],
    );
    t.equal(it.of('r1').filter((e) => e.type === 'ConversationStarted').length, 1);

    await it.send({ type: 'SetAgentPresence', agent: 'alice', presence: 'online' });
    await it.send({ type: 'StartConversation', conversation: 'r2', visitor: 'v2', rule: 'direct' });
    await it.waitFor(is('ConversationAssigned', 'r2'));
    await it.send({ type: 'Snooze', conversation: 'r2', agent: 'alice', durationMs: 60_000 });
    const snoozed = (await it.waitFor(is('ConversationSnoozed', 'r2'))) as { until: number };
    await it.send({ type: 'SnoozeExpired', conversation: 'r2', until: snoozed.until });
    await it.send({
      type: 'SendMessage',
      conversation: 'r2',
      author: { kind: 'system' },
      message: { text: 'marker' },
    });
    await it.waitFor(
      is('MessageAdded', 'r2', (e) => (e.message as { text: string }).text === 'marker'),
    );
    t.notOk(
      it.of('r2').some((e) => e.type === 'ConversationWoken'),
      'an expiry stamped before its deadline wakes nothing',
    );
  },
);

t.test(
  'idle conversations leave the worker’s memory and come back on their next command',
  async (t) => {
    const settings = runtimeSettings();
    const returning = {
      ...settings,
      groups: settings.groups.map((g) => ({ ...g, offlinePolicy: 'return' as const })),
    };
    // Every checkpoint (each 50 ms) lets every stored idle conversation go.
    const { worker, it } = await startRuntime(t, {
      settings: returning,
      idleMs: 0,
      checkpointMs: 50,
    });
    const inMemory = (c: string) => worker.host('tv')?.engine.conversation(c) !== undefined;
    const settle = () => new Promise((r) => setTimeout(r, 300));

    await it.send({ type: 'SetAgentPresence', agent: 'alice', presence: 'online' });
    await it.send({
      type: 'StartConversation',
      conversation: 'e1',
      visitor: 'v1',
      rule: 'direct',
      message: { text: 'Hi' },
    });
    await it.waitFor(is('ConversationAssigned', 'e1'));
    await settle();
    t.notOk(inMemory('e1'), 'assigned and idle: let out of memory');
    await it.send({
      type: 'SendMessage',
      conversation: 'e1',
      author: { kind: 'agent', id: 'alice' },
      message: { text: 'back' },
    });
    const reply = await it.waitFor(
      is('MessageAdded', 'e1', (e) => (e.message as { text: string }).text === 'back'),
    );
    t.equal(
      (reply as { message: { seq: number } }).message.seq,
      3,
      'numbering goes on from the stored state',
    );
    await settle();
    t.notOk(inMemory('e1'));
    // alice goes offline: the 'return' policy needs e1, loaded again to be returned.
    await it.send({ type: 'SetAgentPresence', agent: 'alice', presence: 'offline' });
    await it.waitFor(
      is('ConversationReturned', 'e1'),
      10_000,
      'returned though it was out of memory',
    );
    await it.waitFor(is('ConversationQueued', 'e1', (e) => e.reason === 'returned'));
    await settle(); // past the next checkpoint, which lets idle conversations out
    t.ok(inMemory('e1'), 'waiting conversations stay in memory');
  },
);
