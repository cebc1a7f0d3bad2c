// Loads the configuration file a person edits (YAML or JSON) and turns it into the actors'
// Settings: checked against the schema, then for references and consistency, every problem reported.

import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Static, Type } from '@sinclair/typebox';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { type Document, isAlias, isMap, isSeq, LineCounter, parseDocument } from 'yaml';
import { sameAnswer } from '../actors/routing.ts';
import {
  type AgentSettings,
  type AnswerRoute,
  type BotQuestion,
  type BotSettings,
  type CannedAnswer,
  DEFAULT_AGENT_SLOTS,
  GROUP_DEFAULTS,
  type OverflowPolicy,
  type RoutingGroupSettings,
  type RoutingRule,
  type Settings,
  type SnoozeSettings,
  type WidgetSettings,
} from '../actors/settings.ts';
import {
  DURATION_HINT,
  DURATION_PATTERN,
  durationProblem,
  formatDuration,
  parseDuration,
} from './duration.ts';
import { ParleyError } from './errors.ts';
import { formatPath, pointerToPath, type Segment } from './json-path.ts';

// ─── The file's schema ───────────────────────────────────────────────────────────────────────

/** Ids are lower-case tokens: they become NATS subject tokens and KV keys. */
export const ID_PATTERN = '^[a-z0-9][a-z0-9-]*$';
const ID_MAX_LENGTH = 64;

const closed = { additionalProperties: false } as const;

const Id = (description: string) =>
  Type.String({ pattern: ID_PATTERN, maxLength: ID_MAX_LENGTH, description: `${description}.` });
const Ref = (description: string) => Type.String({ minLength: 1, description: `${description}.` });
const Text = (description: string) => Type.String({ minLength: 1, description: `${description}.` });
const Duration = (description: string) =>
  Type.Unsafe<number | string>({
    type: ['integer', 'string'],
    minimum: 0,
    pattern: DURATION_PATTERN,
    description: `${description} (${DURATION_HINT}).`,
  });
const PositiveInteger = (description: string) =>
  Type.Integer({ minimum: 1, description: `${description}.` });

const OfflinePolicySchema = Type.Unsafe<'keep' | 'return'>({
  type: 'string',
  enum: ['keep', 'return'],
  description:
    "What happens to an agent's assigned conversations when the agent goes offline: keep them, or return them to the waiting list.",
});

const SnoozeFileSchema = Type.Object(
  {
    default: Type.Optional(Duration('Snooze used when the agent does not choose one')),
    min: Type.Optional(Duration('Shortest snooze an agent may choose')),
    max: Type.Optional(Duration('Longest snooze an agent may choose')),
  },
  { ...closed, description: 'Snooze durations; each key falls back to `defaults.snooze`.' },
);

const OverflowToBot = Type.Object({ kind: Type.Literal('bot') }, closed);
const OverflowToGroup = Type.Object(
  { kind: Type.Literal('group'), group: Ref('The routing group that takes the overflow') },
  closed,
);
const OverflowFileSchema = Type.Unsafe<
  Static<typeof OverflowToBot> | Static<typeof OverflowToGroup>
>({
  type: 'object',
  oneOf: [OverflowToBot, OverflowToGroup],
  discriminator: { propertyName: 'kind' },
  description:
    'Where a conversation goes when the waiting list is full: `{ kind: bot }` (the bot keeps it) or `{ kind: group, group: <id> }`.',
});

/** The fields a routing group may override, and `defaults` may set for every group. */
const groupFields = {
  cap: Type.Optional(PositiveInteger('Seats of the waiting list (waiting plus snoozed)')),
  snooze: Type.Optional(SnoozeFileSchema),
  automaticMessage: Type.Optional(Text('First message of every conversation routed to the group')),
  fullMessage: Type.Optional(Text('What the bot says when the waiting list is full')),
  offlinePolicy: Type.Optional(OfflinePolicySchema),
  typicalReply: Type.Optional(
    Duration('Typical reply time shown until the group has measured its own'),
  ),
  orderingWindow: Type.Optional(
    Duration('Conversations that became ready within this window count as the same age'),
  ),
};

const DefaultsFileSchema = Type.Object(
  {
    ...groupFields,
    slots: Type.Optional(PositiveInteger("An agent's slots when the agent does not set them")),
  },
  { ...closed, description: 'Values for every routing group and agent that leaves them out.' },
);

const GroupFileSchema = Type.Object(
  {
    id: Id('Routing group id: a lower-case token'),
    name: Text('Name shown to people'),
    ...groupFields,
    overflow: Type.Optional(OverflowFileSchema),
    agents: Type.Optional(
      Type.Array(Ref('Agent id'), {
        description:
          'Agents of the group, in addition to those listing the group in their own `groups`.',
      }),
    ),
  },
  closed,
);

