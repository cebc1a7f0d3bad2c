// Message ids are the senders' own, chosen per conversation: the same id from two agents and two
// visitors in several conversations is as many messages, each in its thread once; only a true
// retry (same sender, same conversation, same id) is dropped. A 2xx or a 202 is never followed by
// nothing (issue: an agent's reply id reused in a second conversation was accepted and lost).
import t from 'tap';
import { call, KEYS, startParley } from '../helpers/gateway.ts';

const TV_PAGE = 'https://shop.example/tv/oled-55';

interface Msg {
  id: string;
  text: string;
  author: { kind: string; id?: string };
}

t.test(
  'the same message id from two visitors and two agents in four conversations: every message in its thread, once',
  async (t) => {
    const { http } = await startParley(t);
    const agents = { alice: KEYS.agents.alice, bob: KEYS.agents.bob } as const;
    for (const key of Object.values(agents)) {
      const online = await call(http, 'PUT', '/v1/agent/presence', {
        token: key,
        body: { presence: 'online' },
      });
      t.equal(online.status, 200);
    }
    // Two visitors, two conversations each; alice and bob (two slots each) get two each.
    const conversations: { id: string; token: string; agent: string }[] = [];
    for (const v of ['v1', 'v2']) {
      const me = await call<{ token: string }>(http, 'POST', '/v1/visitors');
      for (const n of [1, 2]) {
        const id = `c-${v}-${n}`;
        const started = await call(http, 'POST', '/v1/visitor/conversations', {
          token: me.body.token,
          body: { id, url: TV_PAGE, message: { id: 'same', text: `hello from ${id}` } },
        });
        t.equal(started.status, 201, `${id} started`);
        conversations.push({ id, token: me.body.token, agent: '' });
      }
    }
    for (const c of conversations) {
      for (const [name, key] of Object.entries(agents)) {
        const seen = await call<{ agent?: string | null }>(
          http,
          'GET',
          `/v1/agent/conversations/${c.id}`,
          { token: key },
        );
        if (seen.status === 200 && seen.body.agent === name) c.agent = name;
      }
    }
    t.same(
      conversations.map((c) => c.agent).sort(),
      ['alice', 'alice', 'bob', 'bob'],
      'two conversations for each agent',
    );

    // The visitor writes `again` and the agent answers `again` in every conversation; then each
    // sends the same message once more (a retry), which changes nothing.
    for (const c of conversations) {
      const key = agents[c.agent as keyof typeof agents];
      for (let attempt = 1; attempt <= 2; attempt++) {
        const wrote = await call(http, 'POST', `/v1/visitor/conversations/${c.id}/messages`, {
          token: c.token,
          body: { id: 'again', text: `visitor in ${c.id}` },
        });
        // The first time it is added (201); the retry is the same message, stored already (202).
        t.equal(wrote.status, attempt === 1 ? 201 : 202, `${c.id}: the visitor's message`);
        const replied = await call(http, 'POST', `/v1/agent/conversations/${c.id}/messages`, {
          token: key,
          body: { id: 'again', text: `${c.agent} in ${c.id}` },
        });
        t.equal(replied.status, attempt === 1 ? 201 : 202, `${c.id}: the reply`);
      }
      // The agent also reuses the visitor's first id, `same`: another author, another message.
      const reused = await call(http, 'POST', `/v1/agent/conversations/${c.id}/messages`, {
        token: key,
        body: { id: 'same', text: `${c.agent} reuses same in ${c.id}` },
      });
      t.equal(reused.status, 201, `${c.id}: the agent's "same" is added`);
    }

    for (const c of conversations) {
      const key = agents[c.agent as keyof typeof agents];
      const thread = await call<{ messages: Msg[] }>(
        http,
        'GET',
        `/v1/agent/conversations/${c.id}/messages`,
        { token: key },
      );
      const mine = thread.body.messages
        .filter((m) => m.author.kind === 'visitor' || m.author.kind === 'agent')
        .map((m) => `${m.author.kind}:${m.id}:${m.text}`);
      t.same(
        mine,
        [
          `visitor:same:hello from ${c.id}`,
          `visitor:again:visitor in ${c.id}`,
          `agent:again:${c.agent} in ${c.id}`,
          `agent:same:${c.agent} reuses same in ${c.id}`,
        ],
        `${c.id}: every message once, in order, none of another conversation`,
      );
    }
  },
);
