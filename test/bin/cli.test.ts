// The operators' commands (status, inspect, watch, top, send) as an operator runs them: each a
// subprocess against a real nats-server and a worker of this process, its --json output checked
// against the state the test made through NATS; its errors one line and a non-zero status.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { stripVTControlCharacters } from 'node:util';
import t, { type Test } from 'tap';
import type { DomainEvent } from '../../actors/events.ts';
import { HOUR_MS } from '../../actors/settings.ts';
import type { SeenEvent } from '../../bin/commands/format.ts';
import type { ConversationReport } from '../../bin/commands/inspect.ts';
import type { SendReport } from '../../bin/commands/send.ts';
import type { StatusReport } from '../../bin/commands/status.ts';
import type { TopDocument } from '../../bin/commands/top.ts';
import type { GroupInspection } from '../../lib/inspect.ts';
import { parleyEnv, type Ran, ROOT, runParley } from '../helpers/cli.ts';
import { startNatsCluster, startNatsServer } from '../helpers/nats-server.ts';
import { waitUntil } from '../helpers/poll.ts';
import { startRuntime, startWorker } from '../helpers/runtime.ts';

const UNREACHABLE = 'nats://127.0.0.1:1';
const ESC = '\u001b[';

const dataDir = await mkdtemp(join(tmpdir(), 'parley-cli-test-'));
t.teardown(() => rm(dataDir, { recursive: true, force: true }));
const { server, it } = await startRuntime(t, { id: 'w-cli' });

/** The environment of a subprocess: this server, and nothing that would point elsewhere. */
function env(over: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const e = parleyEnv({ PARLEY_DATA_DIR: dataDir });
  delete e.NO_COLOR;
  delete e.PARLEY_CONFIG;
  return { ...e, NATS_URL: server.url, ...over };
}

/** Runs `parley <args>` to its end (in `env()` unless told), with `input` on its stdin. */
function parley(args: string[], options: { env?: NodeJS.ProcessEnv; input?: string } = {}) {
  return runParley(args, { ...options, env: options.env ?? env() });
}

/** Runs `parley <args> --json`, checks it succeeded with nothing but one JSON document. */
async function json<T>(args: string[], input?: string): Promise<T> {
  const ran = await parley([...args, '--json'], input === undefined ? {} : { input });
  if (ran.code !== 0) throw new Error(`parley ${args.join(' ')} exited ${ran.code}: ${ran.stderr}`);
  const lines = ran.stdout.trimEnd().split('\n');
  if (lines.length !== 1) throw new Error(`more than one line on stdout:\n${ran.stdout}`);
  return JSON.parse(lines[0]!) as T;
}

const isEvent =
  (type: DomainEvent['type'], conversation?: string) =>
  (e: DomainEvent): boolean =>
    e.type === type &&
    (conversation === undefined || ('conversation' in e && e.conversation === conversation));

// The scene: in routing group tv (cap 3), Alice (2 slots) holds c3 and c4, c1 is snoozed for an
// hour, c2 was closed, c5 waits; Bob and Carol are offline; orders is empty.
async function scene(): Promise<void> {
  await it.send({ type: 'SetAgentPresence', agent: 'alice', presence: 'online' });
  await it.waitFor(isEvent('AgentPresenceChanged'));
  const start = async (conversation: string, text?: string) => {
    await it.send({
      type: 'StartConversation',
      conversation,
      visitor: `v-${conversation}`,
      rule: 'direct',
      ...(text ? { message: { text } } : {}),
    });
  };
  await start('c1', 'My screen flickers on HDMI 2');
  await start('c2');
  await it.waitFor(isEvent('ConversationAssigned', 'c2'));
  await it.send({ type: 'Close', conversation: 'c2', by: { agent: 'alice' } });
  await it.waitFor(isEvent('ConversationClosed', 'c2'));
  await start('c3');
  await it.waitFor(isEvent('ConversationAssigned', 'c3'));
  await it.send({ type: 'Snooze', conversation: 'c1', agent: 'alice', durationMs: HOUR_MS });
  await it.waitFor(isEvent('ConversationSnoozed', 'c1'));
  await start('c4');
  await it.waitFor(isEvent('ConversationAssigned', 'c4'));
  await start('c5');
  await it.waitFor(isEvent('ConversationQueued', 'c5'));
}
await scene();

