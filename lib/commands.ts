// The commands that enter Parley from outside (NATS payloads of integrators, HTTP bodies): one
// TypeBox schema per command, the validation that turns bytes into a well-typed Command or an
// error naming each field that is wrong, and the examples docs/integration.md shows.

import {
  type SchemaOptions,
  type Static,
  type TObject,
  type TSchema,
  type TUnion,
  Type,
} from '@sinclair/typebox';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import type { Command } from '../actors/events.ts';
import { ID_PATTERN } from './config.ts';
import { ParleyError } from './errors.ts';
import { formatPath, pointerToPath } from './json-path.ts';

// ─── Limits ──────────────────────────────────────────────────────────────────────────────────

/** Conversation, visitor and agent ids: they become NATS subject tokens and KV keys. */
export const TOKEN_PATTERN = '^[A-Za-z0-9_-]{1,128}$';
/** Command and message ids: printable ASCII without spaces (they travel in a Nats-Msg-Id header). */
export const CLIENT_ID_PATTERN = '^[!-~]{1,128}$';
/** Routing group and routing rule ids are the configuration's lower-case ids. */
const CONFIG_ID_MAX_LENGTH = 128;
const NOT_BLANK_PATTERN = '\\S';
const MEDIA_TYPE_PATTERN =
  '^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$';

export const COMMAND_LIMITS = {
  textMaxLength: 10_000,
  attachmentsMaxItems: 10,
  refMaxLength: 2048,
  attachmentNameMaxLength: 255,
  sizeBytesMax: 50 * 1024 * 1024,
  commentMaxLength: 2000,
  reasonMaxLength: 2000,
  tagsMaxItems: 20,
  tagMaxLength: 64,
  pageUrlMaxLength: 2048,
  pageTitleMaxLength: 512,
} as const;

// ─── Building blocks ─────────────────────────────────────────────────────────────────────────

const closed = { additionalProperties: false } as const;

const Token = (description: string) =>
  Type.String({
    pattern: TOKEN_PATTERN,
    description: `${description} (1 to 128 of A-Z a-z 0-9 _ -; it becomes a NATS subject token).`,
  });
const ConfigId = (description: string) =>
  Type.String({
    pattern: ID_PATTERN,
    maxLength: CONFIG_ID_MAX_LENGTH,
    description: `${description}, as in the configuration: a lower-case id.`,
  });
const ClientId = (description: string) =>
  Type.String({
    pattern: CLIENT_ID_PATTERN,
    description: `${description} (1 to 128 printable ASCII characters, no spaces).`,
  });
const Enum = <const T extends string>(values: readonly T[], description: string) =>
  Type.Unsafe<T>({ type: 'string', enum: [...values], description });

/** A union whose branches are told apart by the constant `tag` field (ajv's discriminator). */
const Discriminated = <T extends TObject[]>(
  tag: string,
  branches: [...T],
  options: SchemaOptions,
) =>
  Type.Unsafe<Static<TUnion<T>>>({
    type: 'object',
    oneOf: branches,
    discriminator: { propertyName: tag },
    ...options,
  });

/**
 * A rule that needs several fields at once. Its `$comment` is the sentence a failure reports,
 * at the path of the object it applies to.
 */
const Rule = (comment: string, anyOf: readonly object[]) => ({ $comment: comment, anyOf });

const CommandId = ClientId('Chosen by the sender; a retry with the same id is the same command');
const ConversationId = Token('Conversation id');
const VisitorId = Token('Visitor id');
const AgentId = Token('Agent id');

const Tags = (minItems: number, description: string) =>
  Type.Array(
    Type.String({
      minLength: 1,
      maxLength: COMMAND_LIMITS.tagMaxLength,
      pattern: NOT_BLANK_PATTERN,
      description: 'A tag: 1 to 64 characters, not blank.',
    }),
    { minItems, maxItems: COMMAND_LIMITS.tagsMaxItems, description },
  );

export const PresenceSchema = Enum(['online', 'away', 'offline'], "An agent's presence.");

