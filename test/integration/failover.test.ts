// Workers dying and competing: SIGKILL while commands stream in, a snooze outliving the worker
// that set it, caps and slots held by workers that share groups and agents.
import { Kvm } from '@nats-io/kv';
import t, { type Test } from 'tap';
import type { DomainEvent } from '../../actors/events.ts';
import type { Settings } from '../../actors/settings.ts';
import { BUCKETS } from '../../lib/nats/streams.ts';
import { startNatsServer } from '../helpers/nats-server.ts';
import { connectIntegrator, type Integrator, runtimeSettings } from '../helpers/runtime.ts';
import { group, rule } from '../helpers/settings.ts';
import { splitIds, startWorkerProcess, type WorkerProcess } from '../helpers/worker-process.ts';

const LEASES = ['tv', 'orders', '_agent'];

/** Two worker processes, `a` hosting tv and `b` orders, and an integrator connected. */
async function twoWorkers(
  t: Test,
  url: string,
  settings: Settings,
): Promise<{ a: WorkerProcess; b: WorkerProcess; it: Integrator }> {
  const [idA, idB] = splitIds(LEASES, 'tv', 'orders');
  const a = await startWorkerProcess(url, settings, { id: idA, t });
  const b = await startWorkerProcess(url, settings, { id: idB, t });
  const it = await connectIntegrator(t, url);
  return { a, b, it };
}

/** alice online, and a conversation started in tv and handed to her. */
async function assignedToAlice(it: Integrator, conversation: string): Promise<void> {
  await it.send({ type: 'SetAgentPresence', agent: 'alice', presence: 'online' });
  await it.send({ type: 'StartConversation', conversation, visitor: 'v1', rule: 'direct' }, 'tv');
  await it.waitFor(
    (e) => e.type === 'ConversationAssigned' && e.conversation === conversation,
    10_000,
    `${conversation} assigned to alice`,
  );
}

/** Starts `n` conversations `<prefix>0…`, the odd ones in tv, the even ones in orders. */
function startAlternating(it: Integrator, prefix: string, n: number) {
  return Promise.all(
    Array.from({ length: n }, (_, i) =>
      it.send(
        {
          type: 'StartConversation',
          conversation: `${prefix}${i}`,
          visitor: `v${i}`,
          rule: i % 2 ? 'direct' : 'to-orders',
        },
        i % 2 ? 'tv' : 'orders',
      ),
    ),
  );
}
const visitor = (id: string) => ({ kind: 'visitor', id }) as const;
const messagesOf = (events: DomainEvent[], conversation: string) =>
  events.flatMap((e) =>
    e.type === 'MessageAdded' && e.conversation === conversation ? [e.message] : [],
  );

/** Settings where tv and orders each take conversations directly, and nobody is assigned. */
const directSettings = (over: { tvCap?: number; ordersCap?: number } = {}) => {
  const base = runtimeSettings();
  return {
    ...base,
    groups: [
      group('tv', { cap: over.tvCap ?? 500, snooze: base.groups[0]!.snooze }),
      group('orders', { cap: over.ordersCap ?? 500, snooze: base.groups[1]!.snooze }),
    ],
    rules: [...base.rules, rule('to-orders', { target: { group: 'orders', byAnswer: [] } })],
  };
};

