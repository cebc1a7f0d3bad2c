// `parley report live|period` as a supervisor runs them: a subprocess reading the events stream
// of a real nats-server after a worker closed a conversation.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { Worker } from '../../lib/worker/worker.ts';
import { startNatsServer } from '../helpers/nats-server.ts';
import { Integrator, runtimeSettings, testLog } from '../helpers/runtime.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

function parley(args: string[], env: NodeJS.ProcessEnv) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', 'bin/parley.ts', ...args],
      { cwd: ROOT, env: { ...process.env, LOG_LEVEL: 'warn', ...env } },
      (error, stdout, stderr) => {
        const code = error ? (error as { code?: number }).code : 0;
        resolve({ code: typeof code === 'number' ? code : 1, stdout, stderr });
      },
    );
  });
}

t.test('report live and report period count what was closed', async (t) => {
  const server = await startNatsServer({ t });
  const worker = await Worker.start({
    url: server.url,
    settings: runtimeSettings(),
    log: testLog,
    leaseMs: 1_000,
  });
  t.teardown(() => worker.stop());
  const it = await Integrator.connect(server.url);
  t.teardown(() => it.close());
  await it.send({ type: 'SetAgentPresence', agent: 'alice', presence: 'online' });
  await it.send({
    type: 'StartConversation',
    conversation: 'c-rep',
    visitor: 'v-rep',
    rule: 'direct',
    message: { text: 'Hello' },
  });
  await it.waitFor((e) => e.type === 'ConversationAssigned', 10_000, 'the assignment');
  await it.send({
    type: 'SendMessage',
    conversation: 'c-rep',
    author: { kind: 'agent', id: 'alice' },
    message: { text: 'Hi' },
  });
  await it.send({ type: 'Close', conversation: 'c-rep', by: { agent: 'alice' }, tags: ['tv'] });
  await it.waitFor((e) => e.type === 'ConversationClosed', 10_000, 'the close');
  const env = { NATS_URL: server.url };

  const live = await parley(['report', 'live', '--json'], env);
  t.equal(live.code, 0, live.stderr);
  const figures = JSON.parse(live.stdout) as {
    closedToday: number;
    groups: { group: string; closedToday: number }[];
    agents: { agent: string; presence: string; handledToday: number }[];
  };
  t.equal(figures.closedToday, 1);
  t.equal(figures.groups.find((g) => g.group === 'tv')?.closedToday, 1);
  t.match(
    figures.agents.find((a) => a.agent === 'alice'),
    { presence: 'online', handledToday: 1 },
  );

  const from = String(Date.now() - 3_600_000);
  const period = await parley(['report', 'period', '--from', from, '--tag', 'tv', '--json'], env);
  t.equal(period.code, 0, period.stderr);
  const report = JSON.parse(period.stdout) as {
    closed: number;
    handled: number;
    conversations: { items: { conversation: string }[] };
  };
  t.match(report, { closed: 1, handled: 1 });
  t.same(
    report.conversations.items.map((c) => c.conversation),
    ['c-rep'],
  );
  const plain = await parley(['report', 'period', '--from', from], env);
  t.equal(plain.code, 0);
  t.match(plain.stdout, /c-rep/, 'the table lists the conversation');

  const wrong = await parley(['report', 'period', '--from', 'soon'], env);
  t.equal(wrong.code, 1);
  t.match(wrong.stderr, /--from: "soon" is not a valid time/);
  t.equal(wrong.stderr.trim().split('\n').length, 1, 'in one line');
});