export const AuthorSchema = Discriminated(
  'kind',
  [
    Type.Object({ kind: Type.Literal('visitor'), id: VisitorId }, closed),
    Type.Object({ kind: Type.Literal('agent'), id: AgentId }, closed),
    Type.Object({ kind: Type.Literal('bot') }, closed),
    Type.Object({ kind: Type.Literal('system') }, closed),
  ],
  {
    description:
      'Who writes: `{ kind: visitor | agent, id }`, `{ kind: bot }` or `{ kind: system }`.',
  },
);

export const AttachmentSchema = Type.Object(
  {
    kind: Enum(['image', 'file', 'offer'], 'What the attachment is.'),
    ref: Type.String({
      minLength: 1,
      maxLength: COMMAND_LIMITS.refMaxLength,
      description:
        "Where the content is: a URL, or an id in the brand's catalogue for an offer (Parley never holds the bytes).",
    }),
    name: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: COMMAND_LIMITS.attachmentNameMaxLength,
        description: 'Name shown to people, such as a file name.',
      }),
    ),
    mimeType: Type.Optional(
      Type.String({
        pattern: MEDIA_TYPE_PATTERN,
        description: 'Media type, `type/subtype` without parameters, such as `image/png`.',
      }),
    ),
    sizeBytes: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: COMMAND_LIMITS.sizeBytesMax,
        description: 'Size of the content in bytes, at most 50 MiB.',
      }),
    ),
  },
  { ...closed, description: 'A typed reference to content stored elsewhere.' },
);

/** The sentence reported for a message with blank text and no attachment. */
const BLANK_MESSAGE = 'text must not be blank unless the message has attachments';

export const MessageInputSchema = Type.Object(
  {
    id: Type.Optional(
      ClientId("The client's message id; a retry with the same id is not added twice"),
    ),
    text: Type.String({
      maxLength: COMMAND_LIMITS.textMaxLength,
      description:
        'Plain text, links and emojis included, at most 10,000 characters; it may be empty or blank only when attachments are present.',
    }),
    attachments: Type.Optional(
      Type.Array(AttachmentSchema, {
        maxItems: COMMAND_LIMITS.attachmentsMaxItems,
        description: 'At most 10.',
      }),
    ),
  },
  {
    ...closed,
    description: 'A message as its sender writes it.',
    allOf: [
      Rule(BLANK_MESSAGE, [
        {
          type: 'object',
          properties: { text: { type: 'string', pattern: NOT_BLANK_PATTERN } },
        },
        {
          type: 'object',
          required: ['attachments'],
          properties: { attachments: { type: 'array', minItems: 1 } },
        },
      ]),
    ],
  },
);

export const TransferTargetSchema = Type.Union(
  [
    Type.Object({ agent: AgentId }, closed),
    Type.Object({ group: ConfigId('Routing group id') }, closed),
  ],
  {
    description:
      'To one agent, `{ agent }`, or to the waiting list of a routing group, `{ group }`.',
  },
);

// ─── The commands ────────────────────────────────────────────────────────────────────────────

const command = <T extends string, P extends Record<string, TSchema>>(
  type: T,
  description: string,
  properties: P,
  options: SchemaOptions = {},
) =>
  Type.Object(
    { type: Type.Literal(type), id: CommandId, ...properties },
    { ...closed, title: type, description, ...options },
  );

export const StartConversationSchema = command(
  'StartConversation',
  "Starts a visitor's conversation, routed by the routing rule that matched the visitor's page.",
  {
    conversation: ConversationId,
    visitor: VisitorId,
    rule: ConfigId('The routing rule that matched the visit'),
    visitorOnline: Type.Optional(
      Type.Boolean({ description: 'Whether the visitor is on the site now (default true).' }),
    ),
    message: Type.Optional(MessageInputSchema),
  },
);

export const SendMessageSchema = command(
  'SendMessage',
  'Adds a message to the thread, written by the visitor, an agent, the bot or the system.',
  { conversation: ConversationId, author: AuthorSchema, message: MessageInputSchema },
);

export const MarkReadSchema = command('MarkRead', 'The visitor has read the thread up to now.', {
  conversation: ConversationId,
  visitor: VisitorId,
});

