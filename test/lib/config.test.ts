// Configuration loading: the default file, defaults, durations, and errors that name the file,
// the field and what is wrong. Also the error catalogue and the logger, which loading relies on.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import type { Static } from '@sinclair/typebox';
import { Ajv } from 'ajv';
import fc from 'fast-check';
import t from 'tap';
import { parse as parseYaml } from 'yaml';
import {
  DEFAULT_AGENT_SLOTS,
  DEFAULT_AUTOMATIC_MESSAGE,
  GROUP_DEFAULTS,
  HOUR_MS,
  MINUTE_MS,
  type Settings,
} from '../../actors/settings.ts';
import {
  type ConfigProblem,
  configDocument,
  configJsonSchema,
  DEFAULT_CONFIG_PATH,
  loadConfig,
  parseConfig,
  SettingsSchema,
  validateConfig,
} from '../../lib/config.ts';
import { formatDuration, parseDuration } from '../../lib/duration.ts';
import { ERRORS, isParleyError, ParleyError } from '../../lib/errors.ts';
import { createLogger } from '../../lib/log.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
const fixture = (name: string) => fileURLToPath(new URL(`fixtures/${name}`, import.meta.url));

// The normalised schema describes Settings: a change to one without the other fails `tsc`.
type Assert<T extends true> = T;
export type SettingsSchemaIsSettings = Assert<
  Static<typeof SettingsSchema> extends Settings ? true : false
>;

/** The ParleyError `fn` throws; fails the test if it throws nothing or something else. */
function errorOf(fn: () => unknown): ParleyError {
  try {
    fn();
  } catch (error) {
    if (error instanceof ParleyError) return error;
    throw error;
  }
  throw new Error('expected a ParleyError, nothing was thrown');
}

function problemsOf(text: string): ConfigProblem[] {
  const error = errorOf(() => parseConfig(text, 'parley.yaml'));
  return error.details as ConfigProblem[];
}

