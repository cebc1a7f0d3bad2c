// The reports' projection against a scripted day on the simulated clock: 26 conversations through
// the bot, waiting lists, assignments, snoozes woken by the visitor and by the timer, the three
// kinds of transfer, closes with tags (by agents and by visitors) and surveys. Every expected
// figure below was worked out by hand from the script (the comment beside it says how), never by
// the code under test. Times in the comments are minutes after S (23:00 in Paris, 4 January).
import t from 'tap';
import type { Command, DomainEvent, TransferTarget } from '../../actors/events.ts';
import type { Settings } from '../../actors/settings.ts';
import { Simulation } from '../../actors/simulation.ts';
import { ReportMetrics } from '../../lib/reports/metrics.ts';
import { type LiveFigures, Projection, startOfDay } from '../../lib/reports/projection.ts';
import { agent, group, rule } from '../helpers/settings.ts';

const MIN = 60_000;
/** Sunday 4 January 2026, 22:00 UTC: 23:00 in Paris, an hour before local midnight. */
const S = Date.UTC(2026, 0, 4, 22, 0, 0);
const TZ = 'Europe/Paris';
/** Midnight in Paris: S + 60 min. */
const MIDNIGHT = Date.UTC(2026, 0, 4, 23, 0, 0);
/** The end of the script: S + 240 min (03:00 in Paris). */
const END = S + 240 * MIN;

const settings: Settings = {
  groups: [group('tv', { cap: 10 }), group('orders', { cap: 10 })],
  rules: [
    rule('direct', { target: { group: 'tv', byAnswer: [] } }),
    rule('orders', { target: { group: 'orders', byAnswer: [] } }),
    rule('qualify', {
      bot: { questions: [{ id: 'topic', text: 'About?', choices: ['Order', 'Product'] }] },
      target: { group: 'tv', byAnswer: [{ question: 'topic', answer: 'Order', group: 'orders' }] },
    }),
  ],
  // alice serves tv (3 slots), bob tv and orders (2), carol orders (1).
  agents: [
    agent('alice', ['tv'], 3),
    agent('bob', ['tv', 'orders'], 2),
    agent('carol', ['orders'], 1),
  ],
  cannedAnswers: [],
};

interface Stored {
  readonly event: DomainEvent;
  readonly id: string;
  readonly seq: number;
}

interface Day {
  readonly stored: Stored[];
  readonly projection: Projection;
  /** Live figures taken during the script, by minute. */
  readonly snapshots: Map<number, LiveFigures>;
}