export const EscalateSchema = command(
  'Escalate',
  'Hands the conversation from the bot to the waiting list of its routing group.',
  { conversation: ConversationId },
);

export const SnoozeSchema = command(
  'Snooze',
  'The assigned agent puts the conversation aside until the visitor writes or the snooze ends.',
  {
    conversation: ConversationId,
    agent: AgentId,
    durationMs: Type.Optional(
      Type.Integer({
        minimum: 1,
        description:
          "How long, in milliseconds, within the routing group's bounds; the group's default when left out.",
      }),
    ),
  },
);

export const SnoozeExpiredSchema = command(
  'SnoozeExpired',
  'A snooze deadline passed (sent by the timer index); ignored unless `until` is still the current deadline.',
  {
    conversation: ConversationId,
    until: Type.Integer({
      minimum: 0,
      description: 'The deadline that passed, in milliseconds since the Unix epoch.',
    }),
  },
);

export const TransferSchema = command(
  'Transfer',
  'The assigned agent hands the conversation to another agent or routing group.',
  { conversation: ConversationId, agent: AgentId, to: TransferTargetSchema },
);

export const TagSchema = command('Tag', 'The assigned agent tags the conversation.', {
  conversation: ConversationId,
  agent: AgentId,
  tags: Tags(1, '1 to 20 tags, added to those the conversation has.'),
});

export const CloseSchema = command(
  'Close',
  'The assigned agent, or the visitor, closes the conversation.',
  {
    conversation: ConversationId,
    by: Type.Union(
      [Type.Object({ agent: AgentId }, closed), Type.Object({ visitor: VisitorId }, closed)],
      { description: 'Who closes it: `{ agent }` or `{ visitor }`.' },
    ),
    tags: Type.Optional(Tags(0, 'Up to 20 tags added as it closes.')),
  },
);

export const AnswerSurveySchema = command(
  'AnswerSurvey',
  'The visitor answers the satisfaction survey of a closed conversation: CSAT, NPS or both.',
  {
    conversation: ConversationId,
    visitor: VisitorId,
    csat: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 5, description: 'Customer satisfaction, 1 to 5.' }),
    ),
    nps: Type.Optional(
      Type.Integer({ minimum: 0, maximum: 10, description: 'Net promoter score answer, 0 to 10.' }),
    ),
    comment: Type.Optional(
      Type.String({
        maxLength: COMMAND_LIMITS.commentMaxLength,
        description: 'Free text, at most 2,000 characters.',
      }),
    ),
  },
  {
    allOf: [
      Rule('csat or nps is required (or both)', [
        { type: 'object', required: ['csat'], properties: { csat: { type: 'integer' } } },
        { type: 'object', required: ['nps'], properties: { nps: { type: 'integer' } } },
      ]),
    ],
  },
);

export const BlockVisitorSchema = command(
  'BlockVisitor',
  "The assigned agent blocks the conversation's visitor: further messages are refused.",
  {
    conversation: ConversationId,
    agent: AgentId,
    reason: Type.Optional(
      Type.String({
        maxLength: COMMAND_LIMITS.reasonMaxLength,
        description: 'Why, for the team; at most 2,000 characters.',
      }),
    ),
  },
);

export const SetVisitorPresenceSchema = command(
  'SetVisitorPresence',
  'The visitor arrived on or left the site.',
  { conversation: ConversationId, online: Type.Boolean() },
);

export const RecordPageViewSchema = command(
  'RecordPageView',
  "The visitor opened a page of the brand's site; the conversation keeps the last 20 for the agents.",
  {
    conversation: ConversationId,
    url: Type.String({
      minLength: 1,
      maxLength: COMMAND_LIMITS.pageUrlMaxLength,
      description: 'The page, at most 2,048 characters.',
    }),
    title: Type.String({
      maxLength: COMMAND_LIMITS.pageTitleMaxLength,
      description: "The page's title, at most 512 characters; empty when it has none.",
    }),
  },
);

export const SetAgentPresenceSchema = command(
  'SetAgentPresence',
  'An agent goes online, away or offline.',
  { agent: AgentId, presence: PresenceSchema },
);

