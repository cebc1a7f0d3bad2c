// The production figures of routing groups and agents as a supervisor reads them now: computed
// from the live inspections of the groups (asked from the workers that host them), plus what the
// conversations bucket and the events stream tell cheaply. `parley top` shows them; reports can
// reuse them.
import { DeliverPolicy, jetstream } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Settings } from '../actors/settings.ts';
import { isParleyError } from './errors.ts';
import { type AgentInspection, type GroupInspection, inspectGroup } from './inspect.ts';
import { BUCKETS, STREAMS, SUBJECT_ROOTS, validateGroupId } from './nats/streams.ts';
import { startOfDay } from './reports/projection.ts';
import { reportTimeZone } from './reports/reporter.ts';

/**
 * One routing group's figures. Counts that need the group's live inspection are null when no
 * live worker hosts the group (`worker` null, `problem` says why).
 */
export interface GroupFigures {
  readonly group: string;
  readonly name: string;
  /** The worker that answered the inspection; null when none did. */
  readonly worker: string | null;
  /** Why the group has no live figures (no live worker hosts it, the inspection failed). */
  readonly problem: string | null;
  /** Conversations in the waiting list now, in hand-out order (snoozed ones not counted). */
  readonly waiting: number | null;
  /** The waiting list's cap: the inspection's, else the live configuration's. */
  readonly cap: number;
  /**
   * Seats of the cap taken now: conversations waiting, snoozed (a snoozed conversation keeps its
   * seat), or on their way in from another group. A new conversation is parked when it reaches
   * the cap.
   */
  readonly seatsTaken: number | null;
  /** Snoozed conversations of the group now. */
  readonly snoozed: number | null;
  /** Time until the soonest snooze deadline, in ms (negative: due, the wake not applied yet). */
  readonly nextWakeInMs: number | null;
  /**
   * The longest wait among the conversations in the waiting list now: the worker's clock minus
   * the time the conversation became ready to hand out (its entry into the list, or its wake),
   * in ms; 0 when the list is empty.
   */
  readonly longestWaitMs: number | null;
  /**
   * Conversations being handled: the distinct conversations assigned to an agent now (in the
   * agents' lists of held conversations, as the inspections of the hosted groups report them;
   * a snoozed conversation has left its agent's list) whose routing group in
   * parley-conversations is this group.
   */
  readonly handled: number | null;
  /**
   * Conversations closed today: ConversationClosed events stored in PARLEY_EVENTS under
   * `parley.evt.<group>.*.ConversationClosed` since `ProductionFigures.since` (local midnight),
   * so closed while they belonged to this group.
   */
  readonly closedToday: number | null;
  /** Conversations the group hosts that are not closed (with the bot, waiting, assigned, snoozed). */
  readonly open: number | null;
}

/** An agent as the inspections of their routing groups see them now. */
export interface AgentFigures extends AgentInspection {
  /** The agent's routing groups in the live configuration. */
  readonly groups: readonly string[];
}

export interface ProductionFigures {
  /** When the figures were computed (this process's clock, ms since the epoch). */
  readonly at: number;
  /** Start of the day `closedToday` counts from: local midnight (ms since the epoch). */
  readonly since: number;
  readonly groups: readonly GroupFigures[];
  /**
   * Every configured agent of a hosted group, as the inspections report them (an agent whose
   * groups are all unhosted is missing), sorted by id.
   */
  readonly agents: readonly AgentFigures[];
}

export interface FiguresOptions {
  /** The clock (default Date.now). */
  readonly now?: () => number;
  /** How long to wait for each group's owner (default 2 s). */
  readonly timeoutMs?: number;
  /** The zone whose midnight starts "today", as in the reports (default PARLEY_TIME_ZONE, else UTC). */
  readonly timeZone?: string;
}

/**
 * The figures of every routing group of `settings` (the live configuration) and of their agents,
 * from one inspection of each group (in parallel) and a few reads: the group of each conversation
 * an agent holds (parley-conversations) and a count of today's ConversationClosed events per
 * group. A group nobody hosts has null live figures and a `problem`; other failures throw.
 */