const QuestionFileSchema = Type.Object(
  {
    id: Id('Question id, referred to by `target.byAnswer`'),
    text: Text('What the bot asks'),
    choices: Type.Optional(
      Type.Array(Text('A choice'), {
        minItems: 1,
        description:
          'When present, the answer must be one of these (ignoring case and surrounding spaces).',
      }),
    ),
  },
  closed,
);

const RuleFileSchema = Type.Object(
  {
    id: Id('Routing rule id'),
    match: Type.Optional(
      Type.Object(
        {
          pages: Type.Optional(
            Type.Array(Text('URL pattern; `*` matches any run of characters'), {
              description: 'Pages where the rule applies; none: every page.',
            }),
          ),
          attributes: Type.Optional(
            Type.Record(Type.String(), Type.String(), {
              ...closed,
              description: 'Visitor attributes that must all be equal.',
            }),
          ),
        },
        { ...closed, description: 'Which visitors the rule applies to; none: everyone.' },
      ),
    ),
    showChatButton: Type.Optional(
      Type.Boolean({ description: 'Show the chat button (default true).' }),
    ),
    hideWhenFull: Type.Optional(
      Type.Boolean({
        description:
          "Hide the chat button while the target group's waiting list is full (default false).",
      }),
    ),
    bot: Type.Optional(
      Type.Object(
        {
          greeting: Type.Optional(Text('Said once, before the first question')),
          questions: Type.Optional(Type.Array(QuestionFileSchema)),
        },
        { ...closed, description: 'A bot that qualifies the conversation before it is routed.' },
      ),
    ),
    target: Type.Object(
      {
        group: Ref('The routing group that receives the conversation'),
        byAnswer: Type.Optional(
          Type.Array(
            Type.Object(
              {
                question: Ref('Question id of this rule'),
                answer: Text('The answer (ignoring case and surrounding spaces)'),
                group: Ref('The routing group for this answer'),
              },
              closed,
            ),
            {
              description:
                'Answers that send the conversation to another group; the first match wins.',
            },
          ),
        ),
      },
      closed,
    ),
  },
  closed,
);

const AgentFileSchema = Type.Object(
  {
    id: Id('Agent id'),
    name: Text('Name shown to people'),
    groups: Type.Optional(Type.Array(Ref('Routing group id'))),
    slots: Type.Optional(
      PositiveInteger('How many asynchronous conversations the agent may hold at once'),
    ),
  },
  closed,
);

const CannedAnswerFileSchema = Type.Object(
  {
    id: Id('Canned answer id'),
    title: Text('Title shown in the agent console'),
    text: Text('The text inserted into the conversation'),
    groups: Type.Optional(
      Type.Array(Ref('Routing group id'), {
        description: 'Groups whose agents may use it; none: every group.',
      }),
    ),
  },
  closed,
);

const WidgetFileSchema = Type.Object(
  {
    allowedOrigins: Type.Optional(
      Type.Array(
        Type.String({
          pattern: '^https?://[^/?#\\s]+$',
          description: 'An origin: scheme, host and port if not the default, no path.',
        }),
        {
          description:
            'Origins whose pages may embed the chat widget and call the visitor API from the browser (CORS); none: nowhere.',
        },
      ),
    ),
  },
  { ...closed, description: 'The chat widget.' },
);

/** The schema of the configuration file, as a person writes it. */
export const ConfigFileSchema = Type.Object(
  {
    $schema: Type.Optional(
      Type.String({ description: 'Path or URL of this schema, for editors.' }),
    ),
    defaults: Type.Optional(DefaultsFileSchema),
    groups: Type.Array(GroupFileSchema, {
      minItems: 1,
      description: 'Routing groups; at least one.',
    }),
    rules: Type.Optional(Type.Array(RuleFileSchema, { description: 'Routing rules.' })),
    agents: Type.Optional(Type.Array(AgentFileSchema, { description: 'Agents.' })),
    cannedAnswers: Type.Optional(
      Type.Array(CannedAnswerFileSchema, { description: 'Canned answers.' }),
    ),
    widget: Type.Optional(WidgetFileSchema),
  },
  {
    ...closed,
    title: 'Parley configuration',
    description:
      'Routing groups, routing rules, agents and canned answers. See docs/configuration.md.',
  },
);

/** The configuration file as a person writes it (durations as written, most fields optional). */
export type ConfigFile = Static<typeof ConfigFileSchema>;

/** The JSON Schema of the file (config/schema.json is this, written by scripts/config-schema.ts). */
export function configJsonSchema(): Record<string, unknown> {
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    ...(JSON.parse(JSON.stringify(ConfigFileSchema)) as Record<string, unknown>),
  };
}

// ─── The normalised output's schema (for HTTP and NATS payloads that carry Settings) ──────────

const SnoozeSettingsSchema = Type.Object(
  { defaultMs: Type.Integer(), minMs: Type.Integer(), maxMs: Type.Integer() },
  closed,
);