/** Each command's schema, by its `type`, in the order the docs list them. */
export const COMMAND_SCHEMAS = {
  StartConversation: StartConversationSchema,
  SendMessage: SendMessageSchema,
  MarkRead: MarkReadSchema,
  Escalate: EscalateSchema,
  Snooze: SnoozeSchema,
  SnoozeExpired: SnoozeExpiredSchema,
  Transfer: TransferSchema,
  Tag: TagSchema,
  Close: CloseSchema,
  AnswerSurvey: AnswerSurveySchema,
  BlockVisitor: BlockVisitorSchema,
  SetVisitorPresence: SetVisitorPresenceSchema,
  RecordPageView: RecordPageViewSchema,
  SetAgentPresence: SetAgentPresenceSchema,
} as const satisfies Record<Command['type'], TObject>;

/** The command types, in the order of {@link COMMAND_SCHEMAS}. */
export const COMMAND_TYPES = Object.keys(COMMAND_SCHEMAS) as readonly Command['type'][];

/** Any command, told apart by `type`. */
export const CommandSchema = Discriminated('type', Object.values(COMMAND_SCHEMAS), {
  title: 'Command',
  description:
    'A command to Parley, told apart by `type`. Every command carries an `id` chosen by its sender: applying it twice changes nothing.',
});

// The schemas describe actors/events.ts's Command exactly: a field added, removed, renamed or
// retyped on one side only fails `tsc` here.
type Plain<T> = T extends readonly (infer U)[]
  ? Plain<U>[]
  : T extends object
    ? { -readonly [K in keyof T]: Plain<T[K]> }
    : T;
type Same<A, B> =
  (<X>() => X extends A ? 1 : 2) extends <X>() => X extends B ? 1 : 2 ? true : false;
type Assert<T extends true> = T;
export type CommandSchemaIsCommand = Assert<
  Same<Plain<Static<typeof CommandSchema>>, Plain<Command>>
>;

// ─── Examples, as docs/integration.md shows them ────────────────────────────────────────────

/** One example per command type, narrowed to that type. */
export type CommandExamples = { readonly [K in Command['type']]: Extract<Command, { type: K }> };

