// The agent's story over real HTTP, as the agent console lives it: conversations pushed to the
// console, replies, snoozes and wakes, canned answers, a transfer, tags, a block and the close;
// then presence made by the console's live connection. A gateway, a worker and a nats-server of
// the test's own.
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import {
  call,
  KEYS,
  openStream,
  type SseEvent,
  type SseReader,
  startParley,
} from '../helpers/gateway.ts';

const TV_PAGE = 'https://shop.example/tv/oled-55';
const ALICE = KEYS.agents.alice;
const BOB = KEYS.agents.bob;

interface Msg {
  id: string;
  seq: number;
  text: string;
  note?: string;
  author: { kind: string; id?: string; name?: string };
  attachments: unknown[];
}

/** The first event after the `mark`-th one received that passes `test`. */
function next(
  reader: SseReader,
  mark: number,
  test: (e: SseEvent) => boolean,
  what: string,
  timeoutMs?: number,
): Promise<SseEvent> {
  return reader.waitFor((e) => reader.events.indexOf(e) >= mark && test(e), what, timeoutMs);
}

const isEvent = (type: string, conversation: string) => (e: SseEvent) =>
  e.event === type && e.data.conversation === conversation;

/** Polls `read` until `done` holds of its result (for state that no stream announces). */
async function until<T>(read: () => Promise<T>, done: (v: T) => boolean, what: string) {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const v = await read();
    if (done(v)) return v;
    if (Date.now() > deadline) throw new Error(`never: ${what} (last ${JSON.stringify(v)})`);
    await sleep(25);
  }
}

