// The conversation actor: bot → queued → assigned → snoozed → closed, with its thread's numbering,
// the bot's questions, snoozes and wakes, transfers, tags, the survey, and the times reports need.
// It decides nothing about other actors: the engine tells it the facts it needs (a free seat, a
// free slot) inside the events it sends.
import { and, assign, emit, enqueueActions, not, setup } from 'xstate';
import {
  type AnswerSurvey,
  type Author,
  type BlockVisitor,
  type Close,
  type ConversationEvent,
  type Escalate,
  type MarkRead,
  type Message,
  type MessageInput,
  type NoteKind,
  type PageView,
  REJECTION_REASONS,
  type RecordPageView,
  type RejectionCode,
  type RejectionEvent,
  type SendMessage,
  type SetVisitorPresence,
  type Snooze,
  type SnoozeExpired,
  type Tag,
  type Transfer,
  type TransferTarget,
} from './events.ts';
import { sameAnswer, targetGroup } from './routing.ts';
import type { BotQuestion, RoutingGroupSettings, RoutingRule, Settings } from './settings.ts';

export interface SnoozeRecord {
  readonly by: string;
  readonly at: number;
  readonly until: number;
  readonly durationMs: number;
  readonly wokeAt: number | null;
  readonly wokeBy: 'visitor' | 'timer' | null;
}

export interface ConversationContext {
  readonly id: string;
  readonly visitor: string;
  readonly rule: string;
  /** The routing group it belongs to; null while the bot has not escalated it yet. */
  readonly group: string | null;
  readonly agent: string | null;
  readonly reservedFor: string | null;
  readonly visitorOnline: boolean;
  readonly blocked: boolean;
  readonly bot: { readonly asked: number; readonly answers: Readonly<Record<string, string>> };
  /** The seq the next message of the thread gets. */
  readonly nextSeq: number;
  /** Messages from agents and the bot that the visitor has not read. */
  readonly unread: number;
  readonly readSeq: number;
  readonly tags: readonly string[];
  /** In the waiting list since `readyAt`; `woken` when it came back from a snooze. */
  readonly queue: { readonly readyAt: number; readonly woken: boolean } | null;
  readonly times: {
    readonly createdAt: number;
    /** First entry into a waiting list. */
    readonly escalatedAt: number | null;
    readonly firstReplyAt: number | null;
    readonly closedAt: number | null;
    /** Time spent assigned and not snoozed, up to `handlingSince` when assigned now. */
    readonly handlingMs: number;
    readonly handlingSince: number | null;
  };
  readonly assignments: readonly {
    readonly agent: string;
    readonly at: number;
    readonly waitedMs: number;
  }[];
  readonly snoozes: readonly SnoozeRecord[];
  readonly transfers: readonly {
    readonly at: number;
    readonly from: string;
    readonly to: TransferTarget;
  }[];
  readonly closedBy: 'agent' | 'visitor' | null;
  /**
   * The last {@link PAGE_VIEWS_KEPT} pages the visitor viewed, oldest first; absent from
   * snapshots written before page views were recorded.
   */
  readonly pages?: readonly PageView[];
  readonly survey: {
    readonly csat: number | null;
    readonly nps: number | null;
    readonly comment: string | null;
    readonly at: number;
  } | null;
}

export interface ConversationInput {
  readonly id: string;
  readonly visitor: string;
  readonly rule: string;
  readonly visitorOnline: boolean;
  readonly at: number;
  readonly message?: MessageInput & { readonly id: string };
}

/** How many page views a conversation keeps: the visitor's current page and the trail before it. */
export const PAGE_VIEWS_KEPT = 20;

/** Where an escalation lands, decided by the engine from the groups' free seats. */
export type Placement =
  | { readonly kind: 'queue'; readonly group: string; readonly reason: 'escalated' | 'overflowed' }
  | { readonly kind: 'park'; readonly group: string };

/** What a transfer does, decided by the engine from the target's free slots and seats. */
export type TransferOutcome =
  | { readonly kind: 'assign'; readonly agent: string }
  | { readonly kind: 'queue'; readonly group: string; readonly reservedFor: string | null }
  | { readonly kind: 'refuse'; readonly code: RejectionCode };

type Timed<C> = C & { readonly at: number };