/** A temporary folder for the files a test writes, removed when the test ends. */
function tempDir(t: { teardown: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'parley-config-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const ONE_GROUP = 'groups:\n  - id: support\n    name: Support\n';

t.test(
  'the default configuration loads, with a 5-hour snooze and the automatic message',
  async (t) => {
    const settings = loadConfig(undefined, {});
    t.ok(settings.groups.length >= 3);
    for (const group of settings.groups) {
      t.equal(group.snooze.defaultMs, 5 * HOUR_MS, `${group.id} snoozes for 5 hours`);
      t.equal(group.automaticMessage, DEFAULT_AUTOMATIC_MESSAGE, `${group.id} sends the message`);
    }
    const proTv = settings.groups.find((group) => group.id === 'pro-tv');
    t.match(proTv, { name: 'PRO - TV', cap: 50 });
    t.ok(
      settings.rules.some(
        (rule) => rule.bot?.questions.some((q) => q.choices) && rule.target.byAnswer.length > 0,
      ),
      'a rule routes by the answer to a question with choices',
    );
    t.ok(
      settings.rules.some((rule) => !rule.bot),
      'a rule has no bot',
    );
    t.ok(settings.agents.length > 0 && settings.cannedAnswers.length > 0);
    const validate = new Ajv({ allowUnionTypes: true }).compile(SettingsSchema);
    t.ok(validate(settings), 'the result has the shape of Settings');
  },
);

t.test('the default path is found from the repository, not the working directory', async (t) => {
  const cwd = process.cwd();
  process.chdir(tempDir(t));
  t.teardown(() => process.chdir(cwd));
  t.equal(DEFAULT_CONFIG_PATH, join(root, 'config', 'default.yaml'));
  t.ok(loadConfig(undefined, {}).groups.length > 0);
});

t.test('fields left out take the built-in defaults', async (t) => {
  const settings = loadConfig(fixture('minimal.yaml'));
  t.same(settings, {
    groups: [{ ...GROUP_DEFAULTS, id: 'support', name: 'Support' }],
    rules: [],
    agents: [],
    cannedAnswers: [],
  });
});

t.test('a JSON file loads like YAML', async (t) => {
  t.same(loadConfig(fixture('minimal.json')), loadConfig(fixture('minimal.yaml')));
});

t.test("the file's defaults apply to every group and agent that leaves a field out", async (t) => {
  const settings = parseConfig(
    `
defaults:
  cap: 10
  slots: 2
  snooze: { default: 1h }
  automaticMessage: Hello
  offlinePolicy: return
  typicalReply: 30m
groups:
  - { id: a, name: A }
  - { id: b, name: B, cap: 20, snooze: { max: 2d }, offlinePolicy: keep, orderingWindow: 0 }
agents:
  - { id: alice, name: Alice, groups: [a] }
  - { id: bob, name: Bob, groups: [b], slots: 7 }
`,
    'parley.yaml',
  );
  const [a, b] = settings.groups;
  t.match(a, {
    cap: 10,
    snooze: {
      defaultMs: HOUR_MS,
      minMs: GROUP_DEFAULTS.snooze.minMs,
      maxMs: GROUP_DEFAULTS.snooze.maxMs,
    },
    automaticMessage: 'Hello',
    fullMessage: GROUP_DEFAULTS.fullMessage,
    offlinePolicy: 'return',
    typicalReplyMs: 30 * MINUTE_MS,
    orderingWindowMs: GROUP_DEFAULTS.orderingWindowMs,
    overflow: { kind: 'bot' },
  });
  t.match(b, {
    cap: 20,
    snooze: { defaultMs: HOUR_MS, maxMs: 48 * HOUR_MS },
    offlinePolicy: 'keep',
    orderingWindowMs: 0,
  });
  t.same(
    settings.agents.map((agent) => agent.slots),
    [2, 7],
  );
  const withoutDefaults = parseConfig(`${ONE_GROUP}agents: [{ id: c, name: C }]\n`, 'parley.yaml');
  t.equal(withoutDefaults.agents[0]?.slots, DEFAULT_AGENT_SLOTS);
});

t.test(
  'a rule gets its defaults: every page, no attributes, button shown, no answer routes',
  async (t) => {
    const settings = parseConfig(
      `${ONE_GROUP}rules:\n  - { id: all, target: { group: support } }\n`,
      'x.yaml',
    );
    t.same(settings.rules, [
      {
        id: 'all',
        match: { pages: [], attributes: {} },
        showChatButton: true,
        hideWhenFull: false,
        target: { group: 'support', byAnswer: [] },
      },
    ]);
  },
);

t.test('a rule with a bot routes by answer and keeps its questions and choices', async (t) => {
  const settings = parseConfig(
    `
groups:
  - { id: support, name: Support, overflow: { kind: group, group: orders } }
  - { id: orders, name: Orders }
rules:
  - id: shop
    match: { pages: ["https://shop.example/*"], attributes: { segment: pro } }
    showChatButton: false
    hideWhenFull: true
    bot:
      greeting: Hello!
      questions:
        - { id: topic, text: What is it about?, choices: [Order, Product] }
        - { id: name, text: Your name? }
    target:
      group: support
      byAnswer: [{ question: topic, answer: order, group: orders }]
`,
    'x.yaml',
  );
  t.same(settings.groups[0]?.overflow, { kind: 'group', group: 'orders' });
  t.same(settings.rules[0], {
    id: 'shop',
    match: { pages: ['https://shop.example/*'], attributes: { segment: 'pro' } },
    showChatButton: false,
    hideWhenFull: true,
    bot: {
      greeting: 'Hello!',
      questions: [
        { id: 'topic', text: 'What is it about?', choices: ['Order', 'Product'] },
        { id: 'name', text: 'Your name?' },
      ],
    },
    target: {
      group: 'support',
      byAnswer: [{ question: 'topic', answer: 'order', group: 'orders' }],
    },
  });
});

t.test(
  'an agent belongs to its own groups and to those listing it, in the order of groups',
  async (t) => {
    const settings = parseConfig(
      `
groups:
  - { id: a, name: A }
  - { id: b, name: B, agents: [alice] }
  - { id: c, name: C, agents: [alice, bob] }
agents:
  - { id: alice, name: Alice, groups: [c, a] }
  - { id: bob, name: Bob }
cannedAnswers:
  - { id: hi, title: Hi, text: Hello }
  - { id: tv, title: TV, text: About TV, groups: [b] }
`,
      'x.yaml',
    );
    t.same(
      settings.agents.map((agent) => agent.groups),
      [['a', 'b', 'c'], ['c']],
    );
    t.same(
      settings.cannedAnswers.map((answer) => answer.groups),
      [[], ['b']],
    );
  },
);

t.test('durations parse from milliseconds and from 90s, 30m, 5h, 2d, 1h30m, 500ms', async (t) => {
  const cases: [unknown, number][] = [
    [0, 0],
    [1500, 1500],
    ['90s', 90_000],
    ['30m', 30 * MINUTE_MS],
    ['5h', 5 * HOUR_MS],
    ['2d', 48 * HOUR_MS],
    ['1h30m', 90 * MINUTE_MS],
    ['500ms', 500],
    ['1d2h3m4s5ms', 93_784_005],
    ['0s', 0],
  ];
  for (const [input, ms] of cases) t.equal(parseDuration(input), ms, String(input));
});

t.test('a malformed duration is an error saying what a duration looks like', async (t) => {
  const bad: unknown[] = [
    '5 hours',
    '1.5h',
    '30m1h',
    '',
    '1h 30m',
    '5H',
    '1w',
    'h',
    -1,
    1.5,
    true,
    null,
  ];
  for (const input of bad) {
    const error = errorOf(() => parseDuration(input));
    t.equal(error.code, 'PARLEY_ERR_INVALID_DURATION', String(input));
    t.equal(error.statusCode, 400);
  }
  t.match(
    errorOf(() => parseDuration('5 hours')).message,
    /"5 hours".*90s, 30m, 5h, 2d, 1h30m, 500ms/,
  );
  t.match(errorOf(() => parseDuration('5000')).message, /add a unit/);
  t.match(errorOf(() => parseDuration(-1)).message, /negative/);
  t.match(errorOf(() => parseDuration('999999999999999999d')).message, /too large/);
});

t.test(
  'formatDuration writes the short form, which parses back to the same milliseconds',
  async (t) => {
    t.equal(formatDuration(5 * HOUR_MS), '5h');
    t.equal(formatDuration(90 * MINUTE_MS), '1h30m');
    t.equal(formatDuration(45_000), '45s');
    t.equal(formatDuration(1_500), '1s500ms');
    t.equal(formatDuration(0), '0s');
    fc.assert(
      fc.property(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), (ms) => {
        return parseDuration(formatDuration(ms)) === ms;
      }),
    );
  },
);

t.test('durations in the file accept every form', async (t) => {
  const settings = parseConfig(
    `${ONE_GROUP}    snooze: { default: 18000000, min: 90s, max: 2d }\n    typicalReply: 1h30m\n    orderingWindow: 500ms\n`,
    'x.yaml',
  );
  t.same(settings.groups[0]?.snooze, {
    defaultMs: 5 * HOUR_MS,
    minMs: 90_000,
    maxMs: 48 * HOUR_MS,
  });
  t.equal(settings.groups[0]?.typicalReplyMs, 90 * MINUTE_MS);
  t.equal(settings.groups[0]?.orderingWindowMs, 500);
});

t.test('an unknown field is an error naming the file, the field and its line', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'parley.yaml');
  writeFileSync(path, 'groups:\n  - id: support\n    name: Support\n    colour: blue\n');
  const error = errorOf(() => loadConfig(path));
  t.equal(error.code, 'PARLEY_ERR_CONFIG_INVALID');
  t.equal(error.statusCode, 500);
  t.match(error.message, path);
  t.match(error.message, /line 4: groups\[0\]\.colour: unknown field; allowed here: id, name, cap/);
  t.match(error.details, [{ path: 'groups[0].colour', line: 4, column: 5 }]);
  t.match(problemsOf('groups: [{ id: a, name: A }]\nroutes: []\n'), [
    { path: 'routes', message: /unknown field/ },
  ]);
  t.match(problemsOf(`${ONE_GROUP}rules: [{ id: r, target: { group: support, grup: x } }]\n`), [
    { path: 'rules[0].target.grup' },
  ]);
});

