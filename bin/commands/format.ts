// How the operators' commands print for people: times, durations, colours (on a terminal only),
// aligned tables, and an event as one line with its key facts.

import type { DomainEvent } from '../../actors/events.ts';
import { formatDuration } from '../../lib/duration.ts';
import type { SeenEvent } from '../../lib/nats/command-outcome.ts';
import { parseEventSubject } from '../../lib/nats/streams.ts';

/** An event as read from the events stream or heard live. */
export type { SeenEvent };

// ─── Colour ──────────────────────────────────────────────────────────────────────────────────

export type Style = (text: string) => string;

export interface Paint {
  readonly bold: Style;
  readonly dim: Style;
  readonly red: Style;
  readonly green: Style;
  readonly yellow: Style;
  readonly cyan: Style;
  readonly magenta: Style;
}

const sgr =
  (open: number, close: number): Style =>
  (text) =>
    `\u001b[${open}m${text}\u001b[${close}m`;
const plain: Style = (text) => text;

/**
 * Colours when `stream` is a terminal and NO_COLOR is unset (or empty, as no-color.org says);
 * plain text otherwise, so that piped output holds no escape codes.
 */
export function paintFor(
  stream: { readonly isTTY?: boolean } = process.stdout,
  env: NodeJS.ProcessEnv = process.env,
): Paint {
  const on = stream.isTTY === true && !env.NO_COLOR;
  return on
    ? {
        bold: sgr(1, 22),
        dim: sgr(2, 22),
        red: sgr(31, 39),
        green: sgr(32, 39),
        yellow: sgr(33, 39),
        cyan: sgr(36, 39),
        magenta: sgr(35, 39),
      }
    : {
        bold: plain,
        dim: plain,
        red: plain,
        green: plain,
        yellow: plain,
        cyan: plain,
        magenta: plain,
      };
}

// ─── Times ───────────────────────────────────────────────────────────────────────────────────

const two = (n: number) => String(n).padStart(2, '0');

/** Local time `14:02:03.120`; with the date in front when `at` is not on the day of `now`. */
export function clock(at: number, now = Date.now()): string {
  const d = new Date(at);
  const time = `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}.${String(d.getMilliseconds()).padStart(3, '0')}`;
  const today = new Date(now);
  const sameDay =
    d.getFullYear() === today.getFullYear() &&
    d.getMonth() === today.getMonth() &&
    d.getDate() === today.getDate();
  return sameDay ? time : `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ${time}`;
}

/** A duration for people: `450ms` under a second, else to the second (`1h2m3s`). */
export function duration(ms: number): string {
  if (ms < 0) return `-${duration(-ms)}`;
  if (ms < 1_000) return `${Math.round(ms)}ms`;
  return formatDuration(Math.round(ms / 1_000) * 1_000);
}

/** How far `ms` from now is: `in 4s`, `4s ago`. */
export function relative(ms: number): string {
  return ms >= 0 ? `in ${duration(ms)}` : `${duration(-ms)} ago`;
}

// ─── Tables ──────────────────────────────────────────────────────────────────────────────────

/**
 * Rows as aligned columns, two spaces apart. `style` colours a cell after it is padded, so that
 * escape codes do not count in the widths.
 */
export function table(
  rows: readonly (readonly string[])[],
  style: (row: number, column: number, text: string) => string = (_r, _c, text) => text,
): string[] {
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((cell, i) => {
      widths[i] = Math.max(widths[i] ?? 0, cell.length);
    });
  }
  return rows.map((row, r) =>
    row
      .map((cell, c) => style(r, c, c === row.length - 1 ? cell : cell.padEnd(widths[c]!)))
      .join('  ')
      .trimEnd(),
  );
}

// ─── Events ──────────────────────────────────────────────────────────────────────────────────

const quote = (text: string, max = 60) => {
  const flat = text.replace(/\s+/g, ' ').trim();
  return JSON.stringify(flat.length > max ? `${flat.slice(0, max - 1)}…` : flat);
};