/** Settings as a TypeBox schema; its Static type is assignable to actors/settings.ts's Settings. */
export const SettingsSchema = Type.Object(
  {
    groups: Type.Array(
      Type.Object(
        {
          id: Type.String(),
          name: Type.String(),
          cap: Type.Integer({ minimum: 1 }),
          snooze: SnoozeSettingsSchema,
          overflow: Type.Union([
            Type.Object({ kind: Type.Literal('bot') }, closed),
            Type.Object({ kind: Type.Literal('group'), group: Type.String() }, closed),
          ]),
          automaticMessage: Type.String(),
          fullMessage: Type.String(),
          offlinePolicy: Type.Union([Type.Literal('keep'), Type.Literal('return')]),
          typicalReplyMs: Type.Integer(),
          orderingWindowMs: Type.Integer(),
        },
        closed,
      ),
    ),
    rules: Type.Array(
      Type.Object(
        {
          id: Type.String(),
          match: Type.Object(
            {
              pages: Type.Array(Type.String()),
              attributes: Type.Record(Type.String(), Type.String()),
            },
            closed,
          ),
          showChatButton: Type.Boolean(),
          hideWhenFull: Type.Boolean(),
          bot: Type.Optional(
            Type.Object(
              {
                greeting: Type.Optional(Type.String()),
                questions: Type.Array(
                  Type.Object(
                    {
                      id: Type.String(),
                      text: Type.String(),
                      choices: Type.Optional(Type.Array(Type.String())),
                    },
                    closed,
                  ),
                ),
              },
              closed,
            ),
          ),
          target: Type.Object(
            {
              group: Type.String(),
              byAnswer: Type.Array(
                Type.Object(
                  { question: Type.String(), answer: Type.String(), group: Type.String() },
                  closed,
                ),
              ),
            },
            closed,
          ),
        },
        closed,
      ),
    ),
    agents: Type.Array(
      Type.Object(
        {
          id: Type.String(),
          name: Type.String(),
          groups: Type.Array(Type.String()),
          slots: Type.Integer({ minimum: 1 }),
        },
        closed,
      ),
    ),
    cannedAnswers: Type.Array(
      Type.Object(
        {
          id: Type.String(),
          title: Type.String(),
          text: Type.String(),
          groups: Type.Array(Type.String()),
        },
        closed,
      ),
    ),
    widget: Type.Optional(Type.Object({ allowedOrigins: Type.Array(Type.String()) }, closed)),
  },
  closed,
);

// ─── Loading ─────────────────────────────────────────────────────────────────────────────────

/** config/default.yaml of this repository, wherever the process was started from. */
export const DEFAULT_CONFIG_PATH = fileURLToPath(
  new URL('../config/default.yaml', import.meta.url),
);

/** One thing wrong with a configuration. `path` is empty for syntax errors. */
export interface ConfigProblem {
  /** The field, as `groups[1].snooze.default`. */
  readonly path: string;
  readonly message: string;
  /** Where in the file (1-based), when the problem was found in a parsed file. */
  readonly line?: number;
  readonly column?: number;
}

/**
 * Which file {@link loadConfig} reads: `path` if given, else PARLEY_CONFIG, else the default;
 * `origin` says which, for messages.
 */
export function resolveConfigPath(
  path?: string,
  env: NodeJS.ProcessEnv = process.env,
): { path: string; origin: string } {
  if (path) return { path: resolve(path), origin: 'the path given' };
  if (env.PARLEY_CONFIG)
    return { path: resolve(env.PARLEY_CONFIG), origin: `PARLEY_CONFIG=${env.PARLEY_CONFIG}` };
  return { path: DEFAULT_CONFIG_PATH, origin: 'the default configuration' };
}

/**
 * Reads, parses and validates the configuration: `path`, else the PARLEY_CONFIG environment
 * variable, else config/default.yaml. Throws a ParleyError with a PARLEY_ERR_CONFIG_* code.
 */
export function loadConfig(path?: string, env: NodeJS.ProcessEnv = process.env): Settings {
  return loadConfigDocument(path, env).settings;
}

/** As {@link loadConfig}, with the document as written (what `parley config apply` stores). */
export function loadConfigDocument(
  path?: string,
  env: NodeJS.ProcessEnv = process.env,
): { document: ConfigFile; settings: Settings; path: string } {
  const file = resolveConfigPath(path, env);
  let text: string;
  try {
    text = readFileSync(file.path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      throw new ParleyError('PARLEY_ERR_CONFIG_NOT_FOUND', [file.path, `from ${file.origin}`], {
        details: { path: file.path, origin: file.origin },
        cause: error,
      });
    }
    throw new ParleyError('PARLEY_ERR_CONFIG_UNREADABLE', [file.path, (error as Error).message], {
      details: { path: file.path, origin: file.origin },
      cause: error,
    });
  }
  return { ...parseConfigDocument(text, file.path), path: file.path };
}

/**
 * Parses configuration text (YAML, of which JSON is a subset) and validates it. `source` names
 * the text in error messages (a file path). Problems carry line numbers.
 */
