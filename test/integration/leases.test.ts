// One writer per routing group: leases taken, kept, lost, expired and released against a real
// nats-server with a short lease; live workers listed by heartbeat; the fair share of groups.

import { setTimeout as sleep } from 'node:timers/promises';
import fc from 'fast-check';
import t from 'tap';
import { connectNats } from '../../lib/nats/connection.ts';
import { Leases } from '../../lib/nats/leases.ts';
import { assignGroups, fairShare, Members } from '../../lib/nats/members.ts';
import { ensureStreams } from '../../lib/nats/streams.ts';
import { startNatsServer } from '../helpers/nats-server.ts';

const LEASE_MS = 600;

const server = await startNatsServer({ t });
const nc = await connectNats(server.url);
t.teardown(() => nc.close());
await ensureStreams(nc, { leaseTtlMs: LEASE_MS, workerTtlMs: LEASE_MS });

let groupCounter = 0;
/** A group id no other test uses, so tests share the bucket without meeting. */
const freshGroup = () => `g-${++groupCounter}`;

const leases = async (
  worker: string,
  options: { onLost?: (group: string, reason: string) => void; now?: () => number } = {},
) => {
  const l = await Leases.open(nc, { worker, leaseMs: LEASE_MS, ...options });
  t.teardown(() => l.stop());
  return l;
};

t.test('of two contenders for a group, exactly one wins', async (t) => {
  const a = await leases('w-a');
  const b = await leases('w-b');
  for (let i = 0; i < 20; i++) {
    const group = freshGroup();
    const [wonA, wonB] = await Promise.all([a.acquire(group), b.acquire(group)]);
    t.equal(Number(wonA) + Number(wonB), 1, `${group}: one winner`);
    const winner = wonA ? a : b;
    const loser = wonA ? b : a;
    const owner = await a.owner(group);
    t.equal(owner?.worker, winner.worker);
    t.equal(owner?.revision, winner.revision(group), 'the winner knows the fencing revision');
    t.ok(winner.holds(group));
    t.notOk(loser.holds(group));
    t.equal(loser.revision(group), undefined);
    t.equal(await loser.renew(group), false, 'renew by the loser fails');
    t.equal(await loser.release(group), false, 'the loser cannot release it');
    t.equal((await a.owner(group))?.worker, winner.worker, 'still the winner');
  }
});

t.test('a lease held and renewed is kept; acquiring it again renews it', async (t) => {
  const a = await leases('w-a');
  const b = await leases('w-b');
  const group = freshGroup();
  t.ok(await a.acquire(group));
  const first = a.revision(group)!;
  t.ok(await a.renew(group));
  t.ok(a.revision(group)! > first, 'each renewal is a new revision');
  t.ok(await a.acquire(group), 'the holder may acquire again');
  a.start();
  const deadline = Date.now() + 3 * LEASE_MS;
  while (Date.now() < deadline) {
    t.equal(await b.acquire(group), false);
    await sleep(100);
  }
  t.ok(a.holds(group), 'kept over three lease periods by the heartbeat');
  t.same(a.held(), [group]);
  a.stop();
});

t.test('a lease not renewed expires and the other takes it within one lease period', async (t) => {
  const a = await leases('w-a');
  const b = await leases('w-b');
  const group = freshGroup();
  const taken = Date.now();
  t.ok(await a.acquire(group));
  t.equal(await b.acquire(group), false);
  while (!(await b.acquire(group))) await sleep(25);
  const after = Date.now() - taken;
  t.ok(after >= LEASE_MS - 50, `not before it expired (${after} ms)`);
  t.ok(after <= LEASE_MS + 250, `within one lease period (${after} ms)`);
  t.notOk(a.holds(group), 'the old holder no longer trusts it');
  t.equal((await b.owner(group))?.worker, 'w-b');
});

t.test('an expired lease is taken over even while the bucket still has its entry', async (t) => {
  // b's clock runs a lease period ahead: to b, a's lease has expired though the entry lives.
  const lost: string[] = [];
  const a = await leases('w-a', { onLost: (group, reason) => lost.push(`${group}: ${reason}`) });
  const b = await leases('w-b', { now: () => Date.now() + LEASE_MS + 10 });
  const group = freshGroup();
  t.ok(await a.acquire(group));
  t.ok(await b.acquire(group), 'taken over by compare-and-set on the last revision');
  t.equal(await a.renew(group), false, "the old holder's renewal fails on its stale revision");
  t.same(lost, [`${group}: taken over by another worker`]);
  t.notOk(a.holds(group));
  t.equal(a.revision(group), undefined);
});

t.test('release lets the other acquire at once', async (t) => {
  const a = await leases('w-a');
  const b = await leases('w-b');
  const group = freshGroup();
  t.ok(await a.acquire(group));
  t.equal(await b.acquire(group), false);
  t.ok(await a.release(group));
  t.equal(await a.owner(group), null);
  t.ok(await b.acquire(group), 'acquired right after the release');
  t.equal((await b.owner(group))?.worker, 'w-b');
  t.equal(await a.release(group), false, 'releasing twice does nothing');
  t.equal((await b.owner(group))?.worker, 'w-b');
  await b.close();
  t.equal(await b.owner(group), null, 'close releases every lease');
});