/** The events the machine receives: commands stamped with time and facts, and the engine's decisions. */
export type ConversationMachineEvent =
  | Timed<SendMessage & { readonly messageId: string; readonly visitorBlocked: boolean }>
  | Timed<MarkRead>
  | Timed<Escalate>
  | Timed<Snooze & { readonly seatFree: boolean }>
  | Timed<SnoozeExpired>
  | Timed<Transfer & { readonly outcome: TransferOutcome }>
  | Timed<Tag>
  | Timed<Close>
  | Timed<AnswerSurvey>
  | Timed<BlockVisitor>
  | Timed<SetVisitorPresence>
  | Timed<RecordPageView>
  | Timed<{ readonly type: 'engine.place'; readonly placement: Placement }>
  | Timed<{ readonly type: 'engine.assign'; readonly agent: string }>
  | Timed<{ readonly type: 'engine.return' }>;

type Ev<T extends ConversationMachineEvent['type']> = Extract<
  ConversationMachineEvent,
  { type: T }
>;

export type ConversationEmitted = ConversationEvent | RejectionEvent;

/** The id of a message: the client's when given, else derived from the command that carried it. */
export function messageIdOf(commandId: string, input: MessageInput): string {
  return input.id ?? `${commandId}:m`;
}

/** The snooze in force, when the conversation is snoozed. */
export function currentSnooze(ctx: ConversationContext): SnoozeRecord | undefined {
  const last = ctx.snoozes[ctx.snoozes.length - 1];
  return last && last.wokeAt === null ? last : undefined;
}

/** Handling time so far, counting the current assignment up to `now`. */
export function handlingMsAt(ctx: ConversationContext, now: number): number {
  const t = ctx.times;
  return t.handlingMs + (t.handlingSince === null ? 0 : now - t.handlingSince);
}

export function formatDurationShort(ms: number): string {
  const m = Math.round(ms / 60_000);
  if (m < 60) return `${m} min`;
  const h = Math.floor(m / 60);
  const rest = m % 60;
  return rest === 0 ? `${h} h` : `${h} h ${rest} min`;
}

/**
 * Builds the conversation machine for one configuration: the bot's questions, the snooze bounds
 * and the groups' messages are read from `settings`, so snapshots hold only ids.
 */
