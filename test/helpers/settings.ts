// Settings for the actors' tests, written out in full so the tests do not depend on the config loader.
import {
  type AgentSettings,
  GROUP_DEFAULTS,
  HOUR_MS,
  MINUTE_MS,
  type RoutingGroupSettings,
  type RoutingRule,
  type Settings,
} from '../../actors/settings.ts';

export const group = (
  id: string,
  over: Partial<Omit<RoutingGroupSettings, 'id'>> = {},
): RoutingGroupSettings => ({ ...GROUP_DEFAULTS, id, name: id.toUpperCase(), ...over });

export const agent = (id: string, groups: string[], slots = 2): AgentSettings => ({
  id,
  name: id[0]!.toUpperCase() + id.slice(1),
  groups,
  slots,
});

export const rule = (id: string, over: Partial<RoutingRule> = {}): RoutingRule => ({
  id,
  match: { pages: [], attributes: {} },
  showChatButton: true,
  hideWhenFull: false,
  target: { group: 'tv', byAnswer: [] },
  ...over,
});

/** Two groups (tv with cap 3, orders with cap 2), a bot rule and a direct rule, three agents. */
export function testSettings(over: Partial<Settings> = {}): Settings {
  return {
    groups: [
      group('tv', {
        cap: 3,
        snooze: { defaultMs: 5 * HOUR_MS, minMs: 5 * MINUTE_MS, maxMs: 24 * HOUR_MS },
      }),
      group('orders', { cap: 2 }),
    ],
    rules: [
      rule('direct', { target: { group: 'tv', byAnswer: [] } }),
      rule('qualify', {
        bot: {
          greeting: 'Hello, I am the bot.',
          questions: [
            { id: 'topic', text: 'What is it about?', choices: ['Order', 'Product'] },
            { id: 'email', text: 'Your email?' },
          ],
        },
        target: {
          group: 'tv',
          byAnswer: [{ question: 'topic', answer: 'Order', group: 'orders' }],
        },
      }),
    ],
    agents: [agent('alice', ['tv']), agent('bob', ['tv', 'orders']), agent('carol', ['orders'], 1)],
    cannedAnswers: [],
    ...over,
  };
}