t.test(
  'status lists the worker, the groups it hosts with their leases, the server, the streams',
  async (t) => {
    const [report, text] = await Promise.all([json<StatusReport>(['status']), parley(['status'])]);
    t.equal(report.url, server.url);
    t.match(report.nats, { jetstream: true, cluster: null, version: /^\d+\.\d+\.\d+/ });
    t.equal(report.workers.length, 1);
    t.match(report.workers[0], { worker: 'w-cli', live: true, hosts: ['_agent', 'orders', 'tv'] });
    for (const group of ['tv', 'orders', '_agent']) {
      const g = report.groups.find((x) => x.group === group);
      t.equal(g?.worker, 'w-cli', `${group} is hosted by w-cli`);
      t.ok(g?.lease && g.lease.expiresInMs > 0 && g.lease.expiresInMs <= 1_000, 'lease running');
      t.ok(g?.lease && g.lease.renewedMsAgo < 1_000, 'renewed within a lease period');
    }
    t.ok(report.streams.length >= 10, 'both streams and every bucket');
    t.ok(
      report.streams.every((s) => s.exists && s.healthy && s.replicas === 1),
      'all exist and are healthy',
    );
    t.ok((report.streams.find((s) => s.name === 'PARLEY_EVENTS')?.messages ?? 0) > 10);
    t.same(report.problems, []);
    t.equal(report.healthy, true);

    t.equal(text.code, 0, text.stderr);
    t.match(text.stdout, /w-cli\s+\S+\s+\S+ ago\s+_agent, orders, tv/);
    t.match(text.stdout, /PARLEY_COMMANDS\s+\d+/);
    t.match(text.stdout, /All healthy\./);
    t.notOk(text.stdout.includes(ESC), 'no colour when piped');
  },
);