/** Complete examples: every field a sender may set (ids match config/default.yaml). */
export const COMMAND_EXAMPLES: CommandExamples = {
  StartConversation: {
    type: 'StartConversation',
    id: '0b8e6f2c-3c1d-4e55-9a57-7d3f7c1a9e21',
    conversation: 'c-7f3a9c2e',
    visitor: 'v-51d0b8',
    rule: 'pro-tv-pages',
    visitorOnline: true,
    message: {
      id: 'm-visitor-1',
      text: 'Hello, my new TV has no sound over HDMI. Can you help?',
      attachments: [
        {
          kind: 'image',
          ref: 'https://cdn.shop.example/uploads/7f3a9c2e/settings.jpg',
          name: 'settings.jpg',
          mimeType: 'image/jpeg',
          sizeBytes: 248_113,
        },
      ],
    },
  },
  SendMessage: {
    type: 'SendMessage',
    id: '5d1c7a90-8f0e-4b2b-b1f4-2a6c0e9d4f37',
    conversation: 'c-7f3a9c2e',
    author: { kind: 'agent', id: 'alice' },
    message: {
      id: 'm-alice-1',
      text: 'Here is the setup guide, and an offer on the matching soundbar.',
      attachments: [
        {
          kind: 'file',
          ref: 'https://cdn.shop.example/guides/tv-setup.pdf',
          name: 'tv-setup.pdf',
          mimeType: 'application/pdf',
          sizeBytes: 1_482_007,
        },
        { kind: 'offer', ref: 'offer-soundbar-2024', name: 'Soundbar -20%' },
      ],
    },
  },
  MarkRead: {
    type: 'MarkRead',
    id: 'a3f9e2d4-1b7c-4f0a-8e6d-5c2b9a1f7e30',
    conversation: 'c-7f3a9c2e',
    visitor: 'v-51d0b8',
  },
  Escalate: {
    type: 'Escalate',
    id: '7e2d4c1b-9a3f-4e8d-b6c0-1f5a2e9d3c48',
    conversation: 'c-7f3a9c2e',
  },
  Snooze: {
    type: 'Snooze',
    id: 'c1b9f3e7-2d4a-4c6e-9f8b-3a7d5e1c0b92',
    conversation: 'c-7f3a9c2e',
    agent: 'alice',
    durationMs: 3 * 60 * 60 * 1000,
  },
  SnoozeExpired: {
    type: 'SnoozeExpired',
    id: 'snooze-c-7f3a9c2e-1767268800000',
    conversation: 'c-7f3a9c2e',
    until: 1_767_268_800_000,
  },
  Transfer: {
    type: 'Transfer',
    id: 'e4a7c2f9-6b1d-4e3a-8c5f-9d2b7e0a1c63',
    conversation: 'c-7f3a9c2e',
    agent: 'alice',
    to: { group: 'orders' },
  },
  Tag: {
    type: 'Tag',
    id: '2f8d6b3e-7c9a-4d1f-a5e2-8b4c1d7f9e05',
    conversation: 'c-7f3a9c2e',
    agent: 'alice',
    tags: ['hdmi', 'sound'],
  },
  Close: {
    type: 'Close',
    id: '9c3e1a7f-4b2d-4f8e-b0a6-6d9f2c5e8b14',
    conversation: 'c-7f3a9c2e',
    by: { agent: 'alice' },
    tags: ['solved'],
  },
  AnswerSurvey: {
    type: 'AnswerSurvey',
    id: '6a1f8d3c-2e9b-4c7a-9d4e-0b5f3a8c2e71',
    conversation: 'c-7f3a9c2e',
    visitor: 'v-51d0b8',
    csat: 5,
    nps: 9,
    comment: 'Quick and friendly, thank you!',
  },
  BlockVisitor: {
    type: 'BlockVisitor',
    id: 'd8b2e5f1-3a7c-4e9d-8f1b-4c6a0d2e7f59',
    conversation: 'c-7f3a9c2e',
    agent: 'alice',
    reason: 'Repeated insults after two warnings.',
  },
  SetVisitorPresence: {
    type: 'SetVisitorPresence',
    id: '3b7f1c9e-5d2a-4a8f-b3e6-7e1d4c9a0f26',
    conversation: 'c-7f3a9c2e',
    online: false,
  },
  RecordPageView: {
    type: 'RecordPageView',
    id: '8e4b2d6f-0a3c-4f7e-9b1d-5c8a2e6f0d43',
    conversation: 'c-7f3a9c2e',
    url: 'https://shop.example/tv/oled-55',
    title: 'OLED 55" – Shop',
  },
  SetAgentPresence: {
    type: 'SetAgentPresence',
    id: 'f0c6a2e8-1d5b-4b9f-a7c3-2e8d6f4b1a97',
    agent: 'alice',
    presence: 'online',
  },
};

