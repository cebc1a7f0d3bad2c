// Places held without their conversation: what a worker that died in the middle of committing the
// world leaves (it writes what is taken before what is released). Written here into KV by hand, as
// such a crash leaves them; the group's host finds and releases them, and hands out what they free.
import { Kvm } from '@nats-io/kv';
import t from 'tap';
import type { DomainEvent } from '../../actors/events.ts';
import { BUCKETS } from '../../lib/nats/streams.ts';
import { waitUntil } from '../helpers/poll.ts';
import { startRuntime, startWorker } from '../helpers/runtime.ts';

interface AgentRecord {
  presence: string;
  context: { conversations: string[] };
}

const is = (type: string, conversation: string) => (e: DomainEvent) =>
  e.type === type && 'conversation' in e && e.conversation === conversation;

t.test(
  'a slot and a seat held by a closed conversation are released by the next owner',
  async (t) => {
    // The first owner looks only 5 s after it starts (then hourly): the places are left for the next.
    const { server, worker: first, it } = await startRuntime(t, { repairMs: 3_600_000 });
    const kvm = new Kvm(it.nc);
    const agents = await kvm.open(BUCKETS.agents);
    const groups = await kvm.open(BUCKETS.groups);
    const alice = async () =>
      (await agents.get('alice'))!.json<AgentRecord>().context.conversations;
    const seats = async () => (await groups.get('seats.tv'))?.json<string[]>() ?? [];

    // Alice (2 slots) holds c1; c2 was hers and is closed.
    await it.send({ type: 'SetAgentPresence', agent: 'alice', presence: 'online' });
    for (const c of ['c1', 'c2']) {
      await it.send({
        type: 'StartConversation',
        conversation: c,
        visitor: `v-${c}`,
        rule: 'direct',
      });
      await it.waitFor(is('ConversationAssigned', c), 10_000, `${c} assigned`);
    }
    await it.send({ type: 'Close', conversation: 'c2', by: { agent: 'alice' } });
    await it.waitFor(is('ConversationClosed', 'c2'), 10_000, 'c2 closed');
    t.same(await alice(), ['c1']);

    const c1Events = it.of('c1').length;
    // What a crash mid-commit leaves: c2 still on alice's list (her second slot), and holding a
    // seat of tv's waiting list.
    const entry = (await agents.get('alice'))!;
    const record = entry.json<AgentRecord>();
    record.context.conversations.push('c2');
    await agents.update('alice', JSON.stringify(record), entry.revision);
    const seatEntry = await groups.get('seats.tv');
    await groups.update('seats.tv', JSON.stringify(['c2']), seatEntry?.revision ?? 0);

    // Alice looks full, so c3 waits.
    await it.send({
      type: 'StartConversation',
      conversation: 'c3',
      visitor: 'v-c3',
      rule: 'direct',
    });
    await it.waitFor(is('ConversationQueued', 'c3'), 10_000, 'c3 waiting');
    // A command of another consumer stored after tv's last one (the stream's last sequence is then
    // not tv's: the repair must still see that tv has applied everything delivered to it).
    await it.send({ type: 'SetAgentPresence', agent: 'carol', presence: 'online' });
    await it.waitFor((e) => e.type === 'AgentPresenceChanged' && e.agent === 'carol');

    // The next owner of tv frees alice's slot, and c3 gets it.
    await first.stop();
    await startWorker(t, server.url, { repairMs: 300 });
    const assigned = await it.waitFor(is('ConversationAssigned', 'c3'), 10_000, 'c3 assigned');
    t.match(assigned, { agent: 'alice' }, 'c3 gets the slot c2 held');

    await waitUntil(async () => !(await seats()).includes('c2'), 'the seat c2 held to be free');
    t.same(await seats(), [], 'the seat c2 held is free');
    t.same((await alice()).sort(), ['c1', 'c3'], 'alice holds what is hers, c1 among it');
    t.equal(it.of('c1').length, c1Events, 'nothing happened to c1 itself');
  },
);
