// A customer the brand's site has logged in finds their conversations on every device: the brand's
// backend signs the customer's id, and the gateway gives every device the same visitor. Anonymous
// visitors stay one per device. A wrong signature, or a gateway without the identity secret, is
// refused with a problem+json.
import { createHmac } from 'node:crypto';
import t from 'tap';
import { startGateway } from '../../lib/gateway/server.ts';
import { call, gatewaySettings, KEYS, startParley, testCredentials } from '../helpers/gateway.ts';
import { testLog } from '../helpers/runtime.ts';

const TV_PAGE = 'https://shop.example/tv/oled-55';
/** An hour from now: how long the brand's backend lets a signature be used. */
const HOUR = () => Date.now() + 3_600_000;
/** What the brand's backend computes for a logged-in customer. */
const sign = (user: string, expires: number, secret: string = KEYS.identity) =>
  createHmac('sha256', secret).update(`${user}.${expires}`).digest('hex');

interface Visitor {
  visitor: string;
  token: string;
}

t.test('a logged-in customer has the same history on every device', async (t) => {
  const { http, natsUrl } = await startParley(t);
  const login = (user: string, expires = HOUR(), signature = sign(user, expires)) =>
    call<Visitor>(http, 'POST', '/v1/visitors/identified', { body: { user, expires, signature } });

  // On the laptop: logged in, writes.
  const laptop = await login('customer-4711');
  t.equal(laptop.status, 201);
  t.match(laptop.body.visitor, /^u-[A-Za-z0-9_-]{22}$/);
  t.notMatch(laptop.body.visitor, /4711/, 'the id does not show the customer id');
  const started = await call(http, 'POST', '/v1/visitor/conversations', {
    token: laptop.body.token,
    body: {
      id: 'c-laptop',
      url: TV_PAGE,
      message: { id: 'm-1', text: 'Is the OLED 55 in stock?' },
    },
  });
  t.equal(started.status, 201);

  // On the phone, later: the same visitor, the same conversations and thread.
  const phone = await login('customer-4711');
  t.equal(phone.body.visitor, laptop.body.visitor, 'the same visitor on the phone');
  const list = await call<{ conversations: { id: string }[] }>(
    http,
    'GET',
    '/v1/visitor/conversations',
    {
      token: phone.body.token,
    },
  );
  t.same(
    list.body.conversations.map((c) => c.id),
    ['c-laptop'],
    'the conversation started on the laptop',
  );
  const thread = await call<{ messages: { text: string }[] }>(
    http,
    'GET',
    '/v1/visitor/conversations/c-laptop/messages',
    { token: phone.body.token },
  );
  t.equal(thread.status, 200);
  t.match(JSON.stringify(thread.body), /Is the OLED 55 in stock\?/, 'its history');

  // Another customer, and an anonymous visitor, see none of it.
  const other = await login('customer-42');
  t.not(other.body.visitor, laptop.body.visitor);
  const anonymous = await call<Visitor>(http, 'POST', '/v1/visitors');
  t.equal(anonymous.status, 201);
  t.match(anonymous.body.visitor, /^v-/);
  for (const token of [other.body.token, anonymous.body.token]) {
    const theirs = await call<{ conversations: unknown[] }>(
      http,
      'GET',
      '/v1/visitor/conversations',
      {
        token,
      },
    );
    t.same(theirs.body.conversations, []);
    const peek = await call(http, 'GET', '/v1/visitor/conversations/c-laptop', { token });
    t.equal(peek.status, 404);
  }

  // A signature made for another customer, with another secret, or expired: 401.
  const expires = HOUR();
  const past = Date.now() - 1_000;
  for (const [at, signature, why] of [
    [expires, sign('customer-42', expires), /does not match/],
    [expires, sign('customer-4711', expires, 'x'.repeat(40)), /does not match/],
    [expires + 1, sign('customer-4711', expires), /does not match/],
    [past, sign('customer-4711', past), /expired/],
  ] as const) {
    const forged = await login('customer-4711', at, signature);
    t.equal(forged.status, 401);
    t.match(forged.type, /^application\/problem\+json/);
    t.match(forged.body, { code: 'PARLEY_ERR_UNAUTHORIZED', detail: why });
  }
  // Malformed: a field missing, an unknown one, a signature that is not hex: 400.
  for (const body of [
    { user: 'customer-4711', expires },
    { user: 'customer-4711', expires, signature: sign('customer-4711', expires), email: 'a@b.c' },
    { user: 'customer-4711', expires, signature: 'not-hex' },
    { user: 'customer-4711', expires: 'soon', signature: sign('customer-4711', expires) },
    { user: '', expires, signature: sign('', expires) },
  ]) {
    const bad = await call(http, 'POST', '/v1/visitors/identified', { body });
    t.equal(bad.status, 400, JSON.stringify(body));
    t.match(bad.type, /^application\/problem\+json/);
  }

  // A gateway without the identity secret keeps visitors anonymous and says so.
  const { identitySecret: _, ...anonymousOnly } = testCredentials();
  const plain = await startGateway({
    url: natsUrl,
    settings: gatewaySettings(),
    credentials: anonymousOnly,
    log: testLog,
    port: 0,
  });
  t.teardown(() => plain.stop());
  const refused = await call(plain.url, 'POST', '/v1/visitors/identified', {
    body: { user: 'customer-4711', expires, signature: sign('customer-4711', expires) },
  });
  t.equal(refused.status, 400);
  t.match(refused.body, { detail: /not set up/ });
  t.equal((await call(plain.url, 'POST', '/v1/visitors')).status, 201, 'anonymous still works');
});
