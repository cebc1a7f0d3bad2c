// The visitor API, what the chat widget calls: identify, the widget's settings for a page, start
// a conversation (whether or not an agent is online), write, read the history, unread counts,
// close, answer the survey, and live updates as Server-Sent Events resumable by Last-Event-ID.
import { randomBytes } from 'node:crypto';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { matchRule, showsChatButton } from '../../../actors/routing.ts';
import { typicalReplyMs, waitingListFull } from '../../../actors/routing-group.ts';
import { CLIENT_ID_PATTERN, COMMAND_LIMITS } from '../../commands.ts';
import { ParleyError } from '../../errors.ts';
import { SUBJECT_ROOTS } from '../../nats/streams.ts';
import { throwIfRefused } from '../backend.ts';
import {
  Accepted,
  accepted,
  checkAttachments,
  DEFAULT_ATTACHMENT_LIMITS,
  derivedId,
  IdParam,
  MessageBody,
  messageInput,
  Open,
  responses,
  TokenQuery,
} from '../schemas.ts';
import type { GatewayContext } from '../server.ts';
import { streamEvents } from '../sse.ts';
import { VisitorProjection, visibleToVisitor, visitorMessage, visitorView } from '../views.ts';

const closed = { additionalProperties: false } as const;
const tags = ['visitor'];

const StartBody = Type.Object(
  {
    id: Type.Optional(
      Type.String({
        pattern: '^[A-Za-z0-9_-]{1,128}$',
        description:
          'The conversation id, chosen by the widget so that a retry starts nothing twice; generated when left out.',
      }),
    ),
    url: Type.String({ minLength: 1, maxLength: 2048, description: "The visitor's page." }),
    attributes: Type.Optional(
      Type.Record(Type.String({ maxLength: 64 }), Type.String({ maxLength: 256 }), {
        maxProperties: 32,
        description: 'Visitor attributes the routing rules match on.',
      }),
    ),
    message: Type.Optional(MessageBody),
  },
  closed,
);

const PageViewBody = Type.Object(
  {
    id: Type.String({
      pattern: CLIENT_ID_PATTERN,
      description:
        "The widget's id of this page view (one per page load or URL change): a retry with the same id is recorded once.",
    }),
    url: Type.String({ minLength: 1, maxLength: COMMAND_LIMITS.pageUrlMaxLength }),
    title: Type.Optional(Type.String({ maxLength: COMMAND_LIMITS.pageTitleMaxLength })),
  },
  closed,
);

const SurveyBody = Type.Object(
  {
    csat: Type.Optional(Type.Integer({ minimum: 1, maximum: 5 })),
    nps: Type.Optional(Type.Integer({ minimum: 0, maximum: 10 })),
    comment: Type.Optional(Type.String({ maxLength: 2000 })),
  },
  closed,
);

const View = Open(
  {
    id: Type.String(),
    state: Type.String(),
    position: Type.Union([Type.Integer(), Type.Null()]),
    typicalReplyMs: Type.Union([Type.Integer(), Type.Null()]),
    unread: Type.Integer(),
  },
  'A conversation as its visitor sees it.',
);

