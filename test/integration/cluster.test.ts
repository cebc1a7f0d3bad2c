// A three-server JetStream cluster on loopback, streams and buckets replicated three times:
// killing one server does not stop Parley, and loses nothing.
import t from 'tap';
import type { Command } from '../../actors/events.ts';
import { startNatsCluster } from '../helpers/nats-server.ts';
import { connectIntegrator, type Integrator, startWorker } from '../helpers/runtime.ts';

// Leader elections are slow when the machine is busy (the suite runs files side by side).
t.setTimeout(300_000);

/** Publishes until JetStream stores it: during a leader election a publish may time out. */
async function sendSurely(
  it: Integrator,
  command: Record<string, unknown> & { type: Command['type'] },
  id: string,
) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await it.send({ ...command, id });
    } catch (error) {
      if (attempt >= 60) throw error;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

t.test(
  'a three-server cluster keeps accepting and applying commands when one server dies',
  async (t) => {
    t.setTimeout(180_000);
    const cluster = await startNatsCluster(3, { t });
    await startWorker(t, cluster.urls, { replicas: 3 });
    const it = await connectIntegrator(t, cluster.urls.join(','));

    await sendSurely(
      it,
      { type: 'StartConversation', conversation: 'q1', visitor: 'v1', rule: 'direct' },
      'start-q1',
    );
    const sent: string[] = [];
    for (let i = 0; i < 40; i++) {
      if (i === 15) await cluster.servers[2]!.kill();
      const messageId = `q1-m${i}`;
      sent.push(messageId);
      await sendSurely(
        it,
        {
          type: 'SendMessage',
          conversation: 'q1',
          author: { kind: 'visitor', id: 'v1' },
          message: { id: messageId, text: `n${i}` },
        },
        `send-${i}`,
      );
    }
    await it.waitFor(
      (e) => e.type === 'MessageAdded' && e.message.id === 'q1-m39',
      60_000,
      'the last message',
    );
    const thread = (await it.stored('parley.evt.*.q1.MessageAdded')).flatMap((e) =>
      e.type === 'MessageAdded' ? [e.message] : [],
    );
    t.same(
      thread.map((m) => m.seq),
      thread.map((_, i) => i + 1),
      'numbered without gaps',
    );
    t.same(
      thread.filter((m) => m.author.kind === 'visitor').map((m) => m.id),
      sent,
      'every message once, in order, across the loss of a server',
    );
  },
);
