// The NATS foundations against real servers: connecting, JetStream checks, streams and buckets
// created and upgraded idempotently, subjects routed to their streams, de-duplication by
// command id, and a three-server cluster with replicated streams.

import { execFile } from 'node:child_process';
import { jetstream, jetstreamManager, StorageType } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { nanos } from '@nats-io/transport-node';
import fc from 'fast-check';
import t from 'tap';
import { isParleyError } from '../../lib/errors.ts';
import { checkJetStream, connectNats } from '../../lib/nats/connection.ts';
import {
  AGENT_COMMANDS_FILTER,
  agentCommandSubject,
  agentEventSubject,
  BUCKETS,
  commandSubject,
  conversationEventFilter,
  ensureStreams,
  eventSubject,
  groupCommandFilter,
  parseCommandSubject,
  parseEventSubject,
  STREAMS,
  validateGroupId,
  validateId,
} from '../../lib/nats/streams.ts';
import { closedPort, startNatsCluster, startNatsServer } from '../helpers/nats-server.ts';

const ALL_STREAMS = [
  STREAMS.commands,
  STREAMS.events,
  ...Object.values(BUCKETS).map((bucket) => `KV_${bucket}`),
].sort();

t.test('ensureStreams creates everything once, then finds it unchanged', async (t) => {
  const server = await startNatsServer({ t });
  const nc = await connectNats(server.url);
  t.teardown(() => nc.close());
  await checkJetStream(nc);

  const first = await ensureStreams(nc);
  t.same([...first.created].sort(), ALL_STREAMS);
  t.same(first.updated, []);
  const second = await ensureStreams(nc);
  t.same(second.created, []);
  t.same(second.updated, []);
  t.same([...second.unchanged].sort(), ALL_STREAMS);

  const jsm = await jetstreamManager(nc);
  const commands = (await jsm.streams.info(STREAMS.commands)).config;
  t.same(commands.subjects, ['parley.cmd.>']);
  t.equal(commands.max_age, nanos(7 * 24 * 3600 * 1000));
  t.equal(commands.duplicate_window, nanos(120_000));
  t.equal(commands.storage, StorageType.File);
  const events = (await jsm.streams.info(STREAMS.events)).config;
  t.same(events.subjects, ['parley.evt.>']);
  t.equal(events.max_age, nanos(30 * 24 * 3600 * 1000));
  const leases = await (await new Kvm(nc).open(BUCKETS.leases)).status();
  t.equal(leases.ttl, 5_000);
  t.equal(leases.history, 1);
  t.equal((await (await new Kvm(nc).open(BUCKETS.conversations)).status()).ttl, 0);
});

t.test('two processes may ensure the streams at the same time', async (t) => {
  const server = await startNatsServer({ t });
  const [one, two] = await Promise.all([connectNats(server.url), connectNats(server.url)]);
  t.teardown(() => Promise.all([one.close(), two.close()]));
  const reports = await Promise.all([ensureStreams(one), ensureStreams(two)]);
  const seen = reports.flatMap((r) => [...r.created, ...r.updated, ...r.unchanged]);
  t.same([...new Set(seen)].sort(), ALL_STREAMS);
  t.same((await ensureStreams(one)).unchanged.length, ALL_STREAMS.length);
});

t.test('ensureStreams upgrades streams and buckets made with older settings', async (t) => {
  const server = await startNatsServer({ t });
  const nc = await connectNats(server.url);
  t.teardown(() => nc.close());
  const jsm = await jetstreamManager(nc);
  // An older Parley: the events stream kept for a day, narrower subjects, and a 10 s lease TTL.
  await jsm.streams.add({
    name: STREAMS.events,
    subjects: ['parley.evt.*.*.*'],
    max_age: nanos(24 * 3600 * 1000),
    duplicate_window: nanos(30_000),
  });
  await new Kvm(nc).create(BUCKETS.leases, { ttl: 10_000 });
  const kv = await new Kvm(nc).open(BUCKETS.leases);
  await kv.put('tv', JSON.stringify({ worker: 'w1', until: 0 }));

  const report = await ensureStreams(nc, {
    eventsMaxAgeMs: 90 * 24 * 3600 * 1000,
    leaseTtlMs: 3_000,
  });
  t.same([...report.updated].sort(), [STREAMS.events, `KV_${BUCKETS.leases}`].sort());
  t.notOk(report.created.includes(STREAMS.events));
  const events = (await jsm.streams.info(STREAMS.events)).config;
  t.same(events.subjects, ['parley.evt.>']);
  t.equal(events.max_age, nanos(90 * 24 * 3600 * 1000));
  t.equal(events.duplicate_window, nanos(120_000));
  const leases = (await jsm.streams.info(`KV_${BUCKETS.leases}`)).config;
  t.equal(leases.max_age, nanos(3_000));
  t.equal(leases.duplicate_window, nanos(3_000), 'the duplicate window shrinks with the TTL');
  t.equal((await kv.get('tv'))?.json<{ worker: string }>().worker, 'w1', 'data kept');

  const again = await ensureStreams(nc, {
    eventsMaxAgeMs: 90 * 24 * 3600 * 1000,
    leaseTtlMs: 3_000,
  });
  t.same(again.updated, []);
  t.same(again.created, []);
});

