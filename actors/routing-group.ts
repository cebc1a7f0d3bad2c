// The routing-group actor: the waiting list, in order, and the group's snoozed conversations.
// A seat of the group's cap is held by every conversation waiting in the list and by every
// snoozed conversation of the group, so a conversation that wakes always has its place back.
// The cap itself is counted on the shared seats (`waitingListFull`, decided by the engine for
// every group, hosted here or not): this machine keeps the order, not the count.
import { assign, setup } from 'xstate';
import type { RoutingGroupSettings } from './settings.ts';

export interface WaitingEntry {
  readonly conversation: string;
  /** When it entered the waiting list this time. */
  readonly readyAt: number;
  /** It came back from a snooze. */
  readonly woken: boolean;
  readonly visitorOnline: boolean;
  /** Set by a transfer to an agent who had no free slot: only that agent may take it. */
  readonly reservedFor: string | null;
}

export interface SnoozedEntry {
  readonly conversation: string;
  readonly until: number;
}

export interface RoutingGroupContext {
  readonly id: string;
  readonly waiting: readonly WaitingEntry[];
  readonly snoozed: readonly SnoozedEntry[];
  /** The latest first-response times (ms) measured in this group, newest last. */
  readonly firstResponses: readonly number[];
}

export const FIRST_RESPONSE_SAMPLES = 25;

export type RoutingGroupEvent =
  | { readonly type: 'wait'; readonly entry: WaitingEntry }
  | { readonly type: 'snooze'; readonly entry: SnoozedEntry }
  | { readonly type: 'leave'; readonly conversation: string }
  | { readonly type: 'visitorPresence'; readonly conversation: string; readonly online: boolean }
  | { readonly type: 'firstResponse'; readonly ms: number };

/**
 * The waiting-list cap, the one place it is decided: a list whose seats taken (conversations
 * waiting, snoozed, or on their way in) reach its cap takes no more. The engine asks it before
 * a conversation takes a seat; the gateway, to hide a full group's chat button.
 */
export function waitingListFull(seatsTaken: number, cap: number): boolean {
  return seatsTaken >= cap;
}

/**
 * The waiting list in the order conversations are handed out. Conversations that became ready
 * within the same ordering window count as the same age; among those, woken conversations come
 * first, then those whose visitor is online, then the earliest, then by id (so the order is total).
 */
export function orderWaitingList(
  entries: readonly WaitingEntry[],
  windowMs: number,
): WaitingEntry[] {
  const bucket = (e: WaitingEntry) => Math.floor(e.readyAt / Math.max(1, windowMs));
  return [...entries].sort(
    (a, b) =>
      bucket(a) - bucket(b) ||
      Number(b.woken) - Number(a.woken) ||
      Number(b.visitorOnline) - Number(a.visitorOnline) ||
      a.readyAt - b.readyAt ||
      (a.conversation < b.conversation ? -1 : a.conversation > b.conversation ? 1 : 0),
  );
}

/** 1-based place of a conversation in its waiting list as the visitor sees it; null when not waiting. */
export function positionInWaitingList(
  ctx: RoutingGroupContext,
  windowMs: number,
  conversation: string,
): number | null {
  const i = orderWaitingList(ctx.waiting, windowMs).findIndex(
    (e) => e.conversation === conversation,
  );
  return i < 0 ? null : i + 1;
}

/** The median of the group's recent first responses, or the configured figure before it has any. */
export function typicalReplyMs(ctx: RoutingGroupContext, fallbackMs: number): number {
  const xs = [...ctx.firstResponses].sort((a, b) => a - b);
  if (xs.length === 0) return fallbackMs;
  const mid = Math.floor(xs.length / 2);
  return xs.length % 2 === 1 ? xs[mid]! : Math.round((xs[mid - 1]! + xs[mid]!) / 2);
}

const without = <T extends { conversation: string }>(xs: readonly T[], id: string) =>
  xs.filter((x) => x.conversation !== id);

export const routingGroupMachine = setup({
  types: {
    context: {} as RoutingGroupContext,
    events: {} as RoutingGroupEvent,
    input: {} as Pick<RoutingGroupSettings, 'id'>,
  },
  guards: {
    holdsIt: ({ context, event }) => {
      if (event.type !== 'wait' && event.type !== 'snooze') return false;
      const id = event.entry.conversation;
      return [...context.waiting, ...context.snoozed].some((e) => e.conversation === id);
    },
  },
  actions: {
    addToWaitingList: assign({
      waiting: ({ context, event }) =>
        event.type === 'wait' ? [...context.waiting, event.entry] : context.waiting,
    }),
    holdSnoozed: assign({
      snoozed: ({ context, event }) =>
        event.type === 'snooze' ? [...context.snoozed, event.entry] : context.snoozed,
    }),
    letGo: assign(({ context, event }) =>
      event.type === 'leave'
        ? {
            waiting: without(context.waiting, event.conversation),
            snoozed: without(context.snoozed, event.conversation),
          }
        : {},
    ),
    recordVisitorPresence: assign({
      waiting: ({ context, event }) =>
        event.type === 'visitorPresence'
          ? context.waiting.map((e) =>
              e.conversation === event.conversation ? { ...e, visitorOnline: event.online } : e,
            )
          : context.waiting,
    }),
    recordFirstResponse: assign({
      firstResponses: ({ context, event }) =>
        event.type === 'firstResponse'
          ? [...context.firstResponses, event.ms].slice(-FIRST_RESPONSE_SAMPLES)
          : context.firstResponses,
    }),
  },
}).createMachine({
  id: 'routingGroup',
  context: ({ input }) => ({
    id: input.id,
    waiting: [],
    snoozed: [],
    firstResponses: [],
  }),
  initial: 'open',
  states: {
    open: {
      on: {
        // A conversation already holding its seat (a retried step) changes nothing. The seat
        // itself was taken on the shared seats first (waitingListFull).
        wait: [{ guard: 'holdsIt' }, { actions: 'addToWaitingList' }],
        snooze: [{ guard: 'holdsIt' }, { actions: 'holdSnoozed' }],
        leave: { actions: 'letGo' },
        visitorPresence: { actions: 'recordVisitorPresence' },
        firstResponse: { actions: 'recordFirstResponse' },
      },
    },
  },
});

export type RoutingGroupMachine = typeof routingGroupMachine;
