// The live figures in the Prometheus text format (prom-client), read from the reports at each
// scrape. Gauges for what goes up and down (and what resets at local midnight); counters only for
// what only grows. docs/metrics.md lists every metric with its definition.
import { Counter, Gauge, Registry } from 'prom-client';
import type { Presence } from '../../actors/events.ts';
import type { ReportSource } from './reporter.ts';

const PRESENCES: readonly Presence[] = ['online', 'away', 'offline'];

type Make = <L extends string>(name: string, help: string, labels: L[]) => Gauge<L>;

function groupGauges(gauge: Make) {
  const g = (name: string, help: string) => gauge(name, help, ['group']);
  return {
    waiting: g('parley_conversations_waiting', 'Conversations in the waiting list now.'),
    cap: g(
      'parley_waiting_list_cap',
      'Seats of the waiting list: conversations waiting plus snoozed.',
    ),
    seats: g(
      'parley_waiting_list_seats_taken',
      'Seats taken now: conversations waiting plus snoozed.',
    ),
    snoozed: g('parley_conversations_snoozed', 'Conversations snoozed now.'),
    handled: g(
      'parley_conversations_handled',
      'Conversations being handled now: assigned to an agent (a snoozed one is not).',
    ),
    parked: g(
      'parley_conversations_parked',
      'Conversations the bot keeps because the waiting list was full.',
    ),
    longestWait: g(
      'parley_longest_wait_seconds',
      'Now minus the earliest entry (or wake) among the conversations waiting; 0 when none waits.',
    ),
    closedToday: g(
      'parley_conversations_closed_today',
      'Conversations closed since local midnight, by their group at the close.',
    ),
    handledToday: g(
      'parley_conversations_handled_today',
      'Distinct conversations assigned to an agent in the group at some moment since local midnight.',
    ),
    transfersToday: g(
      'parley_transfers_today',
      'Transfers made since local midnight from the group the conversation was in.',
    ),
    transferRatio: g(
      'parley_transfer_ratio_today',
      'Conversations transferred today out of those handled today, 0 to 1; absent when none was handled.',
    ),
  };
}

function agentGauges(gauge: Make) {
  const a = (name: string, help: string) => gauge(name, help, ['agent']);
  return {
    load: a('parley_agent_load', 'Conversations assigned to the agent now.'),
    slots: a('parley_agent_slots', 'Slots of the agent in the live configuration.'),
    handledToday: a(
      'parley_agent_conversations_handled_today',
      'Distinct conversations assigned to the agent at some moment since local midnight.',
    ),
    firstResponse: a(
      'parley_agent_first_response_median_seconds',
      "Median of the agent's first responses written today (assignment to the agent's first message); absent when none.",
    ),
    transfersToday: a(
      'parley_agent_transfers_today',
      'Transfers the agent made since local midnight.',
    ),
  };
}

/** Builds the text of a scrape from a report source; each instance has a registry of its own. */
export class ReportMetrics {
  readonly registry = new Registry();
  readonly #source: Pick<ReportSource, 'live' | 'totals' | 'stats'>;
  readonly #group: ReturnType<typeof groupGauges>;
  readonly #agent: ReturnType<typeof agentGauges>;
  readonly #presence: Gauge<'agent' | 'presence'>;
  readonly #withBot: Gauge;
  readonly #loggedIn: Gauge;
  readonly #lastSeq: Gauge;
  readonly #closedTotal: Counter<'group'>;
  readonly #transfersTotal: Counter<'group'>;
  readonly #events: Counter;

  constructor(source: Pick<ReportSource, 'live' | 'totals' | 'stats'>) {
    this.#source = source;
    const registers = [this.registry];
    const gauge: Make = (name, help, labelNames) =>
      new Gauge({ name, help, labelNames, registers });
    const counter = <L extends string>(name: string, help: string, labelNames: L[]) =>
      new Counter<L>({ name, help, labelNames, registers });
    this.#group = groupGauges(gauge);
    this.#agent = agentGauges(gauge);
    this.#presence = gauge(
      'parley_agent_presence',
      "The agent's presence: 1 for the current one, 0 for the others.",
      ['agent', 'presence'],
    );
    this.#withBot = gauge('parley_conversations_with_bot', 'Conversations with the bot now.', []);
    this.#loggedIn = gauge('parley_agents_logged_in', 'Agents online or away now.', []);
    this.#lastSeq = gauge(
      'parley_reports_last_sequence',
      'The last sequence of the events stream the reports have read.',
      [],
    );
    this.#closedTotal = counter(
      'parley_conversations_closed_total',
      'Conversations closed, by their group at the close, since the first event the reports read.',
      ['group'],
    );
    this.#transfersTotal = counter(
      'parley_transfers_total',
      'Transfers made from the group since the first event the reports read.',
      ['group'],
    );
    this.#events = counter(
      'parley_reports_events_applied_total',
      'Events that changed the reports since they began reading the stream.',
      [],
    );
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The exposition text of the figures at `now`. */
  async metrics(now: number = Date.now()): Promise<string> {
    const live = this.#source.live(now);
    const g = this.#group;
    const a = this.#agent;
    for (const m of [...Object.values(g), ...Object.values(a), this.#presence]) m.reset();
    for (const x of live.groups) {
      const labels = { group: x.group };
      g.waiting.set(labels, x.waiting);
      if (x.cap !== null) g.cap.set(labels, x.cap);
      g.seats.set(labels, x.seatsTaken);
      g.snoozed.set(labels, x.snoozed);
      g.handled.set(labels, x.handled);
      g.parked.set(labels, x.parked);
      g.longestWait.set(labels, x.longestWaitMs / 1000);
      g.closedToday.set(labels, x.closedToday);
      g.handledToday.set(labels, x.handledToday);
      g.transfersToday.set(labels, x.transfersToday.count);
      if (x.handledToday > 0) {
        g.transferRatio.set(labels, x.transfersToday.transferred / x.handledToday);
      }
    }
    for (const x of live.agents) {
      const labels = { agent: x.agent };
      a.load.set(labels, x.load);
      if (x.slots !== null) a.slots.set(labels, x.slots);
      a.handledToday.set(labels, x.handledToday);
      if (x.firstResponseMedianMs !== null) {
        a.firstResponse.set(labels, x.firstResponseMedianMs / 1000);
      }
      a.transfersToday.set(labels, x.transfersToday.count);
      for (const p of PRESENCES) {
        this.#presence.set({ agent: x.agent, presence: p }, x.presence === p ? 1 : 0);
      }
    }
    this.#withBot.set(live.withBot);
    this.#loggedIn.set(live.agentsLoggedIn);
    const stats = this.#source.stats();
    this.#lastSeq.set(stats.lastSeq);
    // The counters hold the projection's totals: reset, then add the whole count.
    this.#closedTotal.reset();
    this.#transfersTotal.reset();
    for (const t of this.#source.totals()) {
      this.#closedTotal.inc({ group: t.group }, t.closed);
      this.#transfersTotal.inc({ group: t.group }, t.transfers);
    }
    this.#events.reset();
    this.#events.inc(stats.applied);
    return this.registry.metrics();
  }
}