/** Examples with only the fields a command needs. */
export const MINIMAL_COMMAND_EXAMPLES: CommandExamples = {
  StartConversation: {
    type: 'StartConversation',
    id: '0b8e6f2c-3c1d-4e55-9a57-7d3f7c1a9e21',
    conversation: 'c-7f3a9c2e',
    visitor: 'v-51d0b8',
    rule: 'everyone',
  },
  SendMessage: {
    type: 'SendMessage',
    id: '5d1c7a90-8f0e-4b2b-b1f4-2a6c0e9d4f37',
    conversation: 'c-7f3a9c2e',
    author: { kind: 'visitor', id: 'v-51d0b8' },
    message: { text: 'Is anyone there?' },
  },
  MarkRead: COMMAND_EXAMPLES.MarkRead,
  Escalate: COMMAND_EXAMPLES.Escalate,
  Snooze: {
    type: 'Snooze',
    id: 'c1b9f3e7-2d4a-4c6e-9f8b-3a7d5e1c0b92',
    conversation: 'c-7f3a9c2e',
    agent: 'alice',
  },
  SnoozeExpired: COMMAND_EXAMPLES.SnoozeExpired,
  Transfer: {
    type: 'Transfer',
    id: 'e4a7c2f9-6b1d-4e3a-8c5f-9d2b7e0a1c63',
    conversation: 'c-7f3a9c2e',
    agent: 'alice',
    to: { agent: 'bruno' },
  },
  Tag: {
    type: 'Tag',
    id: '2f8d6b3e-7c9a-4d1f-a5e2-8b4c1d7f9e05',
    conversation: 'c-7f3a9c2e',
    agent: 'alice',
    tags: ['sound'],
  },
  Close: {
    type: 'Close',
    id: '9c3e1a7f-4b2d-4f8e-b0a6-6d9f2c5e8b14',
    conversation: 'c-7f3a9c2e',
    by: { visitor: 'v-51d0b8' },
  },
  AnswerSurvey: {
    type: 'AnswerSurvey',
    id: '6a1f8d3c-2e9b-4c7a-9d4e-0b5f3a8c2e71',
    conversation: 'c-7f3a9c2e',
    visitor: 'v-51d0b8',
    csat: 4,
  },
  BlockVisitor: {
    type: 'BlockVisitor',
    id: 'd8b2e5f1-3a7c-4e9d-8f1b-4c6a0d2e7f59',
    conversation: 'c-7f3a9c2e',
    agent: 'alice',
  },
  SetVisitorPresence: COMMAND_EXAMPLES.SetVisitorPresence,
  RecordPageView: { ...COMMAND_EXAMPLES.RecordPageView, title: '' },
  SetAgentPresence: COMMAND_EXAMPLES.SetAgentPresence,
};

// ─── JSON Schemas, for docs ──────────────────────────────────────────────────────────────────

/**
 * The JSON Schema (draft-07, with OpenAPI's `discriminator`) of each command by its type, and of
 * any command as `command`, each with its examples. docs/schemas/ holds them, written by
 * scripts/command-schemas.ts.
 */
export function commandJsonSchemas(): Record<Command['type'] | 'command', Record<string, unknown>> {
  const json = (schema: TSchema, examples: readonly Command[]): Record<string, unknown> => ({
    $schema: 'http://json-schema.org/draft-07/schema#',
    ...(JSON.parse(JSON.stringify(schema)) as Record<string, unknown>),
    examples: JSON.parse(JSON.stringify(examples)) as unknown[],
  });
  const schemas: Record<string, Record<string, unknown>> = {
    command: json(CommandSchema, Object.values(COMMAND_EXAMPLES)),
  };
  for (const type of COMMAND_TYPES) {
    schemas[type] = json(COMMAND_SCHEMAS[type], [
      MINIMAL_COMMAND_EXAMPLES[type],
      COMMAND_EXAMPLES[type],
    ]);
  }
  return schemas as Record<Command['type'] | 'command', Record<string, unknown>>;
}

// ─── Parsing ─────────────────────────────────────────────────────────────────────────────────

/** One thing wrong with a command: the field, as `message.attachments[0].ref`, and what. */
export interface CommandProblem {
  /** Empty for the command as a whole. For an unknown field, the unknown field itself. */
  readonly path: string;
  readonly message: string;
}

/**
 * Decodes and validates a command from outside: bytes (UTF-8 JSON), a JSON string, or an
 * already parsed value. Throws a ParleyError PARLEY_ERR_INVALID_COMMAND whose message names each
 * field and what is wrong with it, and whose `details` lists them as {@link CommandProblem}s.
 * When `type` names a known command, only that command's schema is reported against.
 */
export function parseCommand(input: Uint8Array | string | unknown): Command {
  const value = decode(input);
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    fail([problem('', `a command must be a JSON object, got ${describe(value)}`)]);
  }
  const validate = commandValidator();
  if (validate(value)) return value as Command;
  fail(problemsOf(validate.errors ?? []));
}

/** One decoder for every call: making one costs more than decoding a command. */
const utf8 = new TextDecoder('utf-8', { fatal: true });

