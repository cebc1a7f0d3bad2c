// The reports on a real nats-server with a real worker: the reporter reads the events stream from
// its first event, follows it, gives the same figures rebuilt and restarted, and serves them over
// HTTP (live, period, Prometheus).
import { DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import Fastify from 'fastify';
import t from 'tap';
import type { DomainEvent } from '../../actors/events.ts';
import { HOUR_MS } from '../../actors/settings.ts';
import { Authenticator } from '../../lib/gateway/auth.ts';
import { installProblems } from '../../lib/gateway/problem.ts';
import { reportRoutes } from '../../lib/gateway/routes/reports.ts';
import { connectNats } from '../../lib/nats/connection.ts';
import { STREAMS } from '../../lib/nats/streams.ts';
import { Projection } from '../../lib/reports/projection.ts';
import { Reporter } from '../../lib/reports/reporter.ts';
import { runtimeSettings, startRuntime, testLog } from '../helpers/runtime.ts';

const is =
  (type: string, conversation?: string, more: (e: DomainEvent) => boolean = () => true) =>
  (e: DomainEvent) =>
    e.type === type &&
    (conversation === undefined ||
      (e as { conversation?: string }).conversation === conversation) &&
    more(e);

const SUPERVISOR_KEY = 'supervisor-key-for-the-reports-test';

t.test(
  'the reporter follows the events stream; rebuilt or restarted, it gives the same figures',
  async (t) => {
    const { server, it } = await startRuntime(t);
    const began = Date.now();

    // alice (tv, 2 slots) online; c1 answered, closed with a tag and surveyed; c2 snoozed for an
    // hour; c3 and c4 with alice; c5 waits for a slot.
    await it.send({ type: 'SetAgentPresence', agent: 'alice', presence: 'online' });
    await it.waitFor(is('AgentPresenceChanged'), 10_000, 'alice online');
    const startConversation = async (c: string) => {
      await it.send({
        type: 'StartConversation',
        conversation: c,
        visitor: `v-${c}`,
        rule: 'direct',
      });
      await it.waitFor(is('ConversationQueued', c), 10_000, `${c} queued`);
    };
    await startConversation('c1');
    await it.waitFor(is('ConversationAssigned', 'c1'));
    await it.send({
      type: 'SendMessage',
      conversation: 'c1',
      author: { kind: 'agent', id: 'alice' },
      message: { text: 'Hello' },
    });
    await it.waitFor(
      is(
        'MessageAdded',
        'c1',
        (e) => e.type === 'MessageAdded' && e.message.author.kind === 'agent',
      ),
    );
    await it.send({ type: 'Close', conversation: 'c1', by: { agent: 'alice' }, tags: ['done'] });
    await it.waitFor(is('ConversationClosed', 'c1'));
    await it.send({ type: 'AnswerSurvey', conversation: 'c1', visitor: 'v-c1', csat: 4, nps: 9 });
    await it.waitFor(is('SurveyAnswered', 'c1'));
    await startConversation('c2');
    await it.waitFor(is('ConversationAssigned', 'c2'));
    await it.send({ type: 'Snooze', conversation: 'c2', agent: 'alice', durationMs: HOUR_MS });
    await it.waitFor(is('ConversationSnoozed', 'c2'));
    await startConversation('c3');
    await it.waitFor(is('ConversationAssigned', 'c3'));
    await startConversation('c4');
    await it.waitFor(is('ConversationAssigned', 'c4'));
    await startConversation('c5');

    const nc = await connectNats(server.url, { name: 'reports' });
    t.teardown(() => nc.close());
    const options = { settings: runtimeSettings, timeZone: 'UTC', log: testLog };
    let reporter = await Reporter.start(nc, options);
    t.teardown(() => reporter.stop());

    const at = Date.now();
    const live = reporter.live(at);
    t.match(
      live.groups.find((g) => g.group === 'tv'),
      {
        cap: 3,
        waiting: 1, // c5
        snoozed: 1, // c2
        seatsTaken: 2,
        handled: 2, // c3, c4
        closedToday: 1, // c1
        handledToday: 4, // c1, c2, c3, c4
        transfersToday: { count: 0, transferred: 0, percentage: 0 },
      },
    );
    t.match(
      live.agents.find((a) => a.agent === 'alice'),
      {
        presence: 'online',
        loggedIn: true,
        load: 2,
        slots: 2,
        handledToday: 4,
        firstResponsesToday: 1, // c1
      },
    );
    t.equal(live.agentsLoggedIn, 1);
    const period = reporter.period({ from: began - 1_000, to: at + 1 });
    t.match(period, {
      closed: 1,
      handled: 1,
      csat: { average: 4, answers: 1 },
      nps: { score: 100, answers: 1, promoters: 1 },
      transfers: { count: 0 },
    });
    t.match(period.conversations.items, [{ conversation: 'c1', tags: ['done'], agent: 'alice' }]);

    // It follows: closing c3 frees a slot, c5 goes to alice.
    await it.send({ type: 'Close', conversation: 'c3', by: { agent: 'alice' } });
    await it.waitFor(is('ConversationAssigned', 'c5'), 10_000, 'c5 to alice');
    await reporter.caughtUp();
    const now = Date.now();
    const query = { from: began - 1_000, to: now + 1 };
    const figures = () => ({ live: reporter.live(now), period: reporter.period(query) });
    const before = figures();
    t.match(
      before.live.groups.find((g) => g.group === 'tv'),
      {
        waiting: 0,
        handled: 2, // c4, c5
        closedToday: 2, // c1, c3
        handledToday: 5,
      },
    );
    t.equal(before.period.closed, 2);

    await reporter.rebuild();
    t.same(figures(), before, 'rebuilt from the stream: the same figures');

    await reporter.stop();
    reporter = await Reporter.start(nc, options);
    t.same(figures(), before, 'restarted: the same figures');
    const info = await (await jetstreamManager(nc)).streams.info(STREAMS.events);
    t.equal(reporter.stats().lastSeq, info.state.last_seq, 'it read up to the last stored event');

    // The stored events, with their ids, fed to a projection twice each: counted once.
    const stored: { event: DomainEvent; id: string }[] = [];
    const consumer = await jetstream(nc).consumers.get(STREAMS.events, {
      deliver_policy: DeliverPolicy.All,
    });
    const messages = await consumer.consume();
    for await (const m of messages) {
      stored.push({ event: m.json<DomainEvent>(), id: m.headers?.get('Nats-Msg-Id') ?? '' });
      if (m.info.pending === 0) break;
    }
    await messages.close();
    t.ok(
      stored.every((s) => /:\d+$/.test(s.id)),
      'every event carries its <unit>:<n> id',
    );
    const twice = new Projection();
    let seq = 0;
    for (const s of stored) {
      twice.apply(s.event, s.id, ++seq);
      t.notOk(twice.apply(s.event, s.id, ++seq), `${s.id} a second time changes nothing`);
    }
    t.same(
      { live: twice.live(now, runtimeSettings(), 'UTC'), period: twice.period(query) },
      before,
      'the same figures as the reporter',
    );
  },
);

t.test('the report routes: supervisor credential, validation, Prometheus text', async (t) => {
  const { server, it } = await startRuntime(t);
  await it.send({ type: 'SetAgentPresence', agent: 'alice', presence: 'online' });
  await it.send({ type: 'StartConversation', conversation: 'r1', visitor: 'v1', rule: 'direct' });
  await it.waitFor(is('ConversationAssigned', 'r1'));
  await it.send({ type: 'Close', conversation: 'r1', by: { agent: 'alice' }, tags: ['done'] });
  await it.waitFor(is('ConversationClosed', 'r1'));
  await it.send({ type: 'StartConversation', conversation: 'r2', visitor: 'v2', rule: 'direct' });
  await it.waitFor(is('ConversationAssigned', 'r2'));

  const nc = await connectNats(server.url, { name: 'reports' });
  t.teardown(() => nc.close());
  const reporter = await Reporter.start(nc, {
    settings: runtimeSettings,
    timeZone: 'Europe/Paris',
    log: testLog,
  });
  t.teardown(() => reporter.stop());
  const now = Date.now();
  const auth = new Authenticator({
    visitorSecret: 'a-visitor-secret-of-at-least-32-characters',
    adminKeys: [],
    supervisorKeys: [SUPERVISOR_KEY],
    agentKeys: { alice: 'alice-key' },
  });
  // The gateway's validation: unknown fields refused, nothing coerced (lib/gateway/server.ts).
  const app = Fastify({
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: true } },
  });
  installProblems(app);
  await app.register(reportRoutes({ auth }, reporter, { now: () => now, openMetrics: false }));
  t.teardown(() => app.close());
  const supervisor = { authorization: `Bearer ${SUPERVISOR_KEY}` };
  const get = (url: string, headers: Record<string, string> = supervisor) =>
    app.inject({ method: 'GET', url, headers });

  const live = await get('/v1/reports/live');
  t.equal(live.statusCode, 200);
  t.same(live.json(), JSON.parse(JSON.stringify(reporter.live(now))), 'every field serialised');
  t.match(live.json().groups[0], { group: 'tv', handled: 1, closedToday: 1 });

  t.equal((await get('/v1/reports/live', {})).statusCode, 401, 'no credential');
  t.equal(
    (await get('/v1/reports/live', { authorization: 'Bearer alice-key' })).statusCode,
    401,
    "an agent's key is not a supervisor's",
  );
  t.equal((await get(`/v1/reports/live?token=${SUPERVISOR_KEY}`, {})).statusCode, 200, '?token=');

  const from = now - HOUR_MS;
  const period = await get(`/v1/reports/period?from=${from}&to=${now + 1}&tag=done`);
  t.equal(period.statusCode, 200);
  t.match(period.json(), {
    from,
    closed: 1,
    handled: 1,
    tag: 'done',
    group: null,
    medianFirstResponseMs: null, // alice never wrote
    conversations: { page: 1, pageSize: 50, pages: 1, items: [{ conversation: 'r1' }] },
  });
  const iso = new Date(from).toISOString();
  t.match((await get(`/v1/reports/period?from=${iso}&group=tv&pageSize=10`)).json(), {
    from,
    to: now, // the default: now
    group: 'tv',
    closed: 1,
    conversations: { pageSize: 10 },
  });
  const today = new Intl.DateTimeFormat('en-CA', { timeZone: 'Europe/Paris' }).format(now);
  const local = (await get(`/v1/reports/period?from=${today}`)).json();
  t.ok(local.from <= now && now - local.from < 25 * HOUR_MS, 'a date is its local midnight');

  const problem = async (url: string, field: string) => {
    const r = await get(url);
    t.equal(r.statusCode, 400, url);
    t.match(r.headers['content-type'], /application\/problem\+json/);
    t.match(r.json(), { code: 'PARLEY_ERR_VALIDATION', errors: [{ field }] }, url);
  };
  await problem('/v1/reports/period', 'querystring.from');
  await problem('/v1/reports/period?from=yesterday', 'querystring.from');
  await problem('/v1/reports/period?from=2026-02-30', 'query.from');
  await problem(`/v1/reports/period?from=${now}&to=${from}`, 'query.to');
  await problem(`/v1/reports/period?from=${from}&pageSize=5000`, 'query.pageSize');
  await problem(`/v1/reports/period?from=${from}&page=0`, 'querystring.page');
  await problem(`/v1/reports/period?from=${from}&colour=red`, 'querystring.colour');

  const metrics = await get('/metrics');
  t.equal(metrics.statusCode, 200);
  t.match(metrics.headers['content-type'], /^text\/plain/);
  for (const line of [
    'parley_conversations_waiting{group="tv"} 0',
    'parley_conversations_handled{group="tv"} 1',
    'parley_waiting_list_cap{group="tv"} 3',
    'parley_conversations_closed_today{group="tv"} 1',
    'parley_agent_load{agent="alice"} 1',
    'parley_agent_presence{agent="alice",presence="online"} 1',
    'parley_agents_logged_in 1',
    'parley_conversations_closed_total{group="tv"} 1',
  ]) {
    t.ok(metrics.body.split('\n').includes(line), line);
  }
  t.equal((await get('/metrics', {})).statusCode, 401, 'metrics need the supervisor credential');

  const open = Fastify();
  await open.register(reportRoutes({ auth }, reporter, { openMetrics: true }));
  t.teardown(() => open.close());
  t.equal((await open.inject({ method: 'GET', url: '/metrics' })).statusCode, 200, 'unless open');
});