t.test('a worker that lost its lease gets its callback', async (t) => {
  const lost: [string, string][] = [];
  const a = await leases('w-a', { onLost: (group, reason) => lost.push([group, reason]) });
  const b = await leases('w-b', { now: () => Date.now() + LEASE_MS + 10 });
  const paused = freshGroup();
  const stolen = freshGroup();
  t.ok(await a.acquire(paused));
  t.ok(await a.acquire(stolen));
  // A pause longer than the lease: the heartbeat finds the lease expired and gives it up.
  await sleep(LEASE_MS + 50);
  t.equal(await a.renew(paused), false);
  // A takeover seen by the heartbeat: its next renewal fails.
  t.ok(await a.acquire(stolen));
  a.start();
  t.ok(await b.acquire(stolen));
  const deadline = Date.now() + LEASE_MS;
  while (lost.length < 2 && Date.now() < deadline) await sleep(20);
  a.stop();
  t.same(lost, [
    [paused, 'expired before it could be renewed'],
    [stolen, 'taken over by another worker'],
  ]);
  t.same(a.held(), []);
});

t.test('a lease period longer than the bucket TTL is refused', async (t) => {
  await t.rejects(Leases.open(nc, { worker: 'w-a', leaseMs: LEASE_MS * 2 }), {
    code: 'PARLEY_ERR_NATS_SETUP',
  });
  t.throws(() => new Leases({} as never, { worker: 'w.a' }), { code: 'PARLEY_ERR_INVALID_ID' });
});

t.test('members lists live workers and forgets dead ones', async (t) => {
  const one = await Members.open(nc, { worker: 'member-1', info: { pid: 1 } });
  const two = await Members.open(nc, { worker: 'member-2' });
  t.teardown(() => {
    one.stop();
    two.stop();
  });
  t.equal(one.ttlMs, LEASE_MS, "the bucket's TTL by default");
  await one.join();
  await two.join();
  t.same(
    (await one.members()).map((m) => m.worker),
    ['member-1', 'member-2'],
  );
  t.same((await two.members())[0]?.info, { pid: 1 });
  // member-1 keeps beating over several periods; member-2 dies without a word.
  two.stop();
  await sleep(LEASE_MS * 2);
  t.same(
    (await one.members()).map((m) => m.worker),
    ['member-1'],
  );
  await one.leave();
  t.same(await two.members(), [], 'a worker that leaves is gone at once');
});

t.test('fairShare gives every group exactly one owner and balanced counts', async (t) => {
  const id = fc.stringMatching(/^[a-z0-9][a-z0-9-]{0,11}$/);
  fc.assert(
    fc.property(
      fc.uniqueArray(id, { maxLength: 60 }),
      fc.uniqueArray(id, { minLength: 1, maxLength: 8 }),
      fc.nat(),
      (groups, workers, seed) => {
        const shares = workers.map((worker) => fairShare(groups, workers, worker));
        const owned = shares.flat();
        // Exactly one owner: the shares are disjoint and cover every group.
        if (owned.length !== groups.length) return false;
        if (new Set(owned).size !== groups.length) return false;
        if (!groups.every((group) => owned.includes(group))) return false;
        const floor = Math.floor(groups.length / workers.length);
        if (!shares.every((share) => share.length === floor || share.length === floor + 1)) {
          return false;
        }
        // Deterministic: the order the lists come in does not matter.
        const shuffled = shuffle(workers, seed);
        return workers.every(
          (worker, i) =>
            JSON.stringify(fairShare(shuffle(groups, seed + 1), shuffled, worker)) ===
            JSON.stringify(shares[i]),
        );
      },
    ),
  );
  t.same(fairShare(['a', 'b'], ['w1'], 'w2'), [], 'a worker not in the list owns nothing');
  t.same(fairShare(['a', 'b'], [], 'w1'), []);
  t.same(fairShare([], ['w1', 'w2'], 'w1'), []);
});

t.test('fairShare moves few groups when a worker joins', async (t) => {
  const groups = Array.from({ length: 100 }, (_, i) => `group-${i}`);
  const before = assignGroups(groups, ['w1', 'w2', 'w3']);
  const after = assignGroups(groups, ['w1', 'w2', 'w3', 'w4']);
  const moved = groups.filter((group) => before.get(group) !== after.get(group)).length;
  t.ok(moved >= 25 && moved <= 35, `${moved} of 100 groups moved (25 at least)`);
});

function shuffle<T>(items: readonly T[], seed: number): T[] {
  const copy = [...items];
  let state = seed || 1;
  for (let i = copy.length - 1; i > 0; i--) {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    const j = state % (i + 1);
    [copy[i], copy[j]] = [copy[j]!, copy[i]!];
  }
  return copy;
}
