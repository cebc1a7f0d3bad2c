// Supervisors over real HTTP: the live figures, a period report and the Prometheus text follow
// what visitors and agents do through the gateway.
import t from 'tap';
import { call, KEYS, startParley } from '../helpers/gateway.ts';

const TV_PAGE = 'https://shop.example/tv/oled-55';

t.test('a supervisor sees the conversation closed today in every form', async (t) => {
  const { http } = await startParley(t);
  const token = (await call<{ token: string }>(http, 'POST', '/v1/visitors')).body.token;
  const start = await call(http, 'POST', '/v1/visitor/conversations', {
    token,
    body: { id: 'c-report', url: TV_PAGE, message: { id: 'm1', text: 'Hello' } },
  });
  t.equal(start.status, 201);
  const alice = KEYS.agents.alice;
  await call(http, 'PUT', '/v1/agent/presence', { token: alice, body: { presence: 'online' } });
  let state = '';
  for (let i = 0; i < 50 && state !== 'assigned'; i++) {
    state = (
      await call<{ state: string }>(http, 'GET', '/v1/agent/conversations/c-report', {
        token: alice,
      })
    ).body.state;
    if (state !== 'assigned') await new Promise((r) => setTimeout(r, 100));
  }
  await call(http, 'POST', '/v1/agent/conversations/c-report/messages', {
    token: alice,
    body: { id: 'r1', text: 'Hi!' },
  });
  t.equal(
    (
      await call(http, 'POST', '/v1/agent/conversations/c-report/close', {
        token: alice,
        body: { tags: ['tv'] },
      })
    ).status,
    200,
  );

  t.equal((await call(http, 'GET', '/v1/reports/live')).status, 401, 'no credential');
  const supervisor = KEYS.supervisor;
  type Live = { closedToday: number; groups: { group: string; closedToday: number }[] };
  let live = await call<Live>(http, 'GET', '/v1/reports/live', { token: supervisor });
  for (let i = 0; i < 50 && live.body.closedToday < 1; i++) {
    await new Promise((r) => setTimeout(r, 100));
    live = await call<Live>(http, 'GET', '/v1/reports/live', { token: supervisor });
  }
  t.equal(live.status, 200);
  t.equal(live.body.closedToday, 1);
  t.equal(live.body.groups.find((g) => g.group === 'tv')?.closedToday, 1);

  const from = Date.now() - 60 * 60_000;
  const period = await call<{
    closed: number;
    handled: number;
    conversations: { items: { conversation: string }[] };
  }>(http, 'GET', `/v1/reports/period?from=${from}&tag=tv`, { token: supervisor });
  t.equal(period.status, 200);
  t.match(period.body, { closed: 1, handled: 1 });
  t.same(
    period.body.conversations.items.map((c) => c.conversation),
    ['c-report'],
  );
  const bad = await call(http, 'GET', '/v1/reports/period?from=yesterday-ish', {
    token: supervisor,
  });
  t.equal(bad.status, 400, 'a period that is not a time');

  const metrics = await fetch(`${http}/metrics`, {
    headers: { authorization: `Bearer ${supervisor}` },
  });
  t.equal(metrics.status, 200);
  const text = await metrics.text();
  t.match(text, /parley_conversations_closed_today\{group="tv"\} 1/);
});
