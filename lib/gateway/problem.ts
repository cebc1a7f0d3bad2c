// Errors as RFC 9457 problem+json bodies: the code, what was wrong (naming the field for bad
// input), never a stack trace or an internal detail. Errors that are not Parley's or fastify's
// own 4xx become a bare 500, logged in full on the server side only.
import {
  ClosedConnectionError,
  ConnectionError,
  DrainingConnectionError,
  NoRespondersError,
  RequestError,
  TimeoutError,
} from '@nats-io/transport-node';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ERRORS, type ErrorCode, isParleyError } from '../errors.ts';

export interface Problem {
  readonly type: string;
  readonly title: string;
  readonly status: number;
  readonly detail: string;
  readonly code: string;
  readonly errors?: readonly { readonly field: string; readonly message: string }[];
  readonly [extra: string]: unknown;
}

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  406: 'Not Acceptable',
  409: 'Conflict',
  412: 'Precondition Failed',
  413: 'Content Too Large',
  414: 'URI Too Long',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Content',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

export const PROBLEM_TYPE = 'application/problem+json';

function problem(status: number, code: string, detail: string, extra: object = {}): Problem {
  return {
    type: `urn:parley:problem:${code}`,
    title: TITLES[status] ?? 'Error',
    status,
    detail,
    code,
    ...extra,
  };
}

/** The field a validation error names, as `body.message.text`. */
function fieldOf(context: string, e: FastifyValidationIssue): string {
  const path = e.instancePath
    .split('/')
    .filter(Boolean)
    .map((p) => (/^\d+$/.test(p) ? `[${p}]` : `.${p}`))
    .join('');
  const extra =
    e.keyword === 'additionalProperties'
      ? `.${String(e.params.additionalProperty)}`
      : e.keyword === 'required'
        ? `.${String(e.params.missingProperty)}`
        : '';
  return `${context}${path}${extra}`;
}

interface FastifyValidationIssue {
  readonly keyword: string;
  readonly instancePath: string;
  readonly message?: string;
  readonly params: Record<string, unknown>;
}

function describe(e: FastifyValidationIssue): string {
  switch (e.keyword) {
    case 'additionalProperties':
      return 'unknown field';
    case 'required':
      return 'required';
    default:
      return e.message ?? 'invalid';
  }
}

const NATS_UNAVAILABLE = [
  TimeoutError,
  ConnectionError,
  ClosedConnectionError,
  DrainingConnectionError,
  NoRespondersError,
  RequestError,
];

/** True when `error` (or what caused it) says NATS did not answer: the service is unavailable. */
function natsUnavailable(error: unknown, depth = 0): boolean {
  if (!(error instanceof Error) || depth > 3) return false;
  return (
    NATS_UNAVAILABLE.some((type) => error instanceof type) ||
    natsUnavailable(error.cause, depth + 1)
  );
}

/** Turns any error into the problem a client may see. */
export function toProblem(error: unknown): { problem: Problem; internal: boolean } {
  if (isParleyError(error)) {
    const extra =
      error.details && typeof error.details === 'object' && !Array.isArray(error.details)
        ? error.details
        : {};
    return {
      problem: problem(error.statusCode, error.code, error.message, extra),
      internal: false,
    };
  }
  const e = error as Partial<FastifyError> & { validation?: FastifyValidationIssue[] };
  if (Array.isArray(e.validation)) {
    const context = e.validationContext ?? 'body';
    const errors = e.validation.map((v) => ({ field: fieldOf(context, v), message: describe(v) }));
    const detail = errors.map((x) => `${x.field}: ${x.message}`).join('; ');
    return {
      problem: problem(400, 'PARLEY_ERR_VALIDATION', `Invalid request: ${detail}`, { errors }),
      internal: false,
    };
  }
  if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    return {
      problem: problem(413, 'PARLEY_ERR_BODY_TOO_LARGE', 'Request body larger than the limit'),
      internal: false,
    };
  }
  if (natsUnavailable(error)) {
    // A read or a request to the workers found NATS out of reach: not a fault of the request.
    return {
      problem: problem(
        503,
        'PARLEY_ERR_NATS_UNREACHABLE',
        'The service is unavailable right now; retry later with the same ids (nothing is applied twice)',
      ),
      internal: false,
    };
  }
  const status = typeof e.statusCode === 'number' ? e.statusCode : 500;
  if (status >= 400 && status < 500 && typeof e.code === 'string' && e.code.startsWith('FST_')) {
    // fastify's own client errors (bad JSON, media type…) say what was wrong, nothing internal.
    return {
      problem: problem(status, 'PARLEY_ERR_VALIDATION', e.message ?? 'Invalid request'),
      internal: false,
    };
  }
  return {
    problem: problem(500, 'PARLEY_ERR_INTERNAL', 'Something went wrong on our side'),
    internal: true,
  };
}

export function sendProblem(reply: FastifyReply, p: Problem): FastifyReply {
  return reply.code(p.status).type(PROBLEM_TYPE).send(p);
}

/**
 * For fastify's `frameworkErrors` option: the errors the router raises before any route or error
 * handler runs (a path parameter over `maxParamLength`, a malformed URL) as problem+json too.
 */
export function frameworkErrors(
  error: FastifyError,
  _request: FastifyRequest,
  reply: FastifyReply,
): FastifyReply {
  return sendProblem(reply, toProblem(error).problem);
}

/** Installs the error and not-found handlers that answer with problem+json. */
export function installProblems(app: FastifyInstance): void {
  app.setErrorHandler((error: unknown, request: FastifyRequest, reply: FastifyReply) => {
    const { problem: p, internal } = toProblem(error);
    if (internal) request.log.error({ err: error }, 'request failed');
    else if (p.status >= 500) request.log.warn({ code: p.code, detail: p.detail }, 'unavailable');
    else request.log.info({ code: p.code, status: p.status }, 'request refused');
    if (p.status === 429 && isParleyError(error) && error.details) {
      const after = (error.details as { retryAfterSeconds?: number }).retryAfterSeconds;
      if (after) reply.header('retry-after', String(after));
    }
    return sendProblem(reply, p);
  });
  app.setNotFoundHandler((request, reply) =>
    sendProblem(
      reply,
      problem(
        404,
        'PARLEY_ERR_NOT_FOUND',
        `No route ${request.method} ${request.url.split('?')[0]}`,
      ),
    ),
  );
}

/** The status of an error code, for the OpenAPI document's responses. */
export function statusOf(code: ErrorCode): number {
  return ERRORS[code].statusCode;
}
