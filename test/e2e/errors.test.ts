// What the gateway refuses, and how: who may see and act on what (401, 403, 404), bad input (400,
// 413), the rate limit (429), NATS out of reach (503), each as application/problem+json with no
// internals; and nothing accepted before is lost. A gateway, a worker and a nats-server of the
// test's own.
import t, { type Test } from 'tap';
import { type Answer, call, KEYS, SseReader, startParley } from '../helpers/gateway.ts';

const TV_PAGE = 'https://shop.example/tv/oled-55';
const ALICE = KEYS.agents.alice;

interface Msg {
  id: string;
  seq: number;
  text: string;
  author: { kind: string };
}

interface ProblemBody {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: string;
  errors?: { field: string; message: string }[];
  rejection?: string;
}

/** `a` is a problem of `status` (and `code`), as RFC 9457 has it, with nothing internal in it. */
function problem(t: Test, a: Answer, status: number, code: string | undefined, what: string) {
  const body = a.body as unknown as ProblemBody;
  t.equal(a.status, status, `${what}: ${status}`);
  t.match(a.type, /^application\/problem\+json\b/, `${what}: problem+json`);
  t.match(
    body,
    { type: /^urn:parley:problem:/, title: String, status, detail: String, code: String },
    `${what}: type, title, status, detail, code`,
  );
  if (code) t.equal(body.code, code, `${what}: ${code}`);
  const text = JSON.stringify(body);
  t.notOk('stack' in body, `${what}: no stack`);
  t.notMatch(text, /\bat .+:\d+:\d+|node_modules|\.ts\b|Error:/, `${what}: nothing internal`);
  return body;
}

async function newVisitor(http: string): Promise<{ visitor: string; token: string }> {
  return (await call<{ visitor: string; token: string }>(http, 'POST', '/v1/visitors')).body;
}

async function thread(http: string, conversation: string): Promise<Msg[]> {
  const a = await call<{ messages: Msg[] }>(
    http,
    'GET',
    `/v1/agent/conversations/${conversation}/messages`,
    { token: ALICE },
  );
  return a.body.messages;
}

