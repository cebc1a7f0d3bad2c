// The reports' projection of the events stream: the live figures of the production report and the
// period reports (conversations, customer experience, activity), computed from events alone so
// they can be rebuilt from the stream at any time. Pure: no NATS, no clock of its own.
// docs/metrics.md defines every figure; this file is that definition in code.
import type { ConversationEvent, DomainEvent, Presence } from '../../actors/events.ts';
import type { Settings } from '../../actors/settings.ts';

export const DAY_MS = 24 * 60 * 60 * 1000;

// ─── What the projection answers ─────────────────────────────────────────────────────────────

/** Transfers made over a span, against the conversations handled over the same span. */
export interface TransferFigures {
  /** Transfers made (ConversationTransferred events). */
  readonly count: number;
  /** Distinct conversations transferred at least once. */
  readonly transferred: number;
  /** `transferred` out of the conversations handled, × 100, 2 decimals; null when none was handled. */
  readonly percentage: number | null;
}

export interface GroupLive {
  readonly group: string;
  readonly name: string;
  /** Seats of the waiting list (live configuration); null for a group no longer configured. */
  readonly cap: number | null;
  /** Conversations in the waiting list now. */
  readonly waiting: number;
  /** Conversations snoozed now (each keeps a seat of the cap). */
  readonly snoozed: number;
  /** Seats of the cap taken: waiting + snoozed. */
  readonly seatsTaken: number;
  /** Conversations being handled now: assigned to an agent (a snoozed one is not). */
  readonly handled: number;
  /** Conversations the bot keeps because this group's waiting list was full. */
  readonly parked: number;
  /** Now minus the earliest entry (or wake) among the conversations waiting; 0 when none waits. */
  readonly longestWaitMs: number;
  /** Conversations closed today whose group at the close was this one. */
  readonly closedToday: number;
  /** Distinct conversations assigned to an agent in this group at some moment today. */
  readonly handledToday: number;
  /** Transfers made today from this group (the group the conversation was in when transferred). */
  readonly transfersToday: TransferFigures;
}

export interface AgentLive {
  readonly agent: string;
  readonly name: string;
  /** The last AgentPresenceChanged read; `offline` for an agent never seen. */
  readonly presence: Presence;
  /** Online or away. */
  readonly loggedIn: boolean;
  /** Conversations assigned to the agent now. */
  readonly load: number;
  /** Slots in the live configuration; null for an agent no longer configured. */
  readonly slots: number | null;
  /** Distinct conversations assigned to the agent at some moment today. */
  readonly handledToday: number;
  /** Median of the agent's first responses written today (see docs/metrics.md); null: none. */
  readonly firstResponseMedianMs: number | null;
  /** How many first responses the median is of. */
  readonly firstResponsesToday: number;
  /** Transfers the agent made today. */
  readonly transfersToday: TransferFigures;
}

export interface LiveFigures {
  /** The moment the figures are for (ms since the epoch). */
  readonly at: number;
  /** Start of today: local midnight in `timeZone` (ms since the epoch). */
  readonly since: number;
  readonly timeZone: string;
  readonly groups: readonly GroupLive[];
  /** Conversations with the bot now (asking, or parked because a waiting list was full). */
  readonly withBot: number;
  /** Every conversation closed today, with a group or not. */
  readonly closedToday: number;
  /** Distinct conversations assigned to an agent at some moment today. */
  readonly handledToday: number;
  readonly transfersToday: TransferFigures;
  readonly agentsLoggedIn: number;
  readonly agents: readonly AgentLive[];
}

export interface PeriodQuery {
  /** Closed at or after (ms since the epoch). */
  readonly from: number;
  /** Closed before (ms since the epoch). */
  readonly to: number;
  /** Only conversations whose group at the close is this one. */
  readonly group?: string | undefined;
  /** Only conversations this agent handled (was assigned at some moment). */
  readonly agent?: string | undefined;
  /** Only conversations closed with this tag. */
  readonly tag?: string | undefined;
  /** 1-based page of the list (default 1). */
  readonly page?: number | undefined;
  /** Conversations per page (default 50). */
  readonly pageSize?: number | undefined;
}

export interface ClosedConversation {
  readonly conversation: string;
  /** The group at the close; null when it never left the bot. */
  readonly group: string | null;
  /** The last agent it was assigned to (who closed it, or held it last). */
  readonly agent: string | null;
  /** Every agent it was assigned to, in order of first assignment. */
  readonly agents: readonly string[];
  readonly closedAt: number;
  readonly closedBy: 'agent' | 'visitor';
  readonly tags: readonly string[];
  /** First entry into a waiting list to the first assignment; null when never assigned (or unknown). */
  readonly waitingMs: number | null;
  /** As the engine computed it at the close: first entry into a waiting list to the close. */
  readonly resolutionMs: number;
  /** As the engine computed it at the close: time assigned to agents, snoozes excluded. */
  readonly handlingMs: number;
  /** First entry into a waiting list to the first agent message; null when no agent wrote. */
  readonly firstResponseMs: number | null;
  readonly transfers: number;
  readonly csat: number | null;
  readonly nps: number | null;
}