export function visitorRoutes(ctx: GatewayContext) {
  const { backend, auth, limits } = ctx;
  return async (parent: FastifyInstance) => {
    const app = parent.withTypeProvider<TypeBoxTypeProvider>();
    const perIp = app.rateLimit({
      max: limits.perIpPerMinute,
      timeWindow: 60_000,
      keyGenerator: (r) => `ip:${r.ip}`,
      errorResponseBuilder: (_r, c) =>
        new ParleyError('PARLEY_ERR_RATE_LIMITED', [`retry in ${c.after}`], {
          details: { retryAfterSeconds: Math.ceil(c.ttl / 1000) },
        }),
    });
    // @fastify/rate-limit runs one limiter per request: the per-visitor one is this counter.
    const perVisitor = visitorLimiter(limits.perVisitorPerMinute, (r) => {
      const header = r.headers.authorization ?? '';
      const query = (r.query as { token?: unknown } | undefined)?.token;
      const token = header.startsWith('Bearer ') ? header.slice(7) : query;
      return typeof token === 'string' ? auth.visitorOf(token) : undefined;
    });
    const limited = { onRequest: [perIp, perVisitor] };

    const visitorOf = (request: FastifyRequest) => {
      const caller = auth.authenticate(request, 'visitor');
      if (caller.kind !== 'visitor') throw new Error('unreachable');
      return caller.visitor;
    };
    /** The visitor, once it is known that they started this conversation. */
    const owner = async (request: FastifyRequest, conversation: string) => {
      const visitor = visitorOf(request);
      if (!(await backend.startedBy(visitor, conversation))) {
        // Another visitor's conversation and an unknown one look the same from outside.
        throw new ParleyError('PARLEY_ERR_NOT_FOUND', [`conversation ${conversation}`]);
      }
      return visitor;
    };

    app.post(
      '/visitors',
      {
        ...limited,
        schema: {
          tags,
          summary: 'Identify: a new anonymous visitor id and the token that proves it',
          security: [],
          response: responses({
            201: Open({ visitor: Type.String(), token: Type.String() }, 'A new visitor.'),
          }),
        },
      },
      async (_request, reply) => reply.code(201).send(auth.newVisitor()),
    );

    app.post(
      '/visitors/identified',
      {
        ...limited,
        schema: {
          tags,
          summary:
            "Identify a customer the brand's site has logged in: the same visitor on every device",
          security: [],
          body: Type.Object(
            {
              user: Type.String({
                minLength: 1,
                maxLength: 256,
                description: "The customer's id on the brand's site.",
              }),
              expires: Type.Integer({
                minimum: 0,
                description: 'Until when the signature may be used, in ms since the epoch.',
              }),
              signature: Type.String({
                pattern: '^[0-9a-fA-F]{64}$',
                description: 'HMAC-SHA256 of "<user>.<expires>" under the identity secret, in hex.',
              }),
            },
            { additionalProperties: false },
          ),
          response: responses(
            { 201: Open({ visitor: Type.String(), token: Type.String() }, 'The visitor.') },
            [401],
          ),
        },
      },
      async (request, reply) =>
        reply
          .code(201)
          .send(
            auth.identifiedVisitor(request.body.user, request.body.expires, request.body.signature),
          ),
    );

    app.put(
      '/visitor/email',
      {
        ...limited,
        schema: {
          tags,
          summary: 'Add an email address, for notifications of answers given while away',
          body: Type.Object(
            {
              email: Type.String({ maxLength: 254, pattern: '^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$' }),
            },
            closed,
          ),
          response: responses({ 204: Type.Null() }),
        },
      },
      async (request, reply) => {
        await backend.setVisitorEmail(visitorOf(request), request.body.email);
        return reply.code(204).send();
      },
    );

    app.put(
      '/visitor/phone',
      {
        ...limited,
        schema: {
          tags,
          summary: 'Add a mobile number (E.164), for text messages of answers given while away',
          body: Type.Object(
            {
              phone: Type.String({
                pattern: '^\\+[1-9][0-9]{6,14}$',
                description: 'E.164: +, the country code, the number; no spaces.',
              }),
            },
            closed,
          ),
          response: responses({ 204: Type.Null() }),
        },
      },
      async (request, reply) => {
        await backend.setVisitorPhone(visitorOf(request), request.body.phone);
        return reply.code(204).send();
      },
    );

    app.get(
      '/widget',
      {
        ...limited,
        schema: {
          tags,
          summary:
            "The widget's settings for a page: chat button, automatic message, typical reply time, agents online",
          security: [],
          querystring: Type.Object(
            { url: Type.String({ minLength: 1, maxLength: 2048 }) },
            { additionalProperties: Type.String({ maxLength: 256 }) },
          ),
          response: responses({ 200: Open({}, "The widget's settings.") }),
        },
      },
      async (request) => {
        const { url, ...rest } = request.query as { url: string } & Record<string, string>;
        const attributes = attributesOf(rest);
        const settings = backend.settings;
        const rule = matchRule(settings.rules, { url, attributes });
        if (!rule) {
          return {
            showChatButton: false,
            rule: null,
            group: null,
            automaticMessage: null,
            typicalReplyMs: null,
            agentsOnline: false,
            waitingListFull: false,
          };
        }
        const group = settings.groups.find((g) => g.id === rule.target.group);
        const [seats, groupContext, agentsOnline] = await Promise.all([
          backend.seatsTaken(rule.target.group),
          backend.groupContext(rule.target.group),
          anyAgentOnline(rule.target.group),
        ]);
        const full = group ? waitingListFull(seats, group.cap) : false;
        return {
          showChatButton: showsChatButton(rule, full),
          rule: rule.id,
          group: rule.target.group,
          automaticMessage: group?.automaticMessage ?? null,
          typicalReplyMs:
            group && groupContext
              ? typicalReplyMs(groupContext, group.typicalReplyMs)
              : (group?.typicalReplyMs ?? null),
          agentsOnline,
          waitingListFull: full,
        };
      },
    );

    const anyAgentOnline = async (group: string) => {
      const agents = backend.settings.agents.filter((a) => a.groups.includes(group));
      const records = await Promise.all(agents.map((a) => backend.agent(a.id)));
      return records.some((r) => r?.presence === 'online');
    };

    app.post(
      '/visitor/conversations',
      {
        ...limited,
        schema: {
          tags,
          summary: 'Start a conversation (also when no agent is online)',
          body: StartBody,
          response: responses({ 201: View, 202: Accepted }, [403, 404, 409]),
        },
      },
      async (request, reply) => {
        const visitor = visitorOf(request);
        const { url, attributes = {}, message } = request.body;
        const rule = matchRule(backend.settings.rules, { url, attributes });
        if (!rule) {
          throw new ParleyError('PARLEY_ERR_NOT_FOUND', [`a routing rule for the page ${url}`]);
        }
        if (message) checkAttachments(message.attachments, DEFAULT_ATTACHMENT_LIMITS);
        const conversation = request.body.id ?? `c-${randomBytes(12).toString('base64url')}`;
        const result = await backend.send({
          type: 'StartConversation',
          id: derivedId('start', visitor, conversation),
          conversation,
          visitor,
          rule: rule.id,
          visitorOnline: true,
          ...(message ? { message: messageInput(message) } : {}),
        });
        throwIfRefused(result);
        if (!result.applied) return reply.code(202).send({ id: conversation, status: 'accepted' });
        return reply.code(201).send(await visitorView(backend, await backend.live(conversation)));
      },
    );

    app.get(
      '/visitor/conversations',
      {
        ...limited,
        schema: {
          tags,
          summary: "The visitor's conversations, newest first",
          response: responses({ 200: Open({ conversations: Type.Array(View) }, 'A list.') }),
        },
      },
      async (request) => {
        const visitor = visitorOf(request);
        const ids = await backend.visitorConversations(visitor);
        const views = await Promise.all(
          ids.map((id) =>
            backend
              .live(id)
              .then((c) => visitorView(backend, c))
              .catch(() => undefined),
          ),
        );
        const conversations = views
          .filter((v) => v !== undefined)
          .sort((a, b) => b.createdAt - a.createdAt);
        return { conversations };
      },
    );

    app.get(
      '/visitor/unread',
      {
        ...limited,
        schema: {
          tags,
          summary: 'Unread messages in all the visitor’s conversations (the badge)',
          response: responses({ 200: Open({ total: Type.Integer() }, 'Unread counts.') }),
        },
      },
      async (request) => {
        const visitor = visitorOf(request);
        const ids = await backend.visitorConversations(visitor);
        const counts = await Promise.all(
          ids.map((id) =>
            backend
              .live(id)
              .then((c) => ({ id, unread: c.context.unread }))
              .catch(() => ({ id, unread: 0 })),
          ),
        );
        const conversations = counts.filter((c) => c.unread > 0);
        return { total: conversations.reduce((n, c) => n + c.unread, 0), conversations };
      },
    );

    app.get(
      '/visitor/conversations/:id',
      {
        ...limited,
        schema: {
          tags,
          summary: 'One conversation: state, position in the waiting list, typical reply time',
          params: IdParam,
          response: responses({ 200: View }, [404]),
        },
      },
      async (request) => {
        await owner(request, request.params.id);
        return visitorView(backend, await backend.live(request.params.id));
      },
    );

    app.get(
      '/visitor/conversations/:id/messages',
      {
        ...limited,
        schema: {
          tags,
          summary: 'The history: every message of the conversation, in order',
          params: IdParam,
          response: responses(
            { 200: Open({ messages: Type.Array(Open({}, 'A message.')) }, 'The thread.') },
            [404],
          ),
        },
      },
      async (request) => {
        await owner(request, request.params.id);
        const thread = await backend.thread(request.params.id);
        return {
          messages: thread.filter(visibleToVisitor).map((m) => visitorMessage(backend.settings, m)),
        };
      },
    );

    app.post(
      '/visitor/conversations/:id/messages',
      {
        ...limited,
        schema: {
          tags,
          summary: 'Write a message; a retry with the same message id never duplicates it',
          params: IdParam,
          body: MessageBody,
          response: responses({ 201: Open({}, 'The message.'), 202: Accepted }, [403, 404, 409]),
        },
      },
      async (request, reply) => {
        const { id } = request.params;
        const visitor = await owner(request, id);
        checkAttachments(request.body.attachments, DEFAULT_ATTACHMENT_LIMITS);
        const result = await backend.send({
          type: 'SendMessage',
          id: derivedId('msg', id, request.body.id),
          conversation: id,
          author: { kind: 'visitor', id: visitor },
          message: messageInput(request.body),
        });
        throwIfRefused(result);
        const added = result.events.find(
          (e) => e.type === 'MessageAdded' && e.message.id === request.body.id,
        );
        if (added?.type === 'MessageAdded') {
          return reply.code(201).send({ message: visitorMessage(backend.settings, added.message) });
        }
        // A retry (stored before) or not applied yet: the message is there or will be, once.
        return reply.code(202).send({ id: request.body.id, status: 'accepted' });
      },
    );

    app.post(
      '/visitor/conversations/:id/read',
      {
        ...limited,
        schema: {
          tags,
          summary: 'Mark the conversation read up to now',
          params: IdParam,
          response: responses(
            { 200: Open({ unread: Type.Integer() }, 'Read.'), 202: Accepted },
            [404],
          ),
        },
      },
      async (request, reply) => {
        const { id } = request.params;
        const visitor = await owner(request, id);
        const result = await backend.send({
          type: 'MarkRead',
          id: derivedId('read', id, String(Date.now()), randomBytes(4).toString('hex')),
          conversation: id,
          visitor,
        });
        throwIfRefused(result);
        if (!result.applied) return accepted(reply, result.id);
        const read = result.events.find((e) => e.type === 'MessagesRead');
        return { unread: 0, readSeq: read?.type === 'MessagesRead' ? read.upToSeq : null };
      },
    );

    app.post(
      '/visitor/conversations/:id/pages',
      {
        ...limited,
        schema: {
          tags,
          summary:
            'Record a page the visitor viewed (the agents see the current page and the last 20); a retry with the same id is recorded once',
          params: IdParam,
          body: PageViewBody,
          response: responses(
            { 201: Open({ page: Open({}, 'The page view.') }, 'Recorded.'), 202: Accepted },
            [404, 409],
          ),
        },
      },
      async (request, reply) => {
        const { id } = request.params;
        await owner(request, id);
        const result = await backend.send({
          type: 'RecordPageView',
          id: derivedId('page', id, request.body.id),
          conversation: id,
          url: request.body.url,
          title: request.body.title ?? '',
        });
        throwIfRefused(result);
        const viewed = result.events.find((e) => e.type === 'PageViewed');
        if (viewed?.type === 'PageViewed') return reply.code(201).send({ page: viewed.page });
        return accepted(reply, request.body.id);
      },
    );

    app.post(
      '/visitor/conversations/:id/close',
      {
        ...limited,
        schema: {
          tags,
          summary: 'End the conversation',
          params: IdParam,
          response: responses({ 200: View, 202: Accepted }, [404, 409]),
        },
      },
      async (request, reply) => {
        const { id } = request.params;
        const visitor = await owner(request, id);
        const result = await backend.send({
          type: 'Close',
          id: derivedId('close', id, visitor),
          conversation: id,
          by: { visitor },
        });
        throwIfRefused(result);
        if (!result.applied && !result.duplicate) return accepted(reply, result.id);
        return visitorView(backend, await backend.live(id));
      },
    );

    app.post(
      '/visitor/conversations/:id/survey',
      {
        ...limited,
        schema: {
          tags,
          summary: 'Answer the satisfaction survey (CSAT 1–5 and/or NPS 0–10) after the close',
          params: IdParam,
          body: SurveyBody,
          response: responses({ 200: View, 202: Accepted }, [404, 409, 422]),
        },
      },
      async (request, reply) => {
        const { id } = request.params;
        const visitor = await owner(request, id);
        const { csat, nps, comment } = request.body;
        if (csat === undefined && nps === undefined) {
          throw new ParleyError('PARLEY_ERR_VALIDATION', ['body: give csat, nps or both'], {
            details: { errors: [{ field: 'body', message: 'give csat, nps or both' }] },
          });
        }
        const result = await backend.send({
          type: 'AnswerSurvey',
          id: derivedId('survey', id, visitor, JSON.stringify(request.body)),
          conversation: id,
          visitor,
          ...(csat !== undefined ? { csat } : {}),
          ...(nps !== undefined ? { nps } : {}),
          ...(comment !== undefined ? { comment } : {}),
        });
        throwIfRefused(result);
        if (!result.applied && !result.duplicate) return accepted(reply, result.id);
        return visitorView(backend, await backend.live(id));
      },
    );

    app.get(
      '/visitor/conversations/:id/events',
      {
        ...limited,
        sse: { kind: 'only' },
        schema: {
          tags,
          summary:
            'Live updates (Server-Sent Events): messages, unread count, state. Resumes after Last-Event-ID.',
          params: IdParam,
          querystring: TokenQuery,
        },
      },
      async (request, reply) => {
        const { id } = request.params;
        const visitor = await owner(request, id);
        const projection = new VisitorProjection(backend.settings);
        const gone = ctx.presence.visitorConnected(visitor, id);
        await streamEvents(request, reply, backend, {
          filter: `${SUBJECT_ROOTS.events}.*.${id}.*`,
          // Replayed from the start so the unread count is exact; sent only after Last-Event-ID.
          replayFrom: 0,
          project: (e) => projection.apply(e.event),
          onClose: gone,
        });
      },
    );
  };
}