/** The scripted day; every event goes to a projection as it happens, as a reporter would. */
function scriptedDay(): Day {
  const sim = new Simulation(settings, { start: S });
  const stored: Stored[] = [];
  const projection = new Projection();
  const snapshots = new Map<number, LiveFigures>();
  const run = sim.run.bind(sim);
  // Every event gets the id a worker would publish it under: `<command id>:<n>`.
  sim.run = (command: Command) => {
    const events = run(command);
    events.forEach((event, n) => {
      const s = { event, id: `${command.id}:${n}`, seq: stored.length + 1 };
      stored.push(s);
      projection.apply(s.event, s.id, s.seq);
    });
    return events;
  };
  const at = (minute: number) => sim.advance(S + minute * MIN - sim.clock.now());
  const snapshot = (minute: number) =>
    snapshots.set(minute, projection.live(S + minute * MIN, settings, TZ));
  const presence = (a: string, p: 'online' | 'away' | 'offline') =>
    sim.do({ type: 'SetAgentPresence', agent: a, presence: p });
  const start = (c: string, r = 'direct') =>
    sim.do({ type: 'StartConversation', conversation: c, visitor: `v-${c}`, rule: r });
  const say = (c: string, a: string) =>
    sim.do({
      type: 'SendMessage',
      conversation: c,
      author: { kind: 'agent', id: a },
      message: { text: 'Hello' },
    });
  const visitorSays = (c: string, text: string) =>
    sim.do({
      type: 'SendMessage',
      conversation: c,
      author: { kind: 'visitor', id: `v-${c}` },
      message: { text },
    });
  const close = (c: string, a: string, tags: string[] = []) =>
    sim.do({ type: 'Close', conversation: c, by: { agent: a }, tags });
  const closeByVisitor = (c: string) =>
    sim.do({ type: 'Close', conversation: c, by: { visitor: `v-${c}` } });
  const snooze = (c: string, a: string, minutes: number) =>
    sim.do({ type: 'Snooze', conversation: c, agent: a, durationMs: minutes * MIN });
  const transfer = (c: string, from: string, to: TransferTarget) =>
    sim.do({ type: 'Transfer', conversation: c, agent: from, to });
  const survey = (c: string, csat?: number, nps?: number) =>
    sim.do({
      type: 'AnswerSurvey',
      conversation: c,
      visitor: `v-${c}`,
      ...(csat === undefined ? {} : { csat }),
      ...(nps === undefined ? {} : { nps }),
    });

  // Yesterday (in Paris): alice alone.
  at(0);
  presence('alice', 'online');
  start('y1'); // → alice at once
  at(5);
  start('y2'); // → alice
  at(10);
  say('y1', 'alice');
  at(30);
  close('y1', 'alice', ['billing']);
  at(40);
  survey('y1', 5, 10);
  at(50);
  say('y2', 'alice');
  snapshot(50);
  // Midnight in Paris at 60.
  at(70);
  close('y2', 'alice', ['billing', 'vip']);
  at(75);
  survey('y2', 4);
  // Eight orders conversations while no orders agent is online: they wait.
  for (let k = 1; k <= 6; k++) {
    at(79 + k);
    start(`o${k}`, 'orders');
  }
  at(86);
  start('o7', 'qualify'); // through the bot
  visitorSays('o7', 'Order');
  at(87);
  start('o8', 'qualify');
  visitorSays('o8', ' order ');
  // alice's snoozes and transfers.
  at(90);
  start('s1');
  at(92);
  start('s2');
  at(95);
  say('s1', 'alice');
  at(96);
  say('s2', 'alice');
  at(100);
  snooze('s1', 'alice', 60); // until 160; the visitor wakes it at 131
  at(101);
  start('t1');
  at(102);
  snooze('s2', 'alice', 60); // until 162: the timer wakes it
  at(103);
  say('t1', 'alice');
  at(105);
  start('t2');
  at(106);
  say('t2', 'alice');
  at(108);
  start('t3'); // alice now holds t1, t2, t3: full
  at(109);
  say('t3', 'alice');
  at(110);
  transfer('t1', 'alice', { agent: 'bob' }); // bob is offline but has a free slot: his at once
  at(115);
  transfer('t2', 'alice', { group: 'orders' }); // into the orders waiting list
  at(120);
  presence('carol', 'online'); // takes o1
  at(121);
  transfer('t3', 'alice', { agent: 'carol' }); // carol is full: tv's list, reserved for her
  at(122);
  say('o1', 'carol');
  at(125);
  close('o1', 'carol', ['delivery']); // → o2
  at(127);
  say('o2', 'carol');
  snapshot(128);
  at(130);
  close('o2', 'carol', ['delivery']); // → o3
  at(131);
  visitorSays('s1', 'Still there?'); // wakes s1: back to alice
  at(132);
  say('o3', 'carol');
  at(133);
  say('s1', 'alice');
  at(135);
  close('o3', 'carol', ['delivery']); // → o4
  at(137);
  say('o4', 'carol');
  at(140);
  close('o4', 'carol', ['delivery']); // → o5
  at(141);
  close('s1', 'alice', ['callback']);
  at(142);
  say('o5', 'carol');
  at(145);
  close('o5', 'carol', ['delivery', 'refund']); // → o6
  at(147);
  say('o6', 'carol');
  at(150);
  close('o6', 'carol', ['delivery', 'refund']); // → o7
  at(152);
  say('o7', 'carol');
  at(155);
  close('o7', 'carol', ['delivery', 'refund']); // → o8
  at(157);
  say('o8', 'carol');
  at(160);
  close('o8', 'carol', ['delivery', 'refund']); // → t2 (ready at 115, before t3 at 121)
  at(162); // the timer wakes s2: back to alice
  at(163);
  say('t2', 'carol');
  at(165);
  say('s2', 'alice');
  at(168);
  close('t2', 'carol', ['refund']); // → t3
  at(170);
  close('s2', 'alice', ['callback']);
  at(171);
  say('t3', 'carol');
  at(175);
  close('t3', 'carol', ['refund', 'vip']);
  at(176);
  survey('o1', 5, 9);
  survey('o2', 3, 6);
  survey('o3', 4, 8);
  at(177);
  survey('o4', undefined, 10);
  survey('o5', 1, 0);
  // Visitors who leave: one waiting, one with the bot.
  at(180);
  presence('alice', 'away');
  at(181);
  start('q1'); // nobody online in tv: it waits
  at(185);
  start('b1', 'qualify');
  at(186);
  closeByVisitor('b1');
  at(190);
  closeByVisitor('q1');
  // bob comes for t1, which waited on his panel since 110.
  at(200);
  presence('bob', 'online');
  at(205);
  say('t1', 'bob');
  at(210);
  close('t1', 'bob');
  at(212);
  survey('t1', 2, 3);
  // The state at the end.
  at(214);
  presence('bob', 'away');
  at(215);
  presence('alice', 'online');
  at(220);
  start('w1');
  at(221);
  start('w2');
  at(222);
  say('w1', 'alice');
  at(223);
  snooze('w2', 'alice', 120);
  at(224);
  start('w3');
  at(225);
  start('w4'); // alice full: w1, w3, w4
  at(226);
  start('w5'); // waits
  at(230);
  start('w6'); // waits
  at(232);
  start('o9', 'orders'); // → carol
  at(233);
  start('o10', 'orders'); // waits: carol is full, bob away
  at(235);
  start('p1', 'qualify'); // with the bot
  at(240);
  return { stored, projection, snapshots };
}

