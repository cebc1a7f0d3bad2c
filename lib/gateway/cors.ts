// CORS for the visitor routes and their event stream, for the widget's allowed origins only (the
// live configuration's `widget.allowedOrigins`, read at each request): preflights answered, any
// other origin, or any other route, gets no CORS header at all.
import cors from '@fastify/cors';
import type { FastifyInstance } from 'fastify';

/** The visitor routes: identify, the widget's settings, and everything under /v1/visitor/. */
export const VISITOR_PATHS = /^\/v1\/(?:visitors|visitor|widget)(?:[/?]|$)/;

/** How long a browser may keep a preflight's answer, in seconds. */
export const PREFLIGHT_MAX_AGE_S = 600;

/** Registers CORS on `app`; `allowed` gives the allowed origins now. */
export async function registerCors(
  app: FastifyInstance,
  allowed: () => readonly string[],
): Promise<void> {
  await app.register(cors, {
    delegator: (request, callback) => {
      const origin = request.headers.origin;
      const ok =
        typeof origin === 'string' && VISITOR_PATHS.test(request.url) && allowed().includes(origin);
      if (!ok) return callback(null, { origin: false });
      callback(null, {
        origin,
        methods: ['GET', 'POST', 'PUT'],
        allowedHeaders: ['authorization', 'content-type', 'last-event-id'],
        exposedHeaders: [
          'retry-after',
          'x-ratelimit-limit',
          'x-ratelimit-remaining',
          'x-ratelimit-reset',
        ],
        // Bearer tokens, never cookies.
        credentials: false,
        maxAge: PREFLIGHT_MAX_AGE_S,
      });
    },
  });
}