t.test(
  'an agent gets a conversation by push, replies, snoozes it twice, uses a canned answer, transfers it; bob tags, blocks and closes',
  async (t) => {
    const { http } = await startParley(t);

    const me = await call<{ visitor: string; token: string }>(http, 'POST', '/v1/visitors');
    const token = me.body.token;
    // An earlier conversation of the same visitor, which they ended themselves.
    const old = await call(http, 'POST', '/v1/visitor/conversations', {
      token,
      body: { id: 'c-old', url: TV_PAGE, message: { id: 'o-1', text: 'Do you deliver?' } },
    });
    t.equal(old.status, 201);
    t.equal(
      (await call(http, 'POST', '/v1/visitor/conversations/c-old/close', { token })).status,
      200,
    );

    const started = await call(http, 'POST', '/v1/visitor/conversations', {
      token,
      body: { id: 'c-main', url: TV_PAGE, message: { id: 'm-1', text: 'My TV has no sound' } },
    });
    t.equal(started.status, 201);
    t.match(started.body, { state: 'queued' }, 'waits: nobody is online');

    // The console connects: a snapshot first, then the push.
    const alice = await openStream(t, `${http}/v1/agent/events`, { token: ALICE });
    t.equal(alice.status, 200);
    const snapshot = await alice.waitFor(() => true, 'the first event');
    t.equal(snapshot.event, 'snapshot', 'a snapshot comes first');
    t.equal(snapshot.id, undefined, 'the snapshot has no event id');
    t.same(snapshot.data, { presence: 'offline', conversations: [] });

    const online = await call(http, 'PUT', '/v1/agent/presence', {
      token: ALICE,
      body: { presence: 'online' },
    });
    t.equal(online.status, 200);
    t.match(online.body, { presence: 'online' });
    await alice.waitFor(
      (e) => e.event === 'AgentPresenceChanged' && e.data.presence === 'online',
      'her own presence, pushed',
    );
    const assigned = await alice.waitFor(isEvent('ConversationAssigned', 'c-main'), 'assigned');
    t.match(assigned.data, {
      type: 'ConversationAssigned',
      conversation: 'c-main',
      group: 'tv',
      agent: 'alice',
      asynchronous: true,
      visitorOnline: true,
      wasSnoozed: false,
      note: null,
    });
    t.type(assigned.data.waitedMs, 'number');
    t.ok(assigned.id && /^\d+$/.test(assigned.id), 'pushed events carry their stream sequence');
    const mine = await call<{ conversations: { id: string; state: string }[] }>(
      http,
      'GET',
      '/v1/agent/conversations',
      { token: ALICE },
    );
    t.same(
      mine.body.conversations.map((c) => [c.id, c.state]),
      [['c-main', 'assigned']],
    );

    // A reply with a link, emojis and an image.
    const text = 'Try the sound settings 🔊👍: https://shop.example/help/sound?model=oled-55#audio';
    const image = {
      kind: 'image',
      ref: 'https://cdn.shop.example/help/sound-settings.png',
      name: 'sound-settings.png',
      mimeType: 'image/png',
      sizeBytes: 48_213,
    };
    const reply = await call<{ message: Msg }>(
      http,
      'POST',
      '/v1/agent/conversations/c-main/messages',
      { token: ALICE, body: { id: 'r-1', text, attachments: [image] } },
    );
    t.equal(reply.status, 201);
    t.match(reply.body.message, { id: 'r-1', text, author: { kind: 'agent', id: 'alice' } });
    t.same(reply.body.message.attachments, [image]);
    const pushed = await alice.waitFor(
      (e) => e.event === 'MessageAdded' && (e.data.message as Msg).id === 'r-1',
      'her reply on her own console',
    );
    t.equal((pushed.data.message as Msg).text, text);
    const seen = await call<{ messages: Msg[] }>(
      http,
      'GET',
      '/v1/visitor/conversations/c-main/messages',
      { token },
    );
    const r1 = seen.body.messages.find((m) => m.id === 'r-1');
    t.equal(r1?.text, text, 'the visitor gets the text byte for byte');
    t.same(r1?.attachments, [image], '…and the image');
    t.same(r1?.author, { kind: 'agent', name: 'Alice' }, '…and the agent by name only');

    // Snooze for the group's default (1 h here).
    let mark = alice.events.length;
    const before = Date.now();
    const snoozed = await call(http, 'POST', '/v1/agent/conversations/c-main/snooze', {
      token: ALICE,
      body: {},
    });
    t.equal(snoozed.status, 200);
    t.match(snoozed.body, { id: 'c-main', state: 'snoozed' });
    const snoozeEvent = await next(
      alice,
      mark,
      isEvent('ConversationSnoozed', 'c-main'),
      'snoozed',
    );
    t.equal(snoozeEvent.data.durationMs, 60 * 60_000, "the group's default");
    const view = await call<{
      state: string;
      agent: string | null;
      timers: { kind: string; until: number; inMs: number }[];
      snoozes: { by: string; until: number; durationMs: number; wokeAt: number | null }[];
    }>(http, 'GET', '/v1/agent/conversations/c-main', { token: ALICE });
    t.equal(view.status, 200);
    t.equal(view.body.state, 'snoozed');
    t.equal(view.body.timers.length, 1, 'one timer: the snooze');
    const timer = view.body.timers[0]!;
    t.equal(timer.kind, 'snooze');
    t.equal(timer.until, snoozeEvent.data.until, 'the deadline the event announced');
    t.ok(timer.until >= before + 60 * 60_000 - 1_000, 'an hour from now');
    t.ok(timer.inMs > 59 * 60_000 && timer.inMs <= 60 * 60_000, `in about an hour (${timer.inMs})`);
    t.match(view.body.snoozes, [{ by: 'alice', durationMs: 60 * 60_000, wokeAt: null }]);
    const freed = await call<{ conversations: unknown[] }>(http, 'GET', '/v1/agent/conversations', {
      token: ALICE,
    });
    t.same(freed.body.conversations, [], 'the snooze freed her slot');

    // The visitor writes: it comes back, to alice (online, with a free slot), marked snoozed.
    mark = alice.events.length;
    const wakes = await call(http, 'POST', '/v1/visitor/conversations/c-main/messages', {
      token,
      body: { id: 'm-2', text: 'Still no sound, and I tried the settings' },
    });
    t.equal(wakes.status, 201);
    const back = await next(alice, mark, isEvent('ConversationAssigned', 'c-main'), 'back');
    t.match(back.data, { agent: 'alice', asynchronous: true, wasSnoozed: true });
    t.match(back.data.note, /snoozed/, 'with a note that it had been snoozed');
    const agentThread = await call<{ messages: Msg[] }>(
      http,
      'GET',
      '/v1/agent/conversations/c-main/messages',
      { token: ALICE },
    );
    const notes = agentThread.body.messages.filter((m) => m.note === 'snoozed');
    t.equal(notes.length, 1, 'the agent sees the snooze note');
    t.match(notes[0], {
      author: { kind: 'system' },
      text: /snoozed by Alice .*because the visitor wrote again/,
    });
    const ids = agentThread.body.messages.map((m) => m.id);
    t.ok(ids.indexOf(notes[0]!.id) < ids.indexOf('m-2'), 'the note comes before her message');
    t.same(
      agentThread.body.messages.map((m) => m.seq),
      agentThread.body.messages.map((_, i) => i + 1),
      'the thread is numbered without gaps',
    );
    const visitorThread = await call<{ messages: Msg[] }>(
      http,
      'GET',
      '/v1/visitor/conversations/c-main/messages',
      { token },
    );
    t.equal(visitorThread.status, 200);
    t.notOk(
      visitorThread.body.messages.some((m) => m.note === 'snoozed' || /snoozed/.test(m.text)),
      'the visitor does not see the snooze note',
    );
    t.same(
      visitorThread.body.messages.map((m) => m.id),
      ids.filter((id) => id !== notes[0]!.id),
      'and sees every other message',
    );

    // Snoozed again, briefly: it comes back on the timer.
    mark = alice.events.length;
    const brief = await call(http, 'POST', '/v1/agent/conversations/c-main/snooze', {
      token: ALICE,
      body: { duration: '300ms' },
    });
    t.equal(brief.status, 200);
    t.match(brief.body, { state: 'snoozed', snoozes: [{}, { durationMs: 300 }] });
    const again = await next(alice, mark, isEvent('ConversationAssigned', 'c-main'), 'woken');
    t.match(again.data, { agent: 'alice', wasSnoozed: true });
    t.ok(
      alice.events.slice(mark).some(isEvent('ConversationSnoozed', 'c-main')),
      'the snooze was pushed before',
    );
    const timed = await call<{ snoozes: { wokeBy: string | null; wokeAt: number | null }[] }>(
      http,
      'GET',
      '/v1/agent/conversations/c-main',
      { token: ALICE },
    );
    t.match(timed.body.snoozes, [{ wokeBy: 'visitor' }, { wokeBy: 'timer' }]);
    const timerThread = await call<{ messages: Msg[] }>(
      http,
      'GET',
      '/v1/agent/conversations/c-main/messages',
      { token: ALICE },
    );
    t.match(timerThread.body.messages.at(-1), {
      note: 'snoozed',
      text: /because the snooze period is over/,
    });
    const outOfBounds = await call(http, 'POST', '/v1/agent/conversations/c-main/snooze', {
      token: ALICE,
      body: { durationMs: 50 },
    });
    t.equal(outOfBounds.status, 422, "a snooze shorter than the group's minimum");
    t.match(outOfBounds.body, { rejection: 'snooze-out-of-bounds' });

    // Canned answers: those of her groups and the shared ones.
    const canned = await call<{ cannedAnswers: { id: string; text: string }[] }>(
      http,
      'GET',
      '/v1/agent/canned-answers',
      { token: ALICE },
    );
    t.equal(canned.status, 200);
    t.same(
      canned.body.cannedAnswers.map((c) => c.id),
      ['hello'],
      "alice (tv) sees the shared answer, not the orders group's",
    );
    const searched = await call<{ cannedAnswers: { id: string }[] }>(
      http,
      'GET',
      '/v1/agent/canned-answers?q=HOW%20CAN',
      { token: ALICE },
    );
    t.same(
      searched.body.cannedAnswers.map((c) => c.id),
      ['hello'],
    );
    const none = await call<{ cannedAnswers: unknown[] }>(
      http,
      'GET',
      '/v1/agent/canned-answers?q=ship',
      { token: ALICE },
    );
    t.same(none.body.cannedAnswers, [], 'the search does not reach other groups’ answers');
    const cannedReply = await call<{ message: Msg }>(
      http,
      'POST',
      '/v1/agent/conversations/c-main/messages',
      { token: ALICE, body: { id: 'r-2', cannedAnswer: 'hello' } },
    );
    t.equal(cannedReply.status, 201);
    t.equal(cannedReply.body.message.text, 'Hello, how can I help?', 'the canned text inserted');
    const notHers = await call(http, 'POST', '/v1/agent/conversations/c-main/messages', {
      token: ALICE,
      body: { id: 'r-3', cannedAnswer: 'orders-delay' },
    });
    t.equal(notHers.status, 404, "another group's canned answer is not hers to use");

    // Transfer to bob, who is offline with two free slots: his at once.
    mark = alice.events.length;
    const transferred = await call(http, 'POST', '/v1/agent/conversations/c-main/transfer', {
      token: ALICE,
      body: { to: { agent: 'bob' } },
    });
    t.equal(transferred.status, 200);
    t.match(transferred.body, { state: 'assigned', agent: 'bob', reservedFor: null });
    t.match((transferred.body as { transfers: unknown[] }).transfers, [
      { from: 'alice', to: { agent: 'bob' } },
    ]);
    const left = await next(alice, mark, isEvent('ConversationLeft', 'c-main'), 'left her');
    t.equal(left.data.to, 'bob');
    const bobs = await call<{ conversations: { id: string; agent: string }[] }>(
      http,
      'GET',
      '/v1/agent/conversations',
      { token: BOB },
    );
    t.same(
      bobs.body.conversations.map((c) => [c.id, c.agent]),
      [['c-main', 'bob']],
      "on bob's panel though he is offline",
    );
    const hers = await call<{ conversations: unknown[] }>(http, 'GET', '/v1/agent/conversations', {
      token: ALICE,
    });
    t.same(hers.body.conversations, [], 'no longer on hers');
    const stale = await call(http, 'POST', '/v1/agent/conversations/c-main/messages', {
      token: ALICE,
      body: { id: 'r-4', text: 'One more thing' },
    });
    t.equal(stale.status, 409, 'alice can no longer write in it');

    // Bob tags it, blocks the visitor, and closes it with more tags.
    const tagged = await call<{ tags: string[] }>(
      http,
      'POST',
      '/v1/agent/conversations/c-main/tags',
      { token: BOB, body: { tags: ['sound', 'oled'] } },
    );
    t.equal(tagged.status, 200);
    t.same(tagged.body.tags, ['sound', 'oled']);
    const blocked = await call(http, 'POST', '/v1/agent/conversations/c-main/block', {
      token: BOB,
      body: { reason: 'abusive language' },
    });
    t.equal(blocked.status, 200);
    t.match(blocked.body, { blocked: true, state: 'assigned' }, 'blocked, still open');
    const refused = await call(http, 'POST', '/v1/visitor/conversations/c-main/messages', {
      token,
      body: { id: 'm-3', text: 'Hello?' },
    });
    t.equal(refused.status, 403, "the blocked visitor's message is refused");
    t.match(refused.body, { code: 'PARLEY_ERR_FORBIDDEN', rejection: 'visitor-blocked' });
    const startRefused = await call(http, 'POST', '/v1/visitor/conversations', {
      token,
      body: { id: 'c-new', url: TV_PAGE },
    });
    t.equal(startRefused.status, 403, '…and so is a new conversation');
    t.match(startRefused.body, { rejection: 'visitor-blocked' });

    const closed = await call<{ state: string; tags: string[]; times: { closedAt: number } }>(
      http,
      'POST',
      '/v1/agent/conversations/c-main/close',
      { token: BOB, body: { tags: ['resolved'] } },
    );
    t.equal(closed.status, 200);
    t.equal(closed.body.state, 'closed');
    t.same(closed.body.tags, ['sound', 'oled', 'resolved']);
    t.type(closed.body.times.closedAt, 'number');
    const afterClose = await call(http, 'POST', '/v1/visitor/conversations/c-main/messages', {
      token,
      body: { id: 'm-4', text: 'Hello??' },
    });
    t.equal(afterClose.status, 409, 'in a closed conversation the refusal says closed');
    t.match(afterClose.body, { rejection: 'conversation-closed' });
    t.same(
      (
        await call<{ conversations: unknown[] }>(http, 'GET', '/v1/agent/conversations', {
          token: BOB,
        })
      ).body.conversations,
      [],
      'the close freed his slot',
    );

    // The visitor, seen from the console: blocked, with their past conversation.
    const visitor = await call<{
      id: string;
      online: boolean;
      blocked: boolean;
      conversations: { id: string; state: string; group: string }[];
    }>(http, 'GET', '/v1/agent/conversations/c-main/visitor', { token: BOB });
    t.equal(visitor.status, 200);
    t.equal(visitor.body.id, me.body.visitor);
    t.equal(visitor.body.blocked, true);
    t.same(
      visitor.body.conversations.map((c) => [c.id, c.state, c.group]),
      [['c-old', 'closed', 'tv']],
      'the past conversation, not this one nor the refused start',
    );

    await alice.close();
  },
);