const day = scriptedDay();
const events = day.stored.map((s) => s.event);

t.test(
  'the script ran as planned: nothing refused, each assignment where and when intended',
  async (t) => {
    t.same(
      events.filter((e) => e.type === 'CommandRejected' || e.type === 'MessageRefused'),
      [],
    );
    const assignments = events.flatMap((e) =>
      e.type === 'ConversationAssigned'
        ? [`${e.conversation} ${e.agent} ${(e.at - S) / MIN} waited ${e.waitedMs / MIN}`]
        : [],
    );
    t.same(assignments, [
      'y1 alice 0 waited 0',
      'y2 alice 5 waited 0',
      's1 alice 90 waited 0',
      's2 alice 92 waited 0',
      't1 alice 101 waited 0',
      't2 alice 105 waited 0',
      't3 alice 108 waited 0',
      't1 bob 110 waited 0',
      'o1 carol 120 waited 40',
      'o2 carol 125 waited 44',
      'o3 carol 130 waited 48',
      's1 alice 131 waited 0',
      'o4 carol 135 waited 52',
      'o5 carol 140 waited 56',
      'o6 carol 145 waited 60',
      'o7 carol 150 waited 64',
      'o8 carol 155 waited 68',
      't2 carol 160 waited 45',
      's2 alice 162 waited 0',
      't3 carol 168 waited 47',
      'w1 alice 220 waited 0',
      'w2 alice 221 waited 0',
      'w3 alice 224 waited 0',
      'w4 alice 225 waited 0',
      'o9 carol 232 waited 0',
    ]);
    const woken = events.flatMap((e) =>
      e.type === 'ConversationWoken' ? [`${e.conversation} by ${e.by} at ${(e.at - S) / MIN}`] : [],
    );
    t.same(woken, ['s1 by visitor at 131', 's2 by timer at 162']);
  },
);

t.test('today starts at local midnight in the configured time zone', async (t) => {
  t.equal(startOfDay(S + 70 * MIN, TZ), MIDNIGHT, '00:10 in Paris: today began at 23:00 UTC');
  t.equal(
    startOfDay(S + 50 * MIN, TZ),
    Date.UTC(2026, 0, 3, 23, 0, 0),
    '23:50 in Paris is still the 4th',
  );
  t.equal(startOfDay(S + 70 * MIN, 'UTC'), Date.UTC(2026, 0, 4), 'in UTC it is still the 4th');
  t.equal(startOfDay(Date.UTC(2026, 0, 4), 'UTC'), Date.UTC(2026, 0, 4), 'midnight itself');
  t.equal(
    startOfDay(Date.UTC(2026, 2, 29, 12, 0), TZ),
    Date.UTC(2026, 2, 28, 23, 0),
    'the day clocks go forward (at 02:00) starts at midnight CET',
  );
  t.equal(
    startOfDay(Date.UTC(2018, 10, 4, 15, 0), 'America/Sao_Paulo'),
    Date.UTC(2018, 10, 4, 3, 0),
    'where DST skipped midnight, the day starts at 01:00 (-02:00)',
  );
});

t.test('live figures before midnight count yesterday as today', async (t) => {
  const live = day.snapshots.get(50)!;
  t.equal(live.since, Date.UTC(2026, 0, 3, 23, 0, 0));
  const tv = live.groups.find((g) => g.group === 'tv')!;
  t.equal(tv.closedToday, 1, 'y1, closed at 30 (23:30 in Paris)');
  t.equal(tv.handled, 1, 'y2 is with alice');
  t.equal(tv.handledToday, 2, 'y1 [0, 30] and y2 [5, …)');
});