function decode(input: unknown): unknown {
  let text: string;
  if (input instanceof Uint8Array) {
    try {
      text = utf8.decode(input);
    } catch (error) {
      fail([problem('', 'the payload is not valid UTF-8')], error);
    }
  } else if (typeof input === 'string') {
    text = input;
  } else {
    return input;
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    const why = text.trim() === '' ? 'the payload is empty' : (error as Error).message;
    fail([problem('', `not valid JSON: ${why}`)], error);
  }
}

interface Problem extends CommandProblem {
  /** The sentence in the error's message. */
  readonly line: string;
}

function problem(path: string, message: string, line?: string): Problem {
  return { path, message, line: line ?? (path === '' ? message : `${path}: ${message}`) };
}

function fail(problems: readonly Problem[], cause?: unknown): never {
  throw new ParleyError('PARLEY_ERR_INVALID_COMMAND', [problems.map((p) => p.line).join('; ')], {
    details: problems.map(({ path, message }) => ({ path, message })),
    ...(cause === undefined ? {} : { cause }),
  });
}

let compiled: ValidateFunction | undefined;

function commandValidator(): ValidateFunction {
  compiled ??= new Ajv({
    strict: true,
    allErrors: true,
    verbose: true,
    discriminator: true,
  }).compile(CommandSchema);
  return compiled;
}

// ─── ajv's errors, in words an integrator can act on ─────────────────────────────────────────

function problemsOf(errors: readonly ErrorObject[]): Problem[] {
  const problems: Problem[] = [];
  for (const p of translate(errors)) {
    if (!problems.some((q) => q.line === p.line)) problems.push(p);
  }
  return problems;
}

/** Problems of ajv's errors; errors inside a union (`anyOf`) are reported through that union. */
function translate(errors: readonly ErrorObject[]): Problem[] {
  const unions = errors.filter((e) => e.keyword === 'anyOf');
  const inUnion = (e: ErrorObject, union: ErrorObject) =>
    e.schemaPath.startsWith(`${union.schemaPath}/`);
  const own = errors.filter((e) => !unions.some((u) => inUnion(e, u)));
  // A value of the wrong type is reported as that, not as everything else it then fails.
  const typeErrorAt = new Set(own.filter((e) => e.keyword === 'type').map((e) => e.instancePath));
  const problems: Problem[] = [];
  for (const error of own) {
    if (typeErrorAt.has(error.instancePath) && error.keyword !== 'type') continue;
    if (
      ruleSentence(error) &&
      [...typeErrorAt].some((at) => at.startsWith(`${error.instancePath}/`))
    ) {
      continue;
    }
    if (error.keyword === 'anyOf') {
      problems.push(
        ...unionProblems(
          error,
          errors.filter((e) => inUnion(e, error)),
        ),
      );
    } else {
      const p = keywordProblem(error);
      if (p) problems.push(p);
    }
  }
  return problems;
}

/**
 * A union failed. A rule (`$comment`) reports its sentence. Otherwise, when one branch matched
 * the shape and failed only deeper down, its errors are the problem; else the shape is.
 */
function unionProblems(union: ErrorObject, inner: readonly ErrorObject[]): Problem[] {
  const path = pointerToPath(union.instancePath);
  const rule = ruleSentence(union);
  if (rule) return [problem(formatPath(path), rule)];
  const branches = (union.schema ?? []) as Record<string, unknown>[];
  for (const [index] of branches.entries()) {
    const own = inner.filter((e) => e.schemaPath.startsWith(`${union.schemaPath}/${index}/`));
    if (own.length > 0 && own.every((e) => e.instancePath.length > union.instancePath.length)) {
      return translate(own);
    }
  }
  const fields = branches.flatMap((branch) => Object.keys((branch.properties ?? {}) as object));
  const data = union.data;
  const got =
    data !== null && typeof data === 'object' && !Array.isArray(data)
      ? Object.keys(data).length === 0
        ? 'an empty object'
        : `fields ${Object.keys(data).join(', ')}`
      : describe(data);
  return [
    problem(
      formatPath(path),
      `must be an object with exactly one of the fields ${fields.join(', ')}, got ${got}`,
    ),
  ];
}

