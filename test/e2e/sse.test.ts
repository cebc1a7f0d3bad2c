// Server-Sent Events resumed with Last-Event-ID: the visitor's live updates and the agent's push
// stream deliver, after a reconnection, exactly what followed the last event received, with the
// same data (unread counts) as a connection that never dropped. A gateway, a worker and a
// nats-server of the test's own.
import t from 'tap';
import { call, KEYS, openStream, type SseEvent, startParley } from '../helpers/gateway.ts';

const TV_PAGE = 'https://shop.example/tv/oled-55';
const ALICE = KEYS.agents.alice;

interface Msg {
  id: string;
  seq: number;
  note?: string;
}

const messageId = (e: SseEvent) => (e.data.message as Msg | undefined)?.id;
const added = (id: string) => (e: SseEvent) => e.event === 'MessageAdded' && messageId(e) === id;
/** What a client keeps of an event: its id, name and data. */
const kept = (events: readonly SseEvent[]) =>
  events.filter((e) => e.id !== undefined).map((e) => ({ id: e.id, event: e.event, data: e.data }));

async function visitorWithConversation(http: string, id: string) {
  const me = await call<{ visitor: string; token: string }>(http, 'POST', '/v1/visitors');
  const started = await call(http, 'POST', '/v1/visitor/conversations', {
    token: me.body.token,
    body: { id, url: TV_PAGE, message: { id: `${id}-m1`, text: 'Is it in stock?' } },
  });
  if (started.status !== 201) throw new Error(`not started: ${JSON.stringify(started.body)}`);
  return me.body.token;
}

async function reply(http: string, conversation: string, id: string) {
  const r = await call(http, 'POST', `/v1/agent/conversations/${conversation}/messages`, {
    token: ALICE,
    body: { id, text: `Answer ${id}` },
  });
  if (r.status !== 201) throw new Error(`reply ${id}: ${r.status} ${JSON.stringify(r.body)}`);
}

t.test(
  "a visitor's stream resumed after Last-Event-ID: nothing lost, nothing repeated, the unread count right",
  async (t) => {
    const { http } = await startParley(t);
    const token = await visitorWithConversation(http, 'c-v');
    t.equal(
      (
        await call(http, 'PUT', '/v1/agent/presence', {
          token: ALICE,
          body: { presence: 'online' },
        })
      ).status,
      200,
    );
    const url = `${http}/v1/visitor/conversations/c-v/events`;

    const first = await openStream(t, url, { token });
    t.equal(first.status, 200);
    await first.waitFor((e) => e.event === 'ConversationAssigned', 'assigned');
    await reply(http, 'c-v', 'r-1');
    t.equal((await first.waitFor(added('r-1'), 'r-1')).data.unread, 1);
    t.equal(
      (await call(http, 'POST', '/v1/visitor/conversations/c-v/read', { token })).status,
      200,
    );
    t.equal((await first.waitFor((e) => e.event === 'MessagesRead', 'read')).data.unread, 0);
    await reply(http, 'c-v', 'r-2');
    t.equal((await first.waitFor(added('r-2'), 'r-2')).data.unread, 1);
    await first.close();
    const seenFirst = kept(first.events);
    t.ok(seenFirst.length >= 6, `several events before the cut (${seenFirst.length})`);
    const ids = seenFirst.map((e) => Number(e.id));
    t.same(
      ids,
      [...ids].sort((a, b) => a - b),
      'ids increase',
    );
    t.equal(new Set(ids).size, ids.length, 'ids are unique');
    const lastId = first.lastId;
    t.equal(lastId, seenFirst.at(-1)?.id);

    // Away: the agent answers, the visitor writes from another tab.
    await reply(http, 'c-v', 'r-3');
    const other = await call(http, 'POST', '/v1/visitor/conversations/c-v/messages', {
      token,
      body: { id: 'm-2', text: 'From my phone' },
    });
    t.equal(other.status, 201);
    await reply(http, 'c-v', 'r-4');
    await reply(http, 'c-v', 'r-5');

    const resumed = await openStream(t, url, { token, lastEventId: lastId });
    t.equal(resumed.status, 200);
    await resumed.waitFor(added('r-5'), 'r-5, resumed');
    const seenResumed = kept(resumed.events);
    t.equal(resumed.events.length, seenResumed.length, 'every event resumed has an id');
    t.ok(
      seenResumed.every((e) => Number(e.id) > Number(lastId)),
      'nothing up to Last-Event-ID again',
    );
    t.same(
      seenResumed.filter((e) => e.event === 'MessageAdded').map((e) => messageId(e)),
      ['r-3', 'm-2', 'r-4', 'r-5'],
      'the messages written meanwhile, in order',
    );
    t.same(
      seenResumed
        .filter((e) => e.event === 'MessageAdded')
        .map((e) => [messageId(e), e.data.unread, e.data.state]),
      [
        ['r-3', 2, 'assigned'],
        ['m-2', 2, 'assigned'],
        ['r-4', 3, 'assigned'],
        ['r-5', 4, 'assigned'],
      ],
      'the unread count counts on from before the cut (and the state is known)',
    );

    // The same as one connection that never dropped.
    const whole = await openStream(t, url, { token });
    await whole.waitFor(added('r-5'), 'r-5, from the start');
    t.same(
      [...seenFirst, ...seenResumed],
      kept(whole.events),
      'the two pieces are exactly the whole stream',
    );
    const thread = await call<{ messages: Msg[] }>(
      http,
      'GET',
      '/v1/visitor/conversations/c-v/messages',
      { token },
    );
    t.same(
      [...seenFirst, ...seenResumed]
        .filter((e) => e.event === 'MessageAdded')
        .map((e) => messageId(e)),
      thread.body.messages.map((m) => m.id),
      'every message of the thread, each once',
    );
    const view = await call(http, 'GET', '/v1/visitor/conversations/c-v', { token });
    t.equal(view.body.unread, 4, 'the same unread count as the conversation');
  },
);