export interface PeriodReport {
  readonly from: number;
  readonly to: number;
  readonly group: string | null;
  readonly agent: string | null;
  readonly tag: string | null;
  /** Conversations closed in [from, to) that pass the filters. */
  readonly closed: number;
  /** Of those, the ones assigned to an agent at least once: the population of the times below. */
  readonly handled: number;
  readonly medianWaitingMs: number | null;
  readonly medianResolutionMs: number | null;
  /** With an agent filter, the agent's own share of each conversation's handling time. */
  readonly averageHandlingMs: number | null;
  readonly medianFirstResponseMs: number | null;
  readonly csat: { readonly average: number | null; readonly answers: number };
  readonly nps: {
    readonly score: number | null;
    readonly answers: number;
    readonly promoters: number;
    readonly passives: number;
    readonly detractors: number;
  };
  /** With an agent filter, the transfers that agent made. */
  readonly transfers: TransferFigures;
  readonly conversations: {
    readonly page: number;
    readonly pageSize: number;
    readonly pages: number;
    /** Oldest close first (then by conversation id). */
    readonly items: readonly ClosedConversation[];
  };
}

/** What the projection holds, for logs and gauges. */
export interface ProjectionStats {
  readonly lastSeq: number;
  /** Events that changed the projection (duplicates and events it does not use excluded). */
  readonly applied: number;
  readonly duplicates: number;
  readonly open: number;
  readonly closed: number;
}

/** Counts since the first event read, per group: what Prometheus counters are made of. */
export interface GroupTotals {
  readonly group: string;
  readonly closed: number;
  readonly transfers: number;
}

// ─── Local days ──────────────────────────────────────────────────────────────────────────────

const dayFormats = new Map<string, Intl.DateTimeFormat>();

function dayFormat(timeZone: string): Intl.DateTimeFormat {
  let f = dayFormats.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
    });
    dayFormats.set(timeZone, f);
  }
  return f;
}

/** The local date of `at` in `timeZone` as yyyymmdd, a number that grows with the date. */
function dayKey(at: number, timeZone: string): number {
  let y = 0;
  let m = 0;
  let d = 0;
  for (const p of dayFormat(timeZone).formatToParts(at)) {
    if (p.type === 'year') y = Number(p.value);
    else if (p.type === 'month') m = Number(p.value);
    else if (p.type === 'day') d = Number(p.value);
  }
  return y * 10_000 + m * 100 + d;
}

/** Throws a RangeError unless `timeZone` is an IANA time zone this runtime knows. */
export function checkTimeZone(timeZone: string): string {
  dayFormat(timeZone);
  return timeZone;
}

/**
 * The first instant of the local day that contains `at` in `timeZone`: local midnight, or the
 * first moment after it where a DST change skips midnight.
 */
export function startOfDay(at: number, timeZone: string): number {
  const today = dayKey(at, timeZone);
  // A local day is never longer than 26 hours: three days back is surely another day.
  let lo = at - 3 * DAY_MS;
  let hi = at;
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (dayKey(mid, timeZone) >= today) hi = mid;
    else lo = mid;
  }
  return hi;
}

/**
 * The first instant of the local date `yyyy-mm-dd` in `timeZone`; NaN for a date that does not
 * exist (2026-02-30).
 */
export function startOfLocalDate(date: string, timeZone: string): number {
  const [y, m, d] = date.split('-').map(Number) as [number, number, number];
  const wanted = y * 10_000 + m * 100 + d;
  if (new Date(Date.UTC(y, m - 1, d)).getUTCDate() !== d) return Number.NaN;
  // Some hour of that UTC date falls on that local date, whatever the offset (−12 to +14).
  for (const hour of [12, 0, 23, 6, 18]) {
    const at = Date.UTC(y, m - 1, d, hour);
    if (dayKey(at, timeZone) === wanted) return startOfDay(at, timeZone);
  }
  return Number.NaN;
}

// ─── Small helpers ───────────────────────────────────────────────────────────────────────────

/** Interns names (groups, agents, tags) as small integers, so rows hold numbers. */
class Names {
  readonly #ids = new Map<string, number>();
  readonly names: string[] = [];

  of(name: string): number {
    let id = this.#ids.get(name);
    if (id === undefined) {
      id = this.names.length;
      this.names.push(name);
      this.#ids.set(name, id);
    }
    return id;
  }

  find(name: string): number | undefined {
    return this.#ids.get(name);
  }
}

type Numbers = Float64Array | Int32Array | Uint32Array | Uint16Array | Uint8Array | Int8Array;

function grown<T extends Numbers>(a: T, length: number): T {
  const b = new (a.constructor as new (n: number) => T)(length);
  b.set(a);
  return b;
}

function median(values: Float64Array | number[]): number | null {
  const n = values.length;
  if (n === 0) return null;
  const sorted = Float64Array.from(values).sort();
  const mid = n >> 1;
  return Math.round(n % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2);
}

const round2 = (x: number) => Math.round(x * 100) / 100;

const percentage = (part: number, whole: number) =>
  whole === 0 ? null : round2((part / whole) * 100);

const known = (x: number) => !Number.isNaN(x);