/** The sentence of a failed {@link Rule}, if `error` is one. */
function ruleSentence(error: ErrorObject): string | undefined {
  const parent = (error.parentSchema ?? {}) as Record<string, unknown>;
  return error.keyword === 'anyOf' && typeof parent.$comment === 'string'
    ? parent.$comment
    : undefined;
}

const PATTERN_HINTS: Record<string, string> = {
  [TOKEN_PATTERN]: 'must be 1 to 128 letters, digits, "_" or "-" (no dots, spaces or wildcards)',
  [CLIENT_ID_PATTERN]: 'must be 1 to 128 printable ASCII characters without spaces',
  [ID_PATTERN]: 'must be a lower-case id (letters a-z, digits and "-", not starting with "-")',
  [MEDIA_TYPE_PATTERN]: 'must be a media type such as image/png',
};

function keywordProblem(error: ErrorObject): Problem | undefined {
  const path = pointerToPath(error.instancePath);
  const at = formatPath(path);
  const params = error.params as Record<string, unknown>;
  const parent = (error.parentSchema ?? {}) as Record<string, unknown>;
  switch (error.keyword) {
    case 'required':
      return problem(formatPath([...path, String(params.missingProperty)]), 'is required');
    case 'additionalProperties': {
      const field = String(params.additionalProperty);
      const allowed = `allowed here: ${Object.keys((parent.properties ?? {}) as object).join(', ')}`;
      const where = at === '' ? '' : ` at ${at}`;
      return problem(
        formatPath([...path, field]),
        `unknown field; ${allowed}`,
        `unknown field ${JSON.stringify(field)}${where} (${allowed})`,
      );
    }
    case 'type':
      return problem(
        at,
        `must be ${TYPE_NAMES[String(params.type)] ?? params.type}, got ${describe(error.data)}`,
      );
    case 'discriminator': {
      const tag = String(params.tag);
      const values = ((parent.oneOf ?? []) as { properties: Record<string, { const: string }> }[])
        .map((branch) => branch.properties[tag]?.const)
        .join(', ');
      return problem(
        formatPath([...path, tag]),
        params.tagValue === undefined
          ? `is required (one of ${values})`
          : `must be one of ${values}, got ${show(params.tagValue)}`,
      );
    }
    case 'pattern':
      if (parent.pattern === NOT_BLANK_PATTERN) return problem(at, 'must not be blank');
      return problem(
        at,
        `${PATTERN_HINTS[String(parent.pattern)] ?? `must match ${String(parent.pattern)}`}, got ${show(error.data)}`,
      );
    case 'minLength':
      return problem(
        at,
        params.limit === 1 ? 'must not be empty' : `must be at least ${params.limit} characters`,
      );
    case 'maxLength':
      return problem(at, `must be at most ${params.limit} characters`);
    case 'minimum':
      return problem(at, `must be at least ${params.limit}, got ${show(error.data)}`);
    case 'maximum':
      return problem(at, `must be at most ${params.limit}, got ${show(error.data)}`);
    case 'minItems':
      return problem(
        at,
        params.limit === 1 ? 'must not be empty' : `must have at least ${params.limit} items`,
      );
    case 'maxItems':
      return problem(
        at,
        `must have at most ${params.limit} items, got ${(error.data as unknown[]).length}`,
      );
    case 'enum':
      return problem(
        at,
        `must be one of ${(params.allowedValues as unknown[]).join(', ')}, got ${show(error.data)}`,
      );
    case 'if':
      return undefined;
    default:
      return problem(at, error.message ?? `fails ${error.keyword}`);
  }
}

const TYPE_NAMES: Record<string, string> = {
  object: 'an object',
  array: 'an array',
  string: 'a string',
  integer: 'an integer',
  number: 'a number',
  boolean: 'true or false',
};

function describe(data: unknown): string {
  if (data === null) return 'null';
  if (data === undefined) return 'nothing';
  if (Array.isArray(data)) return 'an array';
  if (typeof data === 'object') return 'an object';
  return show(data);
}

/** A value as JSON, cut short: messages end up in logs. */
function show(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}…` : text;
}