export function parseConfig(text: string, source: string): Settings {
  return parseConfigDocument(text, source).settings;
}

/** As {@link parseConfig}, with the document as written. */
export function parseConfigDocument(
  text: string,
  source: string,
): { document: ConfigFile; settings: Settings } {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: true });
  if (doc.errors.length > 0) {
    const problems = doc.errors.map((error) => ({
      path: '',
      message: error.message.trimEnd(),
      line: error.linePos?.[0].line,
      column: error.linePos?.[0].col,
    }));
    throw new ParleyError(
      'PARLEY_ERR_CONFIG_SYNTAX',
      [source, problems.map((problem) => indent(problem.message)).join('\n')],
      { details: problems },
    );
  }
  let value: unknown;
  try {
    value = doc.toJS();
  } catch (error) {
    const message = (error as Error).message;
    throw new ParleyError('PARLEY_ERR_CONFIG_SYNTAX', [source, indent(message)], {
      details: [{ path: '', message }],
      cause: error,
    });
  }
  const settings = check(value, source, (path) => {
    const offset = locate(doc, path);
    if (offset === undefined) return undefined;
    const { line, col } = lineCounter.linePos(offset);
    return { line, column: col };
  });
  return { document: value as ConfigFile, settings };
}

/**
 * Validates an already parsed configuration (the file's shape, {@link ConfigFile}) and returns
 * the normalised Settings. `source` names it in error messages.
 */
export function validateConfig(value: unknown, source: string): Settings {
  return check(value, source);
}

// ─── Validation ──────────────────────────────────────────────────────────────────────────────

type Path = readonly Segment[];
type Locator = (path: Path) => { line: number; column: number } | undefined;

class Problems {
  readonly list: ConfigProblem[] = [];
  constructor(private readonly locator?: Locator) {}

  add(path: Path, message: string): void {
    const text = formatPath(path);
    if (this.list.some((problem) => problem.path === text && problem.message === message)) return;
    const where = this.locator?.(path);
    this.list.push(where ? { path: text, message, ...where } : { path: text, message });
  }

  throwIfAny(source: string): void {
    if (this.list.length === 0) return;
    const sorted = this.list.every((problem) => problem.line !== undefined)
      ? [...this.list].sort(
          (a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0),
        )
      : this.list;
    const count = sorted.length === 1 ? '1 problem' : `${sorted.length} problems`;
    const lines = sorted.map(
      (problem) =>
        `  ${problem.line === undefined ? '' : `line ${problem.line}: `}${problem.path || '(top level)'}: ${problem.message}`,
    );
    throw new ParleyError('PARLEY_ERR_CONFIG_INVALID', [source, count, lines.join('\n')], {
      details: sorted,
    });
  }
}

let compiled: ValidateFunction | undefined;

function fileValidator(): ValidateFunction {
  compiled ??= new Ajv({
    allErrors: true,
    verbose: true,
    discriminator: true,
    allowUnionTypes: true,
  }).compile(ConfigFileSchema);
  return compiled;
}

function check(value: unknown, source: string, locator?: Locator): Settings {
  const problems = new Problems(locator);
  if (value === null || value === undefined) {
    problems.add([], 'the configuration is empty; it must at least list `groups`');
    problems.throwIfAny(source);
  }
  const validate = fileValidator();
  if (!validate(value)) {
    reportSchemaErrors(validate.errors ?? [], problems);
    problems.throwIfAny(source);
  }
  const settings = normalise(value as ConfigFile, problems);
  problems.throwIfAny(source);
  return settings;
}

/** Turns ajv's errors into problems a person can act on. */
function reportSchemaErrors(errors: readonly ErrorObject[], problems: Problems): void {
  const typeErrorAt = new Set(
    errors.filter((error) => error.keyword === 'type').map((error) => error.instancePath),
  );
  for (const error of errors) {
    const path = pointerToPath(error.instancePath);
    const parent = (error.parentSchema ?? {}) as Record<string, unknown>;
    if (typeErrorAt.has(error.instancePath) && error.keyword !== 'type') continue;
    if (parent.pattern === DURATION_PATTERN) {
      problems.add(path, durationProblem(error.data) ?? `invalid duration (${DURATION_HINT})`);
      continue;
    }
    const params = error.params as Record<string, unknown>;
    switch (error.keyword) {
      case 'required':
        problems.add([...path, String(params.missingProperty)], 'is required');
        break;
      case 'additionalProperties': {
        const allowed = Object.keys((parent.properties ?? {}) as object);
        problems.add(
          [...path, String(params.additionalProperty)],
          `unknown field; allowed here: ${allowed.join(', ')}`,
        );
        break;
      }
      case 'type':
        problems.add(path, typeMessage(String(params.type), error.data));
        break;
      case 'pattern':
        problems.add(
          path,
          parent.pattern === ID_PATTERN
            ? `must be a lower-case id (letters a-z, digits and '-', not starting with '-'), got ${show(error.data)}`
            : `must match ${String(parent.pattern)}, got ${show(error.data)}`,
        );
        break;
      case 'minimum':
        problems.add(path, `must be at least ${String(params.limit)}, got ${show(error.data)}`);
        break;
      case 'minLength':
        problems.add(path, 'must not be empty');
        break;
      case 'maxLength':
        problems.add(path, `must be at most ${String(params.limit)} characters long`);
        break;
      case 'minItems':
        problems.add(
          path,
          params.limit === 1 ? 'must not be empty' : `must list at least ${String(params.limit)}`,
        );
        break;
      case 'enum':
        problems.add(
          path,
          `must be one of ${(params.allowedValues as unknown[]).join(', ')}, got ${show(error.data)}`,
        );
        break;
      case 'discriminator': {
        const kinds = ((parent.oneOf ?? []) as { properties: { kind: { const: string } } }[])
          .map((branch) => branch.properties.kind.const)
          .join(', ');
        problems.add(
          [...path, String(params.tag)],
          params.tagValue === undefined
            ? `is required (one of ${kinds})`
            : `must be one of ${kinds}, got ${show(params.tagValue)}`,
        );
        break;
      }
      default:
        problems.add(path, error.message ?? `fails ${error.keyword}`);
    }
  }
}