t.test('live figures mid-morning (minute 128)', async (t) => {
  const live = day.snapshots.get(128)!;
  t.equal(live.since, MIDNIGHT);
  t.same(live.groups, [
    {
      group: 'tv',
      name: 'TV',
      cap: 10,
      waiting: 1, // t3, reserved for carol since 121
      snoozed: 2, // s1 (since 100), s2 (since 102)
      seatsTaken: 3, // 1 waiting + 2 snoozed
      handled: 1, // t1, on bob's panel since 110
      parked: 0,
      longestWaitMs: 420_000, // t3: 128 − 121 = 7 min
      closedToday: 1, // y2 at 70 (y1 at 30 was yesterday)
      // Assigned in tv at some moment since 60: y2 [5,70], s1 [90,100], s2 [92,102],
      // t1 [101,110] then bob's, t2 [105,115], t3 [108,121]: 6 conversations.
      handledToday: 6,
      // t1 (110), t2 (115), t3 (121), all by alice from tv: 3 of the 6 → 50 %.
      transfersToday: { count: 3, transferred: 3, percentage: 50 },
    },
    {
      group: 'orders',
      name: 'ORDERS',
      cap: 10,
      waiting: 7, // o3…o8 and t2
      snoozed: 0,
      seatsTaken: 7,
      handled: 1, // o2 with carol
      parked: 0,
      longestWaitMs: 2_760_000, // o3, ready at 82: 128 − 82 = 46 min
      closedToday: 1, // o1 at 125
      handledToday: 2, // o1 [120,125], o2 [125,…)
      transfersToday: { count: 0, transferred: 0, percentage: 0 },
    },
  ]);
  t.same(
    live.agents.map((a) => [a.agent, a.presence, a.load]),
    [
      ['alice', 'online', 0], // s1, s2 snoozed; t1, t2, t3 transferred
      ['bob', 'offline', 1], // t1, transferred to him while offline
      ['carol', 'online', 1], // o2
    ],
  );
  t.equal(live.agentsLoggedIn, 2, 'alice and carol');
  t.equal(live.closedToday, 2, 'y2, o1');
});

/** The live figures at the end of the script (minute 240), every one derived by hand. */
const EXPECTED_LIVE_AT_END: LiveFigures = {
  at: END,
  since: MIDNIGHT,
  timeZone: TZ,
  groups: [
    {
      group: 'tv',
      name: 'TV',
      cap: 10,
      waiting: 2, // w5 (226), w6 (230)
      snoozed: 1, // w2, until 343
      seatsTaken: 3, // 2 + 1
      handled: 3, // w1, w3, w4 with alice
      parked: 0,
      longestWaitMs: 840_000, // w5: 240 − 226 = 14 min
      // Closed in tv since 60: y2 (70), s1 (141), s2 (170), t3 (175), q1 (190), t1 (210).
      closedToday: 6,
      // Assigned in tv at some moment today: y2, s1, s2, t1, t2 (alice's part), t3 (alice's
      // and carol's parts: t3 stayed in tv), w1, w2, w3, w4.
      handledToday: 10,
      // t1, t2, t3, transferred from tv by alice: 3 of 10.
      transfersToday: { count: 3, transferred: 3, percentage: 30 },
    },
    {
      group: 'orders',
      name: 'ORDERS',
      cap: 10,
      waiting: 1, // o10 (233)
      snoozed: 0,
      seatsTaken: 1,
      handled: 1, // o9 with carol
      parked: 0,
      longestWaitMs: 420_000, // o10: 240 − 233 = 7 min
      closedToday: 9, // o1…o8 (125…160), t2 (168)
      handledToday: 10, // o1…o8, t2 (carol's part, in orders), o9
      transfersToday: { count: 0, transferred: 0, percentage: 0 }, // t2 was transferred from tv
    },
  ],
  withBot: 1, // p1
  // y2, o1…o8, s1, t2, s2, t3, b1 (no group), q1, t1: 1 + 8 + 7.
  closedToday: 16,
  // tv's 10 and orders' 10 share t2: 19.
  handledToday: 19,
  // 3 transfers, 3 conversations of 19: 15.789… → 15.79.
  transfersToday: { count: 3, transferred: 3, percentage: 15.79 },
  agentsLoggedIn: 3, // alice online, bob away, carol online
  agents: [
    {
      agent: 'alice',
      name: 'Alice',
      presence: 'online',
      loggedIn: true,
      load: 3, // w1, w3, w4
      slots: 3,
      handledToday: 10, // y2, s1, s2, t1, t2, t3, w1, w2, w3, w4
      // Her first message after each assignment, written today: s1 95−90=5, s2 96−92=4,
      // t1 103−101=2, t2 106−105=1, t3 109−108=1, s1 133−131=2, s2 165−162=3, w1 222−220=1
      // (y1's and y2's were yesterday; w2 was snoozed, w3 and w4 not answered yet).
      // Sorted 1 1 1 2 | 2 3 4 5: median (2 + 2) / 2 = 2 min.
      firstResponseMedianMs: 120_000,
      firstResponsesToday: 8,
      transfersToday: { count: 3, transferred: 3, percentage: 30 }, // 3 of 10
    },
    {
      agent: 'bob',
      name: 'Bob',
      presence: 'away',
      loggedIn: true,
      load: 0,
      slots: 2,
      handledToday: 1, // t1 [110, 210]
      firstResponseMedianMs: 5_700_000, // t1: 205 − 110 = 95 min
      firstResponsesToday: 1,
      transfersToday: { count: 0, transferred: 0, percentage: 0 },
    },
    {
      agent: 'carol',
      name: 'Carol',
      presence: 'online',
      loggedIn: true,
      load: 1, // o9
      slots: 1,
      handledToday: 11, // o1…o8, t2, t3, o9
      // o1…o8: 2 min each (122−120, 127−125, …); t2 163−160=3; t3 171−168=3; o9 none yet.
      // Sorted 2×8, 3, 3: median (2 + 2) / 2 = 2 min.
      firstResponseMedianMs: 120_000,
      firstResponsesToday: 10,
      transfersToday: { count: 0, transferred: 0, percentage: 0 },
    },
  ],
};