t.test('a value of the wrong type is an error naming the field and the type wanted', async (t) => {
  t.match(problemsOf('groups:\n  - { id: a, name: A, cap: many }\n'), [
    { path: 'groups[0].cap', message: 'must be a whole number, got "many"', line: 2 },
  ]);
  t.match(problemsOf('groups:\n  - { id: a, name: 12 }\n'), [
    { path: 'groups[0].name', message: 'must be a string, got 12; quote it: "12"' },
  ]);
  t.match(problemsOf('groups: { id: a }\n'), [{ path: 'groups', message: /must be a list/ }]);
  t.match(problemsOf('- just a list\n'), [{ path: '', message: /must be a mapping/ }]);
  t.match(problemsOf(`${ONE_GROUP}    offlinePolicy: kept\n`), [
    { path: 'groups[0].offlinePolicy', message: 'must be one of keep, return, got "kept"' },
  ]);
  t.match(problemsOf(`${ONE_GROUP}    overflow: { kind: grp }\n`), [
    { path: 'groups[0].overflow.kind', message: 'must be one of bot, group, got "grp"' },
  ]);
  t.match(problemsOf(`${ONE_GROUP}    overflow: { kind: group }\n`), [
    { path: 'groups[0].overflow.group', message: 'is required' },
  ]);
  t.match(
    problemsOf(
      `${ONE_GROUP}rules: [{ id: r, match: { attributes: { vip: true } }, target: { group: support } }]\n`,
    ),
    [{ path: 'rules[0].match.attributes.vip', message: /quote it/ }],
  );
});