const TYPE_NAMES: Record<string, string> = {
  object: 'a mapping of fields',
  array: 'a list',
  string: 'a string',
  integer: 'a whole number',
  number: 'a number',
  boolean: 'true or false',
};

function typeMessage(expected: string, data: unknown): string {
  const wanted = expected
    .split(',')
    .map((type) => TYPE_NAMES[type] ?? type)
    .join(' or ');
  const quote =
    expected === 'string' && (typeof data === 'number' || typeof data === 'boolean')
      ? `; quote it: "${String(data)}"`
      : '';
  return `must be ${wanted}, got ${describe(data)}${quote}`;
}

function describe(data: unknown): string {
  if (data === null) return 'nothing (null)';
  if (Array.isArray(data)) return 'a list';
  if (typeof data === 'object') return 'a mapping';
  if (typeof data === 'number' && !Number.isInteger(data)) return `the number ${data}`;
  return show(data);
}

// ─── Normalisation and the checks beyond the schema ──────────────────────────────────────────

type GroupFile = Static<typeof GroupFileSchema>;
type RuleFile = Static<typeof RuleFileSchema>;
type CannedAnswerFile = Static<typeof CannedAnswerFileSchema>;
type SnoozeFile = Static<typeof SnoozeFileSchema>;
type GroupDefaults = Omit<RoutingGroupSettings, 'id' | 'name'>;

/** What the checks share: where problems go and the ids that references may name. */
interface Context {
  readonly problems: Problems;
  readonly groupIds: ReadonlySet<string>;
  readonly agentIds: ReadonlySet<string>;
}

function normalise(file: ConfigFile, problems: Problems): Settings {
  const ctx: Context = {
    problems,
    groupIds: uniqueIds(file.groups, ['groups'], problems),
    agentIds: uniqueIds(file.agents ?? [], ['agents'], problems),
  };
  uniqueIds(file.rules ?? [], ['rules'], problems);
  uniqueIds(file.cannedAnswers ?? [], ['cannedAnswers'], problems);

  const base = groupDefaults(file.defaults ?? {}, problems);
  const groups = file.groups.map((group, i) => groupSettings(group, ['groups', i], base, ctx));
  reportOverflowCycles(groups, problems);
  return {
    groups,
    rules: (file.rules ?? []).map((rule, i) => routingRule(rule, ['rules', i], ctx)),
    agents: agentSettings(file, file.defaults?.slots ?? DEFAULT_AGENT_SLOTS, ctx),
    cannedAnswers: (file.cannedAnswers ?? []).map((answer, i) =>
      cannedAnswer(answer, ['cannedAnswers', i], ctx),
    ),
    ...(file.widget ? { widget: widgetSettings(file.widget, problems) } : {}),
  };
}

/** The widget's origins, each exactly as a browser sends it in `Origin` (no path, no slash). */
function widgetSettings(w: NonNullable<ConfigFile['widget']>, problems: Problems): WidgetSettings {
  const origins = w.allowedOrigins ?? [];
  origins.forEach((origin, i) => {
    let parsed: URL | undefined;
    try {
      parsed = new URL(origin);
    } catch {
      parsed = undefined;
    }
    if (parsed?.origin !== origin) {
      problems.add(
        ['widget', 'allowedOrigins', i],
        `must be an origin as browsers send it, such as https://shop.example (lower case, no path, no default port), got ${show(origin)}${parsed ? `; did you mean ${parsed.origin}?` : ''}`,
      );
    }
  });
  noRepeats(origins, ['widget', 'allowedOrigins'], 'origin', problems);
  return { allowedOrigins: [...origins] };
}

