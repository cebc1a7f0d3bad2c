// The supervisors' reports: the live figures (production report), period reports (conversations,
// customer experience, activity) and the Prometheus exposition, all read from the reports'
// projection of the events stream (lib/reports). docs/metrics.md defines every figure.
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { type Static, Type } from '@sinclair/typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { COMMAND_LIMITS, TOKEN_PATTERN } from '../../commands.ts';
import { ID_PATTERN } from '../../config.ts';
import { ReportMetrics } from '../../reports/metrics.ts';
import type { ReportSource } from '../../reports/reporter.ts';
import { invalid, parseReportTime } from '../../reports/time.ts';
import { Open, responses } from '../schemas.ts';
import type { GatewayContext } from '../server.ts';

const tags = ['supervisor'];
const closed = { additionalProperties: false } as const;

/** Milliseconds since the epoch, a local date (the reports' time zone) or a date-time with offset. */
const TIME_PATTERN =
  '^(\\d{1,15}|\\d{4}-\\d{2}-\\d{2}|\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}(:\\d{2}(\\.\\d{1,3})?)?(Z|[+-]\\d{2}:\\d{2}))$';
const TIME_HELP =
  'Milliseconds since the epoch, a date (yyyy-mm-dd: its local midnight in the reports’ time zone) or an ISO 8601 date-time with its offset (2026-01-05T09:00:00Z).';

export const MAX_PAGE_SIZE = 1000;

const PeriodQuerySchema = Type.Object(
  {
    from: Type.String({ pattern: TIME_PATTERN, description: `Closed at or after. ${TIME_HELP}` }),
    to: Type.Optional(
      Type.String({
        pattern: TIME_PATTERN,
        description: `Closed before (default: now). ${TIME_HELP}`,
      }),
    ),
    group: Type.Optional(
      Type.String({
        pattern: ID_PATTERN,
        maxLength: 128,
        description: 'Routing group at the close.',
      }),
    ),
    agent: Type.Optional(
      Type.String({
        pattern: TOKEN_PATTERN,
        description: 'An agent who handled the conversation.',
      }),
    ),
    tag: Type.Optional(
      Type.String({ minLength: 1, maxLength: COMMAND_LIMITS.tagMaxLength, description: 'A tag.' }),
    ),
    page: Type.Optional(
      Type.String({ pattern: '^[1-9][0-9]{0,8}$', description: '1-based page.' }),
    ),
    pageSize: Type.Optional(
      Type.String({
        pattern: '^[1-9][0-9]{0,3}$',
        description: `Conversations per page, 1 to ${MAX_PAGE_SIZE} (default 50).`,
      }),
    ),
    token: Type.Optional(Type.String({ minLength: 1, maxLength: 512 })),
  },
  closed,
);

const TokenOnly = Type.Object(
  { token: Type.Optional(Type.String({ minLength: 1, maxLength: 512 })) },
  closed,
);

const LiveSchema = Open(
  {
    at: Type.Number(),
    since: Type.Number({ description: 'Local midnight: where today starts.' }),
    timeZone: Type.String(),
  },
  'The production report: per routing group, per agent, and the transfers of today (docs/metrics.md).',
);

const PeriodSchema = Open(
  { from: Type.Number(), to: Type.Number(), closed: Type.Integer(), handled: Type.Integer() },
  'The conversations closed over the period that pass the filters, their figures and a page of their list (docs/metrics.md).',
);

export interface ReportRoutesOptions {
  /**
   * Serve /metrics without a credential (for a Prometheus that cannot send one). Default: the
   * environment variable PARLEY_METRICS_OPEN is `true`; otherwise the supervisor credential.
   */
  readonly openMetrics?: boolean;
  /** The clock of `to`'s default and of the live figures (tests). */
  readonly now?: () => number;
}

/** Registers GET /v1/reports/live, GET /v1/reports/period and GET /metrics (no prefix). */
export function reportRoutes(
  ctx: Pick<GatewayContext, 'auth'>,
  reporter: ReportSource,
  options: ReportRoutesOptions = {},
) {
  const openMetrics = options.openMetrics ?? process.env.PARLEY_METRICS_OPEN === 'true';
  const now = options.now ?? Date.now;
  const metrics = new ReportMetrics(reporter);
  const supervisor = async (request: FastifyRequest) => {
    ctx.auth.authenticate(request, 'supervisor');
  };

  return async (parent: FastifyInstance) => {
    const app = parent.withTypeProvider<TypeBoxTypeProvider>();

    app.get(
      '/v1/reports/live',
      {
        onRequest: supervisor,
        schema: {
          tags,
          summary: 'The production report now: routing groups, agents, transfers of today',
          querystring: TokenOnly,
          response: responses({ 200: LiveSchema }),
        },
      },
      async () => reporter.live(now()),
    );

    app.get(
      '/v1/reports/period',
      {
        onRequest: supervisor,
        schema: {
          tags,
          summary: 'Conversations closed over a period: count, list, times, CSAT, NPS, transfers',
          querystring: PeriodQuerySchema,
          response: responses({ 200: PeriodSchema }),
        },
      },
      async (request) => {
        const q = request.query as Static<typeof PeriodQuerySchema>;
        const from = parseReportTime('query.from', q.from, reporter.timeZone);
        const to =
          q.to === undefined ? now() : parseReportTime('query.to', q.to, reporter.timeZone);
        if (to <= from) invalid('query.to', 'must be after from');
        const pageSize = q.pageSize === undefined ? undefined : Number(q.pageSize);
        if (pageSize !== undefined && pageSize > MAX_PAGE_SIZE) {
          invalid('query.pageSize', `must be at most ${MAX_PAGE_SIZE}`);
        }
        return reporter.period({
          from,
          to,
          group: q.group,
          agent: q.agent,
          tag: q.tag,
          page: q.page === undefined ? undefined : Number(q.page),
          pageSize,
        });
      },
    );

    app.get(
      '/metrics',
      {
        ...(openMetrics ? {} : { onRequest: supervisor }),
        schema: {
          tags,
          summary: openMetrics
            ? 'Prometheus metrics of the live figures (open)'
            : 'Prometheus metrics of the live figures (supervisor credential)',
          querystring: TokenOnly,
          produces: ['text/plain'],
        },
      },
      async (_request, reply) => {
        const text = await metrics.metrics(now());
        return reply.type(metrics.contentType).send(text);
      },
    );
  };
}
