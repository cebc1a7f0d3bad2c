// Where the gateway's keys come from: the environment, a file, or (parley dev) a file it makes;
// the identity secret for logged-in customers among them.
import { chmodSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { isParleyError } from '../../lib/errors.ts';
import { Authenticator, devCredentials, loadCredentials } from '../../lib/gateway/auth.ts';

const SECRET = 'a-visitor-secret-of-at-least-32-characters';
const IDENTITY = 'an-identity-secret-of-at-least-32-characters';

t.test('the identity secret from the environment, over the file', async (t) => {
  const dir = t.testdir({});
  const file = join(dir, 'credentials.json');
  writeFileSync(
    file,
    JSON.stringify({ visitorSecret: SECRET, identitySecret: `file-${IDENTITY}` }),
  );
  t.equal(loadCredentials({ PARLEY_CREDENTIALS: file }).identitySecret, `file-${IDENTITY}`);
  t.equal(
    loadCredentials({ PARLEY_CREDENTIALS: file, PARLEY_IDENTITY_SECRET: IDENTITY }).identitySecret,
    IDENTITY,
  );
  t.equal(loadCredentials({ PARLEY_VISITOR_SECRET: SECRET }).identitySecret, undefined, 'none');
  writeFileSync(file, JSON.stringify({ visitorSecret: SECRET, identitySecret: 42 }));
  t.throws(() => loadCredentials({ PARLEY_CREDENTIALS: file }), /identitySecret\?/);
});

t.test('an identity secret shorter than 32 characters is refused', async (t) => {
  const credentials = { visitorSecret: SECRET, adminKeys: [], supervisorKeys: [], agentKeys: {} };
  try {
    new Authenticator({ ...credentials, identitySecret: 'short' });
    t.fail('accepted');
  } catch (error) {
    t.ok(isParleyError(error, 'PARLEY_ERR_CONFIG_INVALID'));
    t.match((error as Error).message, /identity secret must be at least 32/);
  }
  t.ok(new Authenticator({ ...credentials, identitySecret: IDENTITY }));
});

t.test('parley dev makes an identity secret once, and adds one to an older file', async (t) => {
  const dir = t.testdir({});
  const file = join(dir, 'credentials.json');
  const first = devCredentials(file, ['alice']);
  t.ok((first.identitySecret ?? '').length >= 32);
  t.equal(devCredentials(file, ['alice']).identitySecret, first.identitySecret, 'kept');
  const older = { visitorSecret: SECRET, adminKeys: [], supervisorKeys: [], agentKeys: {} };
  writeFileSync(file, JSON.stringify(older), { mode: 0o644 });
  chmodSync(file, 0o644);
  const upgraded = devCredentials(file, []);
  t.ok((upgraded.identitySecret ?? '').length >= 32);
  t.equal(
    JSON.parse(readFileSync(file, 'utf8')).identitySecret,
    upgraded.identitySecret,
    'written',
  );
  t.equal(upgraded.visitorSecret, SECRET, 'the rest kept');
  t.equal(statSync(file).mode & 0o777, 0o600, 'readable by its owner only, even if it was not');
});
