// The agent actor: presence (online, away, offline) and the asynchronous conversations the agent
// holds, never more than their slots.
import { assign, emit, setup } from 'xstate';
import type { AgentEvent, Presence } from './events.ts';
import type { AgentSettings } from './settings.ts';

export interface AgentContext {
  readonly id: string;
  readonly slots: number;
  /** The conversations assigned to the agent, oldest first. */
  readonly conversations: readonly string[];
  /** When the agent last received a conversation; null when never. Ties go to the longest idle. */
  readonly lastAssignedAt: number | null;
}

export type AgentMachineEvent =
  | { readonly type: 'presence'; readonly presence: Presence; readonly at: number }
  | { readonly type: 'take'; readonly conversation: string; readonly at: number }
  | { readonly type: 'release'; readonly conversation: string };

export const agentMachine = setup({
  types: {
    context: {} as AgentContext,
    events: {} as AgentMachineEvent,
    input: {} as AgentSettings,
    emitted: {} as AgentEvent,
  },
  guards: {
    hasFreeSlot: ({ context }) => context.conversations.length < context.slots,
    holdsIt: ({ context, event }) =>
      event.type === 'take' && context.conversations.includes(event.conversation),
    toOnline: ({ event }) => event.type === 'presence' && event.presence === 'online',
    toAway: ({ event }) => event.type === 'presence' && event.presence === 'away',
    toOffline: ({ event }) => event.type === 'presence' && event.presence === 'offline',
  },
  actions: {
    holdConversation: assign({
      conversations: ({ context, event }) =>
        event.type === 'take'
          ? [...context.conversations, event.conversation]
          : context.conversations,
      lastAssignedAt: ({ context, event }) =>
        event.type === 'take' ? event.at : context.lastAssignedAt,
    }),
    releaseConversation: assign({
      conversations: ({ context, event }) =>
        event.type === 'release'
          ? context.conversations.filter((c) => c !== event.conversation)
          : context.conversations,
    }),
    announcePresence: emit(({ context, event }) => {
      const e = event as Extract<AgentMachineEvent, { type: 'presence' }>;
      return {
        type: 'AgentPresenceChanged',
        agent: context.id,
        presence: e.presence,
        at: e.at,
      } as const;
    }),
  },
}).createMachine({
  id: 'agent',
  context: ({ input }) => ({
    id: input.id,
    slots: input.slots,
    conversations: [],
    lastAssignedAt: null,
  }),
  initial: 'offline',
  on: {
    take: [
      { guard: 'holdsIt' }, // taken already (a retried step): nothing changes
      { guard: 'hasFreeSlot', actions: 'holdConversation' },
    ],
    release: { actions: 'releaseConversation' },
  },
  states: {
    offline: {
      on: {
        presence: [
          { guard: 'toOnline', target: 'online', actions: 'announcePresence' },
          { guard: 'toAway', target: 'away', actions: 'announcePresence' },
        ],
      },
    },
    online: {
      on: {
        presence: [
          { guard: 'toAway', target: 'away', actions: 'announcePresence' },
          { guard: 'toOffline', target: 'offline', actions: 'announcePresence' },
        ],
      },
    },
    away: {
      on: {
        presence: [
          { guard: 'toOnline', target: 'online', actions: 'announcePresence' },
          { guard: 'toOffline', target: 'offline', actions: 'announcePresence' },
        ],
      },
    },
  },
});

export type AgentMachine = typeof agentMachine;