export function createConversationMachine(settings: Settings) {
  const rules = new Map(settings.rules.map((r) => [r.id, r]));
  const groups = new Map(settings.groups.map((g) => [g.id, g]));
  const agentGroups = new Map(settings.agents.map((a) => [a.id, new Set(a.groups)]));
  const agentNames = new Map(settings.agents.map((a) => [a.id, a.name]));

  const ruleOf = (ctx: ConversationContext): RoutingRule => {
    const rule = rules.get(ctx.rule);
    if (!rule) throw new Error(`conversation ${ctx.id} names unknown rule ${ctx.rule}`);
    return rule;
  };
  const groupOf = (id: string): RoutingGroupSettings => {
    const g = groups.get(id);
    if (!g) throw new Error(`unknown routing group ${id}`);
    return g;
  };
  const questionsOf = (ctx: ConversationContext): readonly BotQuestion[] =>
    ruleOf(ctx).bot?.questions ?? [];
  const currentQuestion = (ctx: ConversationContext): BotQuestion | undefined =>
    questionsOf(ctx)[ctx.bot.asked];
  const homeGroup = (ctx: ConversationContext): RoutingGroupSettings =>
    groupOf(ctx.group ?? targetGroup(ruleOf(ctx), ctx.bot.answers));

  /** One new message: the context patch that numbers it and the MessageAdded fact. */
  const append = (
    ctx: ConversationContext,
    at: number,
    m: {
      id: string;
      author: Author;
      text: string;
      attachments?: Message['attachments'];
      note?: NoteKind;
    },
  ) => {
    const message: Message = {
      id: m.id,
      seq: ctx.nextSeq,
      author: m.author,
      text: m.text,
      attachments: m.attachments ?? [],
      at,
      ...(m.note ? { note: m.note } : {}),
    };
    const toVisitor =
      (m.author.kind === 'agent' || m.author.kind === 'bot') && m.note !== 'automatic';
    return {
      patch: { nextSeq: ctx.nextSeq + 1, unread: ctx.unread + (toVisitor ? 1 : 0) },
      fact: {
        type: 'MessageAdded',
        conversation: ctx.id,
        group: ctx.group,
        at,
        message,
      } satisfies ConversationEmitted,
    };
  };

  const systemId = (ctx: ConversationContext, what: string) => `${ctx.id}:${ctx.nextSeq}:${what}`;

  return setup({
    types: {
      context: {} as ConversationContext,
      events: {} as ConversationMachineEvent,
      input: {} as ConversationInput,
      emitted: {} as ConversationEmitted,
    },
    guards: {
      hasQuestions: ({ context }) => questionsOf(context).length > 0,
      isLastQuestion: ({ context }) => context.bot.asked + 1 >= questionsOf(context).length,
      answerIsValid: ({ context, event }) => {
        const q = currentQuestion(context);
        const e = event as Ev<'SendMessage'>;
        return !q?.choices || q.choices.some((c) => sameAnswer(c, e.message.text));
      },
      fromTheVisitor: ({ context, event }) => {
        const a = (event as Ev<'SendMessage'>).author;
        return a.kind === 'visitor' && a.id === context.visitor;
      },
      fromAVisitor: ({ event }) => (event as Ev<'SendMessage'>).author.kind === 'visitor',
      fromTheBot: ({ event }) => (event as Ev<'SendMessage'>).author.kind === 'bot',
      fromTheSystem: ({ event }) => (event as Ev<'SendMessage'>).author.kind === 'system',
      fromTheAssignedAgent: ({ context, event }) => {
        const a = (event as Ev<'SendMessage'>).author;
        return a.kind === 'agent' && a.id === context.agent;
      },
      visitorIsBlocked: ({ context, event }) =>
        context.blocked || (event as Ev<'SendMessage'>).visitorBlocked,
      byTheAssignedAgent: ({ context, event }) =>
        'agent' in event && typeof event.agent === 'string' && event.agent === context.agent,
      byTheAgent: ({ context, event }) => {
        const by = (event as Ev<'Close'>).by;
        return 'agent' in by && by.agent === context.agent;
      },
      byTheVisitor: ({ context, event }) => {
        const e = event as Ev<'Close'> | Ev<'AnswerSurvey'> | Ev<'MarkRead'>;
        if (e.type === 'Close') return 'visitor' in e.by && e.by.visitor === context.visitor;
        return e.visitor === context.visitor;
      },
      byAgentOfGroup: ({ context, event }) => {
        const agent = (event as Ev<'Tag'>).agent;
        if (agent === context.agent) return true;
        const home = context.group ?? targetGroup(ruleOf(context), context.bot.answers);
        return agentGroups.get(agent)?.has(home) ?? false;
      },
      snoozeWithinBounds: ({ context, event }) => {
        const { durationMs } = event as Ev<'Snooze'>;
        if (durationMs === undefined) return true;
        const b = homeGroup(context).snooze;
        return Number.isFinite(durationMs) && durationMs >= b.minMs && durationMs <= b.maxMs;
      },
      seatFree: ({ event }) => (event as Ev<'Snooze'>).seatFree,
      isCurrentDeadline: ({ context, event }) => {
        const e = event as Ev<'SnoozeExpired'>;
        return currentSnooze(context)?.until === e.until && e.at >= e.until;
      },
      transferRefused: ({ event }) => (event as Ev<'Transfer'>).outcome.kind === 'refuse',
      transferAssigns: ({ event }) => (event as Ev<'Transfer'>).outcome.kind === 'assign',
      placedInWaitingList: ({ event }) => (event as Ev<'engine.place'>).placement.kind === 'queue',
      surveyAnswered: ({ context }) => context.survey !== null,
      surveyInRange: ({ event }) => {
        const { csat, nps } = event as Ev<'AnswerSurvey'>;
        const okCsat = csat === undefined || (Number.isInteger(csat) && csat >= 1 && csat <= 5);
        const okNps = nps === undefined || (Number.isInteger(nps) && nps >= 0 && nps <= 10);
        return okCsat && okNps && (csat !== undefined || nps !== undefined);
      },
      visitorPresenceChanges: ({ context, event }) =>
        (event as Ev<'SetVisitorPresence'>).online !== context.visitorOnline,
      hasUnread: ({ context }) => context.readSeq < context.nextSeq - 1,
    },
    actions: {
      reject: emit(({ context, event }, params: { code: RejectionCode }) => {
        const e = event as Exclude<ConversationMachineEvent, { type: `engine.${string}` }>;
        return {
          type: 'CommandRejected',
          at: e.at,
          command: e.id,
          commandType: e.type,
          conversation: context.id,
          code: params.code,
          reason: REJECTION_REASONS[params.code],
        } as const;
      }),
      rejectTransfer: emit(({ context, event }) => {
        const e = event as Ev<'Transfer'>;
        const code = e.outcome.kind === 'refuse' ? e.outcome.code : 'not-allowed-in-state';
        return {
          type: 'CommandRejected',
          at: e.at,
          command: e.id,
          commandType: e.type,
          conversation: context.id,
          code,
          reason: REJECTION_REASONS[code],
        } as const;
      }),
      announceStart: emit(({ context }) => ({
        type: 'ConversationStarted',
        conversation: context.id,
        group: null,
        at: context.times.createdAt,
        visitor: context.visitor,
        rule: context.rule,
      })),
      writeAutomaticMessage: enqueueActions(({ context, enqueue }) => {
        const { patch, fact } = append(context, context.times.createdAt, {
          id: systemId(context, 'automatic'),
          author: { kind: 'system' },
          text: homeGroup(context).automaticMessage,
          note: 'automatic',
        });
        enqueue.assign(patch);
        enqueue.emit(fact);
      }),
      writeFirstMessage: enqueueActions(({ context, event, enqueue }) => {
        // At the start the event is xstate.init, which carries the input.
        const first = (event as unknown as { input?: ConversationInput }).input?.message;
        if (!first) return;
        const { patch, fact } = append(context, context.times.createdAt, {
          id: first.id,
          author: { kind: 'visitor', id: context.visitor },
          text: first.text,
          ...(first.attachments ? { attachments: first.attachments } : {}),
        });
        enqueue.assign(patch);
        enqueue.emit(fact);
      }),
      greet: enqueueActions(({ context, enqueue }) => {
        const greeting = ruleOf(context).bot?.greeting;
        if (!greeting) return;
        const { patch, fact } = append(context, context.times.createdAt, {
          id: systemId(context, 'greeting'),
          author: { kind: 'bot' },
          text: greeting,
          note: 'greeting',
        });
        enqueue.assign(patch);
        enqueue.emit(fact);
      }),
      askQuestion: enqueueActions(({ context, event, enqueue }) => {
        const q = currentQuestion(context);
        if (!q) return;
        const at = 'at' in event ? event.at : context.times.createdAt;
        const choices = q.choices ? ` (${q.choices.join(' / ')})` : '';
        const { patch, fact } = append(context, at, {
          id: systemId(context, `question-${q.id}`),
          author: { kind: 'bot' },
          text: `${q.text}${choices}`,
          note: 'question',
        });
        enqueue.assign(patch);
        enqueue.emit(fact);
      }),
      appendMessage: enqueueActions(({ context, event, enqueue }) => {
        const e = event as Ev<'SendMessage'>;
        const { patch, fact } = append(context, e.at, {
          id: e.messageId,
          author: e.author,
          text: e.message.text,
          ...(e.message.attachments ? { attachments: e.message.attachments } : {}),
        });
        const firstReply = e.author.kind === 'agent' && context.times.firstReplyAt === null;
        enqueue.assign(
          firstReply ? { ...patch, times: { ...context.times, firstReplyAt: e.at } } : patch,
        );
        enqueue.emit(fact);
      }),
      refuseMessage: emit(
        ({ context, event }, params: { reason: 'visitor-blocked' | 'conversation-closed' }) => {
          const e = event as Ev<'SendMessage'>;
          return {
            type: 'MessageRefused',
            conversation: context.id,
            group: context.group,
            at: e.at,
            author: e.author,
            reason: params.reason,
          } as const;
        },
      ),
      recordAnswer: enqueueActions(({ context, event, enqueue }) => {
        const q = currentQuestion(context);
        if (!q) return;
        const e = event as Ev<'SendMessage'>;
        const answer =
          q.choices?.find((c) => sameAnswer(c, e.message.text)) ?? e.message.text.trim();
        enqueue.assign({
          bot: {
            asked: context.bot.asked + 1,
            answers: { ...context.bot.answers, [q.id]: answer },
          },
        });
        enqueue.emit({
          type: 'BotAnswerRecorded',
          conversation: context.id,
          group: context.group,
          at: e.at,
          question: q.id,
          answer,
        });
      }),
      enterWaitingList: enqueueActions(({ context, event, enqueue }) => {
        const e = event as Ev<'engine.place'> | Ev<'Transfer'> | Ev<'engine.return'>;
        let group: string;
        let reason: 'escalated' | 'overflowed' | 'transferred' | 'returned';
        let reservedFor: string | null = null;
        if (e.type === 'engine.place' && e.placement.kind === 'queue') {
          group = e.placement.group;
          reason = e.placement.reason;
        } else if (e.type === 'Transfer' && e.outcome.kind === 'queue') {
          group = e.outcome.group;
          reason = 'transferred';
          reservedFor = e.outcome.reservedFor;
        } else if (e.type === 'engine.return' && context.group !== null) {
          group = context.group;
          reason = 'returned';
        } else {
          return;
        }
        enqueue.assign({
          group,
          agent: null,
          reservedFor,
          queue: { readyAt: e.at, woken: false },
          times: { ...context.times, escalatedAt: context.times.escalatedAt ?? e.at },
        });
        enqueue.emit({
          type: 'ConversationQueued',
          conversation: context.id,
          group,
          at: e.at,
          reason,
          reservedFor,
        });
      }),
      park: enqueueActions(({ context, event, enqueue }) => {
        const e = event as Ev<'engine.place'>;
        const group = e.placement.group;
        enqueue.emit({
          type: 'ConversationParked',
          conversation: context.id,
          group,
          at: e.at,
          reason: 'waiting-list-full',
        });
        const { patch, fact } = append(context, e.at, {
          id: systemId(context, 'full'),
          author: { kind: 'bot' },
          text: groupOf(group).fullMessage,
          note: 'full',
        });
        enqueue.assign(patch);
        enqueue.emit(fact);
      }),
      recordAssignment: enqueueActions(({ context, event, enqueue }) => {
        const e = event as Ev<'engine.assign'> | Ev<'Transfer'>;
        const agent =
          e.type === 'engine.assign'
            ? e.agent
            : e.outcome.kind === 'assign'
              ? e.outcome.agent
              : null;
        if (agent === null || context.group === null) return;
        const waitedMs =
          e.type === 'engine.assign' && context.queue ? e.at - context.queue.readyAt : 0;
        enqueue.assign({
          agent,
          reservedFor: null,
          queue: null,
          assignments: [...context.assignments, { agent, at: e.at, waitedMs }],
        });
        enqueue.emit({
          type: 'ConversationAssigned',
          conversation: context.id,
          group: context.group,
          at: e.at,
          agent,
          waitedMs,
          visitorOnline: context.visitorOnline,
          wasSnoozed: context.snoozes.length > 0,
        });
      }),
      startHandling: assign(({ context, event }) => ({
        times: { ...context.times, handlingSince: (event as { at: number }).at },
      })),
      stopHandling: assign(({ context, event }) => ({
        times: {
          ...context.times,
          handlingMs: handlingMsAt(context, (event as { at: number }).at),
          handlingSince: null,
        },
      })),
      recordSnooze: enqueueActions(({ context, event, enqueue }) => {
        const e = event as Ev<'Snooze'>;
        const durationMs = e.durationMs ?? homeGroup(context).snooze.defaultMs;
        const until = e.at + durationMs;
        enqueue.assign({
          agent: null,
          snoozes: [
            ...context.snoozes,
            { by: e.agent, at: e.at, until, durationMs, wokeAt: null, wokeBy: null },
          ],
        });
        enqueue.emit({
          type: 'ConversationSnoozed',
          conversation: context.id,
          group: context.group ?? homeGroup(context).id,
          at: e.at,
          agent: e.agent,
          until,
          durationMs,
        });
      }),
      wake: enqueueActions(({ context, event, enqueue }, params: { by: 'visitor' | 'timer' }) => {
        const s = currentSnooze(context);
        if (!s || context.group === null) return;
        const at = (event as { at: number }).at;
        const snoozedMs = at - s.at;
        const who = agentNames.get(s.by) ?? s.by;
        const why =
          params.by === 'visitor' ? 'the visitor wrote again' : 'the snooze period is over';
        const note = append(context, at, {
          id: systemId(context, 'snoozed'),
          author: { kind: 'system' },
          text: `This conversation had been snoozed by ${who} for ${formatDurationShort(s.durationMs)}; it is back because ${why}.`,
          note: 'snoozed',
        });
        enqueue.assign({
          ...note.patch,
          snoozes: [...context.snoozes.slice(0, -1), { ...s, wokeAt: at, wokeBy: params.by }],
          queue: { readyAt: at, woken: true },
        });
        enqueue.emit({
          type: 'ConversationWoken',
          conversation: context.id,
          group: context.group,
          at,
          by: params.by,
          snoozedBy: s.by,
          snoozedMs,
        });
        enqueue.emit(note.fact);
        enqueue.emit({
          type: 'ConversationQueued',
          conversation: context.id,
          group: context.group,
          at,
          reason: 'woken',
          reservedFor: null,
        });
      }),
      recordTransfer: enqueueActions(({ context, event, enqueue }) => {
        const e = event as Ev<'Transfer'>;
        enqueue.assign({
          transfers: [...context.transfers, { at: e.at, from: e.agent, to: e.to }],
        });
        enqueue.emit({
          type: 'ConversationTransferred',
          conversation: context.id,
          group: e.outcome.kind === 'queue' ? e.outcome.group : context.group,
          at: e.at,
          from: e.agent,
          to: e.to,
        });
      }),
      announceReturn: emit(({ context, event }) => ({
        type: 'ConversationReturned',
        conversation: context.id,
        group: context.group,
        at: (event as Ev<'engine.return'>).at,
        agent: context.agent ?? '',
        reason: 'agent-offline',
      })),
      recordTags: enqueueActions(({ context, event, enqueue }) => {
        const e = event as Ev<'Tag'> | Ev<'Close'>;
        const added = (e.tags ?? []).filter((t) => !context.tags.includes(t));
        if (added.length === 0) return;
        const tags = [...context.tags, ...added];
        enqueue.assign({ tags });
        enqueue.emit({
          type: 'ConversationTagged',
          conversation: context.id,
          group: context.group,
          at: e.at,
          tags,
        });
      }),
      recordClose: enqueueActions(({ context, event, enqueue }) => {
        const e = event as Ev<'Close'>;
        const by = 'agent' in e.by ? 'agent' : 'visitor';
        const start = context.times.escalatedAt ?? context.times.createdAt;
        enqueue.assign({
          closedBy: by,
          agent: null,
          reservedFor: null,
          queue: null,
          times: { ...context.times, closedAt: e.at },
        });
        enqueue.emit({
          type: 'ConversationClosed',
          conversation: context.id,
          group: context.group,
          at: e.at,
          by,
          agent: context.agent,
          tags: context.tags,
          handlingMs: context.times.handlingMs,
          resolutionMs: e.at - start,
        });
      }),
      recordSurvey: enqueueActions(({ context, event, enqueue }) => {
        const e = event as Ev<'AnswerSurvey'>;
        const survey = { csat: e.csat ?? null, nps: e.nps ?? null, comment: e.comment ?? null };
        enqueue.assign({ survey: { ...survey, at: e.at } });
        enqueue.emit({
          type: 'SurveyAnswered',
          conversation: context.id,
          group: context.group,
          at: e.at,
          ...survey,
        });
      }),
      recordBlock: enqueueActions(({ context, event, enqueue }) => {
        const e = event as Ev<'BlockVisitor'>;
        enqueue.assign({ blocked: true });
        enqueue.emit({
          type: 'VisitorBlocked',
          conversation: context.id,
          group: context.group,
          at: e.at,
          visitor: context.visitor,
          agent: e.agent,
          reason: e.reason ?? null,
        });
      }),
      recordVisitorPresence: enqueueActions(({ context, event, enqueue }) => {
        const e = event as Ev<'SetVisitorPresence'>;
        enqueue.assign({ visitorOnline: e.online });
        enqueue.emit({
          type: 'VisitorPresenceChanged',
          conversation: context.id,
          group: context.group,
          at: e.at,
          visitor: context.visitor,
          online: e.online,
        });
      }),
      recordPageView: enqueueActions(({ context, event, enqueue }) => {
        const e = event as Ev<'RecordPageView'>;
        const page: PageView = { url: e.url, title: e.title, at: e.at };
        enqueue.assign({ pages: [...(context.pages ?? []), page].slice(-PAGE_VIEWS_KEPT) });
        enqueue.emit({
          type: 'PageViewed',
          conversation: context.id,
          group: context.group,
          at: e.at,
          visitor: context.visitor,
          page,
        });
      }),
      markRead: enqueueActions(({ context, event, enqueue }) => {
        const e = event as Ev<'MarkRead'>;
        const upToSeq = context.nextSeq - 1;
        enqueue.assign({ readSeq: upToSeq, unread: 0 });
        enqueue.emit({
          type: 'MessagesRead',
          conversation: context.id,
          group: context.group,
          at: e.at,
          visitor: context.visitor,
          upToSeq,
        });
      }),
    },
  }).createMachine({
    id: 'conversation',
    context: ({ input }) => ({
      id: input.id,
      visitor: input.visitor,
      rule: input.rule,
      group: null,
      agent: null,
      reservedFor: null,
      visitorOnline: input.visitorOnline,
      blocked: false,
      bot: { asked: 0, answers: {} },
      nextSeq: 1,
      unread: 0,
      readSeq: 0,
      tags: [],
      queue: null,
      times: {
        createdAt: input.at,
        escalatedAt: null,
        firstReplyAt: null,
        closedAt: null,
        handlingMs: 0,
        handlingSince: null,
      },
      assignments: [],
      snoozes: [],
      transfers: [],
      closedBy: null,
      pages: [],
      survey: null,
    }),
    entry: ['announceStart', 'writeAutomaticMessage', 'writeFirstMessage'],
    initial: 'bot',
    on: {
      // Commands a state does not handle are refused with a reason, never dropped in silence.
      '*': { actions: { type: 'reject', params: { code: 'not-allowed-in-state' } } },
      SnoozeExpired: {}, // a stale or late timer does nothing
      SetVisitorPresence: [
        { guard: 'visitorPresenceChanges', actions: 'recordVisitorPresence' },
        {}, // already so: nothing to say
      ],
      RecordPageView: { actions: 'recordPageView' },
      MarkRead: [
        { guard: 'byTheVisitor', actions: 'markRead' },
        { actions: { type: 'reject', params: { code: 'not-the-visitor' } } },
      ],
      Tag: [
        { guard: 'byAgentOfGroup', actions: 'recordTags' },
        { actions: { type: 'reject', params: { code: 'not-assigned-agent' } } },
      ],
      Close: [
        { guard: 'byTheVisitor', target: '.closed', actions: 'recordClose' },
        { actions: { type: 'reject', params: { code: 'not-assigned-agent' } } },
      ],
      SendMessage: [
        {
          guard: and(['fromAVisitor', 'visitorIsBlocked']),
          actions: { type: 'refuseMessage', params: { reason: 'visitor-blocked' } },
        },
        { guard: 'fromTheVisitor', actions: 'appendMessage' },
        { guard: 'fromAVisitor', actions: { type: 'reject', params: { code: 'not-the-visitor' } } },
        { guard: 'fromTheSystem', actions: 'appendMessage' },
        { actions: { type: 'reject', params: { code: 'not-allowed-in-state' } } },
      ],
    },
    states: {
      bot: {
        entry: 'greet',
        initial: 'routing',
        on: {
          SendMessage: { guard: 'fromTheBot', actions: 'appendMessage' },
        },
        states: {
          routing: {
            always: [
              { guard: 'hasQuestions', target: 'asking', actions: 'askQuestion' },
              { target: 'escalating' },
            ],
          },
          asking: {
            on: {
              Escalate: { target: 'escalating' },
              SendMessage: [
                {
                  guard: and([
                    'fromTheVisitor',
                    not('visitorIsBlocked'),
                    'answerIsValid',
                    'isLastQuestion',
                  ]),
                  target: 'escalating',
                  actions: ['appendMessage', 'recordAnswer'],
                },
                {
                  guard: and(['fromTheVisitor', not('visitorIsBlocked'), 'answerIsValid']),
                  actions: ['appendMessage', 'recordAnswer', 'askQuestion'],
                },
                {
                  guard: and(['fromTheVisitor', not('visitorIsBlocked')]),
                  actions: ['appendMessage', 'askQuestion'],
                },
              ],
            },
          },
          /** Transient: the engine answers at once with where the conversation goes. */
          escalating: {
            on: {
              'engine.place': [
                {
                  guard: 'placedInWaitingList',
                  target: '#conversation.queued',
                  actions: 'enterWaitingList',
                },
                { target: 'parked', actions: 'park' },
              ],
            },
          },
          /** The waiting list was full: the bot told the visitor; the next message tries again. */
          parked: {
            on: {
              Escalate: { target: 'escalating' },
              SendMessage: {
                guard: and(['fromTheVisitor', not('visitorIsBlocked')]),
                target: 'escalating',
                actions: 'appendMessage',
              },
            },
          },
        },
      },
      queued: {
        on: {
          'engine.assign': { target: 'assigned', actions: 'recordAssignment' },
        },
      },
      assigned: {
        entry: 'startHandling',
        exit: 'stopHandling',
        on: {
          SendMessage: { guard: 'fromTheAssignedAgent', actions: 'appendMessage' },
          Snooze: [
            {
              guard: not('byTheAssignedAgent'),
              actions: { type: 'reject', params: { code: 'not-assigned-agent' } },
            },
            {
              guard: not('snoozeWithinBounds'),
              actions: { type: 'reject', params: { code: 'snooze-out-of-bounds' } },
            },
            {
              guard: not('seatFree'),
              actions: { type: 'reject', params: { code: 'waiting-list-full' } },
            },
            { target: 'snoozed', actions: 'recordSnooze' },
          ],
          Transfer: [
            {
              guard: not('byTheAssignedAgent'),
              actions: { type: 'reject', params: { code: 'not-assigned-agent' } },
            },
            { guard: 'transferRefused', actions: 'rejectTransfer' },
            // The agent changes; the conversation stays open on a panel, so handling goes on.
            { guard: 'transferAssigns', actions: ['recordTransfer', 'recordAssignment'] },
            { target: 'queued', actions: ['recordTransfer', 'enterWaitingList'] },
          ],
          Close: [
            { guard: 'byTheAgent', target: 'closed', actions: ['recordTags', 'recordClose'] },
            { guard: 'byTheVisitor', target: 'closed', actions: 'recordClose' },
            { actions: { type: 'reject', params: { code: 'not-assigned-agent' } } },
          ],
          BlockVisitor: [
            { guard: 'byTheAssignedAgent', actions: 'recordBlock' },
            { actions: { type: 'reject', params: { code: 'not-assigned-agent' } } },
          ],
          'engine.return': { target: 'queued', actions: ['announceReturn', 'enterWaitingList'] },
        },
      },
      snoozed: {
        on: {
          SendMessage: {
            guard: and(['fromTheVisitor', not('visitorIsBlocked')]),
            target: 'queued',
            actions: [{ type: 'wake', params: { by: 'visitor' } }, 'appendMessage'],
          },
          SnoozeExpired: {
            guard: 'isCurrentDeadline',
            target: 'queued',
            actions: { type: 'wake', params: { by: 'timer' } },
          },
        },
      },
      closed: {
        on: {
          SendMessage: [
            { guard: 'fromTheSystem', actions: 'appendMessage' },
            { actions: { type: 'refuseMessage', params: { reason: 'conversation-closed' } } },
          ],
          Tag: { actions: { type: 'reject', params: { code: 'not-allowed-in-state' } } },
          Close: { actions: { type: 'reject', params: { code: 'not-allowed-in-state' } } },
          RecordPageView: {
            actions: { type: 'reject', params: { code: 'not-allowed-in-state' } },
          },
          AnswerSurvey: [
            {
              guard: not('byTheVisitor'),
              actions: { type: 'reject', params: { code: 'not-the-visitor' } },
            },
            {
              guard: 'surveyAnswered',
              actions: { type: 'reject', params: { code: 'survey-answered' } },
            },
            {
              guard: not('surveyInRange'),
              actions: { type: 'reject', params: { code: 'survey-out-of-range' } },
            },
            { actions: 'recordSurvey' },
          ],
        },
      },
    },
  });
}

export type ConversationMachine = ReturnType<typeof createConversationMachine>;
