// Period reports over many closed conversations: a projection fed `count` conversations' events
// (started, queued, assigned, answered, some transferred, snoozed and woken, closed with tags,
// some surveyed) spread over 30 days, then timed answering a period report over all of them and
// a filtered one, and the live figures. Run alone: `node --expose-gc --import tsx bench/reports.ts [count]`.
import type { DomainEvent } from '../actors/events.ts';
import type { Settings } from '../actors/settings.ts';
import { GROUP_DEFAULTS } from '../actors/settings.ts';
import { Projection } from '../lib/reports/projection.ts';

export interface ReportsBenchResult {
  /** Conversations closed in the projection (all of them are in the period). */
  closed: number;
  /** Time of one period report over every closed conversation (no filter, first page), in ms. */
  ms: number;
  /** Time of one period report filtered by group, agent and tag, in ms. */
  filteredMs: number;
  /** Time of the live figures, in ms. */
  liveMs: number;
  /** Time to apply every event, in ms. */
  applyMs: number;
  events: number;
  /** Memory the projection holds after a GC, JS heap and array buffers (0 without --expose-gc). */
  heapBytes: number;
}

const GROUPS = ['tv', 'orders', 'returns'];
const AGENTS = Array.from({ length: 20 }, (_, i) => `agent-${i}`);
const TAGS = ['delivery', 'refund', 'billing', 'vip', 'callback'];
const MIN = 60_000;
const DAY = 24 * 60 * MIN;

const settings: Settings = {
  groups: GROUPS.map((id) => ({ ...GROUP_DEFAULTS, id, name: id })),
  rules: [],
  agents: AGENTS.map((id, i) => ({ id, name: id, groups: [GROUPS[i % 3]!], slots: 5 })),
  cannedAnswers: [],
};

/** The events of conversation `i`, as a worker would publish them, with their ids. */
function* conversationEvents(i: number, start: number): Generator<[DomainEvent, string]> {
  const conversation = `c-${i}`;
  const group = GROUPS[i % GROUPS.length]!;
  const agent = AGENTS[i % AGENTS.length]!;
  const other = AGENTS[(i + 7) % AGENTS.length]!;
  const base = { conversation, group };
  let n = 0;
  const id = () => `cmd-${i}:${n++}`;
  const waited = ((i * 7919) % 120) * MIN;
  let at = start;
  yield [
    { type: 'ConversationStarted', ...base, group: null, at, visitor: `v-${i}`, rule: 'r' },
    id(),
  ];
  yield [{ type: 'ConversationQueued', ...base, at, reason: 'escalated', reservedFor: null }, id()];
  at += waited;
  const assigned = {
    type: 'ConversationAssigned',
    ...base,
    at,
    agent,
    waitedMs: waited,
    visitorOnline: true,
    wasSnoozed: false,
  } as const;
  yield [assigned, id()];
  at += ((i * 31) % 20) * MIN;
  const message = {
    id: `m-${i}`,
    seq: 3,
    author: { kind: 'agent', id: agent },
    text: 'Hello',
    attachments: [],
    at,
  } as const;
  yield [{ type: 'MessageAdded', ...base, at, message }, id()];
  let holder = agent;
  if (i % 10 === 0) {
    at += 5 * MIN;
    yield [
      { type: 'ConversationTransferred', ...base, at, from: agent, to: { agent: other } },
      id(),
    ];
    yield [{ ...assigned, at, agent: other, waitedMs: 0 }, id()];
    holder = other;
  }
  if (i % 7 === 0) {
    at += 5 * MIN;
    const snooze = { ...base, at, agent: holder, until: at + 60 * MIN, durationMs: 60 * MIN };
    yield [{ type: 'ConversationSnoozed', ...snooze }, id()];
    at += 60 * MIN;
    yield [
      {
        type: 'ConversationWoken',
        ...base,
        at,
        by: 'timer',
        snoozedBy: holder,
        snoozedMs: 60 * MIN,
      },
      id(),
    ];
    yield [{ type: 'ConversationQueued', ...base, at, reason: 'woken', reservedFor: null }, id()];
    yield [{ ...assigned, at, agent: holder, waitedMs: 0, wasSnoozed: true }, id()];
  }
  at += ((i * 13) % 30) * MIN;
  const tags = [TAGS[i % TAGS.length]!, ...(i % 4 === 0 ? [TAGS[(i + 1) % TAGS.length]!] : [])];
  yield [
    {
      type: 'ConversationClosed',
      ...base,
      at,
      by: 'agent',
      agent: holder,
      tags,
      handlingMs: at - start - waited,
      resolutionMs: at - start,
    },
    id(),
  ];
  if (i % 3 === 0) {
    yield [
      {
        type: 'SurveyAnswered',
        ...base,
        at: at + MIN,
        csat: 1 + (i % 5),
        nps: i % 11,
        comment: null,
      },
      id(),
    ];
  }
}

const gc = (globalThis as { gc?: () => void }).gc;
const heap = () => {
  if (!gc) return 0;
  gc();
  gc();
  // Typed arrays live outside the JS heap: count their buffers too.
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
};

/** Feeds `count` closed conversations to a projection and times its period reports. */
export function runReportsBench(count = 100_000): ReportsBenchResult {
  const first = Date.UTC(2026, 0, 1);
  const spread = (30 * DAY) / count;
  const before = heap();
  let projection: Projection | undefined = new Projection();
  let seq = 0;
  const t0 = performance.now();
  for (let i = 0; i < count; i++) {
    for (const [event, id] of conversationEvents(i, first + Math.floor(i * spread))) {
      projection.apply(event, id, ++seq);
    }
  }
  const applyMs = performance.now() - t0;
  const heapBytes = gc ? heap() - before : 0;

  const period = { from: first, to: first + 40 * DAY };
  const t1 = performance.now();
  const all = projection.period(period);
  const ms = performance.now() - t1;
  if (all.closed !== count) throw new Error(`expected ${count} closed, got ${all.closed}`);

  const t2 = performance.now();
  projection.period({ ...period, group: 'tv', agent: 'agent-0', tag: 'delivery', page: 2 });
  const filteredMs = performance.now() - t2;

  const t3 = performance.now();
  projection.live(first + 30 * DAY, settings, 'Europe/Paris');
  const liveMs = performance.now() - t3;

  const closed = all.closed;
  projection = undefined;
  const round = (x: number) => Math.round(x * 10) / 10;
  return {
    closed,
    ms: round(ms),
    filteredMs: round(filteredMs),
    liveMs: round(liveMs),
    applyMs: round(applyMs),
    events: seq,
    heapBytes,
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const count = Number(process.argv[2] ?? 100_000);
  process.stdout.write(`${JSON.stringify(runReportsBench(count))}\n`);
}