/** The facts of an event that matter to someone watching, in a few words. */
export function eventFacts(e: DomainEvent): string {
  switch (e.type) {
    case 'ConversationStarted':
      return `visitor ${e.visitor}, rule ${e.rule}`;
    case 'MessageAdded': {
      const m = e.message;
      const who =
        m.author.kind === 'visitor' || m.author.kind === 'agent'
          ? `${m.author.kind} ${m.author.id}`
          : m.author.kind;
      const note = m.note ? ` (${m.note})` : '';
      const files = m.attachments.length > 0 ? ` +${m.attachments.length} attachment(s)` : '';
      return `#${m.seq} ${who}${note}: ${quote(m.text)}${files}`;
    }
    case 'MessageRefused':
      return `${e.author.kind === 'bot' || e.author.kind === 'system' ? e.author.kind : `${e.author.kind} ${e.author.id}`}: ${e.reason}`;
    case 'BotAnswerRecorded':
      return `${e.question} = ${quote(e.answer)}`;
    case 'ConversationQueued':
      return `reason ${e.reason}${e.reservedFor ? `, reserved for ${e.reservedFor}` : ''}`;
    case 'ConversationParked':
      return 'waiting list full';
    case 'ConversationAssigned':
      return `to ${e.agent} after ${duration(e.waitedMs)}${e.wasSnoozed ? ', was snoozed' : ''}${e.visitorOnline ? '' : ', visitor offline'}`;
    case 'ConversationSnoozed':
      return `by ${e.agent} for ${duration(e.durationMs)}, until ${clock(e.until, e.at)}`;
    case 'ConversationWoken':
      return `by ${e.by}, snoozed by ${e.snoozedBy} for ${duration(e.snoozedMs)}`;
    case 'ConversationTransferred':
      return `${e.from} → ${'agent' in e.to ? `agent ${e.to.agent}` : `group ${e.to.group}`}`;
    case 'ConversationReturned':
      return `${e.agent} went offline`;
    case 'ConversationTagged':
      return `tags ${e.tags.join(', ')}`;
    case 'ConversationClosed':
      return `by ${e.by}${e.agent ? ` (agent ${e.agent})` : ''}, handled ${duration(e.handlingMs)}, resolved in ${duration(e.resolutionMs)}${e.tags.length > 0 ? `, tags ${e.tags.join(', ')}` : ''}`;
    case 'SurveyAnswered':
      return [
        e.csat === null ? undefined : `CSAT ${e.csat}`,
        e.nps === null ? undefined : `NPS ${e.nps}`,
        e.comment === null ? undefined : quote(e.comment),
      ]
        .filter(Boolean)
        .join(', ');
    case 'VisitorBlocked':
      return `visitor ${e.visitor} by ${e.agent}${e.reason ? `: ${quote(e.reason)}` : ''}`;
    case 'VisitorPresenceChanged':
      return `visitor ${e.visitor} ${e.online ? 'online' : 'offline'}`;
    case 'MessagesRead':
      return `visitor ${e.visitor} read up to #${e.upToSeq}`;
    case 'PageViewed':
      return `visitor ${e.visitor} on ${e.page.url}${e.page.title ? ` ${quote(e.page.title)}` : ''}`;
    case 'AgentPresenceChanged':
      return `${e.agent} ${e.presence}`;
    case 'CommandRejected':
      return `${e.commandType} ${e.command}: ${e.code} (${e.reason})`;
  }
}

/** The colour of an event's type: what went wrong red, hand-outs green, waits yellow. */
function typeStyle(e: DomainEvent, paint: Paint): Style {
  switch (e.type) {
    case 'CommandRejected':
    case 'MessageRefused':
    case 'VisitorBlocked':
    case 'ConversationParked':
      return paint.red;
    case 'ConversationAssigned':
    case 'ConversationClosed':
    case 'SurveyAnswered':
      return paint.green;
    case 'ConversationQueued':
    case 'ConversationSnoozed':
    case 'ConversationWoken':
    case 'ConversationTransferred':
    case 'ConversationReturned':
      return paint.yellow;
    case 'MessageAdded':
      return paint.cyan;
    default:
      return paint.magenta;
  }
}

/**
 * One event as a line: its time, its group (`_agent` for an agent's), its conversation (or
 * agent), its type and its key facts.
 */
export function eventLine(seen: SeenEvent, paint: Paint, now = Date.now()): string {
  const address = parseEventSubject(seen.subject);
  const [where, who] =
    address === undefined
      ? ['?', '?']
      : address.kind === 'agent'
        ? ['_agent', address.agent]
        : [address.group, address.conversation];
  const e = seen.event;
  return [
    paint.dim(clock(e.at, now)),
    where.padEnd(10),
    who.padEnd(14),
    typeStyle(e, paint)(e.type.padEnd(22)),
    eventFacts(e),
  ].join(' ');
}