/** GROUP_DEFAULTS overridden by the file's `defaults`. */
function groupDefaults(d: NonNullable<ConfigFile['defaults']>, problems: Problems): GroupDefaults {
  const at = ['defaults'] as const;
  return {
    cap: d.cap ?? GROUP_DEFAULTS.cap,
    snooze: snooze(d.snooze, GROUP_DEFAULTS.snooze, [...at, 'snooze'], problems),
    overflow: GROUP_DEFAULTS.overflow,
    automaticMessage: d.automaticMessage ?? GROUP_DEFAULTS.automaticMessage,
    fullMessage: d.fullMessage ?? GROUP_DEFAULTS.fullMessage,
    offlinePolicy: d.offlinePolicy ?? GROUP_DEFAULTS.offlinePolicy,
    typicalReplyMs:
      duration(d.typicalReply, [...at, 'typicalReply'], problems) ?? GROUP_DEFAULTS.typicalReplyMs,
    orderingWindowMs:
      duration(d.orderingWindow, [...at, 'orderingWindow'], problems) ??
      GROUP_DEFAULTS.orderingWindowMs,
  };
}

function groupSettings(
  g: GroupFile,
  at: Path,
  base: GroupDefaults,
  ctx: Context,
): RoutingGroupSettings {
  let overflow: OverflowPolicy = base.overflow;
  if (g.overflow?.kind === 'group') {
    overflow = { kind: 'group', group: g.overflow.group };
    if (g.overflow.group === g.id) {
      ctx.problems.add(
        [...at, 'overflow', 'group'],
        `a group cannot overflow into itself ('${g.id}')`,
      );
    } else {
      reference('group', g.overflow.group, [...at, 'overflow', 'group'], ctx);
    }
  } else if (g.overflow?.kind === 'bot') {
    overflow = { kind: 'bot' };
  }
  const agents = g.agents ?? [];
  noRepeats(agents, [...at, 'agents'], 'agent', ctx.problems);
  for (const [j, agent] of agents.entries()) reference('agent', agent, [...at, 'agents', j], ctx);
  return {
    id: g.id,
    name: g.name,
    cap: g.cap ?? base.cap,
    snooze: snooze(g.snooze, base.snooze, [...at, 'snooze'], ctx.problems),
    overflow,
    automaticMessage: g.automaticMessage ?? base.automaticMessage,
    fullMessage: g.fullMessage ?? base.fullMessage,
    offlinePolicy: g.offlinePolicy ?? base.offlinePolicy,
    typicalReplyMs:
      duration(g.typicalReply, [...at, 'typicalReply'], ctx.problems) ?? base.typicalReplyMs,
    orderingWindowMs:
      duration(g.orderingWindow, [...at, 'orderingWindow'], ctx.problems) ?? base.orderingWindowMs,
  };
}

function routingRule(r: RuleFile, at: Path, ctx: Context): RoutingRule {
  let bot: BotSettings | undefined;
  if (r.bot) {
    const questionsIn = r.bot.questions ?? [];
    uniqueIds(questionsIn, [...at, 'bot', 'questions'], ctx.problems);
    const questions = questionsIn.map((q, k): BotQuestion => {
      if (q.choices === undefined) return { id: q.id, text: q.text };
      const choicesAt = [...at, 'bot', 'questions', k, 'choices'];
      noRepeats(q.choices, choicesAt, 'choice', ctx.problems, sameAnswer);
      return { id: q.id, text: q.text, choices: [...q.choices] };
    });
    bot = r.bot.greeting === undefined ? { questions } : { greeting: r.bot.greeting, questions };
  }
  reference('group', r.target.group, [...at, 'target', 'group'], ctx);
  const routes = r.target.byAnswer ?? [];
  const byAnswer = routes.map((route, k): AnswerRoute => {
    const routeAt = [...at, 'target', 'byAnswer', k];
    const question = bot?.questions.find((q) => q.id === route.question);
    if (!bot) {
      ctx.problems.add(
        [...routeAt, 'question'],
        `this rule has no bot to ask question '${route.question}'`,
      );
    } else if (!question) {
      const known = listOf(
        "this rule's questions",
        bot.questions.map((q) => q.id),
      );
      ctx.problems.add([...routeAt, 'question'], `unknown question '${route.question}'; ${known}`);
    } else if (question.choices && !question.choices.some((c) => sameAnswer(c, route.answer))) {
      ctx.problems.add(
        [...routeAt, 'answer'],
        `${show(route.answer)} is not a choice of question '${question.id}' (${question.choices.join(', ')})`,
      );
    }
    reference('group', route.group, [...routeAt, 'group'], ctx);
    const earlier = routes.findIndex(
      (other) => other.question === route.question && sameAnswer(other.answer, route.answer),
    );
    if (earlier < k) {
      ctx.problems.add(routeAt, `repeats target.byAnswer[${earlier}] (same question and answer)`);
    }
    return { question: route.question, answer: route.answer, group: route.group };
  });
  const rule: RoutingRule = {
    id: r.id,
    match: { pages: [...(r.match?.pages ?? [])], attributes: { ...r.match?.attributes } },
    showChatButton: r.showChatButton ?? true,
    hideWhenFull: r.hideWhenFull ?? false,
    target: { group: r.target.group, byAnswer },
  };
  return bot ? { ...rule, bot } : rule;
}

