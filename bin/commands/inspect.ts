// `parley inspect conversation|group`: the live state of a conversation or a routing group, asked
// from the worker that hosts it now, with a conversation's last events (and its thread) read back
// from the events stream.
import type { NatsConnection } from '@nats-io/transport-node';
import type { Command } from 'commander';
import type { Message } from '../../actors/events.ts';
import { isParleyError } from '../../lib/errors.ts';
import {
  type ConversationInspection,
  type GroupInspection,
  inspectConversation,
  inspectGroup,
} from '../../lib/inspect.ts';
import { STREAMS, SUBJECT_ROOTS, validateId } from '../../lib/nats/streams.ts';
import {
  clock,
  duration,
  eventFacts,
  eventLine,
  type Paint,
  paintFor,
  relative,
  type SeenEvent,
  table,
} from './format.ts';
import {
  configuredGroup,
  groupOf,
  integerOption,
  liveConfig,
  type NatsCommandOptions,
  operatorOptions,
  printJson,
  readStoredEvents,
  withHostingHint,
  withNats,
} from './operator.ts';

interface ConversationOptions extends NatsCommandOptions {
  readonly events: number;
  readonly messages?: boolean;
}

/** What `parley inspect conversation --json` prints: the live inspection, then the stream's view. */
export interface ConversationReport extends ConversationInspection {
  /** The last events of the conversation, oldest first (at most `--events`). */
  readonly events: readonly SeenEvent[];
  /** How many events of the conversation the stream holds. */
  readonly eventsStored: number;
  /** Its thread, from the MessageAdded events, in `seq` order (with `--messages` only). */
  readonly messages?: readonly Message[];
}

const DEFAULT_EVENTS = 10;
const INSPECT_TIMEOUT_MS = 3_000;

export function registerInspect(program: Command): Command {
  const inspect = program
    .command('inspect')
    .description('the live state of a conversation or a routing group, from the worker hosting it');
  operatorOptions(
    inspect
      .command('conversation <id>')
      .description(
        "a conversation's live state (state, context, timers, owner worker), its last events and, with --messages, its thread",
      )
      .option(
        '--events <n>',
        'how many of its last events to show',
        integerOption('--events'),
        DEFAULT_EVENTS,
      )
      .option('--messages', 'also show its thread (its MessageAdded events)'),
  ).action(async (id: string, options: ConversationOptions) => {
    const report = await withNats(options, 'inspect', (nc, url) =>
      conversationReport(nc, url, id, options),
    );
    if (options.json) printJson(report);
    else process.stdout.write(`${renderConversation(report, options, paintFor()).join('\n')}\n`);
  });
  operatorOptions(
    inspect
      .command('group <id>')
      .description(
        'a routing group live: its waiting list in order, the cap, the agents with presence and load, the snoozed conversations',
      ),
  ).action(async (id: string, options: NatsCommandOptions) => {
    const inspection = await withNats(options, 'inspect', async (nc, url) => {
      const group = configuredGroup(await liveConfig(nc, url), id);
      try {
        return await inspectGroup(nc, group, { timeoutMs: INSPECT_TIMEOUT_MS });
      } catch (error) {
        throw withHostingHint(error, group);
      }
    });
    if (options.json) printJson(inspection);
    else process.stdout.write(`${renderGroup(inspection, paintFor()).join('\n')}\n`);
  });
  return inspect;
}

async function conversationReport(
  nc: NatsConnection,
  url: string,
  id: string,
  options: ConversationOptions,
): Promise<ConversationReport> {
  validateId('conversation id', id);
  let inspection: ConversationInspection | undefined;
  // The conversation may move to another group between the read of its group and the question.
  for (let attempt = 1; inspection === undefined; attempt++) {
    const group = await groupOf(nc, url, id);
    try {
      inspection = await inspectConversation(nc, group, id, { timeoutMs: INSPECT_TIMEOUT_MS });
    } catch (error) {
      if (attempt < 3 && isParleyError(error, 'PARLEY_ERR_NOT_FOUND')) continue;
      throw withHostingHint(error, group);
    }
  }
  const last: SeenEvent[] = [];
  const messages = new Map<number, Message>();
  let stored = 0;
  if (options.events > 0 || options.messages) {
    stored = await readStoredEvents(nc, url, `${SUBJECT_ROOTS.events}.*.${id}.*`, (seen) => {
      if (options.events > 0) {
        last.push(seen);
        if (last.length > options.events) last.shift();
      }
      if (options.messages && seen.event.type === 'MessageAdded') {
        messages.set(seen.event.message.seq, seen.event.message);
      }
    });
  }
  return {
    ...inspection,
    events: last,
    eventsStored: stored,
    ...(options.messages ? { messages: [...messages.values()].sort((a, b) => a.seq - b.seq) } : {}),
  };
}

// ─── Text ────────────────────────────────────────────────────────────────────────────────────