// ─── Rows of closed conversations: one column per fact, so 100,000 of them stay small ────────

class ClosedRows {
  size = 0;
  ids: string[] = [];
  closedAt = new Float64Array(1024);
  group = new Int32Array(1024);
  agent = new Int32Array(1024);
  byVisitor = new Uint8Array(1024);
  waiting = new Float64Array(1024);
  resolution = new Float64Array(1024);
  handling = new Float64Array(1024);
  firstResponse = new Float64Array(1024);
  transfers = new Uint16Array(1024);
  csat = new Int8Array(1024);
  nps = new Int8Array(1024);
  tagStart = new Uint32Array(1024);
  tagCount = new Uint16Array(1024);
  partStart = new Uint32Array(1024);
  partCount = new Uint16Array(1024);
  /** Tags of every row, back to back. */
  tagPool = new Int32Array(1024);
  tagPoolSize = 0;
  /** Participants of every row (agent, their handling time, transfers they made), back to back. */
  partAgent = new Int32Array(1024);
  partHandling = new Float64Array(1024);
  partTransfers = new Uint16Array(1024);
  partPoolSize = 0;

  add(row: {
    id: string;
    closedAt: number;
    group: number;
    agent: number;
    byVisitor: boolean;
    waiting: number;
    resolution: number;
    handling: number;
    firstResponse: number;
    transfers: number;
    csat: number;
    nps: number;
    tags: readonly number[];
    participants: readonly Participant[];
  }): number {
    const i = this.size;
    if (i === this.closedAt.length) this.#grow(i * 2);
    this.ids.push(row.id);
    this.closedAt[i] = row.closedAt;
    this.group[i] = row.group;
    this.agent[i] = row.agent;
    this.byVisitor[i] = row.byVisitor ? 1 : 0;
    this.waiting[i] = row.waiting;
    this.resolution[i] = row.resolution;
    this.handling[i] = row.handling;
    this.firstResponse[i] = row.firstResponse;
    this.transfers[i] = Math.min(row.transfers, 0xffff);
    this.csat[i] = row.csat;
    this.nps[i] = row.nps;
    if (this.tagPoolSize + row.tags.length > this.tagPool.length) {
      this.tagPool = grown(this.tagPool, (this.tagPoolSize + row.tags.length) * 2);
    }
    this.tagStart[i] = this.tagPoolSize;
    this.tagCount[i] = row.tags.length;
    for (const t of row.tags) this.tagPool[this.tagPoolSize++] = t;
    const parts = row.participants;
    if (this.partPoolSize + parts.length > this.partAgent.length) {
      const n = (this.partPoolSize + parts.length) * 2;
      this.partAgent = grown(this.partAgent, n);
      this.partHandling = grown(this.partHandling, n);
      this.partTransfers = grown(this.partTransfers, n);
    }
    this.partStart[i] = this.partPoolSize;
    this.partCount[i] = parts.length;
    for (const p of parts) {
      const k = this.partPoolSize++;
      this.partAgent[k] = p.agent;
      this.partHandling[k] = p.handlingMs;
      this.partTransfers[k] = Math.min(p.transfers, 0xffff);
    }
    this.size++;
    return i;
  }

  /** Where `agent` is among the row's participants, or -1. */
  participant(i: number, agent: number): number {
    const start = this.partStart[i]!;
    const end = start + this.partCount[i]!;
    for (let k = start; k < end; k++) if (this.partAgent[k] === agent) return k;
    return -1;
  }

  hasTag(i: number, tag: number): boolean {
    const start = this.tagStart[i]!;
    const end = start + this.tagCount[i]!;
    for (let k = start; k < end; k++) if (this.tagPool[k] === tag) return true;
    return false;
  }

  #grow(n: number): void {
    this.closedAt = grown(this.closedAt, n);
    this.group = grown(this.group, n);
    this.agent = grown(this.agent, n);
    this.byVisitor = grown(this.byVisitor, n);
    this.waiting = grown(this.waiting, n);
    this.resolution = grown(this.resolution, n);
    this.handling = grown(this.handling, n);
    this.firstResponse = grown(this.firstResponse, n);
    this.transfers = grown(this.transfers, n);
    this.csat = grown(this.csat, n);
    this.nps = grown(this.nps, n);
    this.tagStart = grown(this.tagStart, n);
    this.tagCount = grown(this.tagCount, n);
    this.partStart = grown(this.partStart, n);
    this.partCount = grown(this.partCount, n);
  }
}

/**
 * Finished assignments (a conversation on an agent's panel from its assignment to its snooze,
 * transfer, return or close) and transfers, kept while they may still count for "today".
 */
class ActivityLog {
  // Assignments.
  size = 0;
  conv = new Int32Array(256);
  agent = new Int32Array(256);
  group = new Int32Array(256);
  start = new Float64Array(256);
  end = new Float64Array(256);
  respondedAt = new Float64Array(256);
  // Transfers.
  transfers = 0;
  tConv = new Int32Array(256);
  tAgent = new Int32Array(256);
  tGroup = new Int32Array(256);
  tAt = new Float64Array(256);