t.test('live figures at the end of the day', async (t) => {
  t.same(day.projection.live(END, settings, TZ), EXPECTED_LIVE_AT_END);
});

t.test('today in another time zone: UTC midnight is at minute 120', async (t) => {
  const live = day.projection.live(END, settings, 'UTC');
  t.equal(live.since, Date.UTC(2026, 0, 5));
  t.same(
    live.groups.map((g) => [g.group, g.closedToday]),
    [
      ['tv', 5], // s1 (141), s2 (170), t3 (175), q1 (190), t1 (210); y2 at 70 was the 4th in UTC
      ['orders', 9], // o1…o8, t2: all after 120
    ],
  );
});

const TODAY = { from: MIDNIGHT, to: END };

/** Per conversation closed today, the facts the period reports are made of (minutes). */
// conv   group   closed  waiting  resolution  handling (by agent)          first resp. survey
// y2     tv        70       0        65        65 (alice)                      45      csat 4
// o1     orders   125      40        45         5 (carol)                      42      5 / 9
// o2     orders   130      44        49         5                              46      3 / 6
// o3     orders   135      48        53         5                              50      4 / 8
// o4     orders   140      52        57         5                              54      – / 10
// s1     tv       141       0        51        20 (alice 10 + 10)               5
// o5     orders   145      56        61         5                              58      1 / 0
// o6     orders   150      60        65         5                              62
// o7     orders   155      64        69         5                              66
// o8     orders   160      68        73         5                              70
// t2     orders   168       0        63        18 (alice 10, carol 8)           1
// s2     tv       170       0        78        18 (alice 10 + 8)                4
// t3     tv       175       0        67        20 (alice 13, carol 7)           1
// b1     –        186       –         1         0 (never left the bot)          –
// q1     tv       190       –         9         0 (left while waiting)          –
// t1     tv       210       0       109       109 (alice 9, bob 100)           2      2 / 3
// Tags: o1–o4 delivery; o5–o8 delivery, refund; t2 refund; t3 refund, vip; y2 billing, vip;
// s1, s2 callback. Transfers: t1, t2, t3, one each, all made by alice.

t.test('period report: today, no filter', async (t) => {
  const r = day.projection.period({ ...TODAY, pageSize: 5, page: 2 });
  t.match(r, {
    closed: 16,
    handled: 14, // all but b1 and q1
    // Waiting of the 14 sorted: 0 0 0 0 0 0 (y2 s1 t2 s2 t3 t1) 40 | 44 48 … 68 (o1…o8):
    // the 7th and 8th are 40 and 44: median 42 min.
    medianWaitingMs: 2_520_000,
    // Resolution sorted: 45 49 51 53 57 61 63 | 65 65 67 69 73 78 109: (63 + 65) / 2 = 64 min.
    medianResolutionMs: 3_840_000,
    // Handling: 65 + 8×5 + 20 + 18 + 18 + 20 + 109 = 290 min / 14 = 1,242,857.14 ms.
    averageHandlingMs: 1_242_857,
    // First responses sorted: 1 1 2 4 5 42 45 | 46 50 54 58 62 66 70: (45 + 46) / 2 = 45.5 min.
    medianFirstResponseMs: 2_730_000,
    // CSAT: 4 (y2) 5 3 4 1 (o1 o2 o3 o5) 2 (t1) = 19 / 6 = 3.1666… → 3.17.
    csat: { average: 3.17, answers: 6 },
    // NPS: 9 10 promoters; 8 passive; 6 0 3 detractors: (2 − 3) / 6 = −16.666… → −16.67.
    nps: { score: -16.67, answers: 6, promoters: 2, passives: 1, detractors: 3 },
    // t1 t2 t3 of the 14 handled: 21.428… → 21.43.
    transfers: { count: 3, transferred: 3, percentage: 21.43 },
    // Oldest first: y2 o1 o2 o3 o4 | s1 o5 o6 o7 o8 | t2 s2 t3 b1 q1 | t1.
    conversations: { page: 2, pageSize: 5, pages: 4 },
  });
  t.same(
    r.conversations.items.map((c) => c.conversation),
    ['s1', 'o5', 'o6', 'o7', 'o8'],
  );
});