t.test(
  'inspect conversation: the live snapshot, its timer, its owner, its last events',
  async (t) => {
    const [full, two, text] = await Promise.all([
      json<ConversationReport>(['inspect', 'conversation', 'c1', '--messages']),
      json<ConversationReport>(['inspect', 'conversation', 'c1', '--events', '2']),
      parley(['inspect', 'conversation', 'c1']),
    ]);
    t.match(full, {
      conversation: 'c1',
      group: 'tv',
      worker: 'w-cli',
      state: 'snoozed',
      inMemory: true,
      position: null,
      context: { visitor: 'v-c1', agent: null, rule: 'direct' },
    });
    t.equal(full.timers.length, 1);
    t.equal(full.timers[0]?.kind, 'snooze');
    t.ok(
      full.timers[0]!.inMs > HOUR_MS - 60_000 && full.timers[0]!.inMs <= HOUR_MS,
      'about an hour left',
    );
    const stored = (await it.stored('parley.evt.*.c1.*')).map((e) => e.type);
    t.equal(full.eventsStored, stored.length);
    t.same(
      full.events.map((e) => e.event.type),
      stored.slice(-10),
      'the last 10 events by default, oldest first',
    );
    t.ok(
      full.events.every(
        (e: SeenEvent) => e.subject.startsWith('parley.evt.') && e.id.includes(':'),
      ),
    );
    t.same(
      two.events.map((e) => e.event.type),
      stored.slice(-2),
      '--events 2',
    );
    t.equal(two.messages, undefined, 'no thread without --messages');
    t.ok(
      full.messages?.some((m) => m.text === 'My screen flickers on HDMI 2'),
      'the thread',
    );
    t.same(
      full.messages?.map((m) => m.seq),
      full.messages?.map((_, i) => i + 1),
      'in seq order',
    );

    t.equal(text.code, 0, text.stderr);
    t.match(text.stdout, /Conversation c1 .*routing group tv, hosted by worker w-cli/);
    t.match(text.stdout, /state\s+snoozed/);
    t.match(text.stdout, /timer\s+snooze until .* \(in \d+m/);
    t.match(text.stdout, /ConversationSnoozed\s+by alice for 1h/);
  },
);

t.test('inspect group: the waiting list in order, the cap, the agents, the snoozed', async (t) => {
  const [group, text] = await Promise.all([
    json<GroupInspection>(['inspect', 'group', 'tv']),
    parley(['inspect', 'group', 'tv']),
  ]);
  t.match(group, { group: 'tv', worker: 'w-cli', cap: 3, seatsTaken: 2 });
  t.same(
    group.waiting.map((w) => [w.conversation, w.position]),
    [['c5', 1]],
  );
  const waiting = group.waiting[0]!;
  t.ok(
    waiting.waitedMs > 0 && waiting.waitedMs <= Date.now() - waiting.readyAt,
    'c5 has waited since it became ready, in ms',
  );
  t.same(
    group.snoozed.map((s) => s.conversation),
    ['c1'],
  );
  t.ok(group.snoozed[0]!.inMs > 0);
  t.same(
    group.agents.map((a) => [a.id, a.presence, a.load, a.slots]),
    [
      ['alice', 'online', 2, 2],
      ['bob', 'offline', 0, 2],
    ],
  );
  t.same([...group.agents[0]!.conversations].sort(), ['c3', 'c4']);

  t.equal(text.code, 0, text.stderr);
  t.match(text.stdout, /1\s+c5\s+\S+\s+online/);
  t.match(text.stdout, /c1\s+\S+\s+in \d+m/);
  t.match(text.stdout, /alice \(Alice\)\s+online\s+2\/2\s+c3, c4/);
});

t.test('top --once: the figures of each group and the agents logged in', async (t) => {
  const [doc, frame] = await Promise.all([json<TopDocument>(['top']), parley(['top', '--once'])]);
  t.equal(doc.groups.length, 2, 'tv and orders');
  t.match(doc.groups, [
    {
      group: 'tv',
      worker: 'w-cli',
      waiting: 1,
      cap: 3,
      seatsTaken: 2,
      snoozed: 1,
      handled: 2,
      closedToday: 1,
      open: 4,
    },
    {
      group: 'orders',
      worker: 'w-cli',
      waiting: 0,
      cap: 2,
      snoozed: 0,
      handled: 0,
      closedToday: 0,
      longestWaitMs: 0,
      nextWakeInMs: null,
    },
  ]);
  t.ok(doc.groups[0]!.longestWaitMs! > 0, 'c5 has been waiting');
  t.ok(doc.groups[0]!.nextWakeInMs! > 0, 'c1 wakes within the hour');
  t.same(
    doc.agents.map((a) => [a.id, a.presence, a.load, a.slots]),
    [['alice', 'online', 2, 2]],
    'only the agents logged in',
  );
  // The subprocess runs with PARLEY_TIME_ZONE unset: midnight in UTC, as the reports count it.
  t.equal(
    doc.since,
    Date.UTC(
      ...((
        new Date(doc.at).toISOString().slice(0, 10).split('-').map(Number) as [
          number,
          number,
          number,
        ]
      ).map((v, i) => (i === 1 ? v - 1 : v)) as [number, number, number]),
    ),
    'today starts at midnight UTC',
  );

  t.equal(frame.code, 0, frame.stderr);
  t.match(frame.stdout, /^tv\s+1\/3\s+2\/3\s+1\s+in \S+\s+\S+\s+2\s+1\s+w-cli$/m);
  t.match(frame.stdout, /^orders\s+0\/2\s+0\/2\s+0\s/m);
  t.match(frame.stdout, /^alice \(Alice\)\s+online\s+2\/2\s+tv$/m);
  t.notOk(frame.stdout.includes(ESC), 'a plain frame when piped');
});

const hasScript = spawnSync('script', ['--version']).status === 0;

t.test(
  'top on a terminal refreshes in place, in colour, and quits on q',
  { skip: hasScript ? false : 'script(1) is not installed: no terminal to run top in' },
  async (t) => {
    const onTerminal = async (over: NodeJS.ProcessEnv) => {
      const command = `${JSON.stringify(process.execPath)} --import tsx bin/parley.ts top --interval 200`;
      const child = spawn('script', ['-qfec', command, '/dev/null'], {
        cwd: ROOT,
        env: env(over),
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      let out = '';
      const frames = new Promise<void>((resolve) => {
        child.stdout.on('data', (d) => {
          out += d;
          if ((out.match(/Parley top/g) ?? []).length >= 2) resolve();
        });
      });
      const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
      t.teardown(() => {
        if (child.exitCode === null) child.kill('SIGKILL');
      });
      await frames;
      child.stdin.write('q');
      return { code: await exited, out };
    };
    const [coloured, plain] = await Promise.all([onTerminal({}), onTerminal({ NO_COLOR: '1' })]);
    t.equal(coloured.code, 0, 'q quits, status 0');
    t.ok(
      coloured.out.includes(`${ESC}?1049h`) && coloured.out.includes(`${ESC}?1049l`),
      'the alternate screen, given back',
    );
    t.ok(coloured.out.includes(`${ESC}H`), 'each frame drawn in place');
    t.ok(coloured.out.includes(`${ESC}32m`), 'coloured');
    t.match(stripVTControlCharacters(coloured.out), /tv\s+1\/3/);
    t.equal(plain.code, 0);
    t.notOk(
      [31, 32, 33, 35, 36].some((colour) => plain.out.includes(`${ESC}${colour}m`)),
      'NO_COLOR: no colour, even on a terminal',
    );
  },
);

t.test('send: validated, published to its subject, and its events printed', async (t) => {
  // Bob comes online: his presence is the command's event; c5 goes to him (another unit's event).
  const bob = await json<SendReport>([
    'send',
    JSON.stringify({ type: 'SetAgentPresence', agent: 'bob', presence: 'online' }),
  ]);
  t.match(bob, {
    type: 'SetAgentPresence',
    subject: 'parley.cmd._agent.bob',
    stored: true,
    duplicate: false,
  });
  t.match(bob.id, /^[0-9a-f-]{36}$/, 'an id made up for it');
  t.same(
    bob.events.map((e) => e.type),
    ['AgentPresenceChanged'],
  );
  await it.waitFor(isEvent('ConversationAssigned', 'c5'));

  const start = JSON.stringify({
    type: 'StartConversation',
    id: 'cli-start-c6',
    conversation: 'c6',
    visitor: 'v-c6',
    rule: 'direct',
    message: { text: 'Hello from stdin' },
  });
  const started = await json<SendReport>(['send', '-'], start);
  t.match(started, {
    id: 'cli-start-c6',
    subject: 'parley.cmd.tv.c6',
    duplicate: false,
    complete: true,
  });
  t.same(
    started.events.map((e) => e.type),
    (await it.stored('parley.evt.*.c6.*')).map((e) => e.type),
    'every event of the command, in order',
  );
  t.equal(started.events[0]?.type, 'ConversationStarted');

  // Independent of each other: the same command again, a refused one, and one in plain text.
  const [again, refused, text] = await Promise.all([
    json<SendReport>(['send', '-'], start),
    json<SendReport>([
      'send',
      JSON.stringify({ type: 'Snooze', conversation: 'c6', agent: 'carol' }),
    ]),
    parley([
      'send',
      JSON.stringify({ type: 'SetVisitorPresence', conversation: 'c6', online: false }),
    ]),
  ]);
  t.match(again, { id: 'cli-start-c6', duplicate: true, events: [] }, 'the same id again');
  t.match(refused.events, [{ type: 'CommandRejected', code: 'not-assigned-agent' }]);
  t.equal(refused.events.length, 1, 'that event alone');
  t.equal(text.code, 0, text.stderr);
  const lines = text.stdout.trimEnd().split('\n');
  t.match(
    lines[0],
    /^Stored SetVisitorPresence \S+ on parley\.cmd\.tv\.c6 \(PARLEY_COMMANDS #\d+\)\.$/,
  );
  t.match(lines[1], /tv\s+c6\s+VisitorPresenceChanged\s+visitor v-c6 offline/);
});

t.test('watch prints each transition as it happens, and stops on SIGTERM', async (t) => {
  const follow = (args: string[]) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'bin/parley.ts', 'watch', ...args], {
      cwd: ROOT,
      env: env(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    t.teardown(() => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
    const lines: string[] = [];
    createInterface({ input: child.stdout }).on('line', (line) => lines.push(line));
    const ready = new Promise<void>((resolve) => {
      createInterface({ input: child.stderr }).on('line', (line) => {
        if (/^parley watch: following /.test(line)) resolve();
      });
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    return { child, lines, ready, exited };
  };
  const one = follow(['--conversation', 'c7', '--json']);
  const tv = follow(['--group', 'tv']);
  await Promise.all([one.ready, tv.ready]);

  await it.send({ type: 'SetVisitorPresence', conversation: 'c6', online: true });
  await it.send({ type: 'StartConversation', conversation: 'c7', visitor: 'v-c7', rule: 'direct' });
  await it.waitFor(isEvent('ConversationQueued', 'c7'));
  await waitUntil(() => one.lines.some((l) => l.includes('ConversationQueued')), 'the JSON line');
  await waitUntil(() => tv.lines.some((l) => /c7\s+ConversationQueued/.test(l)), 'the text line');

  const seen = one.lines.map((l) => JSON.parse(l) as SeenEvent);
  t.ok(
    seen.every((s) => 'conversation' in s.event && s.event.conversation === 'c7'),
    'only c7',
  );
  t.same(
    seen.map((s) => s.event.type),
    (await it.stored('parley.evt.*.c7.*')).map((e) => e.type),
    'each of its events, once, in order',
  );
  t.ok(
    seen.every(
      (s) => typeof s.seq === 'number' && s.id.length > 0 && s.subject.startsWith('parley.evt.'),
    ),
  );
  t.ok(
    tv.lines.some((l) =>
      /^\d\d:\d\d:\d\d\.\d{3} tv\s+c6\s+VisitorPresenceChanged\s+visitor v-c6 online$/.test(l),
    ),
    'the group filter takes every conversation of tv',
  );
  t.ok(tv.lines.some((l) => /tv\s+c7\s+ConversationStarted\s+visitor v-c7, rule direct/.test(l)));
  t.notOk(
    tv.lines.some((l) => l.includes(ESC)),
    'plain when piped',
  );

  one.child.kill('SIGTERM');
  tv.child.kill('SIGINT');
  t.equal(await one.exited, 0, 'SIGTERM: exit 0');
  t.equal(await tv.exited, 0, 'Ctrl-C: exit 0');
});

t.test('errors are one line that says what to do, and a non-zero status', async (t) => {
  const oneLine = (t: Test, ran: Ran, pattern: RegExp, what: string) => {
    t.equal(ran.code, 1, `${what}: status 1`);
    t.equal(ran.stdout, '', `${what}: nothing on stdout`);
    const lines = ran.stderr.trimEnd().split('\n');
    t.equal(lines.length, 1, `${what}: one line\n${ran.stderr}`);
    t.match(lines[0], pattern, what);
  };
  const unreachable = env({ NATS_URL: UNREACHABLE });
  const commands = [
    ['status'],
    ['inspect', 'conversation', 'c1'],
    ['send', '{"type":"SetAgentPresence","agent":"bob","presence":"away"}'],
  ];
  const [noNats, noConversation, noGroup, watchNoGroup, badField, badJson, sendNowhere] =
    await Promise.all([
      Promise.all(commands.map((args) => parley(args, { env: unreachable }))),
      parley(['inspect', 'conversation', 'nope', '--json']),
      parley(['inspect', 'group', 'nope']),
      parley(['watch', '--group', 'nope']),
      parley(['send', '{"type":"Snooze","conversation":"c1","agent":"alice","durationMs":-5}']),
      parley(['send', '-'], { input: '{"type": "Escalate",' }),
      parley(['send', '{"type":"Escalate","conversation":"ghost"}']),
    ]);
  noNats.forEach((ran, i) => {
    const name = `parley ${commands[i]!.slice(0, 2).join(' ')}`;
    oneLine(t, ran, /Cannot reach a NATS server at nats:\/\/127\.0\.0\.1:1 .*set NATS_URL/, name);
  });
  oneLine(
    t,
    noConversation,
    /^parley inspect conversation: Conversation nope not found/,
    'unknown conversation',
  );
  oneLine(
    t,
    noGroup,
    /^parley inspect group: Routing group nope is not in the live configuration \(its groups: tv, orders\)/,
    'unknown group',
  );
  oneLine(
    t,
    watchNoGroup,
    /Routing group nope is not in the live configuration/,
    'watch of an unknown group',
  );
  oneLine(
    t,
    badField,
    /^parley send: Invalid command: durationMs: must be at least 1, got -5$/,
    'a field out of range',
  );
  oneLine(t, badJson, /^parley send: Invalid command: not valid JSON/, 'malformed JSON');
  oneLine(t, sendNowhere, /Conversation ghost not found/, 'a command to no conversation');
});

t.test('on a NATS server no worker has started on, each command says so', async (t) => {
  const bare = await startNatsServer({ t });
  const there = env({ NATS_URL: bare.url });
  const [status, group, watch, send] = await Promise.all([
    parley(['status', '--json'], { env: there }),
    parley(['inspect', 'group', 'tv'], { env: there }),
    parley(['watch'], { env: there }),
    parley(['send', '{"type":"SetAgentPresence","agent":"bob","presence":"away"}'], { env: there }),
  ]);
  t.equal(status.code, 0, 'status reports, whatever it finds');
  const report = JSON.parse(status.stdout) as StatusReport;
  t.equal(report.healthy, false);
  t.ok(report.streams.length >= 10 && report.streams.every((s) => !s.exists));
  t.match(report.problems, [/no worker has started on this NATS server yet/]);
  t.equal(report.problems.length, 1, 'one problem, not one per stream');
  for (const [name, ran] of [
    ['inspect group', group],
    ['watch', watch],
    ['send', send],
  ] as const) {
    t.equal(ran.code, 1, `${name}: status 1`);
    t.equal(ran.stderr.trimEnd().split('\n').length, 1, `${name}: one line`);
    t.match(
      ran.stderr,
      new RegExp(
        `^parley ${name}: Parley is not set up on the NATS server at ${bare.url} .*Start one`,
      ),
    );
  }
});

t.test('status on a cluster names it, its size, and each stream leader', async (t) => {
  const cluster = await startNatsCluster(3, { t });
  await startWorker(t, cluster.urls, { id: 'w-cluster', replicas: 3 });
  const ran = await parley(['status', '--json'], {
    env: env({ NATS_URL: cluster.urls.join(',') }),
  });
  t.equal(ran.code, 0, ran.stderr);
  const report = JSON.parse(ran.stdout) as StatusReport;
  t.equal(report.nats.cluster?.size, 3);
  t.match(report.nats.cluster?.name, /^parley-/);
  t.ok(
    report.streams.every((s) => s.replicas === 3 && s.cluster?.leader && s.healthy),
    'every stream and bucket has 3 replicas and a leader',
  );
  t.match(report.workers, [{ worker: 'w-cluster', live: true }]);
  t.equal(report.workers.length, 1, 'that worker alone');
});
