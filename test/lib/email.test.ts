// The gateway's email settings from the environment: absent, valid, and refused with a message
// that names the variable and never shows the URL (it may hold a password).
import t from 'tap';
import { isParleyError } from '../../lib/errors.ts';
import { emailFromEnv } from '../../lib/gateway/email.ts';

t.test('no PARLEY_SMTP_URL: no emails', async (t) => {
  t.equal(emailFromEnv({}), undefined);
  t.equal(emailFromEnv({ PARLEY_SMTP_URL: '' }), undefined);
});

t.test('an SMTP URL and a delay', async (t) => {
  const email = emailFromEnv({
    PARLEY_SMTP_URL: 'smtp://user:secret@mail.example:587',
    PARLEY_EMAIL_DELAY_MS: '5000',
  });
  t.equal(email?.delayMs, 5000);
  t.equal(typeof email?.send, 'function');
  t.equal(emailFromEnv({ PARLEY_SMTP_URL: 'smtps://mail.example' })?.delayMs, 120_000, 'default');
});

t.test('refused: another scheme, no URL at all, a delay that is not a number', async (t) => {
  for (const [env, what] of [
    [{ PARLEY_SMTP_URL: 'http://user:secret@mail.example' }, /PARLEY_SMTP_URL/],
    [{ PARLEY_SMTP_URL: 'user:secret at mail' }, /PARLEY_SMTP_URL/],
    [
      { PARLEY_SMTP_URL: 'smtp://mail.example', PARLEY_EMAIL_DELAY_MS: '2 min' },
      /PARLEY_EMAIL_DELAY_MS/,
    ],
  ] as const) {
    try {
      emailFromEnv(env);
      t.fail(`accepted ${JSON.stringify(env)}`);
    } catch (error) {
      t.ok(isParleyError(error, 'PARLEY_ERR_CONFIG_INVALID'), 'a configuration error');
      t.match((error as Error).message, what);
      t.notMatch((error as Error).message, /secret/, 'the password is not shown');
    }
  }
});