t.test(
  'SIGKILL a worker while commands stream in: nothing lost, nothing applied twice, the survivor resumes',
  async (t) => {
    const server = await startNatsServer({ t });
    const { a, b, it } = await twoWorkers(t, server.url, directSettings());

    const conversations = Array.from({ length: 10 }, (_, i) => ({
      id: `k${i}`,
      group: i % 2 ? 'orders' : 'tv',
    }));
    for (const c of conversations) {
      await it.send(
        {
          type: 'StartConversation',
          conversation: c.id,
          visitor: `v-${c.id}`,
          rule: c.group === 'tv' ? 'direct' : 'to-orders',
        },
        c.group,
      );
    }
    const sent = new Map<string, string[]>(conversations.map((c) => [c.id, []]));
    const PER = 30;
    for (let round = 0; round < PER; round++) {
      if (round === PER / 3) a.kill(); // mid-stream; its groups move to b
      await Promise.all(
        conversations.map(async (c) => {
          const messageId = `${c.id}-m${round}`;
          sent.get(c.id)!.push(messageId);
          await it.send(
            {
              type: 'SendMessage',
              conversation: c.id,
              author: visitor(`v-${c.id}`),
              message: { id: messageId, text: `n${round}` },
            },
            c.group,
          );
        }),
      );
    }
    const last = conversations.map((c) => `${c.id}-m${PER - 1}`);
    for (const id of last) {
      await it.waitFor(
        (e) => e.type === 'MessageAdded' && e.message.id === id,
        20_000,
        `message ${id}`,
      );
    }
    const events = await it.stored('parley.evt.*.*.MessageAdded');
    const stored = await new Kvm(it.nc).open(BUCKETS.conversations);
    for (const c of conversations) {
      const thread = messagesOf(events, c.id);
      // Conversations are stored at checkpoints (about every second): wait for this one's.
      let nextSeq: number | undefined;
      for (let i = 0; i < 50 && nextSeq !== thread.length + 1; i++) {
        const saved = await stored.get(c.id);
        nextSeq = saved?.json<{ record: { context: { nextSeq: number } } | null }>().record?.context
          .nextSeq;
        if (nextSeq !== undefined && nextSeq > thread.length + 1) break; // applied twice: fail now
        if (nextSeq !== thread.length + 1) await new Promise((r) => setTimeout(r, 100));
      }
      t.equal(nextSeq, thread.length + 1, `${c.id}: stored state counts each message once`);
      t.same(
        thread.map((m) => m.seq),
        thread.map((_, i) => i + 1),
        `${c.id}: numbered without gaps`,
      );
      const fromVisitor = thread.filter((m) => m.author.kind === 'visitor').map((m) => m.id);
      t.same(fromVisitor, sent.get(c.id), `${c.id}: every message once, in the order sent`);
    }
    t.equal(await b.stop(), 0, 'the survivor stops cleanly');
  },
);

t.test('a snooze set by a worker that then dies wakes on the survivor', async (t) => {
  const server = await startNatsServer({ t });
  const { a, b, it } = await twoWorkers(t, server.url, directSettings());
  await assignedToAlice(it, 's1');
  await it.send({ type: 'Snooze', conversation: 's1', agent: 'alice', durationMs: 2_500 }, 'tv');
  const snoozed = await it.waitFor((e) => e.type === 'ConversationSnoozed', 10_000, 'snoozed');
  a.kill(); // a hosts tv: the snooze's timer dies with it
  const woken = await it.waitFor(
    (e) => e.type === 'ConversationWoken' && e.conversation === 's1',
    15_000,
    'the wake',
  );
  t.match(woken, { by: 'timer' });
  t.ok(woken.at >= (snoozed as { until: number }).until, 'not before the deadline');
  await b.stop();
});

t.test('the cap holds with two workers and concurrent escalations into one group', async (t) => {
  const server = await startNatsServer({ t });
  // tv overflows into orders, hosted by the other worker, which also takes its own escalations.
  const base = directSettings({ tvCap: 3, ordersCap: 4 });
  const settings = {
    ...base,
    groups: [
      group('tv', { cap: 3, overflow: { kind: 'group', group: 'orders' } }),
      group('orders', { cap: 4 }),
    ],
  };
  const { it } = await twoWorkers(t, server.url, settings);
  const N = 30;
  await startAlternating(it, 'x', N);
  for (let i = 0; i < N; i++) {
    await it.waitFor(
      (e) =>
        (e.type === 'ConversationQueued' || e.type === 'ConversationParked') &&
        e.conversation === `x${i}`,
      20_000,
      `x${i} placed`,
    );
  }
  const events = await it.stored();
  const queued = (g: string) =>
    events.filter((e) => e.type === 'ConversationQueued' && e.group === g).length;
  t.equal(queued('tv'), 3, 'tv filled to its cap');
  t.equal(queued('orders'), 4, 'orders filled to its cap, by its own and by overflow');
  t.equal(
    events.filter((e) => e.type === 'ConversationParked').length,
    N - 7,
    'the rest parked, none dropped',
  );
  const kv = await new Kvm(it.nc).open(BUCKETS.groups);
  const seats = async (g: string) => ((await kv.get(`seats.${g}`))?.json<string[]>() ?? []).length;
  t.equal(await seats('tv'), 3);
  t.equal(await seats('orders'), 4);
});

