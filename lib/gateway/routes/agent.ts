// The agent API, what the agent console calls: presence, the push stream of assigned
// conversations, and acting on a conversation (reply, snooze, transfer, tag, close, block),
// canned answers and the visitor's past conversations. An agent acts only on conversations of
// their routing groups or assigned (or reserved) to them.
import { randomBytes } from 'node:crypto';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Command } from '../../../actors/events.ts';
import type { AgentSettings } from '../../../actors/settings.ts';
import { AttachmentSchema, PresenceSchema, TransferTargetSchema } from '../../commands.ts';
import { parseDuration } from '../../duration.ts';
import { ParleyError } from '../../errors.ts';
import type { ConversationInspection } from '../../inspect.ts';
import { SUBJECT_ROOTS } from '../../nats/streams.ts';
import { throwIfRefused } from '../backend.ts';
import {
  Accepted,
  accepted,
  ClientMessageId,
  checkAttachments,
  DEFAULT_ATTACHMENT_LIMITS,
  derivedId,
  IdParam,
  messageInput,
  Open,
  responses,
  TokenQuery,
} from '../schemas.ts';
import type { GatewayContext } from '../server.ts';
import { lastEventId, streamEvents } from '../sse.ts';
import { AgentProjection, agentView } from '../views.ts';

const closed = { additionalProperties: false } as const;
const tags = ['agent'];

/** The events by which an agent comes to hold a conversation or stops holding it. */
const HOLDING_EVENTS = [
  'ConversationAssigned',
  'ConversationSnoozed',
  'ConversationReturned',
  'ConversationTransferred',
  'ConversationClosed',
] as const;

const TagList = Type.Array(Type.String({ minLength: 1, maxLength: 64, pattern: '\\S' }), {
  maxItems: 20,
});

const ReplyBody = Type.Object(
  {
    id: ClientMessageId,
    text: Type.Optional(Type.String({ maxLength: 10_000 })),
    cannedAnswer: Type.Optional(
      Type.String({ pattern: '^[a-z0-9][a-z0-9-]*$', description: 'Insert this canned answer.' }),
    ),
    attachments: Type.Optional(Type.Array(AttachmentSchema, { maxItems: 10 })),
  },
  closed,
);

const View = Open({ id: Type.String(), state: Type.String() }, 'A conversation as agents see it.');
const Acted = responses({ 200: View, 202: Accepted }, [403, 404, 409, 422]);

