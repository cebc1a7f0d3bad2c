// What visitors and agents see of a conversation: the live inspection or an event, turned into
// the fields each may see. Visitors never see agents' tags, notes, transfers or internal codes.
import type { DomainEvent, Message } from '../../actors/events.ts';
import { typicalReplyMs } from '../../actors/routing-group.ts';
import type { Settings } from '../../actors/settings.ts';
import type { ConversationInspection } from '../inspect.ts';
import type { Backend } from './backend.ts';

/** Notes in the thread meant for agents only. */
const AGENT_NOTES = new Set(['snoozed', 'transferred']);

export const visibleToVisitor = (m: Message) => !(m.note && AGENT_NOTES.has(m.note));

/** A message as the visitor sees it: agents by their name. */
export function visitorMessage(settings: Settings, m: Message) {
  const author =
    m.author.kind === 'agent'
      ? {
          kind: 'agent' as const,
          name: settings.agents.find((a) => a.id === (m.author as { id: string }).id)?.name ?? '',
        }
      : m.author;
  return { ...m, author };
}

export async function visitorView(backend: Backend, c: ConversationInspection) {
  const ctx = c.context;
  const groupSettings = backend.settings.groups.find((g) => g.id === c.group);
  const groupContext = await backend.groupContext(c.group);
  const agent = ctx.agent ? backend.settings.agents.find((a) => a.id === ctx.agent) : undefined;
  return {
    id: c.conversation,
    state: c.state,
    position: c.position,
    typicalReplyMs:
      groupContext && groupSettings
        ? typicalReplyMs(groupContext, groupSettings.typicalReplyMs)
        : (groupSettings?.typicalReplyMs ?? null),
    agent: agent ? { name: agent.name } : null,
    unread: ctx.unread,
    readSeq: ctx.readSeq,
    lastSeq: ctx.nextSeq - 1,
    createdAt: ctx.times.createdAt,
    closedAt: ctx.times.closedAt,
    survey: ctx.survey ? { csat: ctx.survey.csat, nps: ctx.survey.nps } : null,
    surveyOpen: c.state === 'closed' && ctx.survey === null,
  };
}

export function agentView(c: ConversationInspection) {
  const ctx = c.context;
  return {
    id: c.conversation,
    state: c.state,
    path: c.path,
    group: c.group,
    agent: ctx.agent,
    reservedFor: ctx.reservedFor,
    visitor: ctx.visitor,
    visitorOnline: ctx.visitorOnline,
    blocked: ctx.blocked,
    /** Conversations here are asynchronous: the visitor may answer hours later. */
    asynchronous: true,
    wasSnoozed: ctx.snoozes.length > 0,
    snoozes: ctx.snoozes,
    position: c.position,
    tags: ctx.tags,
    unread: ctx.unread,
    lastSeq: ctx.nextSeq - 1,
    botAnswers: ctx.bot.answers,
    times: ctx.times,
    transfers: ctx.transfers,
    survey: ctx.survey,
    /** The last pages the visitor viewed, oldest first: the last one is the current page. */
    pages: ctx.pages ?? [],
    timers: c.timers,
  };
}

/**
 * Follows a conversation's events the way its visitor sees them: the state, the unread count
 * (messages from agents and the bot since the visitor last read), and the messages.
 */
export class VisitorProjection {
  state = 'bot';
  unread = 0;
  readonly #toVisitor: number[] = [];

  constructor(readonly settings: Settings) {}

  /** The payload to send the visitor for `e`, or undefined when it is not theirs to see. */
  apply(e: DomainEvent): Record<string, unknown> | undefined {
    const base = () => ({ type: e.type, at: e.at, state: this.state, unread: this.unread });
    switch (e.type) {
      case 'ConversationStarted':
        this.state = 'bot';
        return base();
      case 'MessageAdded': {
        const m = e.message;
        const toVisitor =
          (m.author.kind === 'agent' || m.author.kind === 'bot') && m.note !== 'automatic';
        if (toVisitor) {
          this.#toVisitor.push(m.seq);
          this.unread++;
        }
        if (!visibleToVisitor(m)) return undefined;
        return { ...base(), message: visitorMessage(this.settings, m) };
      }
      case 'MessagesRead':
        this.unread = this.#toVisitor.filter((seq) => seq > e.upToSeq).length;
        return base();
      case 'ConversationQueued':
        this.state = 'queued';
        return base();
      case 'ConversationParked':
        this.state = 'bot';
        return base();
      case 'ConversationAssigned':
        this.state = 'assigned';
        return base();
      case 'ConversationSnoozed':
        this.state = 'snoozed';
        return base();
      case 'ConversationClosed':
        this.state = 'closed';
        return { ...base(), surveyOpen: true };
      case 'SurveyAnswered':
        return { ...base(), surveyOpen: false };
      default:
        return undefined;
    }
  }
}

/**
 * Follows every event the way one agent's console needs it (push mode): conversations assigned
 * to them arrive marked asynchronous, with the visitor's presence and a note when they had been
 * snoozed; then the events of the conversations they hold, until those leave them.
 */
export class AgentProjection {
  readonly #agent: string;
  readonly #held = new Set<string>();

  constructor(agent: string) {
    this.#agent = agent;
  }

  /** A conversation the agent holds already when the stream opens. */
  hold(conversation: string): void {
    this.#held.add(conversation);
  }

  apply(e: DomainEvent): Record<string, unknown> | undefined {
    if (e.type === 'AgentPresenceChanged') {
      return e.agent === this.#agent ? { ...e } : undefined;
    }
    if (e.type === 'CommandRejected' || !('conversation' in e)) return undefined;
    const c = e.conversation;
    if (e.type === 'ConversationAssigned') {
      if (e.agent !== this.#agent) {
        // Transferred to someone else: it left this agent.
        if (!this.#held.delete(c)) return undefined;
        return { type: 'ConversationLeft', conversation: c, at: e.at, to: e.agent };
      }
      this.#held.add(c);
      return {
        ...e,
        asynchronous: true,
        note: e.wasSnoozed ? 'This conversation had been snoozed; it came back to you.' : null,
      };
    }
    if (e.type === 'ConversationQueued' && e.reservedFor === this.#agent) {
      return { ...e, note: 'Transferred to you; it waits for a free slot.' };
    }
    if (!this.#held.has(c)) return undefined;
    if (
      e.type === 'ConversationSnoozed' ||
      e.type === 'ConversationClosed' ||
      e.type === 'ConversationReturned' ||
      e.type === 'ConversationQueued'
    ) {
      this.#held.delete(c);
    }
    return { ...e };
  }
}