t.test('subjects route to their streams, and a group filter sees only its group', async (t) => {
  const server = await startNatsServer({ t });
  const nc = await connectNats(server.url);
  t.teardown(() => nc.close());
  await ensureStreams(nc);
  const js = jetstream(nc);

  const routes: [string, string][] = [
    [commandSubject('tv', 'c-1'), STREAMS.commands],
    [commandSubject('tv', 'c-2'), STREAMS.commands],
    [commandSubject('orders', 'c-3'), STREAMS.commands],
    [agentCommandSubject('alice'), STREAMS.commands],
    [eventSubject('tv', 'c-1', 'ConversationQueued'), STREAMS.events],
    [agentEventSubject('alice', 'AgentWentOnline'), STREAMS.events],
  ];
  for (const [subject, stream] of routes) {
    const ack = await js.publish(subject, '{}');
    t.equal(ack.stream, stream, `${subject} → ${stream}`);
  }
  t.equal(commandSubject('tv', 'c-1'), 'parley.cmd.tv.c-1');
  t.equal(agentCommandSubject('alice'), 'parley.cmd._agent.alice');
  t.equal(eventSubject('tv', 'c-1', 'ConversationQueued'), 'parley.evt.tv.c-1.ConversationQueued');
  t.equal(agentEventSubject('alice', 'AgentWentOnline'), 'parley.evt._agent.alice.AgentWentOnline');
  t.equal(groupCommandFilter('tv'), 'parley.cmd.tv.>');

  const jsm = await jetstreamManager(nc);
  const count = async (stream: string, filter: string) => {
    const info = await jsm.streams.info(stream, { subjects_filter: filter });
    return Object.values(info.state.subjects ?? {}).reduce((sum, n) => sum + n, 0);
  };
  t.equal(await count(STREAMS.commands, groupCommandFilter('tv')), 2);
  t.equal(await count(STREAMS.commands, groupCommandFilter('orders')), 1);
  t.equal(await count(STREAMS.commands, AGENT_COMMANDS_FILTER), 1);
  t.equal(await count(STREAMS.events, conversationEventFilter('tv', 'c-1')), 1);

  t.same(parseCommandSubject('parley.cmd.tv.c-1'), {
    kind: 'conversation',
    group: 'tv',
    conversation: 'c-1',
  });
  t.same(parseCommandSubject('parley.cmd._agent.alice'), { kind: 'agent', agent: 'alice' });
  t.same(parseEventSubject('parley.evt.tv.c-1.ConversationQueued'), {
    kind: 'conversation',
    group: 'tv',
    conversation: 'c-1',
    type: 'ConversationQueued',
  });
  t.equal(parseCommandSubject('parley.cmd.tv'), undefined);
  t.equal(parseCommandSubject('parley.cmd.tv.c-1.extra'), undefined);
  t.equal(parseCommandSubject('parley.evt.tv.c-1'), undefined);
  t.equal(parseCommandSubject('parley.cmd.TV.c-1'), undefined);
});

t.test('a command published twice with the same id is stored once', async (t) => {
  const server = await startNatsServer({ t });
  const nc = await connectNats(server.url);
  t.teardown(() => nc.close());
  await ensureStreams(nc);
  const js = jetstream(nc);
  const subject = commandSubject('tv', 'c-1');
  const first = await js.publish(subject, '{"id":"cmd-1"}', { msgID: 'cmd-1' });
  const again = await js.publish(subject, '{"id":"cmd-1"}', { msgID: 'cmd-1' });
  const other = await js.publish(subject, '{"id":"cmd-2"}', { msgID: 'cmd-2' });
  t.equal(first.duplicate, false);
  t.equal(again.duplicate, true);
  t.equal(again.seq, first.seq, 'the duplicate is acknowledged with the stored sequence');
  t.equal(other.seq, first.seq + 1);
  const jsm = await jetstreamManager(nc);
  t.equal((await jsm.streams.info(STREAMS.commands)).state.messages, 2);
});

t.test('a killed server restarts on the same port with its store', async (t) => {
  const server = await startNatsServer({ t });
  const { url, port, storeDir } = server;
  let nc = await connectNats(url);
  await ensureStreams(nc);
  await jetstream(nc).publish(commandSubject('tv', 'c-1'), '{}', { msgID: 'cmd-1' });
  await nc.close();
  const pid = server.pid;
  await server.kill();
  t.equal(server.pid, undefined, 'killed');
  t.same(await pgrep(storeDir), []);
  await server.restart();
  t.not(server.pid, pid);
  t.equal(server.port, port);
  t.equal(server.url, url);
  nc = await connectNats(url);
  t.teardown(() => nc.close());
  const jsm = await jetstreamManager(nc);
  t.equal((await jsm.streams.info(STREAMS.commands)).state.messages, 1, 'the command survived');
  t.equal((await ensureStreams(nc)).created.length, 0);
});