  addAssignment(a: OpenAssignment, conv: number, end: number, horizon: number): void {
    if (this.size === this.conv.length) {
      this.#compactAssignments(horizon);
      if (this.size * 2 > this.conv.length) {
        const n = this.conv.length * 2;
        this.conv = grown(this.conv, n);
        this.agent = grown(this.agent, n);
        this.group = grown(this.group, n);
        this.start = grown(this.start, n);
        this.end = grown(this.end, n);
        this.respondedAt = grown(this.respondedAt, n);
      }
    }
    const i = this.size++;
    this.conv[i] = conv;
    this.agent[i] = a.agent;
    this.group[i] = a.group;
    this.start[i] = a.start;
    this.end[i] = end;
    this.respondedAt[i] = a.respondedAt;
  }

  addTransfer(conv: number, agent: number, group: number, at: number, horizon: number): void {
    if (this.transfers === this.tConv.length) {
      this.#compactTransfers(horizon);
      if (this.transfers * 2 > this.tConv.length) {
        const n = this.tConv.length * 2;
        this.tConv = grown(this.tConv, n);
        this.tAgent = grown(this.tAgent, n);
        this.tGroup = grown(this.tGroup, n);
        this.tAt = grown(this.tAt, n);
      }
    }
    const i = this.transfers++;
    this.tConv[i] = conv;
    this.tAgent[i] = agent;
    this.tGroup[i] = group;
    this.tAt[i] = at;
  }

  /** Drops assignments whose end and first response are before `horizon`: no "today" needs them. */
  #compactAssignments(horizon: number): void {
    let j = 0;
    for (let i = 0; i < this.size; i++) {
      const r = this.respondedAt[i]!;
      if (this.end[i]! < horizon && (Number.isNaN(r) || r < horizon)) continue;
      this.conv[j] = this.conv[i]!;
      this.agent[j] = this.agent[i]!;
      this.group[j] = this.group[i]!;
      this.start[j] = this.start[i]!;
      this.end[j] = this.end[i]!;
      this.respondedAt[j] = r;
      j++;
    }
    this.size = j;
  }

  #compactTransfers(horizon: number): void {
    let j = 0;
    for (let i = 0; i < this.transfers; i++) {
      if (this.tAt[i]! < horizon) continue;
      this.tConv[j] = this.tConv[i]!;
      this.tAgent[j] = this.tAgent[i]!;
      this.tGroup[j] = this.tGroup[i]!;
      this.tAt[j] = this.tAt[i]!;
      j++;
    }
    this.transfers = j;
  }
}

// ─── Open conversations ──────────────────────────────────────────────────────────────────────

interface Participant {
  readonly agent: number;
  handlingMs: number;
  transfers: number;
}

/** The assignment in progress: the conversation is on `agent`'s panel since `start`. */
interface OpenAssignment {
  readonly agent: number;
  readonly group: number;
  readonly start: number;
  /** The agent's first message since `start`; NaN until they write. */
  respondedAt: number;
}

type OpenState = 'bot' | 'parked' | 'waiting' | 'assigned' | 'snoozed' | 'moving';

interface OpenConversation {
  /** A number for this conversation, to count distinct conversations cheaply. */
  readonly key: number;
  /** Ids of the events applied, to apply each once. Dropped at the close. */
  readonly events: Set<string>;
  state: OpenState;
  /** Its routing group (-1 while with the bot); for a parked one, the group that was full. */
  group: number;
  /** When it entered the waiting list this time (or woke): for the longest wait. */
  readyAt: number;
  /** First entry into a waiting list; NaN when not seen (the stream began later). */
  escalatedAt: number;
  /** The first assignment's wait, when the first entry was seen. */
  firstWaitMs: number;
  firstReplyAt: number;
  assignments: number;
  assignment: OpenAssignment | null;
  lastAgent: number;
  transfers: number;
  readonly participants: Participant[];
  csat: number;
  nps: number;
}

/** How many presence event ids are kept per agent to recognise one stored twice. */
const REMEMBERED_AGENT_EVENTS = 256;

/** Events that say where a conversation is: enough to start following one met midway. */
const SETS_PLACE = new Set<string>([
  'ConversationQueued',
  'ConversationParked',
  'ConversationAssigned',
  'ConversationSnoozed',
  'ConversationClosed',
]);

/**
 * The projection of the events stream. Feed it every event in stream order with `apply`; ask
 * `live()` and `period()` at any time. Applying an event again (same stream sequence, or the same
 * event id stored twice) changes nothing.
 */
export class Projection {
  readonly #groups = new Names();
  readonly #agents = new Names();
  readonly #tags = new Names();
  readonly #open = new Map<string, OpenConversation>();
  /** Closed conversation id → its row. */
  readonly #closedIndex = new Map<string, number>();
  readonly #closed = new ClosedRows();
  readonly #log = new ActivityLog();
  readonly #presence = new Map<number, Presence>();
  /** Ids of each agent's latest presence events: republished ones are recent ones. */
  readonly #agentEvents = new Map<number, Set<string>>();
  readonly #closedTotal: number[] = [];
  readonly #transfersTotal: number[] = [];
  #nextKey = 0;
  #lastSeq = 0;
  #latestAt = -Infinity;
  #applied = 0;
  #duplicates = 0;

