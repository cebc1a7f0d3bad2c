// The live inspection the CLI and the gateway ask of the worker hosting a routing group, against a
// real nats-server and a real worker driven through NATS subjects.
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import type { DomainEvent } from '../../actors/events.ts';
import { isParleyError, ParleyError } from '../../lib/errors.ts';
import {
  type InspectReply,
  inspectConversation,
  inspectGroup,
  inspectSubject,
} from '../../lib/inspect.ts';
import { startNatsServer } from '../helpers/nats-server.ts';
import {
  connectIntegrator,
  runtimeSettings,
  startRuntime,
  startWorker,
} from '../helpers/runtime.ts';
import { splitIds } from '../helpers/worker-process.ts';

const is =
  (type: DomainEvent['type'], conversation: string) =>
  (e: DomainEvent): boolean =>
    e.type === type && 'conversation' in e && e.conversation === conversation;

/** The ParleyError a promise rejects with. */
async function failure(promise: Promise<unknown>): Promise<ParleyError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof ParleyError) return error;
    throw error;
  }
  throw new Error('expected a ParleyError, got an answer');
}

t.test(
  'a conversation is inspected live from the bot to the waiting list, an agent and a snooze',
  async (t) => {
    const { worker, it } = await startRuntime(t);
    const start = (conversation: string) =>
      it.send({
        type: 'StartConversation',
        conversation,
        visitor: `v-${conversation}`,
        rule: 'qualify',
      });

    const started = await start('q1');
    await it.waitFor(is('ConversationStarted', 'q1'));
    const bot = await inspectConversation(it.nc, 'tv', 'q1');
    t.match(bot, {
      worker: worker.id,
      group: 'tv',
      conversation: 'q1',
      state: 'bot',
      path: 'bot.asking',
      inMemory: true,
      position: null,
      timers: [],
      context: { id: 'q1', visitor: 'v-q1', group: null },
    });
    t.ok(
      bot.recentCommands.includes(`StartConversation:visitor.v-q1:${started}`),
      'the command that started it is remembered, by its kind, its sender and its id',
    );
    t.ok(Math.abs(bot.at - Date.now()) < 5_000, "stamped with the worker's clock");

    await it.send({ type: 'Escalate', conversation: 'q1' });
    await it.waitFor(is('ConversationQueued', 'q1'));
    await start('q2');
    await it.send({ type: 'Escalate', conversation: 'q2' });
    await it.waitFor(is('ConversationQueued', 'q2'));
    t.match(await inspectConversation(it.nc, 'tv', 'q1'), { state: 'queued', position: 1 });
    t.match(await inspectConversation(it.nc, 'tv', 'q2'), {
      state: 'queued',
      position: 2,
      context: { group: 'tv' },
    });

    const waiting = await inspectGroup(it.nc, 'tv');
    t.match(waiting, {
      worker: worker.id,
      group: 'tv',
      cap: 3,
      seatsTaken: 2,
      snoozed: [],
      open: 2,
      typicalReplyMs: runtimeSettings().groups[0]!.typicalReplyMs,
    });
    t.same(
      waiting.waiting.map((w) => [w.conversation, w.position, w.woken, w.reservedFor]),
      [
        ['q1', 1, false, null],
        ['q2', 2, false, null],
      ],
      'the waiting list in hand-out order',
    );
    t.ok(waiting.waiting.every((w) => w.waitedMs >= 0 && w.readyAt <= waiting.at));
    t.same(
      waiting.agents.map((a) => [a.id, a.name, a.presence, a.load, a.slots]),
      [
        ['alice', 'Alice', 'offline', 0, 2],
        ['bob', 'Bob', 'offline', 0, 2],
      ],
      "the group's agents, as the settings list them",
    );

    await it.send({ type: 'SetAgentPresence', agent: 'alice', presence: 'online' });
    await it.waitFor(is('ConversationAssigned', 'q1'));
    t.match(await inspectConversation(it.nc, 'tv', 'q1'), {
      state: 'assigned',
      position: null,
      context: { agent: 'alice' },
    });
    await it.waitFor(is('ConversationAssigned', 'q2'), 10_000, 'q2 to alice, her second slot');

    await it.send({ type: 'Snooze', conversation: 'q1', agent: 'alice', durationMs: 60_000 });
    const snoozed = (await it.waitFor(is('ConversationSnoozed', 'q1'))) as { until: number };
    const q1 = await inspectConversation(it.nc, 'tv', 'q1');
    t.match(q1, { state: 'snoozed', position: null });
    t.equal(q1.timers.length, 1);
    t.match(q1.timers[0], { kind: 'snooze', until: snoozed.until });
    t.ok(q1.timers[0]!.inMs > 0 && q1.timers[0]!.inMs <= 60_000, 'the deadline is ahead');

    const group = await inspectGroup(it.nc, 'tv');
    t.match(group, { seatsTaken: 1, waiting: [], open: 2 });
    t.same(
      group.snoozed.map((s) => [s.conversation, s.until]),
      [['q1', snoozed.until]],
    );
    t.ok(group.snoozed[0]!.inMs > 0);
    t.match(
      group.agents.find((a) => a.id === 'alice'),
      { presence: 'online', load: 1, conversations: ['q2'] },
      'a snoozed conversation frees its slot',
    );
    t.match(
      group.agents.find((a) => a.id === 'bob'),
      { presence: 'offline', load: 0 },
    );

    const orders = await inspectGroup(it.nc, 'orders');
    t.match(orders, { group: 'orders', cap: 2, seatsTaken: 0, waiting: [], open: 0 });
    t.same(
      orders.agents.map((a) => a.id),
      ['bob', 'carol'],
    );
  },
);