t.test('period report: the list says each conversation’s facts', async (t) => {
  const all = day.projection.period({ ...TODAY, pageSize: 100 }).conversations.items;
  t.same(
    all.map((c) => c.conversation),
    [
      'y2',
      'o1',
      'o2',
      'o3',
      'o4',
      's1',
      'o5',
      'o6',
      'o7',
      'o8',
      't2',
      's2',
      't3',
      'b1',
      'q1',
      't1',
    ],
  );
  const byId = new Map(all.map((c) => [c.conversation, c]));
  t.same(byId.get('t3'), {
    conversation: 't3',
    group: 'tv',
    agent: 'carol',
    agents: ['alice', 'carol'],
    closedAt: S + 175 * MIN,
    closedBy: 'agent',
    tags: ['refund', 'vip'],
    waitingMs: 0, // assigned to alice on arrival
    resolutionMs: 4_020_000, // 175 − 108 = 67 min
    handlingMs: 1_200_000, // alice 108→121 (13) + carol 168→175 (7) = 20 min
    firstResponseMs: 60_000, // 109 − 108
    transfers: 1,
    csat: null,
    nps: null,
  });
  t.same(byId.get('b1'), {
    conversation: 'b1',
    group: null,
    agent: null,
    agents: [],
    closedAt: S + 186 * MIN,
    closedBy: 'visitor',
    tags: [],
    waitingMs: null,
    resolutionMs: 60_000, // never escalated: from its start at 185
    handlingMs: 0,
    firstResponseMs: null,
    transfers: 0,
    csat: null,
    nps: null,
  });
  t.match(byId.get('q1'), {
    group: 'tv',
    agent: null,
    closedBy: 'visitor',
    waitingMs: null,
    resolutionMs: 540_000, // 190 − 181
  });
  t.match(byId.get('o4'), { csat: null, nps: 10, waitingMs: 3_120_000, tags: ['delivery'] });
  t.match(byId.get('t1'), { agent: 'bob', agents: ['alice', 'bob'], tags: [], csat: 2, nps: 3 });
});

t.test('period report: yesterday', async (t) => {
  const r = day.projection.period({ from: S, to: MIDNIGHT });
  t.match(r, {
    closed: 1, // y1 at 30
    handled: 1,
    medianWaitingMs: 0,
    medianResolutionMs: 1_800_000, // 0 → 30
    averageHandlingMs: 1_800_000, // alice 0 → 30
    medianFirstResponseMs: 600_000, // 10 − 0
    csat: { average: 5, answers: 1 },
    nps: { score: 100, answers: 1, promoters: 1, passives: 0, detractors: 0 },
    transfers: { count: 0, transferred: 0, percentage: 0 },
    conversations: { page: 1, pageSize: 50, pages: 1 },
  });
  t.same(
    r.conversations.items.map((c) => c.conversation),
    ['y1'],
  );
});

t.test('period report: today, routing group orders', async (t) => {
  t.match(day.projection.period({ ...TODAY, group: 'orders' }), {
    closed: 9, // o1…o8, t2 (closed in orders)
    handled: 9,
    medianWaitingMs: 3_120_000, // 0 40 44 48 | 52 | …: 52 min
    medianResolutionMs: 3_660_000, // 45 49 53 57 | 61 | 63 65 69 73: 61 min
    averageHandlingMs: 386_667, // (8×5 + 18) = 58 min / 9 = 386,666.7 ms
    medianFirstResponseMs: 3_240_000, // 1 42 46 50 | 54 | …: 54 min
    csat: { average: 3.25, answers: 4 }, // 5 3 4 1 = 13 / 4
    nps: { score: 0, answers: 5, promoters: 2, passives: 1, detractors: 2 }, // 9 10 | 8 | 6 0
    transfers: { count: 1, transferred: 1, percentage: 11.11 }, // t2: 1 of 9
  });
});

t.test('period report: today, agent alice (her share of handling, her transfers)', async (t) => {
  t.match(day.projection.period({ ...TODAY, agent: 'alice' }), {
    closed: 6, // y2 s1 t2 s2 t3 t1
    handled: 6,
    medianWaitingMs: 0, // each was hers on arrival
    medianResolutionMs: 3_960_000, // 51 63 65 | 67 78 109: (65 + 67) / 2 = 66 min
    averageHandlingMs: 1_350_000, // her share: 65 + 20 + 10 + 18 + 13 + 9 = 135 / 6 = 22.5 min
    medianFirstResponseMs: 180_000, // 1 1 2 | 4 5 45: (2 + 4) / 2 = 3 min
    csat: { average: 3, answers: 2 }, // y2 4, t1 2
    nps: { score: -100, answers: 1, promoters: 0, passives: 0, detractors: 1 }, // t1 3
    transfers: { count: 3, transferred: 3, percentage: 50 }, // t1 t2 t3 of 6
  });
});