  /** The stream sequence of the last event given to `apply`. */
  get lastSeq(): number {
    return this.#lastSeq;
  }

  stats(): ProjectionStats {
    return {
      lastSeq: this.#lastSeq,
      applied: this.#applied,
      duplicates: this.#duplicates,
      open: this.#open.size,
      closed: this.#closed.size,
    };
  }

  /**
   * Applies one event, `id` being its Nats-Msg-Id and `seq` its stream sequence. An event at or
   * below the last sequence applied, or whose id was applied already, changes nothing. Returns
   * whether it changed the projection.
   */
  apply(event: DomainEvent, id: string, seq: number): boolean {
    if (seq <= this.#lastSeq) {
      this.#duplicates++;
      return false;
    }
    this.#lastSeq = seq;
    if (event.at > this.#latestAt) this.#latestAt = event.at;
    if (event.type === 'CommandRejected') return false;
    if (event.type === 'AgentPresenceChanged') {
      const agent = this.#agents.of(event.agent);
      // An old presence stored again later must not win over a newer one.
      let ids = this.#agentEvents.get(agent);
      if (!ids) {
        ids = new Set();
        this.#agentEvents.set(agent, ids);
      }
      if (ids.has(id)) {
        this.#duplicates++;
        return false;
      }
      ids.add(id);
      if (ids.size > REMEMBERED_AGENT_EVENTS) ids.delete(ids.values().next().value!);
      if (this.#presence.get(agent) === event.presence) return false;
      this.#presence.set(agent, event.presence);
      this.#applied++;
      return true;
    }
    const changed = this.#applyToConversation(event, id);
    if (changed) this.#applied++;
    return changed;
  }

  #applyToConversation(e: ConversationEvent, id: string): boolean {
    const row = this.#closedIndex.get(e.conversation);
    if (row !== undefined) {
      // After the close only the survey changes anything, and it is answered once (the engine
      // refuses a second answer): a SurveyAnswered for a row that has one is a duplicate.
      const rows = this.#closed;
      if (e.type !== 'SurveyAnswered' || rows.csat[row] !== -1 || rows.nps[row] !== -1) {
        return false;
      }
      rows.csat[row] = e.csat ?? -1;
      rows.nps[row] = e.nps ?? -1;
      return true;
    }
    let c = this.#open.get(e.conversation);
    if (c?.events.has(id)) {
      this.#duplicates++;
      return false;
    }
    if (!c) {
      if (e.type !== 'ConversationStarted' && !SETS_PLACE.has(e.type)) return false;
      c = {
        key: this.#nextKey++,
        events: new Set(),
        state: 'bot',
        group: -1,
        readyAt: e.at,
        escalatedAt: Number.NaN,
        firstWaitMs: Number.NaN,
        firstReplyAt: Number.NaN,
        assignments: 0,
        assignment: null,
        lastAgent: -1,
        transfers: 0,
        participants: [],
        csat: -1,
        nps: -1,
      };
      this.#open.set(e.conversation, c);
    }
    c.events.add(id);
    switch (e.type) {
      case 'ConversationStarted':
        return true;
      case 'ConversationQueued':
        this.#endAssignment(c, e.at);
        c.state = 'waiting';
        c.group = this.#groups.of(e.group);
        c.readyAt = e.at;
        // Leaving the bot (escalated, or overflowed to another group) is always the first entry.
        if (
          (e.reason === 'escalated' || e.reason === 'overflowed') &&
          Number.isNaN(c.escalatedAt)
        ) {
          c.escalatedAt = e.at;
        }
        return true;
      case 'ConversationParked':
        c.state = 'parked';
        c.group = this.#groups.of(e.group);
        return true;
      case 'ConversationAssigned': {
        this.#endAssignment(c, e.at);
        if (c.assignments === 0 && known(c.escalatedAt)) c.firstWaitMs = e.waitedMs;
        c.assignments++;
        const agent = this.#agents.of(e.agent);
        c.state = 'assigned';
        c.group = this.#groups.of(e.group);
        c.lastAgent = agent;
        c.assignment = { agent, group: c.group, start: e.at, respondedAt: Number.NaN };
        return true;
      }
      case 'ConversationSnoozed':
        this.#endAssignment(c, e.at);
        c.state = 'snoozed';
        c.group = this.#groups.of(e.group);
        return true;
      case 'ConversationTransferred': {
        const from = this.#agents.of(e.from);
        const group = c.group >= 0 ? c.group : e.group === null ? -1 : this.#groups.of(e.group);
        c.transfers++;
        this.#participant(c, from).transfers++;
        this.#log.addTransfer(c.key, from, group, e.at, this.#horizon());
        if (group >= 0) this.#transfersTotal[group] = (this.#transfersTotal[group] ?? 0) + 1;
        this.#endAssignment(c, e.at);
        // The ConversationAssigned or ConversationQueued of the same command says where it went.
        c.state = 'moving';
        return true;
      }
      case 'ConversationReturned':
        this.#endAssignment(c, e.at);
        c.state = 'moving';
        return true;
      case 'MessageAdded': {
        const author = e.message.author;
        if (author.kind !== 'agent') return false;
        if (Number.isNaN(c.firstReplyAt)) c.firstReplyAt = e.at;
        const a = c.assignment;
        if (a && Number.isNaN(a.respondedAt) && this.#agents.find(author.id) === a.agent) {
          a.respondedAt = e.at;
        }
        return true;
      }
      case 'SurveyAnswered':
        c.csat = e.csat ?? -1;
        c.nps = e.nps ?? -1;
        return true;
      case 'ConversationClosed':
        this.#close(c, e);
        return true;
      default:
        return false;
    }
  }

  #participant(c: OpenConversation, agent: number): Participant {
    let p = c.participants.find((x) => x.agent === agent);
    if (!p) {
      p = { agent, handlingMs: 0, transfers: 0 };
      c.participants.push(p);
    }
    return p;
  }