t.test(
  'an unknown conversation is not found, a malformed request is refused, and a group nobody hosts fails at once',
  async (t) => {
    const { worker, it } = await startRuntime(t);

    const unknown = await failure(inspectConversation(it.nc, 'tv', 'nobody'));
    t.equal(unknown.code, 'PARLEY_ERR_NOT_FOUND');
    t.equal(unknown.statusCode, 404);
    t.match(unknown.message, /nobody/);

    // A conversation of another group is not this group's.
    await it.send({ type: 'StartConversation', conversation: 'o1', visitor: 'v1', rule: 'direct' });
    await it.waitFor(is('ConversationQueued', 'o1'));
    t.equal((await inspectConversation(it.nc, 'tv', 'o1')).state, 'queued');
    t.ok(
      isParleyError(
        await failure(inspectConversation(it.nc, 'orders', 'o1')),
        'PARLEY_ERR_NOT_FOUND',
      ),
    );
    t.ok(
      isParleyError(
        await failure(inspectConversation(it.nc, 'tv', 'a.b')),
        'PARLEY_ERR_INVALID_ID',
      ),
      'the client refuses an id that cannot be a subject token',
    );

    const ask = async (body: string) =>
      (await it.nc.request(inspectSubject('tv'), body, { timeout: 5_000 })).json<InspectReply>();
    for (const body of [
      '{"what":"conversation"',
      '"group"',
      '{"what":"everything"}',
      '{"what":"conversation"}',
      '{"what":"conversation","conversation":"a.>"}',
    ]) {
      t.match(await ask(body), { ok: false, code: 'bad-request', message: String }, body);
    }
    t.match(
      await ask('{"what":"group"}'),
      { ok: true, inspection: { group: 'tv' } },
      'still serving',
    );

    let began = Date.now();
    const nobody = await failure(inspectGroup(it.nc, 'billing', { timeoutMs: 5_000 }));
    t.equal(nobody.code, 'PARLEY_ERR_NOT_HOSTED');
    t.equal(nobody.statusCode, 503);
    t.match(nobody.details, { reason: 'no-responders' });
    t.ok(Date.now() - began < 1_000, 'no responders: no waiting for the timeout');

    await worker.stop();
    began = Date.now();
    const gone = await failure(inspectConversation(it.nc, 'tv', 'o1', { timeoutMs: 5_000 }));
    t.equal(gone.code, 'PARLEY_ERR_NOT_HOSTED', 'a worker that stopped answers for nothing');
    t.ok(Date.now() - began < 1_000);
  },
);

t.test('a conversation let out of memory is read from the store', async (t) => {
  // Every checkpoint (each 50 ms) lets every stored idle conversation go.
  const { worker, it } = await startRuntime(t, { idleMs: 0, checkpointMs: 50 });
  const inMemory = (c: string) => worker.host('tv')?.engine.conversation(c) !== undefined;

  await it.send({ type: 'SetAgentPresence', agent: 'alice', presence: 'online' });
  await it.send({
    type: 'StartConversation',
    conversation: 'e1',
    visitor: 'v1',
    rule: 'direct',
    message: { text: 'Hi' },
  });
  await it.waitFor(is('ConversationAssigned', 'e1'));
  for (let i = 0; i < 50 && inMemory('e1'); i++) await sleep(50);
  t.notOk(inMemory('e1'), 'assigned and idle: let out of memory');

  const e1 = await inspectConversation(it.nc, 'tv', 'e1');
  t.match(e1, {
    inMemory: false,
    state: 'assigned',
    path: String,
    position: null,
    timers: [],
    context: { id: 'e1', agent: 'alice', group: 'tv' },
  });
  t.ok(e1.path.startsWith('assigned'));
  t.ok(e1.recentCommands.length > 0);
  t.match(await inspectGroup(it.nc, 'tv'), { open: 1, waiting: [] }, 'still open in its group');

  await it.send({ type: 'Close', conversation: 'e1', by: { agent: 'alice' } });
  await it.waitFor(is('ConversationClosed', 'e1'));
  for (let i = 0; i < 50 && inMemory('e1'); i++) await sleep(50);
  t.match(await inspectConversation(it.nc, 'tv', 'e1'), {
    inMemory: false,
    state: 'closed',
    context: { closedBy: 'agent' },
  });
  t.match(await inspectGroup(it.nc, 'tv'), { open: 0 });
});

t.test('after a rebalance each group is answered by its new owner only', async (t) => {
  const server = await startNatsServer({ t });
  const [idA, idB] = splitIds(['tv', 'orders', '_agent'], 'tv', 'orders');
  const a = await startWorker(t, server.url, { id: idA });
  t.same(a.hosted(), ['_agent', 'orders', 'tv'], 'alone, the first worker hosts everything');
  const it = await connectIntegrator(t, server.url);
  t.equal((await inspectGroup(it.nc, 'orders')).worker, idA);

  const b = await startWorker(t, server.url, { id: idB });
  for (let i = 0; i < 100 && !(b.host('orders') && !a.host('orders')); i++) await sleep(100);
  t.ok(b.host('orders') && !a.host('orders'), 'orders moved to the second worker');
  t.ok(a.host('tv'), 'tv stayed');
  for (let i = 0; i < 10; i++) {
    t.equal((await inspectGroup(it.nc, 'orders')).worker, idB);
    t.equal((await inspectGroup(it.nc, 'tv')).worker, idA);
  }
});