t.test('an agent whose console is gone longer than the grace period goes offline', async (t) => {
  const { http } = await startParley(t); // presence grace: 300 ms
  const widget = () =>
    call<{ agentsOnline: boolean }>(http, 'GET', `/v1/widget?url=${encodeURIComponent(TV_PAGE)}`);

  const first = await openStream(t, `${http}/v1/agent/events`, { token: ALICE });
  await first.waitFor((e) => e.event === 'snapshot', 'snapshot');
  t.equal(
    (await call(http, 'PUT', '/v1/agent/presence', { token: ALICE, body: { presence: 'online' } }))
      .status,
    200,
  );
  await first.waitFor(
    (e) => e.event === 'AgentPresenceChanged' && e.data.presence === 'online',
    'online',
  );
  t.equal((await widget()).body.agentsOnline, true, 'the widget shows an agent online');

  // Two consoles: closing one of them changes nothing.
  const second = await openStream(t, `${http}/v1/agent/events`, { token: ALICE });
  const reconnected = await second.waitFor((e) => e.event === 'snapshot', 'second snapshot');
  t.equal(reconnected.data.presence, 'online');
  await first.close();
  const mark = second.events.length;
  // A change she makes herself shows the stream still lives and she is still online after it.
  await call(http, 'PUT', '/v1/agent/presence', { token: ALICE, body: { presence: 'away' } });
  await next(
    second,
    mark,
    (e) => e.event === 'AgentPresenceChanged' && e.data.presence === 'away',
    'away',
  );
  await call(http, 'PUT', '/v1/agent/presence', { token: ALICE, body: { presence: 'online' } });
  await next(
    second,
    mark,
    (e) => e.event === 'AgentPresenceChanged' && e.data.presence === 'online',
    'online again',
  );
  await sleep(500); // longer than the grace: the closed console alone must not make her offline
  t.equal((await widget()).body.agentsOnline, true, 'still online with one console open');

  const closedAt = Date.now();
  await second.close();
  await until(widget, (w) => w.body.agentsOnline === false, 'the widget shows nobody online');
  t.ok(Date.now() - closedAt >= 300, 'not before the grace period');
  const back = await openStream(t, `${http}/v1/agent/events`, { token: ALICE });
  const snapshot = await back.waitFor((e) => e.event === 'snapshot', 'snapshot');
  t.equal(snapshot.data.presence, 'offline', 'she is offline for the engine too');
  await back.close();
});