/** `attr.<name>=<value>` query parameters: the visitor's attributes. */
function attributesOf(query: Record<string, string>): Record<string, string> {
  const attributes: Record<string, string> = {};
  for (const [key, value] of Object.entries(query)) {
    if (!key.startsWith('attr.')) {
      throw new ParleyError('PARLEY_ERR_VALIDATION', [`querystring.${key}: unknown field`], {
        details: { errors: [{ field: `querystring.${key}`, message: 'unknown field' }] },
      });
    }
    attributes[key.slice('attr.'.length)] = value;
  }
  return attributes;
}

/**
 * At most `max` requests a minute per visitor (fixed one-minute windows), as an onRequest hook;
 * requests without a valid visitor token are left to the per-IP limit.
 */
function visitorLimiter(max: number, visitorOf: (r: FastifyRequest) => string | undefined) {
  const windows = new Map<string, { start: number; count: number }>();
  let swept = Date.now();
  return async (request: FastifyRequest, reply: FastifyReply) => {
    const visitor = visitorOf(request);
    if (!visitor) return;
    const now = Date.now();
    if (now - swept > 60_000) {
      for (const [k, w] of windows) if (now - w.start >= 60_000) windows.delete(k);
      swept = now;
    }
    let w = windows.get(visitor);
    if (!w || now - w.start >= 60_000) {
      w = { start: now, count: 0 };
      windows.set(visitor, w);
    }
    w.count++;
    if (w.count > max) {
      const seconds = Math.max(1, Math.ceil((w.start + 60_000 - now) / 1000));
      reply.header('retry-after', String(seconds));
      throw new ParleyError('PARLEY_ERR_RATE_LIMITED', [`retry in ${seconds} seconds`], {
        details: { retryAfterSeconds: seconds },
      });
    }
  };
}
