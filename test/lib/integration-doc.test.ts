// docs/integration.md, the integrators' contract, says what the code does: its command examples
// are accepted by parseCommand (and include lib/commands.ts's examples), its event examples have
// exactly the fields of actors/events.ts's events, and no command, event or rejection code, stream,
// bucket or schema is left out.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { type DomainEvent, type EventType, REJECTION_REASONS } from '../../actors/events.ts';
import { COMMAND_EXAMPLES, COMMAND_TYPES, parseCommand } from '../../lib/commands.ts';
import { AGENT_TOKEN, BUCKETS, DEFAULTS, STREAMS, SUBJECT_ROOTS } from '../../lib/nats/streams.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
const docPath = join(root, 'docs', 'integration.md');
const doc = readFileSync(docPath, 'utf8');

type EventOf<K extends EventType> = Extract<DomainEvent, { type: K }>;
type FieldsOf<K extends EventType> = keyof EventOf<K> & string;

/**
 * The top-level fields of every event. `tsc` fails when an event type of actors/events.ts is
 * missing here, when a field listed does not exist, or (below) when a field is left out.
 */
const EVENT_FIELDS = {
  ConversationStarted: ['type', 'conversation', 'group', 'at', 'visitor', 'rule'],
  MessageAdded: ['type', 'conversation', 'group', 'at', 'message'],
  MessageRefused: ['type', 'conversation', 'group', 'at', 'author', 'reason'],
  BotAnswerRecorded: ['type', 'conversation', 'group', 'at', 'question', 'answer'],
  ConversationQueued: ['type', 'conversation', 'group', 'at', 'reason', 'reservedFor'],
  ConversationParked: ['type', 'conversation', 'group', 'at', 'reason'],
  ConversationAssigned: [
    'type',
    'conversation',
    'group',
    'at',
    'agent',
    'waitedMs',
    'visitorOnline',
    'wasSnoozed',
  ],
  ConversationSnoozed: ['type', 'conversation', 'group', 'at', 'agent', 'until', 'durationMs'],
  ConversationWoken: ['type', 'conversation', 'group', 'at', 'by', 'snoozedBy', 'snoozedMs'],
  ConversationTransferred: ['type', 'conversation', 'group', 'at', 'from', 'to'],
  ConversationReturned: ['type', 'conversation', 'group', 'at', 'agent', 'reason'],
  ConversationTagged: ['type', 'conversation', 'group', 'at', 'tags'],
  ConversationClosed: [
    'type',
    'conversation',
    'group',
    'at',
    'by',
    'agent',
    'tags',
    'handlingMs',
    'resolutionMs',
  ],
  SurveyAnswered: ['type', 'conversation', 'group', 'at', 'csat', 'nps', 'comment'],
  VisitorBlocked: ['type', 'conversation', 'group', 'at', 'visitor', 'agent', 'reason'],
  VisitorPresenceChanged: ['type', 'conversation', 'group', 'at', 'visitor', 'online'],
  MessagesRead: ['type', 'conversation', 'group', 'at', 'visitor', 'upToSeq'],
  PageViewed: ['type', 'conversation', 'group', 'at', 'visitor', 'page'],
  AgentPresenceChanged: ['type', 'at', 'agent', 'presence'],
  CommandRejected: ['type', 'at', 'command', 'commandType', 'conversation', 'code', 'reason'],
} as const satisfies { readonly [K in EventType]: readonly FieldsOf<K>[] };

type MissingField = {
  [K in EventType]: Exclude<FieldsOf<K>, (typeof EVENT_FIELDS)[K][number]>;
}[EventType];
const everyFieldListed: [MissingField] extends [never] ? true : { missing: MissingField } = true;

const EVENT_TYPES = Object.keys(EVENT_FIELDS) as EventType[];

/** Every ```json block of the page, parsed, with the line it starts on. */
function jsonBlocks(): { line: number; value: unknown }[] {
  const blocks: { line: number; value: unknown }[] = [];
  for (const match of doc.matchAll(/^```json\n([\s\S]*?)^```$/gm)) {
    const line = doc.slice(0, match.index).split('\n').length;
    blocks.push({ line, value: JSON.parse(match[1]!) as unknown });
  }
  return blocks;
}

const typeOf = (value: unknown): string | undefined =>
  value !== null && typeof value === 'object' && 'type' in value && typeof value.type === 'string'
    ? value.type
    : undefined;

/** Mentioned as a heading (`### Name`) or in backticks. */
const mentioned = (name: string) =>
  new RegExp(`^#+ ${name}$`, 'm').test(doc) || doc.includes(`\`${name}\``);

t.test('every json block of docs/integration.md is valid JSON naming a known type', async (t) => {
  const blocks = jsonBlocks();
  t.ok(blocks.length > 0, 'the page has json examples');
  for (const { line, value } of blocks) {
    const type = typeOf(value);
    t.ok(
      type !== undefined &&
        ((COMMAND_TYPES as readonly string[]).includes(type) ||
          (EVENT_TYPES as string[]).includes(type)),
      `line ${line}: a command or an event (type ${String(type)})`,
    );
  }
});

