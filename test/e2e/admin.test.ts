// The admin API over real HTTP: the live configuration read and changed, every change validated
// like the configuration file, and applied by the running worker without a restart.
import t from 'tap';
import { call, KEYS, startParley } from '../helpers/gateway.ts';

const TV_PAGE = 'https://shop.example/tv/oled-55';
const admin = KEYS.admin;

async function visitor(http: string): Promise<string> {
  return (await call<{ token: string }>(http, 'POST', '/v1/visitors')).body.token;
}

async function start(http: string, token: string, id: string) {
  return call(http, 'POST', '/v1/visitor/conversations', {
    token,
    body: { id, url: TV_PAGE, message: { id: `${id}-m1`, text: 'Hello' } },
  });
}

t.test('admins read the live configuration; other callers cannot', async (t) => {
  const { http } = await startParley(t);
  const config = await call<{ revision: number; config: { groups: { id: string }[] } }>(
    http,
    'GET',
    '/v1/admin/config',
    { token: admin },
  );
  t.equal(config.status, 200);
  t.ok(config.body.revision > 0);
  t.same(
    config.body.config.groups.map((g) => g.id),
    ['tv', 'orders'],
  );
  t.equal((await call(http, 'GET', '/v1/admin/config')).status, 401, 'no credential');
  t.equal(
    (await call(http, 'GET', '/v1/admin/config', { token: KEYS.agents.alice })).status,
    401,
    "an agent's key is not an admin's",
  );
  const groups = await call<{ items: { id: string; cap: number }[] }>(
    http,
    'GET',
    '/v1/admin/groups',
    {
      token: admin,
    },
  );
  t.same(
    groups.body.items.map((g) => [g.id, g.cap]),
    [
      ['tv', 3],
      ['orders', 2],
    ],
  );
  const canned = await call(http, 'GET', '/v1/admin/canned-answers/hello', { token: admin });
  t.match(canned.body, { id: 'hello', text: 'Hello, how can I help?' });
  t.equal((await call(http, 'GET', '/v1/admin/rules/nope', { token: admin })).status, 404);
});

t.test(
  'a smaller cap and a shorter snooze reach the running worker without a restart',
  async (t) => {
    const { http } = await startParley(t);
    const tv = await call<Record<string, unknown>>(http, 'GET', '/v1/admin/groups/tv', {
      token: admin,
    });
    const changed = await call(http, 'PUT', '/v1/admin/groups/tv', {
      token: admin,
      body: { ...tv.body, cap: 1, snooze: { default: '300ms', min: '100ms', max: '1h' } },
    });
    t.equal(changed.status, 200);
    t.match(changed.body, { id: 'tv', cap: 1 });

    const token = await visitor(http);
    t.match((await start(http, token, 'c-first')).body, { state: 'queued' });
    t.match(
      (await start(http, token, 'c-second')).body,
      { state: 'bot' },
      'the waiting list holds one now: the second stays with the bot',
    );
    const widget = await call(http, 'GET', `/v1/widget?url=${encodeURIComponent(TV_PAGE)}`);
    t.match(
      widget.body,
      { waitingListFull: true, showChatButton: false },
      'the button hides when full',
    );

    // The new default snooze: the conversation comes back on its own after 300 ms.
    const alice = KEYS.agents.alice;
    await call(http, 'PUT', '/v1/agent/presence', { token: alice, body: { presence: 'online' } });
    let view = await call<{ state: string }>(http, 'GET', '/v1/agent/conversations/c-first', {
      token: alice,
    });
    for (let i = 0; i < 50 && view.body.state !== 'assigned'; i++) {
      await new Promise((r) => setTimeout(r, 100));
      view = await call(http, 'GET', '/v1/agent/conversations/c-first', { token: alice });
    }
    t.equal(view.body.state, 'assigned');
    const snoozed = await call<{ state: string; snoozes: { until: number; at: number }[] }>(
      http,
      'POST',
      '/v1/agent/conversations/c-first/snooze',
      { token: alice, body: {} },
    );
    t.equal(snoozed.body.state, 'snoozed');
    const s = snoozed.body.snoozes.at(-1) as unknown as {
      until: number;
      since?: number;
      at?: number;
    };
    t.ok(s.until - Date.now() < 1_000, 'snoozed for the new default, not 1 hour');
  },
);

