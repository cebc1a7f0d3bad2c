// `parley config validate|apply|show` as an operator runs them: a subprocess against a real
// nats-server and a running worker, which applies the new configuration without a restart.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { inspectGroup } from '../../lib/inspect.ts';
import { parleyEnv, runParley } from '../helpers/cli.ts';
import { startNatsServer } from '../helpers/nats-server.ts';
import { startWorker } from '../helpers/runtime.ts';

const parley = (args: string[], env: NodeJS.ProcessEnv = {}) =>
  runParley(args, { env: parleyEnv(env) });

async function file(t: Test, text: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'parley-config-test-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'parley.yaml');
  await writeFile(path, text);
  return path;
}

const CONFIG = (cap: number) => `
groups:
  - { id: tv, name: TV, cap: ${cap} }
  - { id: orders, name: Orders, cap: 2 }
rules:
  - { id: direct, target: { group: tv } }
agents:
  - { id: alice, name: Alice, groups: [tv] }
`;

t.test('validate says a good file is valid and names what is wrong in a bad one', async (t) => {
  const good = await parley(['config', 'validate', await file(t, CONFIG(5)), '--json']);
  t.equal(good.code, 0);
  t.match(JSON.parse(good.stdout), { valid: true, groups: ['tv', 'orders'], rules: ['direct'] });
  const bad = await parley([
    'config',
    'validate',
    await file(t, CONFIG(5).replace('target: { group: tv }', 'target: { group: nowhere }')),
  ]);
  t.equal(bad.code, 1);
  t.match(bad.stderr, /rules\[0\]\.target\.group/, 'the field is named');
  t.equal(bad.stdout, '', 'nothing on stdout');
});

t.test('apply makes a file the live configuration and the running worker uses it', async (t) => {
  const server = await startNatsServer({ t });
  const worker = await startWorker(t, server.url);
  const env = { NATS_URL: server.url };

  const shown = await parley(['config', 'show', '--json'], env);
  t.equal(shown.code, 0);
  const before = JSON.parse(shown.stdout) as { revision: number };

  const applied = await parley(['config', 'apply', await file(t, CONFIG(7)), '--json'], env);
  t.equal(applied.code, 0, applied.stderr);
  const result = JSON.parse(applied.stdout) as { revision: number; from: number };
  t.equal(result.from, before.revision);
  t.ok(result.revision > before.revision);

  for (let i = 0; i < 100 && worker.settings.groups[0]?.cap !== 7; i++) {
    await new Promise((r) => setTimeout(r, 50));
  }
  t.equal(worker.settings.groups[0]?.cap, 7, 'the worker took the new cap');
  const group = await inspectGroup(worker.nc, 'tv');
  t.equal(group.cap, 7, 'and its live group answers with it');

  const stale = await parley(
    ['config', 'apply', await file(t, CONFIG(9)), '--if-revision', String(before.revision)],
    env,
  );
  t.equal(stale.code, 1, 'a file applied against an old revision is refused');
  t.match(stale.stderr, /changed meanwhile/);
  t.equal(stale.stderr.trim().split('\n').length, 1, 'in one line');
});
