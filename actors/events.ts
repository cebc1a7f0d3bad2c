// The language of the engine: the commands it accepts (imperatives) and the events it publishes
// (past-tense facts). Everything here is plain JSON, so it crosses NATS and HTTP unchanged.

export type Presence = 'online' | 'away' | 'offline';

export type Author =
  | { readonly kind: 'visitor'; readonly id: string }
  | { readonly kind: 'agent'; readonly id: string }
  | { readonly kind: 'bot' }
  | { readonly kind: 'system' };

/** A typed reference to content stored elsewhere (the engine never holds the bytes). */
export interface Attachment {
  readonly kind: 'image' | 'file' | 'offer';
  /** Where the content is: a URL, or an id in the brand's catalogue for an offer. */
  readonly ref: string;
  readonly name?: string;
  readonly mimeType?: string;
  readonly sizeBytes?: number;
}

/** Why the system wrote a message in the thread. */
export type NoteKind = 'automatic' | 'greeting' | 'question' | 'full' | 'snoozed' | 'transferred';

export interface Message {
  /** Chosen by the sender (a retry with the same id is the same message) or derived from the command id. */
  readonly id: string;
  /** 1, 2, 3… in the thread, without gaps. */
  readonly seq: number;
  readonly author: Author;
  /** Plain text; links and emojis are part of it. */
  readonly text: string;
  readonly attachments: readonly Attachment[];
  readonly at: number;
  readonly note?: NoteKind;
}

export interface Visit {
  /** The page the visitor is on. */
  readonly url: string;
  readonly attributes: Readonly<Record<string, string>>;
}

export type TransferTarget = { readonly agent: string } | { readonly group: string };

// ---------------------------------------------------------------------------------------------
// Commands. Every command carries an id chosen by its sender: applying it twice changes nothing.

interface CommandBase {
  readonly id: string;
}

export interface StartConversation extends CommandBase {
  readonly type: 'StartConversation';
  readonly conversation: string;
  readonly visitor: string;
  /** The routing rule that matched the visitor's page (see actors/routing.ts). */
  readonly rule: string;
  readonly visitorOnline?: boolean;
  /** The visitor's first message, when the conversation starts with one. */
  readonly message?: MessageInput;
}

export interface MessageInput {
  /** The client's id of the message; a retry with the same id is not added twice. */
  readonly id?: string;
  readonly text: string;
  readonly attachments?: readonly Attachment[];
}

export interface SendMessage extends CommandBase {
  readonly type: 'SendMessage';
  readonly conversation: string;
  readonly author: Author;
  readonly message: MessageInput;
}

export interface MarkRead extends CommandBase {
  readonly type: 'MarkRead';
  readonly conversation: string;
  readonly visitor: string;
}

export interface Escalate extends CommandBase {
  readonly type: 'Escalate';
  readonly conversation: string;
}

export interface Snooze extends CommandBase {
  readonly type: 'Snooze';
  readonly conversation: string;
  readonly agent: string;
  /** Within the group's bounds; the group's default when left out. */
  readonly durationMs?: number;
}

/** Delivered by the timer index when a snooze deadline passes; `until` names which deadline. */
export interface SnoozeExpired extends CommandBase {
  readonly type: 'SnoozeExpired';
  readonly conversation: string;
  readonly until: number;
}

export interface Transfer extends CommandBase {
  readonly type: 'Transfer';
  readonly conversation: string;
  readonly agent: string;
  readonly to: TransferTarget;
}

export interface Tag extends CommandBase {
  readonly type: 'Tag';
  readonly conversation: string;
  readonly agent: string;
  readonly tags: readonly string[];
}

export interface Close extends CommandBase {
  readonly type: 'Close';
  readonly conversation: string;
  readonly by: { readonly agent: string } | { readonly visitor: string };
  readonly tags?: readonly string[];
}

export interface AnswerSurvey extends CommandBase {
  readonly type: 'AnswerSurvey';
  readonly conversation: string;
  readonly visitor: string;
  /** Customer satisfaction, 1 to 5. */
  readonly csat?: number;
  /** Net promoter score answer, 0 to 10. */
  readonly nps?: number;
  readonly comment?: string;
}

export interface BlockVisitor extends CommandBase {
  readonly type: 'BlockVisitor';
  readonly conversation: string;
  readonly agent: string;
  readonly reason?: string;
}