export async function productionFigures(
  nc: NatsConnection,
  settings: Settings,
  options: FiguresOptions = {},
): Promise<ProductionFigures> {
  const at = (options.now ?? Date.now)();
  const since = startOfDay(at, reportTimeZone(options.timeZone));
  const timeoutMs = options.timeoutMs ?? 2_000;
  const [inspections, closed] = await Promise.all([
    Promise.all(settings.groups.map((g) => inspectOrProblem(nc, g.id, timeoutMs))),
    Promise.all(settings.groups.map((g) => countClosedSince(nc, g.id, since))),
  ]);

  const agents = new Map<string, AgentInspection>();
  const newest = new Map<string, number>();
  for (const inspection of inspections) {
    if (typeof inspection === 'string') continue;
    for (const agent of inspection.agents) {
      if ((newest.get(agent.id) ?? -1) < inspection.at) {
        agents.set(agent.id, agent);
        newest.set(agent.id, inspection.at);
      }
    }
  }
  const held = [...new Set([...agents.values()].flatMap((a) => a.conversations))];
  const groupOf = await conversationGroups(nc, held);

  const groups = settings.groups.map((g, i): GroupFigures => {
    const inspection = inspections[i]!;
    const base = { group: g.id, name: g.name, closedToday: closed[i]! };
    if (typeof inspection === 'string') {
      return {
        ...base,
        worker: null,
        problem: inspection,
        waiting: null,
        cap: g.cap,
        seatsTaken: null,
        snoozed: null,
        nextWakeInMs: null,
        longestWaitMs: null,
        handled: null,
        open: null,
      };
    }
    return {
      ...base,
      ...liveFigures(inspection),
      handled: held.filter((c) => groupOf.get(c) === g.id).length,
    };
  });

  const agentFigures = [...agents.values()]
    .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    .map((a) => ({ ...a, groups: settings.agents.find((s) => s.id === a.id)?.groups ?? [] }));
  return { at, since, groups, agents: agentFigures };
}

/** The figures one group's inspection gives by itself. */
export function liveFigures(
  inspection: GroupInspection,
): Omit<GroupFigures, 'group' | 'name' | 'handled' | 'closedToday'> {
  return {
    worker: inspection.worker,
    problem: null,
    waiting: inspection.waiting.length,
    cap: inspection.cap,
    seatsTaken: inspection.seatsTaken,
    snoozed: inspection.snoozed.length,
    nextWakeInMs: inspection.snoozed[0]?.inMs ?? null,
    longestWaitMs: Math.max(0, ...inspection.waiting.map((w) => w.waitedMs)),
    open: inspection.open,
  };
}

async function inspectOrProblem(
  nc: NatsConnection,
  group: string,
  timeoutMs: number,
): Promise<GroupInspection | string> {
  try {
    return await inspectGroup(nc, group, { timeoutMs });
  } catch (error) {
    if (isParleyError(error, 'PARLEY_ERR_NOT_HOSTED')) return 'no live worker hosts it';
    if (isParleyError(error, 'PARLEY_ERR_INSPECTION_FAILED')) return error.message;
    throw error;
  }
}

/**
 * How many ConversationClosed events of `group` the events stream holds from `since` on: the
 * pending count of a consumer that starts at that time, deleted at once (nothing is read).
 */
export async function countClosedSince(
  nc: NatsConnection,
  group: string,
  since: number,
): Promise<number> {
  const filter = `${SUBJECT_ROOTS.events}.${validateGroupId(group)}.*.ConversationClosed`;
  const consumer = await jetstream(nc).consumers.get(STREAMS.events, {
    filter_subjects: filter,
    deliver_policy: DeliverPolicy.StartTime,
    opt_start_time: new Date(since).toISOString(),
    // Deleted below; should that fail, the server drops it soon by itself.
    inactive_threshold: 10_000,
  });
  const pending = (await consumer.info(true)).num_pending;
  void consumer.delete().catch(() => undefined);
  return pending;
}

/** The routing group of each conversation, as parley-conversations holds it (absent: not stored). */
export async function conversationGroups(
  nc: NatsConnection,
  conversations: readonly string[],
): Promise<Map<string, string>> {
  const groups = new Map<string, string>();
  if (conversations.length === 0) return groups;
  const kv = await new Kvm(nc).open(BUCKETS.conversations);
  await Promise.all(
    conversations.map(async (id) => {
      const entry = await kv.get(id);
      if (entry?.operation !== 'PUT') return;
      const group = entry.json<{ group?: unknown }>().group;
      if (typeof group === 'string') groups.set(id, group);
    }),
  );
  return groups;
}
