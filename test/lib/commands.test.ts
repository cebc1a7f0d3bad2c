// Commands from outside: every command type accepted in its minimal and full form, every kind of
// mistake rejected with a message naming the field, and docs/schemas/ in step with the schemas.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import fc from 'fast-check';
import t from 'tap';
import type { Command } from '../../actors/events.ts';
import {
  COMMAND_EXAMPLES,
  COMMAND_SCHEMAS,
  COMMAND_TYPES,
  type CommandProblem,
  commandJsonSchemas,
  MINIMAL_COMMAND_EXAMPLES,
  parseCommand,
} from '../../lib/commands.ts';
import { isParleyError, ParleyError } from '../../lib/errors.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
const schemasFolder = join(root, 'docs', 'schemas');
const { Escalate, SendMessage, StartConversation, Transfer, AnswerSurvey } = COMMAND_EXAMPLES;

/** The PARLEY_ERR_INVALID_COMMAND `input` raises; fails the test if it is accepted. */
function rejection(input: unknown): { message: string; details: CommandProblem[] } {
  try {
    parseCommand(input);
  } catch (error) {
    if (isParleyError(error, 'PARLEY_ERR_INVALID_COMMAND')) {
      return { message: error.message, details: error.details as CommandProblem[] };
    }
    throw error;
  }
  throw new Error(`expected ${JSON.stringify(input)?.slice(0, 200)} to be rejected`);
}

const bytes = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));

t.test('every command type is accepted in its minimal and its full form', async (t) => {
  t.same(Object.keys(COMMAND_EXAMPLES), COMMAND_TYPES);
  t.same(Object.keys(MINIMAL_COMMAND_EXAMPLES), COMMAND_TYPES);
  for (const type of COMMAND_TYPES) {
    for (const example of [MINIMAL_COMMAND_EXAMPLES[type], COMMAND_EXAMPLES[type]]) {
      t.equal(example.type, type);
      t.same(parseCommand(example), example, `${type} as a value`);
      t.same(parseCommand(JSON.stringify(example)), example, `${type} as JSON text`);
      t.same(parseCommand(bytes(example)), example, `${type} as UTF-8 bytes`);
      t.same(parseCommand(Buffer.from(JSON.stringify(example))), example, `${type} as a Buffer`);
    }
  }
});

t.test('a minimal example sets only the required fields, a full one every field', async (t) => {
  // A survey answer needs csat or nps: the minimal one gives csat.
  const needed = (type: Command['type']) => (type === 'AnswerSurvey' ? ['csat'] : ([] as string[]));
  for (const type of COMMAND_TYPES) {
    const schema = COMMAND_SCHEMAS[type];
    t.same(
      Object.keys(MINIMAL_COMMAND_EXAMPLES[type]).sort(),
      [...schema.required, ...needed(type)].sort(),
      type,
    );
    t.same(Object.keys(COMMAND_EXAMPLES[type]).sort(), Object.keys(schema.properties).sort(), type);
  }
});