/** Agents, each a member of its own groups and of the groups listing it, in the order of `groups`. */
function agentSettings(file: ConfigFile, slots: number, ctx: Context): AgentSettings[] {
  return (file.agents ?? []).map((a, i) => {
    const own = a.groups ?? [];
    noRepeats(own, ['agents', i, 'groups'], 'group', ctx.problems);
    for (const [j, group] of own.entries())
      reference('group', group, ['agents', i, 'groups', j], ctx);
    const groups = file.groups
      .filter((g) => own.includes(g.id) || (g.agents ?? []).includes(a.id))
      .map((g) => g.id);
    return { id: a.id, name: a.name, groups: [...new Set(groups)], slots: a.slots ?? slots };
  });
}

function cannedAnswer(c: CannedAnswerFile, at: Path, ctx: Context): CannedAnswer {
  const groups = c.groups ?? [];
  noRepeats(groups, [...at, 'groups'], 'group', ctx.problems);
  for (const [j, group] of groups.entries()) reference('group', group, [...at, 'groups', j], ctx);
  return { id: c.id, title: c.title, text: c.text, groups: [...groups] };
}

/** Milliseconds of a duration field, undefined when the field is absent. */
function duration(
  value: number | string | undefined,
  at: Path,
  problems: Problems,
): number | undefined {
  if (value === undefined) return undefined;
  const problem = durationProblem(value);
  if (problem === undefined) return parseDuration(value);
  problems.add(at, problem);
  return 0;
}

function reference(kind: 'group' | 'agent', id: string, at: Path, ctx: Context): void {
  const ids = kind === 'group' ? ctx.groupIds : ctx.agentIds;
  if (!ids.has(id)) ctx.problems.add(at, `unknown ${kind} '${id}'; ${listOf(`the ${kind}s`, ids)}`);
}

/** Merges a snooze block over the inherited one and checks min <= default <= max. */
function snooze(
  own: SnoozeFile | undefined,
  inherited: SnoozeSettings,
  at: Path,
  problems: Problems,
): SnoozeSettings {
  const read = (key: 'default' | 'min' | 'max') => duration(own?.[key], [...at, key], problems);
  const mine = { default: read('default'), min: read('min'), max: read('max') };
  const merged = {
    default: mine.default ?? inherited.defaultMs,
    min: mine.min ?? inherited.minMs,
    max: mine.max ?? inherited.maxMs,
  };
  // Compare each pair only where this block sets one of the two: an inherited conflict is
  // reported once, where it was written.
  const shown = (key: keyof typeof merged) =>
    `snooze.${key} (${formatDuration(merged[key])}${mine[key] === undefined ? ', inherited' : ''})`;
  if (mine.min !== undefined && merged.min <= 0) {
    problems.add([...at, 'min'], 'must be more than 0');
  }
  if (merged.default < merged.min && (mine.default !== undefined || mine.min !== undefined)) {
    if (mine.default !== undefined) {
      problems.add(
        [...at, 'default'],
        `${formatDuration(merged.default)} must be at least ${shown('min')}`,
      );
    } else {
      problems.add(
        [...at, 'min'],
        `${formatDuration(merged.min)} must be at most ${shown('default')}`,
      );
    }
  }
  if (merged.default > merged.max && (mine.default !== undefined || mine.max !== undefined)) {
    if (mine.default !== undefined) {
      problems.add(
        [...at, 'default'],
        `${formatDuration(merged.default)} must be at most ${shown('max')}`,
      );
    } else {
      problems.add(
        [...at, 'max'],
        `${formatDuration(merged.max)} must be at least ${shown('default')}`,
      );
    }
  }
  return { defaultMs: merged.default, minMs: merged.min, maxMs: merged.max };
}

/** Reports each loop of overflow targets once, at the first group of the loop in the file. */
function reportOverflowCycles(groups: readonly RoutingGroupSettings[], problems: Problems): void {
  const index = new Map<string, number>();
  groups.forEach((group, i) => {
    if (!index.has(group.id)) index.set(group.id, i);
  });
  const next = (id: string): string | undefined => {
    const overflow = groups[index.get(id) ?? -1]?.overflow;
    return overflow?.kind === 'group' && overflow.group !== id && index.has(overflow.group)
      ? overflow.group
      : undefined;
  };
  const done = new Set<string>();
  for (const start of groups) {
    const chain: string[] = [];
    let id: string | undefined = start.id;
    while (id !== undefined && !done.has(id) && !chain.includes(id)) {
      chain.push(id);
      id = next(id);
    }
    if (id !== undefined && chain.includes(id)) {
      const loop = chain.slice(chain.indexOf(id));
      const first = Math.min(...loop.map((member) => index.get(member) ?? 0));
      problems.add(
        ['groups', first, 'overflow', 'group'],
        `overflow chain loops: ${[...loop, id].join(' → ')}`,
      );
    }
    for (const member of chain) done.add(member);
  }
}

