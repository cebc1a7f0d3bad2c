// The command line as a person runs it: `parley demo` tells the product's story, and an unknown
// command fails with one line.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import type { DomainEvent } from '../../actors/events.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

function parley(...args: string[]) {
  const run = spawnSync(process.execPath, ['--import', 'tsx', 'bin/parley.ts', ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 30_000,
  });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

/** The facts a reader of the event stream looks for, in the order the story tells them. */
const STORY: { what: string; of?: 'another'; is: (e: DomainEvent) => boolean }[] = [
  { what: 'Marie starts a conversation', is: (e) => e.type === 'ConversationStarted' },
  {
    what: 'the bot escalates it to the waiting list',
    is: (e) => e.type === 'ConversationQueued' && e.reason === 'escalated',
  },
  { what: 'an agent gets it', is: (e) => e.type === 'ConversationAssigned' },
  { what: 'the agent snoozes it', is: (e) => e.type === 'ConversationSnoozed' },
  {
    what: 'the visitor wakes it',
    is: (e) => e.type === 'ConversationWoken' && e.by === 'visitor',
  },
  { what: 'the agent snoozes it again', is: (e) => e.type === 'ConversationSnoozed' },
  { what: 'the timer wakes it', is: (e) => e.type === 'ConversationWoken' && e.by === 'timer' },
  {
    what: 'it is transferred to an agent',
    is: (e) => e.type === 'ConversationTransferred' && 'agent' in e.to,
  },
  { what: 'it is closed', is: (e) => e.type === 'ConversationClosed' },
  { what: 'the survey is answered', is: (e) => e.type === 'SurveyAnswered' },
  {
    what: 'another conversation is parked at a full waiting list',
    of: 'another',
    is: (e) => e.type === 'ConversationParked' && e.reason === 'waiting-list-full',
  },
];

t.test('parley demo --json tells the story as events, in order', async (t) => {
  const run = parley('demo', '--json');
  t.equal(run.status, 0, run.stderr);
  t.equal(run.stderr, '');
  const events = run.stdout
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as DomainEvent);
  t.notOk(
    events.some((e) => e.type === 'CommandRejected'),
    'the engine accepts every step of the story',
  );

  const marie = events.find((e) => e.type === 'ConversationStarted')?.conversation;
  let from = 0;
  for (const step of STORY) {
    const i = events.findIndex(
      (e, n) =>
        n >= from &&
        step.is(e) &&
        'conversation' in e &&
        (step.of === 'another') !== (e.conversation === marie),
    );
    t.ok(i >= 0, `then ${step.what}`);
    if (i < 0) break;
    from = i + 1;
  }

  const transfer = events.find((e) => e.type === 'ConversationTransferred');
  const afterTransfer = events[events.indexOf(transfer!) + 1];
  t.match(
    afterTransfer,
    { type: 'ConversationAssigned', conversation: marie },
    'a transfer to an offline agent with a free slot assigns at once',
  );
  const notes = events.flatMap((e) =>
    e.type === 'MessageAdded' && e.message.note === 'snoozed' ? [e.message.text] : [],
  );
  t.equal(notes.length, 2, 'each wake leaves a note in the thread');
  t.match(notes[0], /snoozed by .* for 5 h; it is back because the visitor wrote again/);
  t.match(notes[1], /because the snooze period is over/);
});

t.test('parley demo tells the story in readable lines on the simulated clock', async (t) => {
  const run = parley('demo');
  t.equal(run.status, 0, run.stderr);
  t.match(run.stdout, /^09:00 .*ConversationStarted/m);
  t.match(run.stdout, /position 1 in the waiting list/);
  t.match(run.stdout, /^16:21 .*ConversationWoken .*by the timer/m, 'the timer wakes it at 16:21');
  t.match(run.stdout, /MessageAdded .*#\d+ agent Alice: /, 'messages show their author');
});

t.test('an unknown command fails with one line on stderr', async (t) => {
  const run = parley('dance');
  t.not(run.status, 0);
  t.equal(run.stdout, '');
  t.equal(run.stderr.trim().split('\n').length, 1);
  t.match(run.stderr, /unknown command 'dance'/);
});

t.test('parley --help lists the commands', async (t) => {
  const run = parley('--help');
  t.equal(run.status, 0);
  t.match(run.stdout, /demo/);
  t.match(run.stdout, /model/);
});

t.test('an unknown option of demo fails with one line', async (t) => {
  const run = parley('demo', '--jsno');
  t.equal(run.status, 2);
  t.equal(run.stderr.trim().split('\n').length, 1);
});