t.test('every command example of the page is accepted by parseCommand', async (t) => {
  const commands = jsonBlocks().filter(({ value }) =>
    (COMMAND_TYPES as readonly string[]).includes(typeOf(value) ?? ''),
  );
  t.ok(commands.length >= COMMAND_TYPES.length, 'at least one example per command');
  for (const { line, value } of commands) {
    t.doesNotThrow(() => parseCommand(value), `line ${line}: ${typeOf(value)} is accepted`);
    // The same through the bytes an integrator publishes.
    t.doesNotThrow(() => parseCommand(new TextEncoder().encode(JSON.stringify(value))));
  }
});

t.test('every command has its heading, its schema link and its complete example', async (t) => {
  const examples = jsonBlocks().map(({ value }) => value);
  for (const type of COMMAND_TYPES) {
    t.match(doc, new RegExp(`^### ${type}$`, 'm'), `${type} has a heading`);
    t.ok(doc.includes(`(schemas/${type}.json)`), `${type} links to its schema`);
    t.ok(existsSync(join(root, 'docs', 'schemas', `${type}.json`)), `${type}'s schema exists`);
    t.ok(
      examples.some((e) => JSON.stringify(e) === JSON.stringify(COMMAND_EXAMPLES[type])),
      `${type}'s example is COMMAND_EXAMPLES.${type}, field for field`,
    );
  }
});

t.test('every event has its heading and an example with exactly its fields', async (t) => {
  t.equal(everyFieldListed, true);
  // The same list read from the source, so that a new event fails here as well as in tsc.
  const source = readFileSync(join(root, 'actors', 'events.ts'), 'utf8');
  const literals = [...source.matchAll(/readonly type: '(\w+)'/g)].map((m) => m[1]!);
  const fromSource = literals.filter(
    (type) => !(COMMAND_TYPES as readonly string[]).includes(type),
  );
  t.same([...fromSource].sort(), [...EVENT_TYPES].sort(), 'EVENT_FIELDS names every event');

  const blocks = jsonBlocks();
  for (const type of EVENT_TYPES) {
    t.match(doc, new RegExp(`^### ${type}$`, 'm'), `${type} has a heading`);
    const examples = blocks.filter(({ value }) => typeOf(value) === type);
    t.ok(examples.length > 0, `${type} has an example`);
    for (const { line, value } of examples) {
      t.same(
        Object.keys(value as object).sort(),
        [...EVENT_FIELDS[type]].sort(),
        `line ${line}: ${type} has exactly its fields`,
      );
    }
  }
  for (const { line, value } of blocks.filter((b) => typeOf(b.value) === 'CommandRejected')) {
    const e = value as { code: keyof typeof REJECTION_REASONS; reason: string };
    t.equal(e.reason, REJECTION_REASONS[e.code], `line ${line}: the reason of ${e.code}`);
  }
});

t.test('every command type, event type and rejection code is mentioned', async (t) => {
  for (const type of [...COMMAND_TYPES, ...EVENT_TYPES]) t.ok(mentioned(type), type);
  for (const [code, reason] of Object.entries(REJECTION_REASONS)) {
    t.ok(doc.includes(`| \`${code}\` | ${reason} |`), `${code} is in the table with its reason`);
  }
});

t.test('the streams, buckets, subjects and windows are those of lib/nats/streams.ts', async (t) => {
  for (const name of [...Object.values(STREAMS), ...Object.values(BUCKETS)]) {
    t.ok(doc.includes(`\`${name}\``), `${name} is named`);
  }
  for (const subject of [
    `${SUBJECT_ROOTS.commands}.<group>.<conversation>`,
    `${SUBJECT_ROOTS.commands}.${AGENT_TOKEN}.<agent>`,
    `${SUBJECT_ROOTS.events}.<group>.<conversation>.<EventType>`,
    `${SUBJECT_ROOTS.events}.${AGENT_TOKEN}.<agent>.<EventType>`,
  ]) {
    t.ok(doc.includes(`\`${subject}\``), subject);
  }
  const DAY_MS = 24 * 60 * 60 * 1000;
  t.equal(DEFAULTS.duplicateWindowMs, 2 * 60 * 1000, 'the page says the window is 2 minutes');
  t.match(doc, /duplicate window of 2 minutes/);
  t.equal(DEFAULTS.commandsMaxAgeMs, 7 * DAY_MS, 'the page says commands are kept 7 days');
  t.match(doc, /`parley\.cmd\.>` \|[^\n]*\| 7 days \|/);
  t.equal(DEFAULTS.eventsMaxAgeMs, 30 * DAY_MS, 'the page says events are kept 30 days');
  t.match(doc, /`parley\.evt\.>` \|[^\n]*\| 30 days \|/);
  t.equal(DEFAULTS.leaseTtlMs, 5_000, 'the page says a lease period is 5 s by default');
});

t.test('every relative link of the page points to a file that exists', async (t) => {
  const base = dirname(docPath);
  for (const match of doc.matchAll(/\]\(([^)#\s]+)(#[^)]*)?\)/g)) {
    const target = match[1]!;
    if (/^[a-z]+:/.test(target)) continue;
    t.ok(existsSync(resolve(base, target)), `${target} exists`);
  }
  // Links within the page land on a heading.
  const anchors = new Set(
    [...doc.matchAll(/^#+ (.+)$/gm)].map((m) =>
      m[1]!
        .toLowerCase()
        .replace(/[^a-z0-9 _-]/g, '')
        .replace(/ /g, '-'),
    ),
  );
  for (const match of doc.matchAll(/\]\(#([^)]+)\)/g)) {
    t.ok(anchors.has(match[1]!), `#${match[1]} is a heading of the page`);
  }
});