function renderConversation(r: ConversationReport, options: ConversationOptions, paint: Paint) {
  const c = r.context;
  const lines = [
    `${paint.bold(`Conversation ${r.conversation}`)}  in routing group ${r.group}, hosted by worker ${r.worker}${r.inMemory ? '' : ' (read from parley-conversations: not in memory)'}, at ${clock(r.at)}`,
    `  state       ${paint.bold(r.state)}${r.path === r.state ? '' : ` (${r.path})`}${r.position === null ? '' : `, position ${r.position} in the waiting list`}`,
    `  visitor     ${c.visitor} (${c.visitorOnline ? 'online' : 'offline'}${c.blocked ? ', blocked' : ''}), rule ${c.rule}`,
    `  agent       ${c.agent ?? '—'}${c.reservedFor ? `, reserved for ${c.reservedFor}` : ''}`,
    `  messages    ${c.nextSeq - 1}, unread by the visitor ${c.unread}`,
    `  tags        ${c.tags.length > 0 ? c.tags.join(', ') : '—'}`,
    `  created     ${clock(c.times.createdAt, r.at)}${c.times.closedAt ? `, closed ${clock(c.times.closedAt, r.at)}` : ''}`,
  ];
  if (r.timers.length === 0) lines.push('  timers      none');
  for (const t of r.timers) {
    lines.push(`  timer       ${t.kind} until ${clock(t.until, r.at)} (${relative(t.inMs)})`);
  }
  lines.push(
    `  commands    ${r.recentCommands.length > 0 ? `last ${r.recentCommands.at(-1)} (${r.recentCommands.length} remembered)` : '—'}`,
    paint.dim('  (--json prints the whole context)'),
  );
  if (options.events > 0) {
    lines.push(
      '',
      paint.bold(`Last events (${r.events.length} of ${r.eventsStored} in ${STREAMS.events})`),
    );
    for (const e of r.events) lines.push(`  ${eventLine(e, paint)}`);
  }
  if (r.messages) {
    lines.push('', paint.bold(`Thread (${r.messages.length} messages)`));
    for (const m of r.messages) {
      const facts = eventFacts({
        type: 'MessageAdded',
        conversation: r.conversation,
        group: r.group,
        at: m.at,
        message: m,
      });
      lines.push(`  ${paint.dim(clock(m.at, r.at))} ${facts}`);
    }
  }
  return lines;
}

function renderGroup(g: GroupInspection, paint: Paint): string[] {
  const lines = [
    `${paint.bold(`Routing group ${g.group}`)}  hosted by worker ${g.worker}, at ${clock(g.at)}`,
    `  waiting list  ${g.waiting.length} waiting, ${g.seatsTaken} of ${g.cap} seats taken (cap ${g.cap}; snoozed conversations keep a seat)`,
    `  open          ${g.open} conversations not closed; typical reply shown to visitors ${duration(g.typicalReplyMs)}`,
    '',
    paint.bold('Waiting list'),
  ];
  if (g.waiting.length === 0) lines.push('  (empty)');
  else {
    const rows = [
      ['#', 'CONVERSATION', 'WAITING', 'VISITOR', 'NOTE'],
      ...g.waiting.map((w) => [
        String(w.position),
        w.conversation,
        duration(w.waitedMs),
        w.visitorOnline ? 'online' : 'offline',
        [w.woken ? 'woken from a snooze' : '', w.reservedFor ? `reserved for ${w.reservedFor}` : '']
          .filter(Boolean)
          .join(', '),
      ]),
    ];
    for (const line of table(rows, (r, _c, t) => (r === 0 ? paint.dim(t) : t)))
      lines.push(`  ${line}`);
  }
  lines.push('', paint.bold('Snoozed'));
  if (g.snoozed.length === 0) lines.push('  (none)');
  else {
    const rows = [
      ['CONVERSATION', 'WAKES', ''],
      ...g.snoozed.map((s) => [s.conversation, clock(s.until, g.at), relative(s.inMs)]),
    ];
    for (const line of table(rows, (r, _c, t) => (r === 0 ? paint.dim(t) : t)))
      lines.push(`  ${line}`);
  }
  lines.push('', paint.bold('Agents'));
  if (g.agents.length === 0) lines.push('  (none configured)');
  else {
    const rows = [
      ['AGENT', 'PRESENCE', 'LOAD', 'CONVERSATIONS'],
      ...g.agents.map((a) => [
        `${a.id} (${a.name})`,
        a.presence,
        `${a.load}/${a.slots}`,
        a.conversations.join(', ') || '—',
      ]),
    ];
    for (const line of table(rows, (r, c, t) =>
      r === 0
        ? paint.dim(t)
        : c === 1
          ? t.startsWith('online')
            ? paint.green(t)
            : t.startsWith('away')
              ? paint.yellow(t)
              : paint.dim(t)
          : t,
    )) {
      lines.push(`  ${line}`);
    }
  }
  return lines;
}
