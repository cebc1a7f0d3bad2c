// The routing-group actor on its own: the order of the waiting list, the visitor's place in it,
// the typical reply time, and the cap that counts waiting and snoozed conversations.
import t from 'tap';
import { initialTransition, transition } from 'xstate';
import {
  FIRST_RESPONSE_SAMPLES,
  orderWaitingList,
  positionInWaitingList,
  type RoutingGroupContext,
  type RoutingGroupEvent,
  routingGroupMachine,
  typicalReplyMs,
  type WaitingEntry,
  waitingListFull,
} from '../../actors/routing-group.ts';

const WINDOW = 60_000;
/** The start of an ordering window, so offsets below WINDOW stay in it. */
const T0 = 1_000 * WINDOW;

const entry = (conversation: string, readyAt: number, over: Partial<WaitingEntry> = {}) => ({
  conversation,
  readyAt,
  woken: false,
  visitorOnline: false,
  reservedFor: null,
  ...over,
});

const ids = (entries: readonly WaitingEntry[]) => entries.map((e) => e.conversation);

const ctxWith = (waiting: WaitingEntry[], firstResponses: number[] = []): RoutingGroupContext => ({
  id: 'tv',
  waiting,
  snoozed: [],
  firstResponses,
});

function group() {
  return initialTransition(routingGroupMachine, { id: 'tv' })[0];
}

function send(events: RoutingGroupEvent[]) {
  let snapshot = group();
  for (const e of events) snapshot = transition(routingGroupMachine, snapshot, e)[0];
  return snapshot;
}

t.test('ordering within one window', async (t) => {
  t.test('a woken conversation goes before earlier ones of the same window', async (t) => {
    const list = [entry('a', T0 + 1_000), entry('b', T0 + 50_000, { woken: true })];
    t.same(ids(orderWaitingList(list, WINDOW)), ['b', 'a']);
  });

  t.test('a woken conversation goes before an online visitor of the same window', async (t) => {
    const list = [
      entry('online', T0 + 1_000, { visitorOnline: true }),
      entry('woken', T0 + 2_000, { woken: true, visitorOnline: false }),
    ];
    t.same(ids(orderWaitingList(list, WINDOW)), ['woken', 'online']);
  });

  t.test('an online visitor goes before earlier offline ones of the same window', async (t) => {
    const list = [
      entry('away', T0 + 1_000, { visitorOnline: false }),
      entry('here', T0 + 30_000, { visitorOnline: true }),
    ];
    t.same(ids(orderWaitingList(list, WINDOW)), ['here', 'away']);
  });

  t.test('otherwise the earliest goes first', async (t) => {
    const list = [entry('late', T0 + 30_000), entry('early', T0 + 10_000)];
    t.same(ids(orderWaitingList(list, WINDOW)), ['early', 'late']);
  });

  t.test('entries ready at the same time go by id', async (t) => {
    const list = [entry('c-2', T0 + 5), entry('c-1', T0 + 5), entry('c-3', T0 + 5)];
    t.same(ids(orderWaitingList(list, WINDOW)), ['c-1', 'c-2', 'c-3']);
    t.same(ids(orderWaitingList([...list].reverse(), WINDOW)), ['c-1', 'c-2', 'c-3']);
  });
});

t.test('ordering across windows', async (t) => {
  t.test('an older window goes first even when the later one is woken', async (t) => {
    const list = [
      entry('woken-later', T0 + WINDOW + 1_000, { woken: true, visitorOnline: true }),
      entry('plain-older', T0 + 59_000),
    ];
    t.same(ids(orderWaitingList(list, WINDOW)), ['plain-older', 'woken-later']);
  });

  t.test('the same two entries count as the same age under a wider window', async (t) => {
    const list = [
      entry('woken-later', T0 + WINDOW + 1_000, { woken: true }),
      entry('plain-older', T0 + 59_000),
    ];
    t.same(ids(orderWaitingList(list, 10 * WINDOW)), ['woken-later', 'plain-older']);
  });

  t.test('a mixed list sorts by window, then woken, then online, then time', async (t) => {
    const list = [
      entry('w2-plain', T0 + WINDOW + 100),
      entry('w1-online', T0 + 40_000, { visitorOnline: true }),
      entry('w2-woken', T0 + WINDOW + 500, { woken: true }),
      entry('w1-plain-early', T0 + 100),
      entry('w1-woken', T0 + 50_000, { woken: true }),
      entry('w1-plain-late', T0 + 20_000),
    ];
    t.same(ids(orderWaitingList(list, WINDOW)), [
      'w1-woken',
      'w1-online',
      'w1-plain-early',
      'w1-plain-late',
      'w2-woken',
      'w2-plain',
    ]);
  });

  t.test('ordering does not change the list it is given', async (t) => {
    const list = [entry('b', T0 + 2), entry('a', T0 + 1)];
    orderWaitingList(list, WINDOW);
    t.same(ids(list), ['b', 'a']);
  });
});