t.test('an unknown type is reported alone, with the list of command types', async (t) => {
  const { message, details } = rejection({ ...Escalate, type: 'Explode', conversation: 'a.b' });
  t.equal(
    message,
    'Invalid command: type: must be one of StartConversation, SendMessage, MarkRead, Escalate, Snooze, SnoozeExpired, Transfer, Tag, Close, AnswerSurvey, BlockVisitor, SetVisitorPresence, RecordPageView, SetAgentPresence, got "Explode"',
  );
  t.equal(details.length, 1, 'no noise from the other commands of the union');
  t.match(details, [{ path: 'type', message: /^must be one of StartConversation, / }]);
  t.match(
    rejection({ ...Escalate, type: 7 }).message,
    /^Invalid command: type: must be one of .*, got 7$/,
  );
  t.match(
    rejection({ id: 'x', conversation: 'c' }).message,
    /^Invalid command: type: is required \(one of StartConversation, /,
  );
});

t.test("a known type is checked against that command's schema only", async (t) => {
  const { details } = rejection({ type: 'Snooze', id: 'x', conversation: 'c', durationMs: 'soon' });
  t.same(details, [
    { path: 'agent', message: 'is required' },
    { path: 'durationMs', message: 'must be an integer, got "soon"' },
  ]);
});

t.test('a missing field is named', async (t) => {
  const { conversation: _, ...rest } = Escalate;
  const { message, details } = rejection(rest);
  t.equal(message, 'Invalid command: conversation: is required');
  t.same(details, [{ path: 'conversation', message: 'is required' }]);
  t.equal(
    rejection({ ...SendMessage, message: { attachments: [] } }).message,
    'Invalid command: message.text: is required',
  );
});

t.test('a field of the wrong type is named with what it should be and what it was', async (t) => {
  t.equal(
    rejection({ ...StartConversation, visitorOnline: 'yes' }).message,
    'Invalid command: visitorOnline: must be true or false, got "yes"',
  );
  t.equal(
    rejection({ ...SendMessage, message: 'hello' }).message,
    'Invalid command: message: must be an object, got "hello"',
  );
  t.equal(
    rejection({ ...COMMAND_EXAMPLES.Snooze, durationMs: 1.5 }).message,
    'Invalid command: durationMs: must be an integer, got 1.5',
  );
  t.equal(
    rejection({ ...COMMAND_EXAMPLES.Tag, tags: 'sound' }).message,
    'Invalid command: tags: must be an array, got "sound"',
  );
});

t.test('an unknown field is named, at the top level and nested', async (t) => {
  const top = rejection({ ...Escalate, foo: 1 });
  t.equal(
    top.message,
    'Invalid command: unknown field "foo" (allowed here: type, id, conversation)',
  );
  t.same(top.details, [
    { path: 'foo', message: 'unknown field; allowed here: type, id, conversation' },
  ]);

  const nested = rejection({ ...SendMessage, message: { text: 'hi', foo: 1 } });
  t.equal(
    nested.message,
    'Invalid command: unknown field "foo" at message (allowed here: id, text, attachments)',
  );
  t.same(nested.details, [
    { path: 'message.foo', message: 'unknown field; allowed here: id, text, attachments' },
  ]);

  const deeper = rejection({
    ...SendMessage,
    message: { text: 'hi', attachments: [{ kind: 'file', ref: 'r', colour: 'red' }] },
  });
  t.match(deeper.message, /unknown field "colour" at message\.attachments\[0\]/);
  t.match(
    rejection({ ...SendMessage, author: { kind: 'bot', id: 'b' } }).message,
    /unknown field "id" at author \(allowed here: kind\)/,
  );
});

t.test('text is limited to 10,000 characters', async (t) => {
  const text = 'x'.repeat(10_000);
  t.ok(parseCommand({ ...SendMessage, message: { text } }));
  t.ok(
    parseCommand({ ...SendMessage, message: { text: '👍'.repeat(10_000) } }),
    'characters, not UTF-16 units',
  );
  const { message, details } = rejection({ ...SendMessage, message: { text: `${text}x` } });
  t.equal(message, 'Invalid command: message.text: must be at most 10000 characters');
  t.same(details, [{ path: 'message.text', message: 'must be at most 10000 characters' }]);
});

t.test('a message needs text that is not blank, unless it has attachments', async (t) => {
  for (const text of ['', '   ', '\n\t\u00a0']) {
    t.equal(
      rejection({ ...SendMessage, message: { text } }).message,
      'Invalid command: message: text must not be blank unless the message has attachments',
    );
  }
  t.match(rejection({ ...StartConversation, message: { text: ' ', attachments: [] } }).details, [
    { path: 'message' },
  ]);
  const attachment = { kind: 'image', ref: 'https://cdn.shop.example/a.png' } as const;
  t.ok(parseCommand({ ...SendMessage, message: { text: '', attachments: [attachment] } }));
});

t.test('ids that would break a NATS subject are refused', async (t) => {
  for (const bad of ['c.7f3a', '*', '>', 'c 7f3a', '', 'x'.repeat(129), 'c-é']) {
    const { message, details } = rejection({ ...Escalate, conversation: bad });
    t.match(
      message,
      /^Invalid command: conversation: must be 1 to 128 letters, digits, "_" or "-" \(no dots, spaces or wildcards\), got /,
      JSON.stringify(bad),
    );
    t.same(
      details.map((d) => d.path),
      ['conversation'],
    );
  }
  t.match(rejection({ ...COMMAND_EXAMPLES.MarkRead, visitor: 'v.1' }).details, [
    { path: 'visitor' },
  ]);
  t.match(rejection({ ...COMMAND_EXAMPLES.SetAgentPresence, agent: 'al>' }).details, [
    { path: 'agent' },
  ]);
  t.match(rejection({ ...SendMessage, author: { kind: 'visitor', id: 'v*' } }).details, [
    { path: 'author.id' },
  ]);
  t.ok(
    parseCommand({ ...Escalate, conversation: `C_${'9'.repeat(126)}` }),
    '128 characters is fine',
  );
});

t.test('routing group and rule ids are lower-case ids, as in the configuration', async (t) => {
  t.equal(
    rejection({ ...Transfer, to: { group: 'Orders' } }).message,
    'Invalid command: to.group: must be a lower-case id (letters a-z, digits and "-", not starting with "-"), got "Orders"',
  );
  t.match(rejection({ ...Transfer, to: { group: '_agent' } }).details, [{ path: 'to.group' }]);
  t.match(rejection({ ...StartConversation, rule: 'pro.tv' }).details, [{ path: 'rule' }]);
});

t.test('command and message ids are printable ASCII without spaces', async (t) => {
  t.equal(
    rejection({ ...Escalate, id: 'a b' }).message,
    'Invalid command: id: must be 1 to 128 printable ASCII characters without spaces, got "a b"',
  );
  t.match(rejection({ ...Escalate, id: '' }).details, [{ path: 'id' }]);
  t.match(rejection({ ...SendMessage, message: { id: 'm\n1', text: 'hi' } }).details, [
    { path: 'message.id' },
  ]);
  t.ok(parseCommand({ ...Escalate, id: 'urn:parley:cmd/42#retry=1' }));
});

t.test('a transfer goes to exactly one agent or one routing group', async (t) => {
  t.ok(parseCommand({ ...Transfer, to: { agent: 'bruno' } }));
  t.equal(
    rejection({ ...Transfer, to: { agent: 'bruno', group: 'orders' } }).message,
    'Invalid command: to: must be an object with exactly one of the fields agent, group, got fields agent, group',
  );
  t.match(rejection({ ...Transfer, to: {} }).message, /to: must be .*, got an empty object$/);
  t.match(rejection({ ...Transfer, to: 'orders' }).message, /to: must be .*, got "orders"$/);
  t.match(rejection({ ...Transfer, to: { agent: 'bru.no' } }).details, [{ path: 'to.agent' }]);
});

t.test('survey answers are CSAT 1 to 5 and NPS 0 to 10, at least one of them', async (t) => {
  t.equal(
    rejection({ ...AnswerSurvey, csat: 6 }).message,
    'Invalid command: csat: must be at most 5, got 6',
  );
  t.equal(
    rejection({ ...AnswerSurvey, csat: 0 }).message,
    'Invalid command: csat: must be at least 1, got 0',
  );
  t.equal(
    rejection({ ...AnswerSurvey, nps: -1 }).message,
    'Invalid command: nps: must be at least 0, got -1',
  );
  t.equal(
    rejection({ ...AnswerSurvey, nps: 11 }).message,
    'Invalid command: nps: must be at most 10, got 11',
  );
  t.equal(
    rejection({ ...AnswerSurvey, csat: 4.5 }).message,
    'Invalid command: csat: must be an integer, got 4.5',
  );
  const { csat: _c, nps: _n, ...neither } = AnswerSurvey;
  t.same(rejection(neither).details, [{ path: '', message: 'csat or nps is required (or both)' }]);
  t.ok(parseCommand({ ...neither, nps: 0 }));
  t.match(rejection({ ...AnswerSurvey, comment: 'x'.repeat(2001) }).details, [{ path: 'comment' }]);
});

t.test('a message has at most 10 attachments, each a typed reference', async (t) => {
  const attachment = { kind: 'file', ref: 'https://cdn.shop.example/f.pdf' } as const;
  t.ok(
    parseCommand({
      ...SendMessage,
      message: { text: 'x', attachments: Array(10).fill(attachment) },
    }),
  );
  const { message, details } = rejection({
    ...SendMessage,
    message: { text: 'x', attachments: Array(11).fill(attachment) },
  });
  t.equal(message, 'Invalid command: message.attachments: must have at most 10 items, got 11');
  t.same(details, [{ path: 'message.attachments', message: 'must have at most 10 items, got 11' }]);

  const bad = rejection({
    ...SendMessage,
    message: {
      text: 'x',
      attachments: [{ kind: 'video', ref: '', mimeType: 'png', sizeBytes: 50 * 1024 * 1024 + 1 }],
    },
  });
  t.same(
    bad.details.map((d) => d.path),
    [
      'message.attachments[0].kind',
      'message.attachments[0].ref',
      'message.attachments[0].mimeType',
      'message.attachments[0].sizeBytes',
    ],
  );
  t.match(bad.message, /kind: must be one of image, file, offer, got "video"/);
  t.match(bad.message, /ref: must not be empty/);
  t.match(bad.message, /mimeType: must be a media type such as image\/png, got "png"/);
  t.match(bad.message, /sizeBytes: must be at most 52428800, got 52428801/);
});

t.test('tags are 1 to 20, each 1 to 64 characters', async (t) => {
  const Tag = COMMAND_EXAMPLES.Tag;
  t.equal(rejection({ ...Tag, tags: [] }).message, 'Invalid command: tags: must not be empty');
  t.match(rejection({ ...Tag, tags: Array(21).fill('a') }).details, [{ path: 'tags' }]);
  t.equal(
    rejection({ ...Tag, tags: ['ok', 'x'.repeat(65)] }).message,
    'Invalid command: tags[1]: must be at most 64 characters',
  );
  t.equal(
    rejection({ ...Tag, tags: ['  '] }).message,
    'Invalid command: tags[0]: must not be blank',
  );
  t.ok(parseCommand({ ...COMMAND_EXAMPLES.Close, tags: [] }), 'a close may add no tag');
});

t.test('a snooze lasts a positive whole number of milliseconds', async (t) => {
  t.equal(
    rejection({ ...COMMAND_EXAMPLES.Snooze, durationMs: 0 }).message,
    'Invalid command: durationMs: must be at least 1, got 0',
  );
  t.match(rejection({ ...COMMAND_EXAMPLES.SnoozeExpired, until: -1 }).details, [{ path: 'until' }]);
});

t.test('several problems are all reported, in one line', async (t) => {
  const { message, details } = rejection({
    type: 'SendMessage',
    id: 'x',
    conversation: 'a.b',
    author: { kind: 'robot' },
    message: { text: 'x'.repeat(10_001) },
  });
  t.same(
    details.map((d) => d.path),
    ['conversation', 'author.kind', 'message.text'],
  );
  t.equal(message.split('; ').length, 3);
  t.notMatch(message, /\n/);
});

t.test('malformed payloads are refused with a reason', async (t) => {
  const { details } = rejection(new TextEncoder().encode('{"type": "Escalate",'));
  t.equal(details.length, 1);
  t.match(details, [{ path: '', message: /^not valid JSON: / }]);
  t.equal(
    rejection(new Uint8Array([0x7b, 0xff, 0x7d])).message,
    'Invalid command: the payload is not valid UTF-8',
  );
  t.equal(rejection('').message, 'Invalid command: not valid JSON: the payload is empty');
  t.equal(
    rejection(bytes([Escalate])).message,
    'Invalid command: a command must be a JSON object, got an array',
  );
  t.equal(rejection(null).message, 'Invalid command: a command must be a JSON object, got null');
  t.equal(rejection('null').message, 'Invalid command: a command must be a JSON object, got null');
  t.equal(
    rejection(bytes('Escalate')).message,
    'Invalid command: a command must be a JSON object, got "Escalate"',
  );
  t.equal(
    rejection(undefined).message,
    'Invalid command: a command must be a JSON object, got nothing',
  );
});

t.test('the error is a 400 ParleyError whose cause is the JSON parser', async (t) => {
  try {
    parseCommand('{');
    t.fail('accepted');
  } catch (error) {
    t.ok(error instanceof ParleyError);
    t.equal((error as ParleyError).statusCode, 400);
    t.ok((error as Error).cause instanceof SyntaxError);
  }
});

t.test('a __proto__ key is an unknown field, not a prototype', async (t) => {
  const { details } = rejection(
    '{"type":"Escalate","id":"x","conversation":"c","__proto__":{"a":1}}',
  );
  t.same(
    details.map((d) => d.path),
    ['__proto__'],
  );
});

t.test('any JSON value is either a command or a PARLEY_ERR_INVALID_COMMAND', async () => {
  fc.assert(
    fc.property(fc.oneof(fc.jsonValue(), fc.string(), fc.uint8Array()), (value) => {
      try {
        const command: Command = parseCommand(value);
        return COMMAND_TYPES.includes(command.type);
      } catch (error) {
        return isParleyError(error, 'PARLEY_ERR_INVALID_COMMAND') && Array.isArray(error.details);
      }
    }),
  );
});

t.test('a conversation id is accepted exactly when it is a safe subject token', async () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 130, unit: 'binary' }), (conversation) => {
      let accepted = true;
      try {
        parseCommand({ ...Escalate, conversation });
      } catch {
        accepted = false;
      }
      const token =
        conversation.length > 0 &&
        conversation.length <= 128 &&
        !/[^A-Za-z0-9_-]/.test(conversation);
      return accepted === token && (!accepted || !/[.*>\s]/.test(conversation));
    }),
  );
});