function uniqueIds(items: readonly { id: string }[], at: Path, problems: Problems): Set<string> {
  const first = new Map<string, number>();
  items.forEach((item, i) => {
    const earlier = first.get(item.id);
    if (earlier === undefined) first.set(item.id, i);
    else
      problems.add(
        [...at, i, 'id'],
        `duplicate id '${item.id}' (also ${formatPath([...at, earlier])})`,
      );
  });
  return new Set(first.keys());
}

/** Reports each value equal to an earlier one; `same` is how answers compare (the bot's way). */
function noRepeats(
  values: readonly string[],
  at: Path,
  what: string,
  problems: Problems,
  same?: (a: string, b: string) => boolean,
): void {
  const equal = same ?? ((a: string, b: string) => a === b);
  values.forEach((value, i) => {
    const earlier = values.findIndex((other) => equal(other, value));
    if (earlier < i) {
      const how = same ? ' (answers compare ignoring case and surrounding spaces)' : '';
      problems.add(
        [...at, i],
        `${what} ${show(value)} is listed twice${how}, also at [${earlier}]`,
      );
    }
  });
}

function listOf(what: string, ids: Iterable<string>): string {
  const all = [...ids];
  if (all.length === 0) return `${what} are none`;
  return `${what} are ${all.slice(0, 12).join(', ')}${all.length > 12 ? ', …' : ''}`;
}

// ─── Paths ───────────────────────────────────────────────────────────────────────────────────

/** The offset in the text of the field at `path`: its key when it has one, else its value. */
function locate(doc: Document, path: Path): number | undefined {
  let node: unknown = doc.contents;
  let found = rangeStart(node);
  for (const segment of path) {
    if (isAlias(node)) node = node.resolve(doc);
    if (isMap(node)) {
      const pair = node.items.find((item) => scalarValue(item.key) === String(segment));
      if (!pair) break;
      found = rangeStart(pair.key) ?? found;
      node = pair.value;
    } else if (isSeq(node) && typeof segment === 'number') {
      const item = node.items[segment];
      if (item === undefined) break;
      found = rangeStart(item) ?? found;
      node = item;
    } else {
      break;
    }
  }
  return found;
}

function rangeStart(node: unknown): number | undefined {
  const range = (node as { range?: [number, number, number] } | null)?.range;
  return range?.[0];
}

function scalarValue(node: unknown): string | undefined {
  const value = (node as { value?: unknown } | null)?.value;
  return value === undefined ? undefined : String(value);
}

function show(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value) : String(value);
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((line) => `  ${line}`)
    .join('\n');
}

// ─── Settings back to a document ─────────────────────────────────────────────────────────────

/**
 * The configuration document (the file's shape, every field explicit) that validates back to
 * `settings`: what the live configuration stores and the admin API edits.
 */
export function configDocument(settings: Settings): ConfigFile {
  return {
    groups: settings.groups.map((g) => ({
      id: g.id,
      name: g.name,
      cap: g.cap,
      snooze: {
        default: formatDuration(g.snooze.defaultMs),
        min: formatDuration(g.snooze.minMs),
        max: formatDuration(g.snooze.maxMs),
      },
      overflow:
        g.overflow.kind === 'bot' ? { kind: 'bot' } : { kind: 'group', group: g.overflow.group },
      automaticMessage: g.automaticMessage,
      fullMessage: g.fullMessage,
      offlinePolicy: g.offlinePolicy,
      typicalReply: formatDuration(g.typicalReplyMs),
      orderingWindow: formatDuration(g.orderingWindowMs),
    })),
    rules: settings.rules.map((r) => ({
      id: r.id,
      match: { pages: [...r.match.pages], attributes: { ...r.match.attributes } },
      showChatButton: r.showChatButton,
      hideWhenFull: r.hideWhenFull,
      ...(r.bot
        ? {
            bot: {
              ...(r.bot.greeting !== undefined ? { greeting: r.bot.greeting } : {}),
              questions: r.bot.questions.map((q) => ({
                id: q.id,
                text: q.text,
                ...(q.choices ? { choices: [...q.choices] } : {}),
              })),
            },
          }
        : {}),
      target: {
        group: r.target.group,
        byAnswer: r.target.byAnswer.map((a) => ({ ...a })),
      },
    })),
    agents: settings.agents.map((a) => ({
      id: a.id,
      name: a.name,
      groups: [...a.groups],
      slots: a.slots,
    })),
    cannedAnswers: settings.cannedAnswers.map((c) => ({ ...c, groups: [...c.groups] })),
    ...(settings.widget ? { widget: { allowedOrigins: [...settings.widget.allowedOrigins] } } : {}),
  };
}