export interface SetVisitorPresence extends CommandBase {
  readonly type: 'SetVisitorPresence';
  readonly conversation: string;
  readonly online: boolean;
}

/** The visitor opened a page of the brand's site (for the agents: the current page, the trail). */
export interface RecordPageView extends CommandBase {
  readonly type: 'RecordPageView';
  readonly conversation: string;
  readonly url: string;
  /** The page's title, as the browser shows it; empty when it has none. */
  readonly title: string;
}

/** A page the visitor viewed, as the conversation keeps it. */
export interface PageView {
  readonly url: string;
  readonly title: string;
  readonly at: number;
}

export interface SetAgentPresence extends CommandBase {
  readonly type: 'SetAgentPresence';
  readonly agent: string;
  readonly presence: Presence;
}

export type ConversationCommand =
  | StartConversation
  | SendMessage
  | MarkRead
  | Escalate
  | Snooze
  | SnoozeExpired
  | Transfer
  | Tag
  | Close
  | AnswerSurvey
  | BlockVisitor
  | SetVisitorPresence
  | RecordPageView;

export type Command = ConversationCommand | SetAgentPresence;

/** Who an author is, as de-duplication tells them apart: `visitor.<id>`, `agent.<id>`, `bot`, `system`. */
export function authorKey(author: Author): string {
  return 'id' in author ? `${author.kind}.${author.id}` : author.kind;
}

/** Who sent a command, as far as its fields say: its author, agent or visitor. */
function actorOf(cmd: Command): string {
  switch (cmd.type) {
    case 'SendMessage':
      return authorKey(cmd.author);
    case 'Snooze':
    case 'Transfer':
    case 'Tag':
    case 'BlockVisitor':
    case 'SetAgentPresence':
      return `agent.${cmd.agent}`;
    case 'Close':
      return 'agent' in cmd.by ? `agent.${cmd.by.agent}` : `visitor.${cmd.by.visitor}`;
    case 'MarkRead':
    case 'AnswerSurvey':
    case 'StartConversation':
      return `visitor.${cmd.visitor}`;
    default:
      return 'system';
  }
}

/**
 * What makes a command the same command again, within its conversation (or agent): its kind, its
 * sender and its id. Ids are the senders' own, so two senders (or two kinds of command) may
 * choose the same one; only a true retry has the same key. A conversation remembers the keys of
 * the commands it applied; JetStream de-duplicates on `<conversation>:<key>` (lib/nats/streams.ts).
 */
export function commandKey(cmd: Command): string {
  return `${cmd.type}:${actorOf(cmd)}:${cmd.id}`;
}

/** What makes a message the same message again in its thread: its author and its id. */
export function messageKey(author: Author, messageId: string): string {
  return `${authorKey(author)}:${messageId}`;
}

// ---------------------------------------------------------------------------------------------
// Events: what happened. `at` is the engine's clock when the command was applied.

interface EventBase {
  readonly at: number;
}

interface ConversationEventBase extends EventBase {
  readonly conversation: string;
  /** The routing group the conversation belongs to after the event, when it has one. */
  readonly group: string | null;
}