t.test('docs/schemas/ is what scripts/command-schemas.ts writes', async (t) => {
  const out = mkdtempSync(join(tmpdir(), 'parley-schemas-'));
  t.teardown(() => rmSync(out, { recursive: true, force: true }));
  writeFileSync(join(out, 'Stale.json'), '{}\n');
  const run = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/command-schemas.ts', out], {
    cwd: root,
    encoding: 'utf8',
  });
  t.equal(run.status, 0, run.stderr);
  const expected = [...COMMAND_TYPES, 'command'].map((name) => `${name}.json`).sort();
  t.same(readdirSync(out).sort(), expected, 'one file per command, and stale files removed');
  t.same(readdirSync(schemasFolder).sort(), expected, 'regenerate docs/schemas with the script');
  const schemas = commandJsonSchemas();
  for (const file of expected) {
    const committed = readFileSync(join(schemasFolder, file), 'utf8');
    t.equal(
      committed,
      readFileSync(join(out, file), 'utf8'),
      `${file}: regenerate it with the script`,
    );
    t.same(JSON.parse(committed), schemas[file.replace(/\.json$/, '') as keyof typeof schemas]);
  }
});

t.test('the published schemas accept the examples and refuse an unknown field', async (t) => {
  const ajv = new Ajv({ discriminator: true, allErrors: true });
  const read = (name: string) =>
    JSON.parse(readFileSync(join(schemasFolder, `${name}.json`), 'utf8'));
  const any = ajv.compile(read('command'));
  for (const type of COMMAND_TYPES) {
    const one = ajv.compile(read(type));
    for (const example of [MINIMAL_COMMAND_EXAMPLES[type], COMMAND_EXAMPLES[type]]) {
      t.ok(one(example), `${type}: ${JSON.stringify(one.errors)}`);
      t.ok(any(example), `command: ${JSON.stringify(any.errors)}`);
      t.notOk(one({ ...example, foo: 1 }), type);
      t.notOk(any({ ...example, foo: 1 }), type);
    }
  }
  t.notOk(any({ ...Escalate, type: 'Explode' }));
  t.notOk(ajv.compile(read('SendMessage'))({ ...SendMessage, message: { text: ' ' } }));
});
