// Routing rules: which rule a visit matches, whether the chat button shows, and where the bot's
// answers send the conversation.
import t from 'tap';
import type { Visit } from '../../actors/events.ts';
import {
  matchRule,
  ruleMatches,
  sameAnswer,
  showsChatButton,
  targetGroup,
} from '../../actors/routing.ts';
import { rule } from '../helpers/settings.ts';

const visit = (url: string, attributes: Record<string, string> = {}): Visit => ({
  url,
  attributes,
});

const onPages = (...pages: string[]) => rule('r', { match: { pages, attributes: {} } });

t.test('a star in a page pattern matches any run of characters', async (t) => {
  const r = onPages('https://shop.example/tv/*');
  t.ok(ruleMatches(r, visit('https://shop.example/tv/oled-55')));
  t.ok(ruleMatches(r, visit('https://shop.example/tv/oled/55?ref=home')));
  t.ok(ruleMatches(r, visit('https://shop.example/tv/')), 'an empty run too');
  t.notOk(ruleMatches(r, visit('https://shop.example/radio/dab')));
});

t.test('a star can stand in the middle of a pattern and several times', async (t) => {
  const r = onPages('https://*.example/*/checkout');
  t.ok(ruleMatches(r, visit('https://shop.example/fr/checkout')));
  t.ok(ruleMatches(r, visit('https://eu.shop.example/fr/be/checkout')));
  t.notOk(ruleMatches(r, visit('https://shop.example/fr/checkout/done')));
});

t.test('a pattern without a star matches the whole address only', async (t) => {
  const r = onPages('https://shop.example/help');
  t.ok(ruleMatches(r, visit('https://shop.example/help')));
  t.notOk(ruleMatches(r, visit('https://shop.example/help/faq')), 'not a prefix');
  t.notOk(ruleMatches(r, visit('see https://shop.example/help')), 'not a suffix');
});

t.test('dots and question marks in a pattern are literal characters', async (t) => {
  const r = onPages('https://shop.example/search?q=*');
  t.ok(ruleMatches(r, visit('https://shop.example/search?q=tv')));
  t.notOk(ruleMatches(r, visit('https://shopXexample/search?q=tv')), 'a dot is not any character');
  t.notOk(ruleMatches(r, visit('https://shop.example/searcq=tv')), 'a ? does not make h optional');
});

t.test('a rule matches when any one of its page patterns matches', async (t) => {
  const r = onPages('https://shop.example/tv/*', 'https://shop.example/radio/*');
  t.ok(ruleMatches(r, visit('https://shop.example/radio/dab')));
  t.ok(ruleMatches(r, visit('https://shop.example/tv/oled')));
  t.notOk(ruleMatches(r, visit('https://shop.example/phones/x')));
});

t.test('a rule without page patterns matches every page', async (t) => {
  const r = onPages();
  t.ok(ruleMatches(r, visit('https://shop.example/anything')));
  t.ok(ruleMatches(r, visit('https://other.example/')));
  t.ok(ruleMatches(r, visit('')));
});

t.test('a rule matches only when every attribute it names is equal', async (t) => {
  const r = rule('vip', { match: { pages: [], attributes: { tier: 'gold', lang: 'fr' } } });
  t.ok(ruleMatches(r, visit('https://shop.example/', { tier: 'gold', lang: 'fr' })));
  t.ok(
    ruleMatches(r, visit('https://shop.example/', { tier: 'gold', lang: 'fr', extra: 'x' })),
    'other attributes do not matter',
  );
  t.notOk(ruleMatches(r, visit('https://shop.example/', { tier: 'gold' })), 'a missing one fails');
  t.notOk(ruleMatches(r, visit('https://shop.example/', { tier: 'silver', lang: 'fr' })));
  t.notOk(
    ruleMatches(r, visit('https://shop.example/', { tier: 'Gold', lang: 'fr' })),
    'attribute values are compared exactly',
  );
});

t.test('a rule needs both its page and its attributes to match', async (t) => {
  const r = rule('tv-gold', {
    match: { pages: ['https://shop.example/tv/*'], attributes: { tier: 'gold' } },
  });
  t.ok(ruleMatches(r, visit('https://shop.example/tv/a', { tier: 'gold' })));
  t.notOk(ruleMatches(r, visit('https://shop.example/tv/a', { tier: 'silver' })));
  t.notOk(ruleMatches(r, visit('https://shop.example/radio/a', { tier: 'gold' })));
});