  /** Assignments that ended two days before the latest event can no longer count for "today". */
  #horizon(): number {
    return this.#latestAt - 2 * DAY_MS;
  }

  #endAssignment(c: OpenConversation, at: number): void {
    const a = c.assignment;
    if (!a) return;
    this.#participant(c, a.agent).handlingMs += at - a.start;
    this.#log.addAssignment(a, c.key, at, this.#horizon());
    c.assignment = null;
  }

  #close(c: OpenConversation, e: Extract<ConversationEvent, { type: 'ConversationClosed' }>): void {
    this.#endAssignment(c, e.at);
    const group = e.group === null ? -1 : this.#groups.of(e.group);
    const agent = e.agent === null ? c.lastAgent : this.#agents.of(e.agent);
    const firstResponse =
      known(c.escalatedAt) && known(c.firstReplyAt) ? c.firstReplyAt - c.escalatedAt : Number.NaN;
    const row = this.#closed.add({
      id: e.conversation,
      closedAt: e.at,
      group,
      agent,
      byVisitor: e.by === 'visitor',
      waiting: c.firstWaitMs,
      resolution: e.resolutionMs,
      handling: e.handlingMs,
      firstResponse,
      transfers: c.transfers,
      csat: c.csat,
      nps: c.nps,
      tags: [...new Set(e.tags)].map((t) => this.#tags.of(t)),
      participants: c.participants,
    });
    if (group >= 0) this.#closedTotal[group] = (this.#closedTotal[group] ?? 0) + 1;
    this.#open.delete(e.conversation);
    this.#closedIndex.set(e.conversation, row);
  }

  // ─── Live figures ──────────────────────────────────────────────────────────────────────────

  /**
   * The production report at `now`: per routing group and per agent, with "today" the local day
   * of `now` in `timeZone`. `settings` gives the groups' names and caps and the agents' slots.
   */
  live(now: number, settings: Settings, timeZone: string): LiveFigures {
    const since = startOfDay(now, timeZone);
    const groups = new Map<number, GroupTally>();
    const agents = new Map<number, AgentTally>();
    const group = (g: number) => {
      let t = groups.get(g);
      if (!t) {
        t = newGroupTally();
        groups.set(g, t);
      }
      return t;
    };
    const agent = (a: number) => {
      let t = agents.get(a);
      if (!t) {
        t = newAgentTally();
        agents.set(a, t);
      }
      return t;
    };
    const handledToday = new Set<number>();
    const transferredToday = new Set<number>();
    let withBot = 0;
    let transfersToday = 0;

    const assignment = (
      conv: number,
      a: number,
      g: number,
      start: number,
      end: number,
      respondedAt: number,
    ) => {
      if (start > now || end < since) return;
      handledToday.add(conv);
      agent(a).handled.add(conv);
      if (g >= 0) group(g).handled.add(conv);
      if (respondedAt >= since && respondedAt <= now) agent(a).responses.push(respondedAt - start);
    };

    for (const c of this.#open.values()) {
      switch (c.state) {
        case 'bot':
          withBot++;
          break;
        case 'parked':
          withBot++;
          if (c.group >= 0) group(c.group).parked++;
          break;
        case 'waiting': {
          const t = group(c.group);
          t.waiting++;
          if (c.readyAt < t.oldestReadyAt) t.oldestReadyAt = c.readyAt;
          break;
        }
        case 'snoozed':
          group(c.group).snoozed++;
          break;
        case 'assigned':
          group(c.group).assigned++;
          break;
      }
      const a = c.assignment;
      if (a) {
        agent(a.agent).load++;
        assignment(c.key, a.agent, a.group, a.start, Number.POSITIVE_INFINITY, a.respondedAt);
      }
    }

    const log = this.#log;
    for (let i = 0; i < log.size; i++) {
      assignment(
        log.conv[i]!,
        log.agent[i]!,
        log.group[i]!,
        log.start[i]!,
        log.end[i]!,
        log.respondedAt[i]!,
      );
    }
    for (let i = 0; i < log.transfers; i++) {
      const at = log.tAt[i]!;
      if (at < since || at > now) continue;
      const conv = log.tConv[i]!;
      transfersToday++;
      transferredToday.add(conv);
      const a = agent(log.tAgent[i]!);
      a.transfers++;
      a.transferred.add(conv);
      const g = log.tGroup[i]!;
      if (g >= 0) {
        group(g).transfers++;
        group(g).transferred.add(conv);
      }
    }

    let closedToday = 0;
    const rows = this.#closed;
    for (let i = 0; i < rows.size; i++) {
      const at = rows.closedAt[i]!;
      if (at < since || at > now) continue;
      closedToday++;
      const g = rows.group[i]!;
      if (g >= 0) group(g).closedToday++;
    }

    // The configured groups and agents first, in configuration order; then any other seen.
    const groupOrder: { id: number; name: string; cap: number | null }[] = [];
    const listed = new Set<number>();
    for (const g of settings.groups) {
      const id = this.#groups.of(g.id);
      listed.add(id);
      groupOrder.push({ id, name: g.name, cap: g.cap });
    }
    for (const id of [...groups.keys()].sort((a, b) => a - b)) {
      if (!listed.has(id)) groupOrder.push({ id, name: this.#groups.names[id]!, cap: null });
    }
    const groupFigures: GroupLive[] = groupOrder.map(({ id, name, cap }) => {
      const t = groups.get(id) ?? newGroupTally();
      return {
        group: this.#groups.names[id]!,
        name,
        cap,
        waiting: t.waiting,
        snoozed: t.snoozed,
        seatsTaken: t.waiting + t.snoozed,
        handled: t.assigned,
        parked: t.parked,
        longestWaitMs: t.waiting === 0 ? 0 : Math.max(0, now - t.oldestReadyAt),
        closedToday: t.closedToday,
        handledToday: t.handled.size,
        transfersToday: {
          count: t.transfers,
          transferred: t.transferred.size,
          percentage: percentage(t.transferred.size, t.handled.size),
        },
      };
    });

    const agentOrder: { id: number; name: string; slots: number | null }[] = [];
    const configured = new Set<number>();
    for (const a of settings.agents) {
      const id = this.#agents.of(a.id);
      configured.add(id);
      agentOrder.push({ id, name: a.name, slots: a.slots });
    }
    const seen = new Set([...agents.keys(), ...this.#presence.keys()]);
    for (const id of [...seen].sort((a, b) => a - b)) {
      if (!configured.has(id)) agentOrder.push({ id, name: this.#agents.names[id]!, slots: null });
    }
    const agentFigures: AgentLive[] = agentOrder.map(({ id, name, slots }) => {
      const t = agents.get(id) ?? newAgentTally();
      const presence = this.#presence.get(id) ?? 'offline';
      return {
        agent: this.#agents.names[id]!,
        name,
        presence,
        loggedIn: presence !== 'offline',
        load: t.load,
        slots,
        handledToday: t.handled.size,
        firstResponseMedianMs: median(t.responses),
        firstResponsesToday: t.responses.length,
        transfersToday: {
          count: t.transfers,
          transferred: t.transferred.size,
          percentage: percentage(t.transferred.size, t.handled.size),
        },
      };
    });

    return {
      at: now,
      since,
      timeZone,
      groups: groupFigures,
      withBot,
      closedToday,
      handledToday: handledToday.size,
      transfersToday: {
        count: transfersToday,
        transferred: transferredToday.size,
        percentage: percentage(transferredToday.size, handledToday.size),
      },
      agentsLoggedIn: agentFigures.filter((a) => a.loggedIn).length,
      agents: agentFigures,
    };
  }

  /** Conversations closed and transfers made per group since the first event read. */
  totals(): GroupTotals[] {
    const out: GroupTotals[] = [];
    for (let g = 0; g < this.#groups.names.length; g++) {
      out.push({
        group: this.#groups.names[g]!,
        closed: this.#closedTotal[g] ?? 0,
        transfers: this.#transfersTotal[g] ?? 0,
      });
    }
    return out;
  }

  // ─── Period reports ────────────────────────────────────────────────────────────────────────

  /** The conversations closed in [from, to) that pass the filters, and their figures. */
  period(query: PeriodQuery): PeriodReport {
    const rows = this.#closed;
    const none = -2; // a name never seen: nothing matches
    const group = query.group === undefined ? -1 : (this.#groups.find(query.group) ?? none);
    const agent = query.agent === undefined ? -1 : (this.#agents.find(query.agent) ?? none);
    const tag = query.tag === undefined ? -1 : (this.#tags.find(query.tag) ?? none);
    const page = Math.max(1, Math.floor(query.page ?? 1));
    const pageSize = Math.max(1, Math.floor(query.pageSize ?? 50));

    const matched: number[] = [];
    /** Per matched row: where the filtered agent is among its participants. */
    const part: number[] = [];
    if (group !== none && agent !== none && tag !== none) {
      for (let i = 0; i < rows.size; i++) {
        const at = rows.closedAt[i]!;
        if (at < query.from || at >= query.to) continue;
        if (group >= 0 && rows.group[i] !== group) continue;
        if (tag >= 0 && !rows.hasTag(i, tag)) continue;
        let k = -1;
        if (agent >= 0) {
          k = rows.participant(i, agent);
          if (k < 0) continue;
        }
        matched.push(i);
        part.push(k);
      }
    }

    const waiting: number[] = [];
    const resolution: number[] = [];
    const firstResponse: number[] = [];
    let handled = 0;
    let handlingSum = 0;
    let csatSum = 0;
    let csatAnswers = 0;
    let promoters = 0;
    let passives = 0;
    let detractors = 0;
    let transfers = 0;
    let transferred = 0;
    for (let j = 0; j < matched.length; j++) {
      const i = matched[j]!;
      const k = part[j]!;
      const wasHandled = rows.partCount[i]! > 0;
      if (wasHandled) {
        handled++;
        if (known(rows.waiting[i]!)) waiting.push(rows.waiting[i]!);
        resolution.push(rows.resolution[i]!);
        handlingSum += k >= 0 ? rows.partHandling[k]! : rows.handling[i]!;
      }
      if (known(rows.firstResponse[i]!)) firstResponse.push(rows.firstResponse[i]!);
      const csat = rows.csat[i]!;
      if (csat >= 1) {
        csatSum += csat;
        csatAnswers++;
      }
      const nps = rows.nps[i]!;
      if (nps >= 9) promoters++;
      else if (nps >= 7) passives++;
      else if (nps >= 0) detractors++;
      const made = k >= 0 ? rows.partTransfers[k]! : rows.transfers[i]!;
      transfers += made;
      if (made > 0) transferred++;
    }
    const npsAnswers = promoters + passives + detractors;

    const ordered = [...matched].sort(
      (a, b) =>
        rows.closedAt[a]! - rows.closedAt[b]! ||
        (rows.ids[a]! < rows.ids[b]! ? -1 : rows.ids[a]! > rows.ids[b]! ? 1 : 0),
    );
    const items = ordered.slice((page - 1) * pageSize, page * pageSize).map((i) => this.#item(i));

    return {
      from: query.from,
      to: query.to,
      group: query.group ?? null,
      agent: query.agent ?? null,
      tag: query.tag ?? null,
      closed: matched.length,
      handled,
      medianWaitingMs: median(waiting),
      medianResolutionMs: median(resolution),
      averageHandlingMs: handled === 0 ? null : Math.round(handlingSum / handled),
      medianFirstResponseMs: median(firstResponse),
      csat: {
        average: csatAnswers === 0 ? null : round2(csatSum / csatAnswers),
        answers: csatAnswers,
      },
      nps: {
        score: npsAnswers === 0 ? null : round2(((promoters - detractors) / npsAnswers) * 100),
        answers: npsAnswers,
        promoters,
        passives,
        detractors,
      },
      transfers: { count: transfers, transferred, percentage: percentage(transferred, handled) },
      conversations: {
        page,
        pageSize,
        pages: Math.ceil(matched.length / pageSize),
        items,
      },
    };
  }

  #item(i: number): ClosedConversation {
    const rows = this.#closed;
    const name = (names: Names, id: number) => (id >= 0 ? names.names[id]! : null);
    const tags: string[] = [];
    for (let k = rows.tagStart[i]!; k < rows.tagStart[i]! + rows.tagCount[i]!; k++) {
      tags.push(this.#tags.names[rows.tagPool[k]!]!);
    }
    const agents: string[] = [];
    for (let k = rows.partStart[i]!; k < rows.partStart[i]! + rows.partCount[i]!; k++) {
      agents.push(this.#agents.names[rows.partAgent[k]!]!);
    }
    const orNull = (x: number) => (known(x) ? x : null);
    const csat = rows.csat[i]!;
    const nps = rows.nps[i]!;
    return {
      conversation: rows.ids[i]!,
      group: name(this.#groups, rows.group[i]!),
      agent: name(this.#agents, rows.agent[i]!),
      agents,
      closedAt: rows.closedAt[i]!,
      closedBy: rows.byVisitor[i] === 1 ? 'visitor' : 'agent',
      tags,
      waitingMs: orNull(rows.waiting[i]!),
      resolutionMs: rows.resolution[i]!,
      handlingMs: rows.handling[i]!,
      firstResponseMs: orNull(rows.firstResponse[i]!),
      transfers: rows.transfers[i]!,
      csat: csat >= 1 ? csat : null,
      nps: nps >= 0 ? nps : null,
    };
  }
}

interface GroupTally {
  waiting: number;
  snoozed: number;
  assigned: number;
  parked: number;
  oldestReadyAt: number;
  closedToday: number;
  transfers: number;
  readonly handled: Set<number>;
  readonly transferred: Set<number>;
}

const newGroupTally = (): GroupTally => ({
  waiting: 0,
  snoozed: 0,
  assigned: 0,
  parked: 0,
  oldestReadyAt: Number.POSITIVE_INFINITY,
  closedToday: 0,
  transfers: 0,
  handled: new Set(),
  transferred: new Set(),
});

interface AgentTally {
  load: number;
  transfers: number;
  readonly handled: Set<number>;
  readonly transferred: Set<number>;
  readonly responses: number[];
}

const newAgentTally = (): AgentTally => ({
  load: 0,
  transfers: 0,
  handled: new Set(),
  transferred: new Set(),
  responses: [],
});
