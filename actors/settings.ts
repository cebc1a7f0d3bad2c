// The settings the actors run on: routing groups, routing rules, agents and canned answers,
// already validated and normalised (durations in milliseconds). lib/config.ts builds them from a file.

/** What happens to an escalation that finds its routing group's waiting list full. */
export type OverflowPolicy =
  /** The conversation stays with the bot, which tells the visitor to leave a message and come back. */
  | { readonly kind: 'bot' }
  /** The conversation goes to another routing group's waiting list (and, if that one is full too, to its policy). */
  | { readonly kind: 'group'; readonly group: string };

/** What happens to an agent's assigned conversations when the agent goes offline. */
export type OfflinePolicy = 'keep' | 'return';

export interface SnoozeSettings {
  /** Used when the agent does not choose a duration (5 hours by default). */
  readonly defaultMs: number;
  readonly minMs: number;
  readonly maxMs: number;
}

export interface RoutingGroupSettings {
  readonly id: string;
  readonly name: string;
  /** Seats of the waiting list: conversations waiting plus snoozed conversations of the group. */
  readonly cap: number;
  readonly snooze: SnoozeSettings;
  readonly overflow: OverflowPolicy;
  /** The first message of every conversation routed by a rule that targets this group. */
  readonly automaticMessage: string;
  /** What the bot says when the conversation cannot enter a full waiting list. */
  readonly fullMessage: string;
  readonly offlinePolicy: OfflinePolicy;
  /** Shown to visitors until the group has measured first responses of its own. */
  readonly typicalReplyMs: number;
  /** The clock is cut into windows of this length; conversations ready in the same one count as the same age. */
  readonly orderingWindowMs: number;
}

export interface BotQuestion {
  readonly id: string;
  readonly text: string;
  /** When present, the answer must be one of these (compared case-insensitively). */
  readonly choices?: readonly string[];
}

export interface BotSettings {
  /** Said once, before the first question. */
  readonly greeting?: string;
  readonly questions: readonly BotQuestion[];
}

/** Sends the conversation to `group` when the answer to `question` is `answer`. */
export interface AnswerRoute {
  readonly question: string;
  readonly answer: string;
  readonly group: string;
}

export interface RuleMatch {
  /** URL patterns; `*` matches any run of characters. No patterns: every page. */
  readonly pages: readonly string[];
  /** Visitor attributes that must all be equal. */
  readonly attributes: Readonly<Record<string, string>>;
}

export interface RoutingRule {
  readonly id: string;
  readonly match: RuleMatch;
  readonly showChatButton: boolean;
  /** Hide the chat button while the target group's waiting list is full. */
  readonly hideWhenFull: boolean;
  readonly bot?: BotSettings;
  /** The default target group, and the answers that send the conversation elsewhere. */
  readonly target: { readonly group: string; readonly byAnswer: readonly AnswerRoute[] };
}

export interface AgentSettings {
  readonly id: string;
  readonly name: string;
  readonly groups: readonly string[];
  /** How many asynchronous conversations the agent may hold at once. */
  readonly slots: number;
}

export interface CannedAnswer {
  readonly id: string;
  readonly title: string;
  readonly text: string;
  /** Groups whose agents may use it; empty: every group. */
  readonly groups: readonly string[];
}

/** The chat widget's: where it may be embedded (the engine itself does not read them). */
export interface WidgetSettings {
  /** Origins (`https://shop.example`) whose pages may embed the widget and call the visitor API. */
  readonly allowedOrigins: readonly string[];
}

export interface Settings {
  readonly groups: readonly RoutingGroupSettings[];
  readonly rules: readonly RoutingRule[];
  readonly agents: readonly AgentSettings[];
  readonly cannedAnswers: readonly CannedAnswer[];
  /** Absent: the widget may be embedded nowhere. */
  readonly widget?: WidgetSettings;
}

export const HOUR_MS = 3_600_000;
export const MINUTE_MS = 60_000;

export const DEFAULT_AUTOMATIC_MESSAGE =
  "👋 Hi there! Leave us a message and we'll get back to you as soon as possible. If you don't have a quick reply, come back later, the team typically replies in a few hours!";

export const DEFAULT_FULL_MESSAGE =
  'All our agents are busy right now. Leave us a message and come back later: we will answer you here.';

/** The defaults a routing group gets for every field its configuration leaves out. */
export const GROUP_DEFAULTS: Omit<RoutingGroupSettings, 'id' | 'name'> = {
  cap: 50,
  snooze: { defaultMs: 5 * HOUR_MS, minMs: 5 * MINUTE_MS, maxMs: 7 * 24 * HOUR_MS },
  overflow: { kind: 'bot' },
  automaticMessage: DEFAULT_AUTOMATIC_MESSAGE,
  fullMessage: DEFAULT_FULL_MESSAGE,
  offlinePolicy: 'keep',
  typicalReplyMs: 3 * HOUR_MS,
  orderingWindowMs: MINUTE_MS,
};

export const DEFAULT_AGENT_SLOTS = 5;