t.test('agents and their slots are changed live', async (t) => {
  const { http } = await startParley(t);
  const created = await call(http, 'POST', '/v1/admin/agents', {
    token: admin,
    body: { id: 'dave', name: 'Dave', groups: ['orders'], slots: 1 },
  });
  t.equal(created.status, 201);
  t.equal(
    (
      await call(http, 'POST', '/v1/admin/agents', {
        token: admin,
        body: { id: 'dave', name: 'Dave', groups: ['orders'] },
      })
    ).status,
    409,
    'created once',
  );
  const slots = await call(http, 'PUT', '/v1/admin/agents/alice', {
    token: admin,
    body: { id: 'alice', name: 'Alice', groups: ['tv'], slots: 3 },
  });
  t.equal(slots.status, 200);
  const token = await visitor(http);
  for (const id of ['c-1', 'c-2', 'c-3']) t.equal((await start(http, token, id)).status, 201);
  const alice = KEYS.agents.alice;
  await call(http, 'PUT', '/v1/agent/presence', { token: alice, body: { presence: 'online' } });
  let mine = await call<{ conversations: unknown[] }>(http, 'GET', '/v1/agent/conversations', {
    token: alice,
  });
  for (let i = 0; i < 50 && mine.body.conversations.length < 3; i++) {
    await new Promise((r) => setTimeout(r, 100));
    mine = await call(http, 'GET', '/v1/agent/conversations', { token: alice });
  }
  t.equal(mine.body.conversations.length, 3, 'alice holds three now that she has three slots');
});

t.test('a change that would break the configuration is refused, naming the field', async (t) => {
  const { http } = await startParley(t);
  const before = await call<{ revision: number }>(http, 'GET', '/v1/admin/config', {
    token: admin,
  });
  const zero = await call<{ code: string; errors: { field: string }[] }>(
    http,
    'PUT',
    '/v1/admin/groups/orders',
    { token: admin, body: { id: 'orders', name: 'Orders', cap: 0 } },
  );
  t.equal(zero.status, 400, 'a cap below 1 is refused by the schema');
  t.match(zero.body.errors[0], { field: 'body.cap' });
  const dangling = await call<{ code: string; detail: string; errors: { field: string }[] }>(
    http,
    'PUT',
    '/v1/admin/rules/orders-pages',
    {
      token: admin,
      body: { id: 'orders-pages', target: { group: 'nowhere' } },
    },
  );
  t.equal(dangling.status, 422, 'a rule to an unknown group');
  t.equal(dangling.body.code, 'PARLEY_ERR_INVALID_CONFIG_CHANGE');
  t.match(dangling.body.errors[0]?.field, /^rules\[1\]\.target\.group/);
  const unknown = await call(http, 'POST', '/v1/admin/canned-answers', {
    token: admin,
    body: { id: 'x', title: 'X', text: 'x', colour: 'red' },
  });
  t.equal(unknown.status, 400, 'unknown fields refused');
  const stale = await call(http, 'DELETE', '/v1/admin/canned-answers/hello', {
    token: admin,
    headers: { 'if-match': String(before.body.revision - 1) },
  });
  t.equal(stale.status, 412, 'a change against an old revision');

  const token = await visitor(http);
  await start(http, token, 'c-busy');
  const inUse = await call(http, 'DELETE', '/v1/admin/groups/tv', { token: admin });
  t.equal(inUse.status, 409, 'a group with conversations stays');
  t.equal(
    (await call(http, 'DELETE', '/v1/admin/canned-answers/hello', { token: admin })).status,
    204,
  );
  t.equal(
    (await call(http, 'GET', '/v1/admin/canned-answers/hello', { token: admin })).status,
    404,
  );
  const after = await call<{ revision: number }>(http, 'GET', '/v1/admin/config', { token: admin });
  t.ok(after.body.revision > before.body.revision, 'only the valid change was written');
});
