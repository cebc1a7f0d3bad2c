// `parley report live|period` as a supervisor runs them: a subprocess reading the events stream
// of a real nats-server after a worker closed a conversation.
import t from 'tap';
import { parleyEnv, runParley } from '../helpers/cli.ts';
import { startRuntime } from '../helpers/runtime.ts';

const parley = (args: string[], env: NodeJS.ProcessEnv) => runParley(args, { env: parleyEnv(env) });

t.test('report live and report period count what was closed', async (t) => {
  const { server, it } = await startRuntime(t);
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