t.test('the first rule in configuration order that matches wins', async (t) => {
  const gold = rule('gold', { match: { pages: [], attributes: { tier: 'gold' } } });
  const tv = rule('tv', { match: { pages: ['https://shop.example/tv/*'], attributes: {} } });
  const anyPage = rule('any');
  const rules = [gold, tv, anyPage];
  t.equal(matchRule(rules, visit('https://shop.example/tv/a', { tier: 'gold' }))?.id, 'gold');
  t.equal(matchRule(rules, visit('https://shop.example/tv/a'))?.id, 'tv');
  t.equal(matchRule(rules, visit('https://shop.example/radio'))?.id, 'any');
  t.equal(
    matchRule([anyPage, gold, tv], visit('https://shop.example/tv/a', { tier: 'gold' }))?.id,
    'any',
    'a catch-all placed first shadows the rules after it',
  );
});

t.test('no rule matches a visit that fits none of them', async (t) => {
  const tv = rule('tv', { match: { pages: ['https://shop.example/tv/*'], attributes: {} } });
  t.equal(matchRule([tv], visit('https://shop.example/radio')), undefined);
  t.equal(matchRule([], visit('https://shop.example/radio')), undefined);
});

t.test('the chat button shows when the rule shows it and the group has room', async (t) => {
  t.ok(showsChatButton(rule('r', { showChatButton: true, hideWhenFull: true }), false));
  t.ok(showsChatButton(rule('r', { showChatButton: true, hideWhenFull: false }), false));
});

t.test(
  'the chat button hides while the target group is full when hideWhenFull is set',
  async (t) => {
    t.notOk(showsChatButton(rule('r', { showChatButton: true, hideWhenFull: true }), true));
  },
);

t.test('the chat button stays while the group is full when hideWhenFull is not set', async (t) => {
  t.ok(showsChatButton(rule('r', { showChatButton: true, hideWhenFull: false }), true));
});

t.test('a rule that hides the chat button hides it whether the group is full or not', async (t) => {
  t.notOk(showsChatButton(rule('r', { showChatButton: false, hideWhenFull: false }), false));
  t.notOk(showsChatButton(rule('r', { showChatButton: false, hideWhenFull: true }), true));
});

const qualify = rule('qualify', {
  target: {
    group: 'tv',
    byAnswer: [
      { question: 'topic', answer: 'Order', group: 'orders' },
      { question: 'topic', answer: 'Refund', group: 'billing' },
      { question: 'country', answer: 'BE', group: 'belgium' },
    ],
  },
});

t.test('an answer route sends the conversation to its group', async (t) => {
  t.equal(targetGroup(qualify, { topic: 'Order' }), 'orders');
  t.equal(targetGroup(qualify, { topic: 'Refund' }), 'billing');
});

t.test('answers are compared case-insensitively and trimmed', async (t) => {
  t.equal(targetGroup(qualify, { topic: 'order' }), 'orders');
  t.equal(targetGroup(qualify, { topic: '  ORDER \n' }), 'orders');
  t.ok(sameAnswer(' Order', 'order  '));
  t.notOk(sameAnswer('Order', 'Orders'));
  t.notOk(sameAnswer('Or der', 'Order'), 'inner spaces count');
});

t.test('without a matching answer the conversation goes to the default group', async (t) => {
  t.equal(targetGroup(qualify, {}), 'tv', 'no answers at all');
  t.equal(targetGroup(qualify, { topic: 'Product' }), 'tv', 'an answer no route names');
  t.equal(targetGroup(qualify, { other: 'Order' }), 'tv', 'the right answer to another question');
  t.equal(targetGroup(qualify, { topic: 'Orders' }), 'tv', 'a near miss is no match');
});

t.test('the first answer route the answers satisfy wins', async (t) => {
  t.equal(targetGroup(qualify, { topic: 'Refund', country: 'BE' }), 'billing');
  t.equal(targetGroup(qualify, { topic: 'Product', country: 'be' }), 'belgium');
});