export type ConversationEvent =
  | (ConversationEventBase & {
      readonly type: 'ConversationStarted';
      readonly visitor: string;
      readonly rule: string;
    })
  | (ConversationEventBase & { readonly type: 'MessageAdded'; readonly message: Message })
  | (ConversationEventBase & {
      readonly type: 'MessageRefused';
      readonly author: Author;
      readonly reason: 'visitor-blocked' | 'conversation-closed';
    })
  | (ConversationEventBase & {
      readonly type: 'BotAnswerRecorded';
      readonly question: string;
      readonly answer: string;
    })
  | (ConversationEventBase & {
      readonly type: 'ConversationQueued';
      readonly group: string;
      /** Why it entered the waiting list. */
      readonly reason: 'escalated' | 'overflowed' | 'woken' | 'transferred' | 'returned';
      /** When reserved by a transfer, the only agent it may be handed to. */
      readonly reservedFor: string | null;
    })
  | (ConversationEventBase & {
      readonly type: 'ConversationParked';
      readonly group: string;
      readonly reason: 'waiting-list-full';
    })
  | (ConversationEventBase & {
      readonly type: 'ConversationAssigned';
      readonly group: string;
      readonly agent: string;
      /** How long it waited in the waiting list before this assignment (0 for a direct transfer). */
      readonly waitedMs: number;
      readonly visitorOnline: boolean;
      /** True when the conversation had been snoozed before: the agent sees a note about it. */
      readonly wasSnoozed: boolean;
    })
  | (ConversationEventBase & {
      readonly type: 'ConversationSnoozed';
      readonly group: string;
      readonly agent: string;
      readonly until: number;
      readonly durationMs: number;
    })
  | (ConversationEventBase & {
      readonly type: 'ConversationWoken';
      readonly group: string;
      readonly by: 'visitor' | 'timer';
      readonly snoozedBy: string;
      readonly snoozedMs: number;
    })
  | (ConversationEventBase & {
      readonly type: 'ConversationTransferred';
      readonly from: string;
      readonly to: TransferTarget;
    })
  | (ConversationEventBase & {
      readonly type: 'ConversationReturned';
      readonly agent: string;
      readonly reason: 'agent-offline';
    })
  | (ConversationEventBase & {
      readonly type: 'ConversationTagged';
      readonly tags: readonly string[];
    })
  | (ConversationEventBase & {
      readonly type: 'ConversationClosed';
      readonly by: 'agent' | 'visitor';
      readonly agent: string | null;
      readonly tags: readonly string[];
      /** Durations for the reports, in milliseconds (see docs/model.md). */
      readonly handlingMs: number;
      readonly resolutionMs: number;
    })
  | (ConversationEventBase & {
      readonly type: 'SurveyAnswered';
      readonly csat: number | null;
      readonly nps: number | null;
      readonly comment: string | null;
    })
  | (ConversationEventBase & {
      readonly type: 'VisitorBlocked';
      readonly visitor: string;
      readonly agent: string;
      readonly reason: string | null;
    })
  | (ConversationEventBase & {
      readonly type: 'VisitorPresenceChanged';
      readonly visitor: string;
      readonly online: boolean;
    })
  | (ConversationEventBase & {
      readonly type: 'PageViewed';
      readonly visitor: string;
      readonly page: PageView;
    })
  | (ConversationEventBase & {
      readonly type: 'MessagesRead';
      readonly visitor: string;
      readonly upToSeq: number;
    });

export type AgentEvent = EventBase & {
  readonly type: 'AgentPresenceChanged';
  readonly agent: string;
  readonly presence: Presence;
};

/** A command the engine could not apply: it changed nothing, and says why. */
export type RejectionEvent = EventBase & {
  readonly type: 'CommandRejected';
  readonly command: string;
  readonly commandType: Command['type'];
  readonly conversation: string | null;
  readonly code: RejectionCode;
  readonly reason: string;
};

export type RejectionCode =
  | 'unknown-conversation'
  | 'unknown-agent'
  | 'unknown-group'
  | 'unknown-rule'
  | 'conversation-exists'
  | 'not-allowed-in-state'
  | 'not-assigned-agent'
  | 'not-the-visitor'
  | 'snooze-out-of-bounds'
  | 'waiting-list-full'
  | 'no-free-slot'
  | 'survey-answered'
  | 'survey-out-of-range'
  | 'visitor-blocked';

/** A sentence for each rejection code, for people reading events and logs. */
export const REJECTION_REASONS: Record<RejectionCode, string> = {
  'unknown-conversation': 'no such conversation',
  'unknown-agent': 'no such agent',
  'unknown-group': 'no such routing group',
  'unknown-rule': 'no such routing rule',
  'conversation-exists': 'a conversation with this id already exists',
  'not-allowed-in-state': 'the conversation is in a state that does not allow this',
  'not-assigned-agent': 'only the agent the conversation is assigned to may do this',
  'not-the-visitor': "only the conversation's visitor may do this",
  'snooze-out-of-bounds': "the snooze duration is outside the routing group's bounds",
  'waiting-list-full': 'the waiting list is full',
  'no-free-slot': 'the agent has no free slot',
  'survey-answered': 'the survey was already answered',
  'survey-out-of-range': 'CSAT is 1 to 5 and NPS 0 to 10, and at least one is needed',
  'visitor-blocked': 'the visitor is blocked',
};

export type DomainEvent = ConversationEvent | AgentEvent | RejectionEvent;

export type EventType = DomainEvent['type'];