t.test('period report: today, agent carol', async (t) => {
  t.match(day.projection.period({ ...TODAY, agent: 'carol' }), {
    closed: 10, // o1…o8, t2, t3
    handled: 10,
    medianWaitingMs: 3_000_000, // 0 0 40 44 48 | 52 56 60 64 68: (48 + 52) / 2 = 50 min
    medianResolutionMs: 3_720_000, // 45 49 53 57 61 | 63 65 67 69 73: 62 min
    averageHandlingMs: 330_000, // her share: 8×5 + 8 (t2) + 7 (t3) = 55 / 10 = 5.5 min
    medianFirstResponseMs: 3_120_000, // 1 1 42 46 50 | 54 58 62 66 70: 52 min
    csat: { average: 3.25, answers: 4 },
    nps: { score: 0, answers: 5, promoters: 2, passives: 1, detractors: 2 },
    transfers: { count: 0, transferred: 0, percentage: 0 },
  });
});

t.test('period report: today, tag refund', async (t) => {
  t.match(day.projection.period({ ...TODAY, tag: 'refund' }), {
    closed: 6, // o5 o6 o7 o8 t2 t3
    handled: 6,
    medianWaitingMs: 3_480_000, // 0 0 56 | 60 64 68: (56 + 60) / 2 = 58 min
    medianResolutionMs: 3_960_000, // 61 63 65 | 67 69 73: 66 min
    averageHandlingMs: 580_000, // 4×5 + 18 + 20 = 58 min / 6 = 9 min 40 s
    medianFirstResponseMs: 3_600_000, // 1 1 58 | 62 66 70: (58 + 62) / 2 = 60 min
    csat: { average: 1, answers: 1 }, // o5
    nps: { score: -100, answers: 1, promoters: 0, passives: 0, detractors: 1 }, // o5: 0
    transfers: { count: 2, transferred: 2, percentage: 33.33 }, // t2 t3 of 6
  });
});

t.test('period report: filters combine; an unknown name matches nothing', async (t) => {
  const vip = day.projection.period({ ...TODAY, group: 'tv', tag: 'vip' });
  t.same(
    vip.conversations.items.map((c) => c.conversation),
    ['y2', 't3'],
  );
  t.match(day.projection.period({ from: S, to: END, agent: 'bob' }), {
    closed: 1, // t1
    averageHandlingMs: 6_000_000, // bob's share: 110 → 210
    transfers: { count: 0, transferred: 0, percentage: 0 },
  });
  t.match(day.projection.period({ ...TODAY, agent: 'nobody' }), {
    closed: 0,
    handled: 0,
    medianWaitingMs: null,
    medianResolutionMs: null,
    averageHandlingMs: null,
    medianFirstResponseMs: null,
    csat: { average: null, answers: 0 },
    nps: { score: null, answers: 0 },
    transfers: { count: 0, transferred: 0, percentage: null },
    conversations: { page: 1, pages: 0, items: [] },
  });
  t.equal(day.projection.period({ from: S, to: END }).closed, 17, 'y1 and the 16 of today');
});

/** Every figure the projection gives for the scripted day. */
function figures(p: Projection) {
  return {
    live: p.live(END, settings, TZ),
    mid: p.live(S + 128 * MIN, settings, TZ),
    utc: p.live(END, settings, 'UTC'),
    reports: [
      p.period({ ...TODAY, pageSize: 100 }),
      p.period({ from: S, to: MIDNIGHT }),
      p.period({ ...TODAY, group: 'orders' }),
      p.period({ ...TODAY, agent: 'alice' }),
      p.period({ ...TODAY, agent: 'carol' }),
      p.period({ ...TODAY, tag: 'refund' }),
    ],
  };
}

t.test('a follower resuming from an earlier point gives the same figures', async (t) => {
  // Half the day read, then everything from the start again (a follower restarted from an older
  // sequence): the events read twice count once.
  const resumed = new Projection();
  const half = Math.floor(day.stored.length / 2);
  for (const s of day.stored.slice(0, half)) resumed.apply(s.event, s.id, s.seq);
  for (const s of day.stored) resumed.apply(s.event, s.id, s.seq);
  t.same(resumed.live(END, settings, TZ), EXPECTED_LIVE_AT_END);
  t.same(figures(resumed), figures(day.projection));
});