t.test(
  "the agent's push stream resumed after Last-Event-ID: what was missed, no snapshot",
  async (t) => {
    const { http } = await startParley(t);
    const token = await visitorWithConversation(http, 'c-a');
    const url = `${http}/v1/agent/events`;
    // A second console tab stays open throughout: it sees what a connection that never dropped sees.
    const tab = await openStream(t, url, { token: ALICE });
    await tab.waitFor((e) => e.event === 'snapshot', 'snapshot');
    const first = await openStream(t, url, { token: ALICE });
    t.equal((await first.waitFor(() => true, 'the first event')).event, 'snapshot');
    await call(http, 'PUT', '/v1/agent/presence', { token: ALICE, body: { presence: 'online' } });
    await first.waitFor(
      (e) => e.event === 'ConversationAssigned' && e.data.conversation === 'c-a',
      'c-a assigned',
    );
    const write = async (id: string) => {
      const r = await call(http, 'POST', '/v1/visitor/conversations/c-a/messages', {
        token,
        body: { id, text: `Message ${id}` },
      });
      t.equal(r.status, 201, `${id} written`);
    };
    await write('m-2');
    await first.waitFor(added('m-2'), 'm-2');
    await first.close();
    const lastId = first.lastId;
    t.ok(lastId, 'an id to resume from');

    // Missed: two messages of the conversation she holds.
    await write('m-3');
    await write('m-4');
    await tab.waitFor(added('m-4'), 'm-4 on the other tab');

    const resumed = await openStream(t, url, { token: ALICE, lastEventId: lastId });
    t.equal(resumed.status, 200);
    await resumed.waitFor(added('m-4'), 'm-4, resumed');
    t.notOk(
      resumed.events.some((e) => e.event === 'snapshot'),
      'no snapshot when resuming',
    );
    t.same(
      resumed.events.filter((e) => e.event === 'MessageAdded').map((e) => messageId(e)),
      ['m-3', 'm-4'],
      'the missed messages, once each, in order',
    );
    t.ok(
      resumed.events.every((e) => e.id !== undefined && Number(e.id) > Number(lastId)),
      'only what followed Last-Event-ID',
    );
    t.same(
      kept(resumed.events),
      kept(tab.events).filter((e) => Number(e.id) > Number(lastId)),
      'what the tab that never dropped saw after that id',
    );
    // And after the reconnection, live again.
    await write('m-5');
    await resumed.waitFor(added('m-5'), 'm-5, live after resuming');
  },
);