t.test(
  'other visitors, other groups and the unauthenticated: 404, 403, 401; health and the OpenAPI document',
  async (t) => {
    const { http } = await startParley(t);

    const health = await call(http, 'GET', '/healthz');
    t.equal(health.status, 200);
    t.same(health.body, { status: 'ok' });
    const doc = await call<{ openapi: string; paths: Record<string, unknown> }>(
      http,
      'GET',
      '/openapi.json',
    );
    t.equal(doc.status, 200);
    t.match(doc.body.openapi, /^3\./, 'an OpenAPI 3 document');
    const paths = Object.keys(doc.body.paths);
    for (const path of [
      '/v1/visitors',
      '/v1/widget',
      '/v1/visitor/conversations',
      '/v1/visitor/conversations/{id}/messages',
      '/v1/visitor/conversations/{id}/events',
      '/v1/agent/presence',
      '/v1/agent/events',
      '/v1/agent/conversations/{id}',
      '/v1/agent/conversations/{id}/snooze',
      '/v1/agent/conversations/{id}/transfer',
      '/v1/agent/canned-answers',
    ]) {
      t.ok(paths.includes(path), `documents ${path}`);
    }
    t.notOk(paths.includes('/healthz'), 'not the health check');

    const a = await newVisitor(http);
    const b = await newVisitor(http);
    const started = await call(http, 'POST', '/v1/visitor/conversations', {
      token: a.token,
      body: { id: 'c-a', url: TV_PAGE, message: { id: 'm-1', text: 'Hello' } },
    });
    t.equal(started.status, 201);

    // Another visitor's conversation does not exist for them: the same 404 as an unknown one.
    const unknown = problem(
      t,
      await call(http, 'GET', '/v1/visitor/conversations/c-nope', { token: b.token }),
      404,
      'PARLEY_ERR_NOT_FOUND',
      'an unknown conversation',
    );
    const hidden = problem(
      t,
      await call(http, 'GET', '/v1/visitor/conversations/c-a', { token: b.token }),
      404,
      'PARLEY_ERR_NOT_FOUND',
      "another visitor's conversation",
    );
    t.same(
      { ...hidden, detail: hidden.detail.replace('c-a', 'X') },
      { ...unknown, detail: unknown.detail.replace('c-nope', 'X') },
      'indistinguishable from an unknown one',
    );
    for (const [method, path, body] of [
      ['GET', '/v1/visitor/conversations/c-a/messages', undefined],
      ['POST', '/v1/visitor/conversations/c-a/messages', { id: 'x-1', text: 'Hijack' }],
      ['POST', '/v1/visitor/conversations/c-a/read', undefined],
      ['POST', '/v1/visitor/conversations/c-a/close', undefined],
      ['POST', '/v1/visitor/conversations/c-a/survey', { csat: 1 }],
    ] as const) {
      problem(
        t,
        await call(http, method, path, { token: b.token, body }),
        404,
        'PARLEY_ERR_NOT_FOUND',
        `${method} ${path} by another visitor`,
      );
    }
    const spy = await SseReader.open(`${http}/v1/visitor/conversations/c-a/events`, {
      token: b.token,
    });
    t.equal(spy.status, 404, "another visitor's live updates: 404");
    await spy.close();
    const theirs = await call<{ conversations: unknown[] }>(
      http,
      'GET',
      '/v1/visitor/conversations',
      { token: b.token },
    );
    t.same(theirs.body.conversations, [], 'not in their list either');
    const view = await call(http, 'GET', '/v1/visitor/conversations/c-a', { token: a.token });
    t.match(view.body, { state: 'queued', unread: 0 }, 'nothing changed: still open');
    t.same(
      (await thread(http, 'c-a')).map((m) => m.text),
      ['Hi! Leave us a message.', 'Hello'],
      'nothing changed: no message added',
    );

    // An agent of another group: 403, whatever the action.
    await call(http, 'PUT', '/v1/agent/presence', { token: ALICE, body: { presence: 'online' } });
    const carol = KEYS.agents.carol;
    for (const [method, path, body] of [
      ['GET', '/v1/agent/conversations/c-a', undefined],
      ['GET', '/v1/agent/conversations/c-a/messages', undefined],
      ['GET', '/v1/agent/conversations/c-a/visitor', undefined],
      ['POST', '/v1/agent/conversations/c-a/messages', { id: 'c-1', text: 'Hi from orders' }],
      ['POST', '/v1/agent/conversations/c-a/snooze', {}],
      ['POST', '/v1/agent/conversations/c-a/transfer', { to: { agent: 'carol' } }],
      ['POST', '/v1/agent/conversations/c-a/tags', { tags: ['mine'] }],
      ['POST', '/v1/agent/conversations/c-a/close', {}],
      ['POST', '/v1/agent/conversations/c-a/block', {}],
    ] as const) {
      problem(
        t,
        await call(http, method, path, { token: carol, body }),
        403,
        'PARLEY_ERR_FORBIDDEN',
        `carol (orders): ${method} ${path}`,
      );
    }
    // bob serves tv but alice holds it: he may read and tag, not snooze or write.
    const bob = KEYS.agents.bob;
    t.equal((await call(http, 'GET', '/v1/agent/conversations/c-a', { token: bob })).status, 200);
    const bobSnoozes = problem(
      t,
      await call(http, 'POST', '/v1/agent/conversations/c-a/snooze', { token: bob, body: {} }),
      403,
      'PARLEY_ERR_FORBIDDEN',
      'bob snoozing what alice holds',
    );
    t.equal(bobSnoozes.rejection, 'not-assigned-agent');
    problem(
      t,
      await call(http, 'POST', '/v1/agent/conversations/c-a/messages', {
        token: bob,
        body: { id: 'b-1', text: 'Hi' },
      }),
      409,
      'PARLEY_ERR_COMMAND_REJECTED',
      'bob writing in what alice holds',
    );
    const after = await call<{ state: string; agent: string; tags: string[] }>(
      http,
      'GET',
      '/v1/agent/conversations/c-a',
      { token: ALICE },
    );
    t.match(after.body, { state: 'assigned', agent: 'alice', tags: [] }, 'nothing changed');
    t.equal((await thread(http, 'c-a')).length, 2, 'no message added');
    problem(
      t,
      await call(http, 'GET', '/v1/agent/conversations/c-nope', { token: ALICE }),
      404,
      'PARLEY_ERR_NOT_FOUND',
      'an unknown conversation, for an agent',
    );

    // No credential, a wrong one, or one of the wrong kind: 401.
    const forged = `${a.visitor}.${'A'.repeat(43)}`;
    const other = `${b.visitor}.${a.token.slice(a.token.lastIndexOf('.') + 1)}`;
    for (const [what, method, path, token] of [
      ['no credential', 'GET', '/v1/visitor/conversations', undefined],
      ['no credential', 'GET', '/v1/agent/conversations', undefined],
      ['no credential', 'PUT', '/v1/agent/presence', undefined],
      ['a forged visitor token', 'GET', '/v1/visitor/conversations', forged],
      ["a visitor id with another's signature", 'GET', '/v1/visitor/conversations', other],
      ['a wrong agent key', 'GET', '/v1/agent/conversations', 'alice-key-for-tests-onlx'],
      ['an agent key as a visitor', 'GET', '/v1/visitor/conversations', ALICE],
      ["a visitor's token as an agent", 'GET', '/v1/agent/conversations', a.token],
      ['an admin key as an agent', 'GET', '/v1/agent/conversations', KEYS.admin],
    ] as const) {
      const body = method === 'PUT' ? { presence: 'online' } : undefined;
      problem(
        t,
        await call(http, method, path, { token, body }),
        401,
        'PARLEY_ERR_UNAUTHORIZED',
        what,
      );
    }
    const noAuth = await SseReader.open(`${http}/v1/agent/events`);
    t.equal(noAuth.status, 401, 'the push stream wants a key too');
    await noAuth.close();
    problem(
      t,
      await call(http, 'GET', '/v1/nothing-here'),
      404,
      'PARLEY_ERR_NOT_FOUND',
      'no route',
    );
  },
);

