// The visitor's story over real HTTP, as the chat widget lives it: a gateway, a worker and a
// nats-server of the test's own.
import t from 'tap';
import { call, KEYS, SseReader, startParley } from '../helpers/gateway.ts';

const TV_PAGE = 'https://shop.example/tv/oled-55';

t.test(
  'a visitor starts with no agent online, leaves, comes back to the unread badge and history, and answers the survey',
  async (t) => {
    const { http } = await startParley(t);

    const widget = await call(http, 'GET', `/v1/widget?url=${encodeURIComponent(TV_PAGE)}`);
    t.equal(widget.status, 200);
    t.match(widget.body, {
      showChatButton: true,
      rule: 'tv-pages',
      group: 'tv',
      automaticMessage: 'Hi! Leave us a message.',
      agentsOnline: false,
      waitingListFull: false,
    });
    t.type(widget.body.typicalReplyMs, 'number');

    const me = await call<{ visitor: string; token: string }>(http, 'POST', '/v1/visitors');
    t.equal(me.status, 201);
    const token = me.body.token;

    const started = await call(http, 'POST', '/v1/visitor/conversations', {
      token,
      body: {
        id: 'c-story',
        url: TV_PAGE,
        message: { id: 'm-1', text: 'Is the OLED 55 in stock?' },
      },
    });
    t.equal(started.status, 201, 'started with nobody online');
    t.match(started.body, { id: 'c-story', state: 'queued', position: 1, unread: 0 });

    const thread = await call<{ messages: { text: string; author: { kind: string } }[] }>(
      http,
      'GET',
      '/v1/visitor/conversations/c-story/messages',
      { token },
    );
    t.same(
      thread.body.messages.map((m) => [m.author.kind, m.text]),
      [
        ['system', 'Hi! Leave us a message.'],
        ['visitor', 'Is the OLED 55 in stock?'],
      ],
      'the automatic message, then the visitor’s',
    );

    const live = await SseReader.open(`${http}/v1/visitor/conversations/c-story/events`, { token });
    t.equal(live.status, 200);
    await live.waitFor(
      (e) => e.event === 'MessageAdded' && e.data.message !== undefined,
      'history replayed',
    );

    const alice = KEYS.agents.alice;
    t.equal(
      (
        await call(http, 'PUT', '/v1/agent/presence', {
          token: alice,
          body: { presence: 'online' },
        })
      ).status,
      200,
    );
    const assigned = await live.waitFor((e) => e.event === 'ConversationAssigned', 'assigned');
    t.equal(assigned.data.state, 'assigned');
    const reply = await call(http, 'POST', '/v1/agent/conversations/c-story/messages', {
      token: alice,
      body: { id: 'r-1', text: 'Yes! 🎉 See https://shop.example/tv/oled-55' },
    });
    t.equal(reply.status, 201);
    const answer = await live.waitFor(
      (e) => e.event === 'MessageAdded' && (e.data.message as { id: string }).id === 'r-1',
      'the reply, live',
    );
    t.equal(answer.data.unread, 1, 'the unread count comes with it');
    t.same((answer.data.message as { author: unknown }).author, { kind: 'agent', name: 'Alice' });
    await live.close();

    // Away: the agent answers again hours later (in real time here).
    await call(http, 'POST', '/v1/agent/conversations/c-story/messages', {
      token: alice,
      body: { id: 'r-2', text: 'Shall I keep one for you?' },
    });

    // Back, with a new connection.
    const badge = await call<{ total: number }>(http, 'GET', '/v1/visitor/unread', { token });
    t.equal(badge.body.total, 2, 'the unread badge counts both answers');
    const list = await call<{ conversations: { id: string; unread: number }[] }>(
      http,
      'GET',
      '/v1/visitor/conversations',
      { token },
    );
    t.same(
      list.body.conversations.map((c) => [c.id, c.unread]),
      [['c-story', 2]],
    );
    const history = await call<{ messages: { id: string }[] }>(
      http,
      'GET',
      '/v1/visitor/conversations/c-story/messages',
      { token },
    );
    t.same(history.body.messages.map((m) => m.id).slice(-2), ['r-1', 'r-2']);
    const read = await call(http, 'POST', '/v1/visitor/conversations/c-story/read', { token });
    t.equal(read.status, 200);
    const after = await call(http, 'GET', '/v1/visitor/conversations/c-story', { token });
    t.equal(after.body.unread, 0, 'read');

    const again = await call(http, 'POST', '/v1/visitor/conversations/c-story/messages', {
      token,
      body: { id: 'm-2', text: 'Yes please' },
    });
    t.equal(again.status, 201);
    const retry = await call(http, 'POST', '/v1/visitor/conversations/c-story/messages', {
      token,
      body: { id: 'm-2', text: 'Yes please' },
    });
    t.ok([201, 202].includes(retry.status), 'a retry is accepted…');
    const once = await call<{ messages: { id: string }[] }>(
      http,
      'GET',
      '/v1/visitor/conversations/c-story/messages',
      { token },
    );
    t.equal(once.body.messages.filter((m) => m.id === 'm-2').length, 1, '…and never duplicates');

    const closed = await call(http, 'POST', '/v1/agent/conversations/c-story/close', {
      token: alice,
      body: { tags: ['stock'] },
    });
    t.equal(closed.status, 200);
    const view = await call(http, 'GET', '/v1/visitor/conversations/c-story', { token });
    t.match(view.body, { state: 'closed', surveyOpen: true });
    const survey = await call(http, 'POST', '/v1/visitor/conversations/c-story/survey', {
      token,
      body: { csat: 5, nps: 9, comment: 'Quick!' },
    });
    t.equal(survey.status, 200);
    t.match(survey.body, { survey: { csat: 5, nps: 9 }, surveyOpen: false });
    const twice = await call(http, 'POST', '/v1/visitor/conversations/c-story/survey', {
      token,
      body: { csat: 1 },
    });
    t.equal(twice.status, 409, 'one survey per conversation');
    t.match(twice.body, { code: 'PARLEY_ERR_COMMAND_REJECTED', rejection: 'survey-answered' });
  },
);