t.test(
  'a conversation that left the agent while the console was away: the resumed stream says so',
  async (t) => {
    const { http } = await startParley(t);
    const token = await visitorWithConversation(http, 'c-gone');
    const url = `${http}/v1/agent/events`;
    const tab = await openStream(t, url, { token: ALICE });
    await tab.waitFor((e) => e.event === 'snapshot', 'snapshot');
    await call(http, 'PUT', '/v1/agent/presence', { token: ALICE, body: { presence: 'online' } });
    await tab.waitFor(
      (e) => e.event === 'ConversationAssigned' && e.data.conversation === 'c-gone',
      'assigned',
    );
    const first = await openStream(t, url, { token: ALICE });
    const snapshot = await first.waitFor((e) => e.event === 'snapshot', 'snapshot');
    t.match(snapshot.data, { presence: 'online', conversations: [{ id: 'c-gone' }] });
    await reply(http, 'c-gone', 'r-1');
    await first.waitFor(added('r-1'), 'r-1');
    await first.close();
    const lastId = first.lastId;

    // While this console is away: the visitor writes, then alice (from the other tab) hands the
    // conversation to bob.
    const m2 = await call(http, 'POST', '/v1/visitor/conversations/c-gone/messages', {
      token,
      body: { id: 'm-2', text: 'Hello?' },
    });
    t.equal(m2.status, 201);
    const moved = await call(http, 'POST', '/v1/agent/conversations/c-gone/transfer', {
      token: ALICE,
      body: { to: { agent: 'bob' } },
    });
    t.equal(moved.status, 200);
    await tab.waitFor((e) => e.event === 'ConversationLeft', 'left, on the other tab');

    const resumed = await openStream(t, url, { token: ALICE, lastEventId: lastId });
    await resumed.waitFor(
      (e) => e.event === 'ConversationLeft' && e.data.conversation === 'c-gone',
      'left, resumed',
      5_000,
    );
    t.same(
      kept(resumed.events).map((e) => [e.event, messageId({ ...e, id: e.id }) ?? null]),
      kept(tab.events)
        .filter((e) => Number(e.id) > Number(lastId))
        .map((e) => [e.event, messageId({ ...e, id: e.id }) ?? null]),
      'the message and the transfer, as the tab that never dropped saw them',
    );
  },
);

t.test('an invalid Last-Event-ID: 400', async (t) => {
  const { http } = await startParley(t);
  const token = await visitorWithConversation(http, 'c-bad');
  for (const [url, key] of [
    [`${http}/v1/visitor/conversations/c-bad/events`, token],
    [`${http}/v1/agent/events`, ALICE],
  ] as const) {
    for (const lastEventId of ['abc', '-1', '12.5', '1e3', '9'.repeat(16)]) {
      const r = await call(http, 'GET', url.slice(http.length), {
        token: key,
        headers: { accept: 'text/event-stream', 'last-event-id': lastEventId },
      });
      t.equal(r.status, 400, `${url.slice(http.length)} with Last-Event-ID ${lastEventId}: 400`);
      t.match(r.type, /^application\/problem\+json/);
      t.match(r.body, {
        code: 'PARLEY_ERR_VALIDATION',
        errors: [{ field: 'headers.last-event-id' }],
      });
    }
  }
  // The refused streams did not count as consoles: when the real one closes, past the grace
  // period, the agent is offline (the widget shows nobody online).
  const agentConsole = await openStream(t, `${http}/v1/agent/events`, { token: ALICE });
  await agentConsole.waitFor((e) => e.event === 'snapshot', 'snapshot');
  await call(http, 'PUT', '/v1/agent/presence', { token: ALICE, body: { presence: 'online' } });
  await agentConsole.waitFor(
    (e) => e.event === 'AgentPresenceChanged' && e.data.presence === 'online',
    'online',
  );
  await agentConsole.close();
  const widget = `/v1/widget?url=${encodeURIComponent(TV_PAGE)}`;
  const deadline = Date.now() + 5_000;
  let online = true;
  while (online && Date.now() < deadline) {
    online = (await call<{ agentsOnline: boolean }>(http, 'GET', widget)).body.agentsOnline;
    if (online) await new Promise((resolve) => setTimeout(resolve, 25));
  }
  t.equal(online, false, 'offline once her only console is gone');
});