t.test('an event delivered twice, or stored twice under the same id, counts once', async (t) => {
  const twice = new Projection();
  let seq = 0;
  for (const s of day.stored) {
    seq++;
    twice.apply(s.event, s.id, seq);
    // The same stored message again (a redelivery): the same sequence.
    twice.apply(s.event, s.id, seq);
    // The same event published again and stored again: a new sequence, the same id.
    twice.apply(s.event, s.id, ++seq);
  }
  // And a few stored again much later, after their conversations moved on or closed.
  for (const s of day.stored.filter((x) => x.event.type === 'ConversationAssigned')) {
    t.notOk(twice.apply(s.event, s.id, ++seq), `${s.id} again changes nothing`);
  }
  for (const s of day.stored.filter((x) => x.event.type === 'SurveyAnswered')) {
    t.notOk(twice.apply(s.event, s.id, ++seq));
  }
  t.same(figures(twice), figures(day.projection));
  t.same(twice.live(END, settings, TZ), EXPECTED_LIVE_AT_END);
  t.ok(twice.stats().duplicates >= day.stored.length, 'the redeliveries were seen as such');
});

t.test('a projection that starts reading mid-stream counts what it can know', async (t) => {
  // The stream kept only what happened from minute 100 on (as after its 30 days' retention).
  const late = new Projection();
  for (const s of day.stored) {
    if (s.event.at >= S + 100 * MIN) late.apply(s.event, s.id, s.seq);
  }
  const r = late.period(TODAY);
  t.equal(r.closed, 15, 'y2 closed at 70 was not seen');
  // o1…o8 entered their waiting list before 100: their waiting and first response are unknown;
  // s1's and s2's too. t1, t2, t3 started after 100: their figures are known.
  const items = new Map(
    late.period({ ...TODAY, pageSize: 100 }).conversations.items.map((c) => [c.conversation, c]),
  );
  t.match(items.get('o1'), { waitingMs: null, firstResponseMs: null, resolutionMs: 2_700_000 });
  t.match(items.get('t3'), { waitingMs: 0, firstResponseMs: 60_000 });
  t.same(
    late.live(END, settings, TZ).groups,
    EXPECTED_LIVE_AT_END.groups.map((g) => ({
      ...g,
      // y2's close (70) and its assignment (5 → 70) were not seen.
      closedToday: g.group === 'tv' ? 5 : g.closedToday,
      handledToday: g.group === 'tv' ? 9 : g.handledToday,
      transfersToday:
        g.group === 'tv' ? { count: 3, transferred: 3, percentage: 33.33 } : g.transfersToday,
    })),
  );
});

t.test('an old presence stored again later does not win over the newer one', async (t) => {
  const p = new Projection();
  for (const s of day.stored) p.apply(s.event, s.id, s.seq);
  const away = day.stored.find(
    (s) => s.event.type === 'AgentPresenceChanged' && s.event.presence === 'away',
  )!;
  t.notOk(p.apply(away.event, away.id, day.stored.length + 1), 'alice’s away of 180, again');
  t.equal(p.live(END, settings, TZ).agents[0]?.presence, 'online');
});

t.test('the Prometheus text of the live figures', async (t) => {
  const source = {
    live: (now?: number) => day.projection.live(now ?? END, settings, TZ),
    totals: () => day.projection.totals(),
    stats: () => day.projection.stats(),
  };
  const text = await new ReportMetrics(source).metrics(END);
  const lines = text.split('\n');
  for (const line of [
    'parley_conversations_waiting{group="tv"} 2',
    'parley_waiting_list_cap{group="tv"} 10',
    'parley_waiting_list_seats_taken{group="tv"} 3',
    'parley_conversations_snoozed{group="tv"} 1',
    'parley_conversations_handled{group="tv"} 3',
    'parley_longest_wait_seconds{group="tv"} 840',
    'parley_conversations_closed_today{group="orders"} 9',
    'parley_conversations_handled_today{group="tv"} 10',
    'parley_transfers_today{group="tv"} 3',
    'parley_transfer_ratio_today{group="tv"} 0.3',
    'parley_transfer_ratio_today{group="orders"} 0',
    'parley_conversations_with_bot 1',
    'parley_agents_logged_in 3',
    'parley_agent_load{agent="alice"} 3',
    'parley_agent_slots{agent="carol"} 1',
    'parley_agent_conversations_handled_today{agent="carol"} 11',
    'parley_agent_first_response_median_seconds{agent="bob"} 5700',
    'parley_agent_transfers_today{agent="alice"} 3',
    'parley_agent_presence{agent="bob",presence="away"} 1',
    'parley_agent_presence{agent="bob",presence="online"} 0',
    // Since the first event: tv y1 y2 s1 s2 t3 q1 t1 = 7; orders o1…o8 t2 = 9.
    'parley_conversations_closed_total{group="tv"} 7',
    'parley_conversations_closed_total{group="orders"} 9',
    'parley_transfers_total{group="tv"} 3',
    '# TYPE parley_conversations_closed_total counter',
    '# TYPE parley_conversations_closed_today gauge',
  ]) {
    t.ok(lines.includes(line), line);
  }
  t.equal(
    lines.filter((l) => l.startsWith('parley_agent_first_response_median_seconds')).length,
    3,
    'each agent answered someone today',
  );
});