t.test('an agent’s slots hold when the agent’s groups are on different workers', async (t) => {
  const server = await startNatsServer({ t });
  const settings = directSettings(); // bob serves tv and orders with 2 slots
  const { it } = await twoWorkers(t, server.url, settings);
  const N = 20;
  await startAlternating(it, 'y', N);
  for (let i = 0; i < N; i++) {
    await it.waitFor(
      (e) => e.type === 'ConversationQueued' && e.conversation === `y${i}`,
      20_000,
      `y${i} queued`,
    );
  }
  await it.send({ type: 'SetAgentPresence', agent: 'bob', presence: 'online' });
  await it.waitFor((e) => e.type === 'ConversationAssigned', 10_000, 'a first assignment');
  await new Promise((r) => setTimeout(r, 1_500)); // both workers have had every chance to assign
  const events = await it.stored();
  const toBob = events.filter((e) => e.type === 'ConversationAssigned' && e.agent === 'bob');
  t.equal(toBob.length, 2, 'bob got exactly his two slots, across both workers');
  const kv = await new Kvm(it.nc).open(BUCKETS.agents);
  const bob = (await kv.get('bob'))?.json<{ context: { conversations: string[] } }>();
  t.same(
    [...(bob?.context.conversations ?? [])].sort(),
    toBob.map((e) => (e as { conversation: string }).conversation).sort(),
  );
});

t.test('a worker that joins takes its share; SIGTERM hands its groups over at once', async (t) => {
  const server = await startNatsServer({ t });
  const settings = directSettings();
  const [idA, idB] = splitIds(LEASES, 'tv', 'orders');
  const leaseMs = 4_000; // long, so a handover by expiry would show
  const a = await startWorkerProcess(server.url, settings, { id: idA, leaseMs, t });
  t.same([...a.hosted].sort(), ['_agent', 'orders', 'tv'], 'alone, a hosts everything');
  const it = await connectIntegrator(t, server.url);
  const leases = await new Kvm(it.nc).open(BUCKETS.leases);
  const owner = async (g: string) => {
    const e = await leases.get(g);
    return e?.operation === 'PUT' ? e.json<{ worker: string }>().worker : undefined;
  };
  const until = async (check: () => Promise<boolean>, ms: number) => {
    const end = Date.now() + ms;
    while (Date.now() < end) {
      if (await check()) return true;
      await new Promise((r) => setTimeout(r, 50));
    }
    return false;
  };

  const b = await startWorkerProcess(server.url, settings, { id: idB, leaseMs, t });
  t.ok(
    await until(async () => (await owner('orders')) === idB, leaseMs),
    'b takes its share from a, handed over',
  );
  t.equal(await owner('tv'), idA, 'a keeps its own');

  const stoppedAt = Date.now();
  t.equal(await b.stop(), 0, 'b exits cleanly on SIGTERM');
  t.ok(await until(async () => (await owner('orders')) === idA, leaseMs), 'a takes orders back');
  t.ok(Date.now() - stoppedAt < leaseMs, 'released at once, not left to expire');
  await it.send(
    { type: 'StartConversation', conversation: 'h1', visitor: 'v1', rule: 'to-orders' },
    'orders',
  );
  await it.waitFor(
    (e) => e.type === 'ConversationQueued' && e.conversation === 'h1',
    10_000,
    'orders works on a',
  );
});

t.test('a transfer to a group hosted by another worker', async (t) => {
  const server = await startNatsServer({ t });
  const settings = directSettings();
  const { it } = await twoWorkers(t, server.url, settings);
  await assignedToAlice(it, 'tr1');
  await it.send(
    { type: 'Transfer', conversation: 'tr1', agent: 'alice', to: { group: 'orders' } },
    'tv',
  );
  await it.waitFor(
    (e) => e.type === 'ConversationQueued' && e.conversation === 'tr1' && e.group === 'orders',
    10_000,
    'in orders’ waiting list',
  );
  await it.send({ type: 'SetAgentPresence', agent: 'carol', presence: 'online' }); // carol: orders only
  const assigned = await it.waitFor(
    (e) => e.type === 'ConversationAssigned' && e.conversation === 'tr1' && e.agent === 'carol',
    10_000,
    'carol, on the other worker, gets it',
  );
  t.match(assigned, { group: 'orders' });
  // Later commands sent to the old group are forwarded.
  await it.send(
    {
      type: 'SendMessage',
      conversation: 'tr1',
      author: { kind: 'agent', id: 'carol' },
      message: { text: 'hello from orders' },
    },
    'tv',
  );
  await it.waitFor(
    (e) =>
      e.type === 'MessageAdded' &&
      e.conversation === 'tr1' &&
      e.message.text === 'hello from orders',
    10_000,
    'the message sent to the stale group',
  );
  const kv = await new Kvm(it.nc).open(BUCKETS.conversations);
  t.equal((await kv.get('tr1'))?.json<{ group: string }>()?.group, 'orders');
});