t.test('a malformed duration in the file is an error naming the field', async (t) => {
  const problems = problemsOf(
    `${ONE_GROUP}    snooze: { default: 5 hours, min: -1 }\n    typicalReply: 1.5h\n`,
  );
  t.match(problems, [
    {
      path: 'groups[0].snooze.default',
      message: /invalid duration "5 hours": write an integer of milliseconds/,
    },
    { path: 'groups[0].snooze.min', message: /cannot be negative/ },
    { path: 'groups[0].typicalReply', message: /invalid duration "1.5h"/ },
  ]);
});

t.test('ids must be lower-case tokens, and cap and slots positive integers', async (t) => {
  t.match(
    problemsOf(
      'groups:\n  - { id: Pro TV, name: P, cap: 0 }\nagents: [{ id: a, name: A, slots: 1.5 }]\n',
    ),
    [
      { path: 'groups[0].id', message: /must be a lower-case id/ },
      { path: 'groups[0].cap', message: 'must be at least 1, got 0' },
      { path: 'agents[0].slots', message: /must be a whole number/ },
    ],
  );
});

t.test('at least one group is required', async (t) => {
  t.match(problemsOf('groups: []\n'), [{ path: 'groups', message: 'must not be empty' }]);
  t.match(problemsOf('agents: []\n'), [{ path: 'groups', message: 'is required' }]);
  t.match(problemsOf(''), [{ path: '', message: /empty/ }]);
});

t.test(
  'a reference to a missing group, agent or question is an error naming the field',
  async (t) => {
    const problems = problemsOf(`
groups:
  - { id: a, name: A, agents: [zoe], overflow: { kind: group, group: b } }
rules:
  - id: r
    bot: { questions: [{ id: topic, text: T }] }
    target:
      group: nowhere
      byAnswer: [{ question: colour, answer: red, group: elsewhere }]
  - id: r2
    target: { group: a, byAnswer: [{ question: topic, answer: x, group: a }] }
agents: [{ id: al, name: Al, groups: [radio] }]
cannedAnswers: [{ id: c, title: C, text: C, groups: [tv] }]
`);
    t.same(
      problems.map((problem) => [problem.path, problem.message]),
      [
        ['groups[0].agents[0]', "unknown agent 'zoe'; the agents are al"],
        ['groups[0].overflow.group', "unknown group 'b'; the groups are a"],
        ['rules[0].target.group', "unknown group 'nowhere'; the groups are a"],
        [
          'rules[0].target.byAnswer[0].question',
          "unknown question 'colour'; this rule's questions are topic",
        ],
        ['rules[0].target.byAnswer[0].group', "unknown group 'elsewhere'; the groups are a"],
        ['rules[1].target.byAnswer[0].question', "this rule has no bot to ask question 'topic'"],
        ['agents[0].groups[0]', "unknown group 'radio'; the groups are a"],
        ['cannedAnswers[0].groups[0]', "unknown group 'tv'; the groups are a"],
      ],
    );
  },
);

