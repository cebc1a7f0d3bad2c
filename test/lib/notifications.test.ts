// The notification settings from the environment: none, email, text messages, both; refused with a
// message that names the variable and never shows its value (it may hold a password or a token).
import { createServer } from 'node:http';
import t from 'tap';
import { isParleyError } from '../../lib/errors.ts';
import { notificationsFromEnv } from '../../lib/gateway/notifications.ts';

t.test('neither PARLEY_SMTP_URL nor PARLEY_SMS_URL: no notifications', async (t) => {
  t.equal(notificationsFromEnv({}), undefined);
  t.equal(notificationsFromEnv({ PARLEY_SMTP_URL: '', PARLEY_NOTIFY_DELAY_MS: '5' }), undefined);
});

t.test('email, text messages, or both, and the delay', async (t) => {
  const email = notificationsFromEnv({
    PARLEY_SMTP_URL: 'smtp://user:secret@mail.example:587',
    PARLEY_NOTIFY_DELAY_MS: '5000',
  });
  t.equal(email?.delayMs, 5000);
  t.equal(typeof email?.email, 'function');
  t.equal(email?.sms, undefined);
  const sms = notificationsFromEnv({ PARLEY_SMS_URL: 'https://sms.example/send' });
  t.equal(sms?.delayMs, 120_000, 'the default delay');
  t.equal(sms?.email, undefined);
  t.equal(typeof sms?.sms, 'function');
});

t.test('a text message is POSTed as JSON with the token; a refusal is an error', async (t) => {
  const received: { auth: string | undefined; body: unknown }[] = [];
  let status = 202;
  const server = createServer((request, response) => {
    let body = '';
    request.on('data', (c) => {
      body += c;
    });
    request.on('end', () => {
      received.push({ auth: request.headers.authorization, body: JSON.parse(body) });
      response.writeHead(status).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const { port } = server.address() as { port: number };
  const sms = notificationsFromEnv({
    PARLEY_SMS_URL: `http://127.0.0.1:${port}/send`,
    PARLEY_SMS_TOKEN: 'tok-123',
  })!.sms!;
  await sms({ to: '+33612345678', text: 'TV: hello' });
  t.same(received, [{ auth: 'Bearer tok-123', body: { to: '+33612345678', text: 'TV: hello' } }]);
  status = 500;
  await t.rejects(sms({ to: '+33612345678', text: 'again' }), /SMS gateway answered 500/);
});

t.test('refused: another scheme, not a URL, a delay that is not a number', async (t) => {
  for (const [env, what] of [
    [{ PARLEY_SMTP_URL: 'http://user:secret@mail.example' }, /PARLEY_SMTP_URL/],
    [{ PARLEY_SMTP_URL: 'user:secret at mail' }, /PARLEY_SMTP_URL/],
    [{ PARLEY_SMS_URL: 'ftp://secret@sms.example' }, /PARLEY_SMS_URL/],
    [
      { PARLEY_SMTP_URL: 'smtp://mail.example', PARLEY_NOTIFY_DELAY_MS: '2 min' },
      /PARLEY_NOTIFY_DELAY_MS/,
    ],
  ] as const) {
    try {
      notificationsFromEnv(env);
      t.fail(`accepted ${JSON.stringify(env)}`);
    } catch (error) {
      t.ok(isParleyError(error, 'PARLEY_ERR_CONFIG_INVALID'), 'a configuration error');
      t.match((error as Error).message, what);
      for (const [variable, value] of Object.entries(env)) {
        if (!variable.endsWith('_URL')) continue; // (a delay's value is shown)
        t.notOk((error as Error).message.includes(value), `${variable}'s value is not shown`);
      }
    }
  }
});