t.test('ids that could break a subject or a KV key are refused', async (t) => {
  for (const bad of ['', 'a.b', '*', '>', 'a b', 'é', 'x'.repeat(129), 42, null]) {
    t.throws(() => validateId('conversation id', bad), { code: 'PARLEY_ERR_INVALID_ID' });
  }
  t.throws(() => commandSubject('tv', 'c.1'), /Invalid conversation id "c\.1"/);
  for (const bad of ['TV', '_agent', '-tv', 'tv.x', '']) {
    t.throws(() => validateGroupId(bad), { code: 'PARLEY_ERR_INVALID_ID' });
  }
  t.throws(() => eventSubject('tv', 'c-1', 'queued'), { code: 'PARLEY_ERR_INVALID_ID' });
  t.equal(validateId('agent id', 'Agent_7-x'), 'Agent_7-x');
  fc.assert(
    fc.property(fc.stringMatching(/^[A-Za-z0-9_-]{1,128}$/), (id) => {
      const subject = commandSubject('tv', id);
      const parsed = parseCommandSubject(subject);
      return parsed?.kind === 'conversation' && parsed.conversation === id;
    }),
  );
});

t.test('a server without JetStream gives PARLEY_ERR_JETSTREAM_DISABLED', async (t) => {
  const server = await startNatsServer({ t, jetstream: false });
  const nc = await connectNats(server.url);
  t.teardown(() => nc.close());
  const error = await checkJetStream(nc).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(isParleyError(error, 'PARLEY_ERR_JETSTREAM_DISABLED'), String(error));
  t.match((error as Error).message, server.url.replace('nats://', ''));
  t.match((error as Error).message, /-js/);
  await t.rejects(ensureStreams(nc), { code: 'PARLEY_ERR_JETSTREAM_DISABLED' });
});

t.test('an unreachable URL gives PARLEY_ERR_NATS_UNREACHABLE naming it', async (t) => {
  const port = await closedPort();
  const url = `nats://127.0.0.1:${port}`;
  const started = Date.now();
  const error = await connectNats(url, { timeoutMs: 1_000 }).then(
    (nc) => nc.close(),
    (e: unknown) => e,
  );
  t.ok(isParleyError(error, 'PARLEY_ERR_NATS_UNREACHABLE'), String(error));
  t.match((error as Error).message, url);
  t.match((error as Error).message, /NATS_URL/);
  t.ok(Date.now() - started < 5_000, 'fails fast');
  const several = await connectNats([url, `nats://127.0.0.1:${await closedPort()}`], {
    timeoutMs: 1_000,
  }).catch((e: unknown) => e);
  t.match((several as Error).message, url);
  t.match((several as Error).message, /, nats:\/\/127\.0\.0\.1:/);
});

t.test('a three-server cluster takes R3 streams and leaves no process behind', async (t) => {
  const cluster = await startNatsCluster(3, { t });
  t.equal(cluster.servers.length, 3);
  const nc = await connectNats(cluster.urls);
  const report = await ensureStreams(nc, { replicas: 3 });
  t.same([...report.created].sort(), ALL_STREAMS);
  t.same((await ensureStreams(nc, { replicas: 3 })).updated, []);
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(STREAMS.commands);
  t.equal(info.config.num_replicas, 3);
  t.equal((info.cluster?.replicas ?? []).length, 2, 'a leader and two replicas');
  const kv = await new Kvm(nc).open(BUCKETS.conversations);
  const revision = await kv.put('c-1', '{"state":"queued"}');
  t.equal((await kv.get('c-1'))?.revision, revision);
  const ack = await jetstream(nc).publish(commandSubject('tv', 'c-1'), '{}', { msgID: 'x' });
  t.equal(ack.stream, STREAMS.commands);
  await nc.close();

  const pids = cluster.servers.map((server) => server.pid);
  t.ok(pids.every((pid) => typeof pid === 'number'));
  const dirs = cluster.servers.map((server) => server.storeDir);
  await cluster.stop();
  for (const dir of dirs) t.same(await pgrep(dir), [], `no process runs from ${dir}`);
  t.ok(
    cluster.servers.every((server) => server.pid === undefined),
    'every server has exited',
  );
});

/** Pids of processes whose command line contains `text` (pgrep without a shell, to not match itself). */
function pgrep(text: string): Promise<string[]> {
  return new Promise((resolve) => {
    execFile('pgrep', ['-f', text], (_error, stdout) => {
      resolve(stdout.split('\n').filter(Boolean));
    });
  });
}