t.test('a conversation sees its 1-based place in the ordered list', async (t) => {
  const ctx = ctxWith([
    entry('first-come', T0 + 100),
    entry('online', T0 + 200, { visitorOnline: true }),
    entry('next-window', T0 + WINDOW),
  ]);
  t.equal(positionInWaitingList(ctx, WINDOW, 'online'), 1);
  t.equal(positionInWaitingList(ctx, WINDOW, 'first-come'), 2);
  t.equal(positionInWaitingList(ctx, WINDOW, 'next-window'), 3);
});

t.test('a conversation that is not waiting has no place in the list', async (t) => {
  const ctx = ctxWith([entry('a', T0)]);
  t.equal(positionInWaitingList(ctx, WINDOW, 'nope'), null);
  t.equal(positionInWaitingList(ctxWith([]), WINDOW, 'a'), null);
});

t.test('typical reply time', async (t) => {
  t.test('is the configured figure before any first response is measured', async (t) => {
    t.equal(typicalReplyMs(ctxWith([]), 3 * 3_600_000), 3 * 3_600_000);
  });

  t.test('is the middle sample of an odd number of them', async (t) => {
    t.equal(typicalReplyMs(ctxWith([], [900, 100, 5_000]), 1), 900);
    t.equal(typicalReplyMs(ctxWith([], [42]), 1), 42, 'one sample replaces the fallback');
  });

  t.test('is the mean of the two middle samples of an even number of them', async (t) => {
    t.equal(typicalReplyMs(ctxWith([], [400, 100, 10_000, 200]), 1), 300);
    t.equal(typicalReplyMs(ctxWith([], [1, 2]), 99), 2, 'rounded to a whole millisecond');
  });

  t.test('keeps only the latest samples', async (t) => {
    const slow = Array.from({ length: 20 }, () => ({ type: 'firstResponse', ms: 1_000 }) as const);
    const fast = Array.from({ length: 13 }, () => ({ type: 'firstResponse', ms: 10 }) as const);
    const ctx = send([...slow, ...fast]).context;
    t.equal(ctx.firstResponses.length, FIRST_RESPONSE_SAMPLES);
    t.same(ctx.firstResponses, [...Array(12).fill(1_000), ...Array(13).fill(10)]);
    // With every sample kept the median would be 1000; with the latest 25 it is 10.
    t.equal(typicalReplyMs(ctx, 0), 10);
  });
});

t.test('the cap', async (t) => {
  t.test('waitingListFull: full when the seats taken reach the cap', async (t) => {
    t.notOk(waitingListFull(0, 2));
    t.notOk(waitingListFull(1, 2));
    t.ok(waitingListFull(2, 2), 'at the cap');
    t.ok(waitingListFull(3, 2), 'past it (a cap lowered under a full list)');
    t.ok(waitingListFull(0, 0), 'a cap of 0 takes nobody');
  });

  t.test('the list keeps whoever the engine seated, in order', async (t) => {
    const s = send([
      { type: 'wait', entry: entry('a', T0) },
      { type: 'snooze', entry: { conversation: 's', until: T0 + 5 } },
      { type: 'wait', entry: entry('b', T0 + 1) },
    ]);
    t.same(ids(s.context.waiting), ['a', 'b']);
    t.same(s.context.snoozed, [{ conversation: 's', until: T0 + 5 }]);
  });

  t.test('a wait or snooze of a conversation already listed changes nothing', async (t) => {
    const s = send([
      { type: 'wait', entry: entry('a', T0) },
      { type: 'snooze', entry: { conversation: 's', until: T0 + 5 } },
    ]);
    const [again] = transition(routingGroupMachine, s, { type: 'wait', entry: entry('a', T0 + 9) });
    t.same(again.context, s.context, 'a retried wait');
    const [snoozeAgain] = transition(routingGroupMachine, s, {
      type: 'snooze',
      entry: { conversation: 's', until: T0 + 99 },
    });
    t.same(snoozeAgain.context, s.context, 'a retried snooze');
  });

  t.test('a conversation that leaves is no longer listed', async (t) => {
    const s = send([
      { type: 'wait', entry: entry('a', T0) },
      { type: 'snooze', entry: { conversation: 's', until: T0 + 5 } },
      { type: 'leave', conversation: 's' },
      { type: 'wait', entry: entry('b', T0 + 1) },
      { type: 'leave', conversation: 'a' },
      { type: 'wait', entry: entry('c', T0 + 2) },
    ]);
    t.same(ids(s.context.waiting), ['b', 'c']);
    t.same(s.context.snoozed, []);
  });
});

t.test('a visitor coming online moves their conversation up within its window', async (t) => {
  const s = send([
    { type: 'wait', entry: entry('a', T0 + 1) },
    { type: 'wait', entry: entry('b', T0 + 2) },
  ]);
  t.equal(positionInWaitingList(s.context, WINDOW, 'b'), 2);
  const [after] = transition(routingGroupMachine, s, {
    type: 'visitorPresence',
    conversation: 'b',
    online: true,
  });
  t.equal(positionInWaitingList(after.context, WINDOW, 'b'), 1);
  t.equal(after.context.waiting.find((e) => e.conversation === 'a')?.visitorOnline, false);
});