t.test("an answer route must name one of the question's choices, ignoring case", async (t) => {
  const text = (answer: string) => `
groups: [{ id: a, name: A }, { id: b, name: B }]
rules:
  - id: r
    bot: { questions: [{ id: topic, text: T, choices: [Order, Product] }] }
    target: { group: a, byAnswer: [{ question: topic, answer: ${answer}, group: b }] }
`;
  t.equal(parseConfig(text('ORDER'), 'x.yaml').rules[0]?.target.byAnswer[0]?.answer, 'ORDER');
  t.match(problemsOf(text('Refund')), [
    {
      path: 'rules[0].target.byAnswer[0].answer',
      message: `"Refund" is not a choice of question 'topic' (Order, Product)`,
    },
  ]);
});

t.test('an overflow into the group itself is an error', async (t) => {
  t.match(problemsOf('groups:\n  - { id: a, name: A, overflow: { kind: group, group: a } }\n'), [
    {
      path: 'groups[0].overflow.group',
      message: "a group cannot overflow into itself ('a')",
      line: 2,
    },
  ]);
});

t.test('an overflow cycle is an error naming the loop, once', async (t) => {
  const problems = problemsOf(`
groups:
  - { id: x, name: X, overflow: { kind: group, group: a } }
  - { id: a, name: A, overflow: { kind: group, group: b } }
  - { id: b, name: B, overflow: { kind: group, group: c } }
  - { id: c, name: C, overflow: { kind: group, group: a } }
`);
  t.same(problems, [
    {
      path: 'groups[1].overflow.group',
      message: 'overflow chain loops: a → b → c → a',
      line: 4,
      column: 48,
    },
  ]);
  t.ok(
    parseConfig(
      'groups:\n  - { id: a, name: A, overflow: { kind: group, group: b } }\n  - { id: b, name: B }\n',
      'x.yaml',
    ),
    'a chain without a loop is fine',
  );
});

t.test('snooze bounds out of order are an error naming the field', async (t) => {
  t.match(problemsOf(`${ONE_GROUP}    snooze: { default: 1m, min: 5m, max: 7d }\n`), [
    { path: 'groups[0].snooze.default', message: '1m must be at least snooze.min (5m)' },
  ]);
  t.match(problemsOf(`${ONE_GROUP}    snooze: { default: 8d }\n`), [
    { path: 'groups[0].snooze.default', message: '8d must be at most snooze.max (7d, inherited)' },
  ]);
  t.match(problemsOf(`${ONE_GROUP}    snooze: { max: 1h }\n`), [
    { path: 'groups[0].snooze.max', message: '1h must be at least snooze.default (5h, inherited)' },
  ]);
  t.match(problemsOf(`${ONE_GROUP}    snooze: { min: 0 }\n`), [
    { path: 'groups[0].snooze.min', message: 'must be more than 0' },
  ]);
  const inDefaults = problemsOf(`defaults:\n  snooze: { min: 6h }\n${ONE_GROUP}`);
  t.same(
    inDefaults.map((problem) => problem.path),
    ['defaults.snooze.min'],
    'a conflict written in defaults is reported there, not in every group',
  );
});

t.test('duplicate ids are an error naming the repeated one', async (t) => {
  const problems = problemsOf(`
groups: [{ id: a, name: A }, { id: a, name: A2 }]
rules:
  - { id: r, target: { group: a } }
  - id: r
    bot: { questions: [{ id: q, text: Q, choices: [Yes, yes] }, { id: q, text: Q2 }] }
    target: { group: a }
agents: [{ id: al, name: Al, groups: [a, a] }, { id: al, name: Al2 }]
cannedAnswers: [{ id: c, title: C, text: C }, { id: c, title: C, text: C }]
`);
  t.same(
    problems.map((problem) => [problem.path, problem.message]),
    [
      ['groups[1].id', "duplicate id 'a' (also groups[0])"],
      ['rules[1].id', "duplicate id 'r' (also rules[0])"],
      [
        'rules[1].bot.questions[0].choices[1]',
        'choice "yes" is listed twice (answers compare ignoring case and surrounding spaces), also at [0]',
      ],
      ['rules[1].bot.questions[1].id', "duplicate id 'q' (also rules[1].bot.questions[0])"],
      ['agents[0].groups[1]', 'group "a" is listed twice, also at [0]'],
      ['agents[1].id', "duplicate id 'al' (also agents[0])"],
      ['cannedAnswers[1].id', "duplicate id 'c' (also cannedAnswers[0])"],
    ],
  );
});