export function agentRoutes(ctx: GatewayContext) {
  const { backend, auth } = ctx;
  return async (parent: FastifyInstance) => {
    const app = parent.withTypeProvider<TypeBoxTypeProvider>();

    const agentOf = (request: FastifyRequest): AgentSettings => {
      const caller = auth.authenticate(request, 'agent');
      if (caller.kind !== 'agent') throw new Error('unreachable');
      const agent = backend.settings.agents.find((a) => a.id === caller.agent);
      if (!agent) {
        throw new ParleyError('PARLEY_ERR_FORBIDDEN', [`agent ${caller.agent} is not configured`]);
      }
      return agent;
    };
    /** The conversation, once it is known that the agent may act on it. */
    const reachable = async (
      agent: AgentSettings,
      conversation: string,
    ): Promise<ConversationInspection> => {
      const live = await backend.live(conversation);
      const ctx = live.context;
      if (
        ctx.agent !== agent.id &&
        ctx.reservedFor !== agent.id &&
        !agent.groups.includes(live.group)
      ) {
        throw new ParleyError('PARLEY_ERR_FORBIDDEN', [
          `conversation ${conversation} is neither in your routing groups nor assigned to you`,
        ]);
      }
      return live;
    };
    const commandId = () => `a-${randomBytes(12).toString('base64url')}`;
    /**
     * The conversations `agent` held right after stream sequence `after`, from those held now
     * (`now`, read first) and the events since that give or take one: for each conversation,
     * the first such event says whether it was held before it (taken away) or not (given).
     */
    const heldAfter = async (
      agent: string,
      now: readonly string[],
      after: number,
    ): Promise<string[]> => {
      const changes = await Promise.all(
        HOLDING_EVENTS.map((type) =>
          backend.events(`${SUBJECT_ROOTS.events}.*.*.${type}`, after, 100_000),
        ),
      );
      const heldThen = new Map<string, boolean>();
      for (const { event: e } of changes.flat().sort((a, b) => a.seq - b.seq)) {
        const c = 'conversation' in e ? e.conversation : null;
        if (c === null || heldThen.has(c)) continue;
        const taken =
          (e.type === 'ConversationSnoozed' && e.agent === agent) ||
          (e.type === 'ConversationReturned' && e.agent === agent) ||
          (e.type === 'ConversationTransferred' && e.from === agent) ||
          (e.type === 'ConversationClosed' && e.agent === agent);
        if (taken) heldThen.set(c, true);
        else if (e.type === 'ConversationAssigned' && e.agent === agent) heldThen.set(c, false);
      }
      const held = new Set(now.filter((id) => heldThen.get(id) !== false));
      for (const [id, was] of heldThen) if (was) held.add(id);
      return [...held];
    };
    const current = async (id: string) => agentView(await backend.live(id));
    /**
     * One agent action on a conversation: access checked, the command sent, a refusal as its
     * problem, 202 while not applied, else the conversation as it is now.
     */
    const act = async (
      request: FastifyRequest,
      reply: FastifyReply,
      id: string,
      build: (agent: AgentSettings, id: string) => Command,
    ) => {
      const agent = agentOf(request);
      await reachable(agent, id);
      const result = await backend.send(build(agent, id));
      throwIfRefused(result);
      if (!result.applied) return accepted(reply, result.id);
      return current(id);
    };

    app.put(
      '/agent/presence',
      {
        schema: {
          tags,
          summary: 'Set your presence: online, away or offline',
          body: Type.Object({ presence: PresenceSchema }, closed),
          response: responses({
            200: Open({ presence: Type.String() }, 'Presence.'),
            202: Accepted,
          }),
        },
      },
      async (request, reply) => {
        const agent = agentOf(request);
        const result = await backend.send({
          type: 'SetAgentPresence',
          id: commandId(),
          agent: agent.id,
          presence: request.body.presence,
        });
        throwIfRefused(result);
        if (!result.applied) return accepted(reply, result.id);
        return { presence: request.body.presence };
      },
    );

    app.get(
      '/agent/events',
      {
        sse: { kind: 'only' },
        schema: {
          tags,
          summary:
            'Push (Server-Sent Events): assigned conversations arrive without asking, then their messages and changes. Resumes after Last-Event-ID.',
          querystring: TokenQuery,
        },
      },
      async (request, reply) => {
        const agent = agentOf(request);
        // Checked before the connection counts for presence (an invalid one gets 400). An empty
        // Last-Event-ID is no resumption: it would replay every event ever stored.
        const after = lastEventId(request);
        const resuming = after > 0;
        const projection = new AgentProjection(agent.id);
        const gone = ctx.presence.agentConnected(agent.id);
        await streamEvents(request, reply, backend, {
          filter: `${SUBJECT_ROOTS.events}.>`,
          ...(resuming ? {} : { replayFrom: -1 }),
          project: (e) => projection.apply(e.event),
          first: async () => {
            const record = await backend.agent(agent.id);
            const ids = record?.conversations ?? [];
            // Resumed, the events replayed start after Last-Event-ID: what the agent held then.
            const held = resuming ? await heldAfter(agent.id, ids, after) : ids;
            for (const id of held) projection.hold(id);
            if (resuming) return undefined;
            const conversations = await Promise.all(
              ids.map((id) =>
                backend
                  .live(id)
                  .then(agentView)
                  .catch(() => undefined),
              ),
            );
            return {
              event: 'snapshot',
              data: {
                presence: record?.presence ?? 'offline',
                conversations: conversations.filter((c) => c !== undefined),
              },
            };
          },
          onClose: gone,
        });
      },
    );

    app.get(
      '/agent/conversations',
      {
        schema: {
          tags,
          summary: 'The conversations assigned to you now',
          response: responses({ 200: Open({ conversations: Type.Array(View) }, 'A list.') }),
        },
      },
      async (request) => {
        const agent = agentOf(request);
        const ids = (await backend.agent(agent.id))?.conversations ?? [];
        const views = await Promise.all(ids.map((id) => current(id).catch(() => undefined)));
        return { conversations: views.filter((v) => v !== undefined) };
      },
    );

    app.get(
      '/agent/conversations/:id',
      {
        schema: {
          tags,
          summary: 'One conversation: state, visitor online, snoozes, tags, times',
          params: IdParam,
          response: responses({ 200: View }, [403, 404]),
        },
      },
      async (request) => agentView(await reachable(agentOf(request), request.params.id)),
    );

    app.get(
      '/agent/conversations/:id/messages',
      {
        schema: {
          tags,
          summary: 'The thread, notes included',
          params: IdParam,
          response: responses(
            { 200: Open({ messages: Type.Array(Open({}, 'A message.')) }, 'The thread.') },
            [403, 404],
          ),
        },
      },
      async (request) => {
        await reachable(agentOf(request), request.params.id);
        return { messages: await backend.thread(request.params.id) };
      },
    );

    app.post(
      '/agent/conversations/:id/messages',
      {
        schema: {
          tags,
          summary:
            'Reply: text (links, emojis), attachments, or a canned answer; a retry with the same id is the same message',
          params: IdParam,
          body: ReplyBody,
          response: responses(
            { 201: Open({}, 'The message.'), 202: Open({}, 'Stored.') },
            [403, 404, 409],
          ),
        },
      },
      async (request, reply) => {
        const agent = agentOf(request);
        const { id } = request.params;
        await reachable(agent, id);
        const body = request.body;
        let text = body.text ?? '';
        if (body.cannedAnswer !== undefined) {
          const canned = cannedFor(agent).find((c) => c.id === body.cannedAnswer);
          if (!canned)
            throw new ParleyError('PARLEY_ERR_NOT_FOUND', [`canned answer ${body.cannedAnswer}`]);
          text = text ? `${text}\n${canned.text}` : canned.text;
        }
        checkAttachments(body.attachments, DEFAULT_ATTACHMENT_LIMITS);
        const result = await backend.send({
          type: 'SendMessage',
          // The conversation and the agent are in the command's key (streams.ts commandMsgId).
          id: derivedId('reply', body.id),
          conversation: id,
          author: { kind: 'agent', id: agent.id },
          message: messageInput({
            id: body.id,
            text,
            ...(body.attachments ? { attachments: body.attachments } : {}),
          }),
        });
        throwIfRefused(result);
        const added = result.events.find(
          (e) => e.type === 'MessageAdded' && e.message.id === body.id,
        );
        if (added?.type === 'MessageAdded') return reply.code(201).send({ message: added.message });
        return reply.code(202).send({ id: body.id, status: 'accepted' });
      },
    );

    app.post(
      '/agent/conversations/:id/snooze',
      {
        schema: {
          tags,
          summary:
            "Snooze: it comes back when the visitor writes or when the snooze ends (the group's default duration unless given)",
          params: IdParam,
          body: Type.Object(
            {
              duration: Type.Optional(
                Type.String({ description: 'e.g. "30m", "2h", "1d"', maxLength: 32 }),
              ),
              durationMs: Type.Optional(Type.Integer({ minimum: 1 })),
            },
            closed,
          ),
          response: Acted,
        },
      },
      async (request, reply) =>
        act(request, reply, request.params.id, (agent, id) => {
          const { duration, durationMs } = request.body;
          if (duration !== undefined && durationMs !== undefined) {
            throw new ParleyError(
              'PARLEY_ERR_VALIDATION',
              ['body: give duration or durationMs, not both'],
              {
                details: {
                  errors: [
                    { field: 'body.duration', message: 'give duration or durationMs, not both' },
                  ],
                },
              },
            );
          }
          const ms = duration !== undefined ? parseDuration(duration) : durationMs;
          return {
            type: 'Snooze',
            id: commandId(),
            conversation: id,
            agent: agent.id,
            ...(ms !== undefined ? { durationMs: ms } : {}),
          };
        }),
    );

    app.post(
      '/agent/conversations/:id/transfer',
      {
        schema: {
          tags,
          summary: "Transfer to an agent (even offline) or to a routing group's waiting list",
          params: IdParam,
          body: Type.Object({ to: TransferTargetSchema }, closed),
          response: Acted,
        },
      },
      async (request, reply) =>
        act(request, reply, request.params.id, (agent, id) => {
          return {
            type: 'Transfer',
            id: commandId(),
            conversation: id,
            agent: agent.id,
            to: request.body.to,
          };
        }),
    );

    app.post(
      '/agent/conversations/:id/tags',
      {
        schema: {
          tags,
          summary: 'Tag the conversation (at any time)',
          params: IdParam,
          body: Type.Object({ tags: { ...TagList, minItems: 1 } }, closed),
          response: Acted,
        },
      },
      async (request, reply) =>
        act(request, reply, request.params.id, (agent, id) => {
          return {
            type: 'Tag',
            id: commandId(),
            conversation: id,
            agent: agent.id,
            tags: request.body.tags,
          };
        }),
    );

    app.post(
      '/agent/conversations/:id/close',
      {
        schema: {
          tags,
          summary: 'Close, with tags',
          params: IdParam,
          body: Type.Object({ tags: Type.Optional(TagList) }, closed),
          response: Acted,
        },
      },
      async (request, reply) =>
        act(request, reply, request.params.id, (agent, id) => {
          return {
            type: 'Close',
            id: commandId(),
            conversation: id,
            by: { agent: agent.id },
            ...(request.body.tags ? { tags: request.body.tags } : {}),
          };
        }),
    );

    app.post(
      '/agent/conversations/:id/block',
      {
        schema: {
          tags,
          summary: 'Block the visitor: their messages are refused from now on',
          params: IdParam,
          body: Type.Object({ reason: Type.Optional(Type.String({ maxLength: 2000 })) }, closed),
          response: Acted,
        },
      },
      async (request, reply) =>
        act(request, reply, request.params.id, (agent, id) => {
          return {
            type: 'BlockVisitor',
            id: commandId(),
            conversation: id,
            agent: agent.id,
            ...(request.body.reason ? { reason: request.body.reason } : {}),
          };
        }),
    );

    app.get(
      '/agent/conversations/:id/visitor',
      {
        schema: {
          tags,
          summary: 'The visitor: online now, blocked, and their past conversations',
          params: IdParam,
          response: responses({ 200: Open({}, 'The visitor.') }, [403, 404]),
        },
      },
      async (request) => {
        const agent = agentOf(request);
        const live = await reachable(agent, request.params.id);
        const visitor = live.context.visitor;
        const ids = await backend.visitorConversations(visitor);
        const past = await Promise.all(
          ids
            .filter((id) => id !== live.conversation)
            .map((id) =>
              backend
                .live(id)
                .then((c) => ({
                  id,
                  state: c.state,
                  group: c.group,
                  tags: c.context.tags,
                  agent: c.context.agent,
                  createdAt: c.context.times.createdAt,
                  closedAt: c.context.times.closedAt,
                }))
                .catch(() => undefined),
            ),
        );
        return {
          id: visitor,
          online: live.context.visitorOnline,
          blocked: live.context.blocked,
          conversations: past
            .filter((c) => c !== undefined)
            .sort((a, b) => b.createdAt - a.createdAt),
        };
      },
    );

    const cannedFor = (agent: AgentSettings) =>
      backend.settings.cannedAnswers.filter(
        (c) => c.groups.length === 0 || c.groups.some((g) => agent.groups.includes(g)),
      );

    app.get(
      '/agent/canned-answers',
      {
        schema: {
          tags,
          summary: 'The canned answers you may use, optionally filtered by a search text',
          querystring: Type.Object({ q: Type.Optional(Type.String({ maxLength: 100 })) }, closed),
          response: responses({
            200: Open({ cannedAnswers: Type.Array(Open({}, 'One.')) }, 'A list.'),
          }),
        },
      },
      async (request) => {
        const agent = agentOf(request);
        const q = request.query.q?.toLocaleLowerCase();
        const list = cannedFor(agent).filter(
          (c) =>
            !q || c.title.toLocaleLowerCase().includes(q) || c.text.toLocaleLowerCase().includes(q),
        );
        return { cannedAnswers: list };
      },
    );
  };
}