t.test(
  'bad input: 400 naming the field, 413 past the body limit; nothing accepted is lost',
  async (t) => {
    const { http } = await startParley(t);
    const { token } = await newVisitor(http);
    const post = (body: unknown, path = '/v1/visitor/conversations/c-in/messages') =>
      call(http, 'POST', path, { token, body });
    const fieldOf = (a: Answer, what: string, status = 400) =>
      problem(t, a, status, 'PARLEY_ERR_VALIDATION', what).errors?.[0]?.field;

    t.equal(
      (
        await call(http, 'POST', '/v1/visitor/conversations', {
          token,
          body: { id: 'c-in', url: TV_PAGE, message: { id: 'm-1', text: 'First' } },
        })
      ).status,
      201,
    );
    t.equal((await post({ id: 'm-2', text: 'Second 🙂' })).status, 201);

    t.equal(
      fieldOf(await post({ id: 'x-1', text: 'Hi', bogus: true }), 'an unknown field'),
      'body.bogus',
    );
    t.equal(
      fieldOf(
        await post({ id: 'x-2', text: 'Hi', attachments: [{ kind: 'image', ref: 'r', color: 1 }] }),
        'an unknown nested field',
      ),
      'body.attachments[0].color',
    );
    t.equal(fieldOf(await post({ id: 'x-3', text: 42 }), 'a number for a string'), 'body.text');
    t.equal(fieldOf(await post({ id: 'x-4', text: ['a'] }), 'an array for a string'), 'body.text');
    t.equal(fieldOf(await post({ text: 'No id' }), 'a missing id'), 'body.id');
    t.equal(fieldOf(await post({ id: 'x 5', text: 'Hi' }), 'an id with a space'), 'body.id');
    t.equal(fieldOf(await post({ id: 'x-6', text: '   ' }), 'a blank message'), 'body.text');
    t.equal(fieldOf(await post([1, 2]), 'an array for the body'), 'body');
    t.equal(
      fieldOf(
        await post({
          id: 'x-7',
          text: 'See the file',
          attachments: [
            {
              kind: 'image',
              ref: 'https://cdn.example/a.txt',
              mimeType: 'text/plain',
              sizeBytes: 10,
            },
          ],
        }),
        'an image that is text/plain',
      ),
      'body.attachments[0].mimeType',
    );
    t.equal(
      fieldOf(
        await post({
          id: 'x-8',
          text: 'Huge',
          attachments: [
            {
              kind: 'image',
              ref: 'https://cdn.example/a.png',
              mimeType: 'image/png',
              sizeBytes: 50_000_000,
            },
          ],
        }),
        'an image over the size limit',
      ),
      'body.attachments[0].sizeBytes',
    );
    t.equal(
      fieldOf(
        await post({
          id: 'x-9',
          text: 'A program',
          attachments: [
            {
              kind: 'file',
              ref: 'https://cdn.example/a.exe',
              mimeType: 'application/x-msdownload',
              sizeBytes: 10,
            },
          ],
        }),
        'a file of a refused type',
      ),
      'body.attachments[0].mimeType',
    );
    const malformed = await call(http, 'POST', '/v1/visitor/conversations/c-in/messages', {
      token,
      raw: '{"id": "x-10", "text": "cut',
    });
    problem(t, malformed, 400, 'PARLEY_ERR_VALIDATION', 'malformed JSON');
    const notJson = await call(http, 'POST', '/v1/visitor/conversations/c-in/messages', {
      token,
      raw: 'id=x-11&text=form',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    problem(t, notJson, 415, 'PARLEY_ERR_VALIDATION', 'a form body');
    const big = await post({ id: 'x-12', text: 'x'.repeat(70 * 1024) });
    problem(t, big, 413, 'PARLEY_ERR_BODY_TOO_LARGE', 'a body over 64 KiB');
    const long = await post({ id: 'x-13', text: 'x'.repeat(10_001) });
    t.equal(fieldOf(long, 'a text over 10 000 characters'), 'body.text');
    t.equal(
      fieldOf(
        await post({ id: 'x-14', text: 'Hi' }, '/v1/visitor/conversations/bad.id/messages'),
        'an invalid id in the path',
      ),
      'params.id',
    );
    await t.test('ids as long as allowed, or longer, in the path', async (t) => {
      // 128 characters make a valid conversation id: it must be addressable.
      const id = `c-${'x'.repeat(126)}`;
      const long = await call(http, 'POST', '/v1/visitor/conversations', {
        token,
        body: { id, url: TV_PAGE },
      });
      t.equal(long.status, 201, 'a conversation with a 128-character id starts');
      const read = await call(http, 'GET', `/v1/visitor/conversations/${id}`, { token });
      t.equal(read.status, 200, '…and can be read');
      const tooLong = await call(http, 'GET', `/v1/agent/conversations/${'c'.repeat(129)}`, {
        token: ALICE,
      });
      t.equal(
        problem(t, tooLong, 400, 'PARLEY_ERR_VALIDATION', 'an id too long').errors?.[0]?.field,
        'params.id',
      );
      problem(
        t,
        await call(http, 'GET', '/v1/visitor/conversations/%E0%A4%A', { token }),
        400,
        'PARLEY_ERR_VALIDATION',
        'a malformed URL',
      );
    });
    t.equal(
      fieldOf(await call(http, 'GET', '/v1/widget', {}), 'a missing query parameter'),
      'querystring.url',
    );
    t.equal(
      fieldOf(
        await call(http, 'GET', `/v1/widget?url=${encodeURIComponent(TV_PAGE)}&lang=fr`),
        'an unknown query parameter',
      ),
      'querystring.lang',
    );

    // Agents' input.
    await call(http, 'PUT', '/v1/agent/presence', { token: ALICE, body: { presence: 'online' } });
    t.equal(
      fieldOf(
        await call(http, 'PUT', '/v1/agent/presence', { token: ALICE, body: { presence: 'busy' } }),
        'a presence that is none',
      ),
      'body.presence',
    );
    const agentPost = (path: string, body: unknown) =>
      call(http, 'POST', `/v1/agent/conversations/c-in/${path}`, { token: ALICE, body });
    t.equal(
      fieldOf(await agentPost('snooze', { duration: '1h', durationMs: 1000 }), 'two durations'),
      'body.duration',
    );
    problem(
      t,
      await agentPost('snooze', { duration: 'soon' }),
      400,
      'PARLEY_ERR_INVALID_DURATION',
      'a duration that is none',
    );
    t.equal(
      fieldOf(await agentPost('snooze', { durationMs: '5m' }), 'durationMs as a string'),
      'body.durationMs',
    );
    t.equal(fieldOf(await agentPost('tags', { tags: [] }), 'no tags'), 'body.tags');
    t.equal(
      fieldOf(await agentPost('tags', { tags: ['ok', 7] }), 'a tag that is a number'),
      'body.tags[1]',
    );
    t.equal(
      fieldOf(await agentPost('transfer', { to: 'bob' }), 'a transfer to a string'),
      'body.to',
    );
    t.equal(
      fieldOf(await agentPost('close', { tags: 'done' }), 'close with tags as a string'),
      'body.tags',
    );
    t.equal(
      fieldOf(
        await agentPost('messages', { id: 'r-x', text: 'Hi', cannedAnswer: 'Hello There' }),
        'a canned answer id that is none',
      ),
      'body.cannedAnswer',
    );
    problem(
      t,
      await agentPost('messages', { id: 'r-y', cannedAnswer: 'no-such-answer' }),
      404,
      'PARLEY_ERR_NOT_FOUND',
      'an unknown canned answer',
    );
    problem(
      t,
      await agentPost('transfer', { to: { agent: 'zed' } }),
      404,
      'PARLEY_ERR_NOT_FOUND',
      'a transfer to an unknown agent',
    );
    problem(
      t,
      await agentPost('transfer', { to: { agent: 'alice' } }),
      409,
      'PARLEY_ERR_COMMAND_REJECTED',
      'a transfer to oneself',
    );

    // Accepted between the refusals, and still accepted after them.
    const withFile = await post({
      id: 'm-3',
      text: 'My invoice',
      attachments: [
        {
          kind: 'file',
          ref: 'https://cdn.example/invoice.pdf',
          mimeType: 'application/pdf',
          sizeBytes: 12_345,
        },
      ],
    });
    t.equal(withFile.status, 201);
    const reply = await agentPost('messages', { id: 'r-1', text: 'Got it 👍' });
    t.equal(reply.status, 201);

    const messages = await thread(http, 'c-in');
    t.same(
      messages.map((m) => [
        m.seq,
        m.id.startsWith('m-') || m.id.startsWith('r-') ? m.id : m.author.kind,
      ]),
      [
        [1, 'system'],
        [2, 'm-1'],
        [3, 'm-2'],
        [4, 'm-3'],
        [5, 'r-1'],
      ],
      'every accepted message, in order, and nothing refused',
    );
    const visitorSees = await call<{ messages: Msg[] }>(
      http,
      'GET',
      '/v1/visitor/conversations/c-in/messages',
      { token },
    );
    t.same(
      visitorSees.body.messages.map((m) => m.text),
      ['Hi! Leave us a message.', 'First', 'Second 🙂', 'My invoice', 'Got it 👍'],
    );
    const view = await call<{ state: string; agent: string; tags: string[]; snoozes: unknown[] }>(
      http,
      'GET',
      '/v1/agent/conversations/c-in',
      { token: ALICE },
    );
    t.match(
      view.body,
      { state: 'assigned', agent: 'alice', tags: [], snoozes: [] },
      'no refused action took effect',
    );
  },
);

/** Starts c-rl, then writes until refused: the refusal checked, and what was accepted kept. */
async function writeUntilLimited(t: Test, http: string, token: string, accepted: number) {
  const post = (id: string) =>
    call(http, 'POST', '/v1/visitor/conversations/c-rl/messages', {
      token,
      body: { id, text: `Message ${id}` },
    });
  const start = await call(http, 'POST', '/v1/visitor/conversations', {
    token,
    body: { id: 'c-rl', url: TV_PAGE },
  });
  t.equal(start.status, 201);
  const ids = Array.from({ length: accepted }, (_, i) => `m-${i + 1}`);
  for (const id of ids) t.equal((await post(id)).status, 201, `${id} accepted`);
  const limited = await post('m-over');
  problem(t, limited, 429, 'PARLEY_ERR_RATE_LIMITED', 'the request over the limit');
  const after = Number(limited.headers.get('retry-after'));
  t.ok(Number.isInteger(after) && after > 0 && after <= 60, `retry-after in seconds (${after})`);
  problem(
    t,
    await call(http, 'GET', '/v1/visitor/conversations', { token }),
    429,
    'PARLEY_ERR_RATE_LIMITED',
    'reads too',
  );
  t.same(
    (await thread(http, 'c-rl')).map((m) => m.id).filter((id) => id.startsWith('m-')),
    ids,
    'the refused message was not added; the accepted ones are there',
  );
}

t.test(
  'a visitor over their rate limit gets 429 with retry-after; other visitors do not',
  async (t) => {
    const { http } = await startParley(t, { limits: { perVisitorPerMinute: 5 } });
    const { token } = await newVisitor(http);
    await writeUntilLimited(t, http, token, 4); // the start and 4 messages: 5 in the minute
    const other = await newVisitor(http);
    t.equal(
      (await call(http, 'GET', '/v1/visitor/conversations', { token: other.token })).status,
      200,
      'another visitor is not limited',
    );
  },
);

t.test('an address over its rate limit gets 429 with retry-after', async (t) => {
  const { http } = await startParley(t, { limits: { perIpPerMinute: 6 } });
  const { token } = await newVisitor(http); // 1
  await writeUntilLimited(t, http, token, 4); // 2 to 6, then refused
  problem(
    t,
    await call(http, 'POST', '/v1/visitors'),
    429,
    'PARLEY_ERR_RATE_LIMITED',
    'a new visitor from the same address',
  );
  t.equal(
    (await call(http, 'GET', '/v1/agent/conversations', { token: ALICE })).status,
    200,
    "the agent API is not under the visitors' limit",
  );
});

t.test(
  'NATS out of reach: 503, never 2xx; the same request succeeds once it is back',
  async (t) => {
    const { server, http } = await startParley(t);
    const { token } = await newVisitor(http);
    t.equal(
      (
        await call(http, 'POST', '/v1/visitor/conversations', {
          token,
          body: { id: 'c-down', url: TV_PAGE, message: { id: 'm-1', text: 'Hello' } },
        })
      ).status,
      201,
    );

    await server.kill();
    const health = await call(http, 'GET', '/healthz');
    t.equal(health.status, 503, 'the health check says so');
    t.same(health.body, { status: 'nats-unreachable' });
    const write = () =>
      call(http, 'POST', '/v1/visitor/conversations/c-down/messages', {
        token,
        body: { id: 'm-2', text: 'Anyone there?' },
      });
    const down = await write();
    problem(t, down, 503, undefined, 'a message while NATS is down');
    t.match(
      (down.body as unknown as ProblemBody).code,
      /^PARLEY_ERR_(NOT_STORED|NATS_UNREACHABLE)$/,
    );

    await server.restart();
    const deadline = Date.now() + 15_000;
    let again = await write();
    while (again.status >= 500 && Date.now() < deadline) again = await write();
    t.ok(
      [201, 202].includes(again.status),
      `the retry is accepted once NATS is back (${again.status})`,
    );
    t.equal((await call(http, 'GET', '/healthz')).status, 200);
    const messages = await call<{ messages: Msg[] }>(
      http,
      'GET',
      '/v1/visitor/conversations/c-down/messages',
      { token },
    );
    t.same(
      messages.body.messages.filter((m) => m.author.kind === 'visitor').map((m) => m.id),
      ['m-1', 'm-2'],
      'the message once, nothing lost',
    );
  },
);