t.test('several problems are all reported, one per line, and in details', async (t) => {
  const path = fixture('several-problems.yaml');
  const error = errorOf(() => loadConfig(path));
  t.equal(error.code, 'PARLEY_ERR_CONFIG_INVALID');
  t.equal(
    error.message,
    [
      `Invalid configuration in ${path} (4 problems):`,
      '  line 5: groups[0].snooze.default: 1m must be at least snooze.min (5m)',
      "  line 6: groups[1].id: duplicate id 'tv' (also groups[0])",
      "  line 10: rules[0].target.group: unknown group 'nowhere'; the groups are tv",
      "  line 13: agents[1].groups[0]: unknown group 'radio'; the groups are tv",
    ].join('\n'),
  );
  t.same(
    (error.details as ConfigProblem[]).map((problem) => problem.path),
    ['groups[0].snooze.default', 'groups[1].id', 'rules[0].target.group', 'agents[1].groups[0]'],
  );
});

t.test('validateConfig checks an object already parsed, naming its source', async (t) => {
  const settings = validateConfig(
    { groups: [{ id: 'a', name: 'A', snooze: { default: '2h' } }] },
    'env',
  );
  t.equal(settings.groups[0]?.snooze.defaultMs, 2 * HOUR_MS);
  const error = errorOf(() =>
    validateConfig({ groups: [{ id: 'a', name: 'A', extra: 1 }] }, 'the admin API'),
  );
  t.match(
    error.message,
    /^Invalid configuration in the admin API \(1 problem\):\n {2}groups\[0\]\.extra: unknown field/,
  );
  t.same(
    error.details,
    [{ path: 'groups[0].extra', message: error.message.split('groups[0].extra: ')[1] }],
    'details carry no line numbers when there is no file',
  );
});

t.test('PARLEY_CONFIG is honoured when no path is given, and a path given wins', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'other.yaml');
  writeFileSync(path, 'groups: [{ id: only, name: Only }]\n');
  t.same(
    loadConfig(undefined, { PARLEY_CONFIG: path }).groups.map((group) => group.id),
    ['only'],
  );
  t.same(
    loadConfig(fixture('minimal.yaml'), { PARLEY_CONFIG: path }).groups.map((group) => group.id),
    ['support'],
  );
});

t.test('a missing file is an error that says which path was tried and why', async (t) => {
  const dir = tempDir(t);
  const missing = join(dir, 'nope.yaml');
  const given = errorOf(() => loadConfig(missing));
  t.equal(given.code, 'PARLEY_ERR_CONFIG_NOT_FOUND');
  t.equal(given.message, `Configuration file not found: ${missing} (from the path given)`);
  const fromEnv = errorOf(() => loadConfig(undefined, { PARLEY_CONFIG: missing }));
  t.equal(
    fromEnv.message,
    `Configuration file not found: ${missing} (from PARLEY_CONFIG=${missing})`,
  );
  t.equal(
    errorOf(() => loadConfig(dir)).code,
    'PARLEY_ERR_CONFIG_UNREADABLE',
    'a folder is not a file',
  );
});

t.test('a YAML syntax error names the file and the line', async (t) => {
  const error = errorOf(() =>
    parseConfig('groups:\n  - id: a\n    name: [A\n  b: c: d\n', 'broken.yaml'),
  );
  t.equal(error.code, 'PARLEY_ERR_CONFIG_SYNTAX');
  t.match(error.message, /^Configuration file broken\.yaml is not valid YAML or JSON:\n/);
  t.match(error.message, /line 4, column 3/);
  t.match(error.details, [{ line: 4, column: 3 }]);
  t.match(
    errorOf(() => parseConfig('a: 1\na: 2\n', 'dup.yaml')).message,
    /Map keys must be unique/,
  );
});

