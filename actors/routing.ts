// Routing rules: which rule a visit matches, whether the chat button shows, and which routing
// group a conversation goes to once the bot has its answers.
import type { Visit } from './events.ts';
import type { RoutingRule } from './settings.ts';

function pagePattern(pattern: string): RegExp {
  const escaped = pattern.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*');
  return new RegExp(`^${escaped}$`);
}

/** True when the visit's page matches one of the rule's patterns and every attribute is equal. */
export function ruleMatches(rule: RoutingRule, visit: Visit): boolean {
  const pageOk =
    rule.match.pages.length === 0 || rule.match.pages.some((p) => pagePattern(p).test(visit.url));
  const attributesOk = Object.entries(rule.match.attributes).every(
    ([k, v]) => visit.attributes[k] === v,
  );
  return pageOk && attributesOk;
}

/** The first rule, in configuration order, that matches the visit. */
export function matchRule(rules: readonly RoutingRule[], visit: Visit): RoutingRule | undefined {
  return rules.find((r) => ruleMatches(r, visit));
}

/** Whether the widget shows its chat button for a visit routed by `rule`. */
export function showsChatButton(rule: RoutingRule, targetGroupFull: boolean): boolean {
  return rule.showChatButton && !(rule.hideWhenFull && targetGroupFull);
}

/** Compares a visitor's answer with a choice the way the bot does: trimmed, case-insensitive. */
export function sameAnswer(a: string, b: string): boolean {
  return a.trim().toLocaleLowerCase() === b.trim().toLocaleLowerCase();
}

/** The routing group named by the first answer route that the answers satisfy, else the rule's group. */
export function targetGroup(rule: RoutingRule, answers: Readonly<Record<string, string>>): string {
  const route = rule.target.byAnswer.find((r) => {
    const given = answers[r.question];
    return given !== undefined && sameAnswer(given, r.answer);
  });
  return route ? route.group : rule.target.group;
}