t.test('config/schema.json is what scripts/config-schema.ts prints', async (t) => {
  const run = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/config-schema.ts'], {
    cwd: root,
    encoding: 'utf8',
  });
  t.equal(run.status, 0, run.stderr);
  const committed = readFileSync(join(root, 'config', 'schema.json'), 'utf8');
  t.same(JSON.parse(committed), JSON.parse(run.stdout), 'regenerate it with the script');
  t.same(JSON.parse(committed), configJsonSchema());
});

t.test(
  'config/schema.json accepts the default configuration and rejects an unknown field',
  async (t) => {
    const schema = JSON.parse(readFileSync(join(root, 'config', 'schema.json'), 'utf8'));
    const validate = new Ajv({ allowUnionTypes: true, discriminator: true }).compile(schema);
    const file = parseYaml(readFileSync(DEFAULT_CONFIG_PATH, 'utf8'));
    t.ok(validate(file), JSON.stringify(validate.errors));
    t.notOk(validate({ ...file, colour: 'blue' }));
  },
);

t.test('every error has a code, a message template and an HTTP status', async (t) => {
  for (const [code, spec] of Object.entries(ERRORS)) {
    t.match(code, /^PARLEY_ERR_[A-Z_]+$/);
    t.ok(spec.message.length > 0 && spec.statusCode >= 400 && spec.statusCode < 600, code);
  }
  const error = new ParleyError('PARLEY_ERR_NOT_FOUND', ['conversation c1'], {
    details: { id: 'c1' },
  });
  t.equal(error.message, 'conversation c1 not found');
  t.equal(error.statusCode, 404);
  t.same(error.details, { id: 'c1' });
  t.ok(error instanceof Error && isParleyError(error, 'PARLEY_ERR_NOT_FOUND'));
  t.notOk(isParleyError(error, 'PARLEY_ERR_INVALID_COMMAND'));
  t.equal(new ParleyError('PARLEY_ERR_INVALID_COMMAND', ['no text']).statusCode, 400);
  // @ts-expect-error: the template of PARLEY_ERR_NOT_FOUND takes one argument.
  t.ok(new ParleyError('PARLEY_ERR_NOT_FOUND', []));
});

t.test('the logger writes JSON lines at LOG_LEVEL and redacts secrets', async (t) => {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      lines.push(JSON.parse(String(chunk)));
      done();
    },
  });
  const log = createLogger({}, sink, { LOG_LEVEL: 'warn' });
  t.equal(log.level, 'warn');
  log.info('not written');
  log.warn(
    { token: 't', user: { password: 'p' }, req: { headers: { authorization: 'Bearer x' } } },
    'hi',
  );
  t.equal(lines.length, 1);
  t.match(lines[0], {
    msg: 'hi',
    token: '[redacted]',
    user: { password: '[redacted]' },
    req: { headers: { authorization: '[redacted]' } },
  });
  t.equal(createLogger({}, sink, {}).level, 'info');
});

t.test('the widget’s allowed origins are origins as browsers send them', async (t) => {
  const base = 'groups: [{ id: tv, name: TV }]\n';
  const ok = parseConfig(
    `${base}widget: { allowedOrigins: ["https://shop.example", "http://127.0.0.1:3001"] }`,
    'inline',
  );
  t.same(ok.widget, { allowedOrigins: ['https://shop.example', 'http://127.0.0.1:3001'] });
  t.same(
    validateConfig(configDocument(ok), 'round trip').widget,
    ok.widget,
    'kept by the live configuration',
  );
  t.equal(parseConfig(base, 'inline').widget, undefined, 'none: nowhere');
  const refused = (origins: string) => {
    try {
      parseConfig(`${base}widget: { allowedOrigins: ${origins} }`, 'inline');
      return '';
    } catch (error) {
      return (error as Error).message;
    }
  };
  t.match(
    refused('["https://Shop.example"]'),
    /widget\.allowedOrigins\[0\]: must be an origin .*did you mean https:\/\/shop\.example\?/,
  );
  t.match(refused('["https://shop.example:443"]'), /did you mean https:\/\/shop\.example\?/);
  t.match(refused('["https://shop.example/"]'), /widget\.allowedOrigins\[0\]: must match/);
  t.match(
    refused('["https://a.example", "https://a.example"]'),
    /widget\.allowedOrigins\[1\]: origin "https:\/\/a\.example" is listed twice/,
  );
});
