// The HTTP gateway (fastify 5): the widget's, the agent console's and the admins' API. Stateless:
// it talks to the workers only through NATS (lib/gateway/backend.ts), so any number can run
// behind a load balancer. Wires the plugins, the error handling and the routes.

import rateLimit from '@fastify/rate-limit';
import { fastifySSE as sse } from '@fastify/sse';
import swagger from '@fastify/swagger';
import { jetstream } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify';
import type { Settings } from '../../actors/settings.ts';
import { ParleyError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { connectNats, type NatsConnection } from '../nats/connection.ts';
import { LiveConfig } from '../nats/live-config.ts';
import { BUCKETS } from '../nats/streams.ts';
import { Reporter } from '../reports/reporter.ts';
import { Authenticator, type Credentials } from './auth.ts';
import { Backend } from './backend.ts';
import { registerCors } from './cors.ts';
import type { NotificationOptions } from './notifications.ts';
import { Notifier } from './notifier.ts';
import { Presence } from './presence.ts';
import { frameworkErrors, installProblems } from './problem.ts';
import { adminRoutes } from './routes/admin.ts';
import { agentRoutes } from './routes/agent.ts';
import { reportRoutes } from './routes/reports.ts';
import { visitorRoutes } from './routes/visitor.ts';
import { webRoutes } from './web.ts';

export interface GatewayLimits {
  /** Largest request body, in bytes (default 64 KiB): more gets 413. */
  readonly bodyBytes: number;
  /** Requests per minute on the visitor routes, per IP and per visitor. */
  readonly perIpPerMinute: number;
  readonly perVisitorPerMinute: number;
  /** How long an agent's or visitor's live connection may be gone before they count as offline. */
  readonly presenceGraceMs: number;
  /** How long a request waits for its command's outcome before answering 202. */
  readonly outcomeMs: number;
  /** SSE comments sent this often keep proxies from closing idle streams. */
  readonly heartbeatMs: number;
}

export const DEFAULT_LIMITS: GatewayLimits = {
  bodyBytes: 64 * 1024,
  perIpPerMinute: 600,
  perVisitorPerMinute: 120,
  presenceGraceMs: 30_000,
  outcomeMs: 3_000,
  heartbeatMs: 15_000,
};

export interface GatewayOptions {
  readonly nc: NatsConnection;
  readonly settings: Settings;
  readonly credentials: Credentials;
  readonly log: Logger;
  readonly limits?: Partial<GatewayLimits>;
  /** Emails and text messages to visitors answered while away (notifications.ts); none when absent. */
  readonly notifications?: NotificationOptions;
  /** Origins allowed to embed the widget beyond the live configuration's (parley dev's demo page). */
  readonly extraOrigins?: readonly string[];
  /** Where the built web files are (default web/dist). */
  readonly webDir?: string;
}

/** What the routes share. */
export interface GatewayContext {
  readonly backend: Backend;
  readonly auth: Authenticator;
  readonly presence: Presence;
  readonly limits: GatewayLimits;
}

/** Builds the fastify app (not listening yet). */
export async function buildGateway(options: GatewayOptions): Promise<FastifyInstance> {
  const limits: GatewayLimits = { ...DEFAULT_LIMITS, ...options.limits };
  const app = Fastify({
    loggerInstance: options.log.child({ part: 'gateway' }) as FastifyBaseLogger,
    bodyLimit: limits.bodyBytes,
    // One line per event worth knowing: refusals and failures, not every request.
    logController: new LogController({ disableRequestLogging: true }),
    // Ids are up to 128 characters: the router's default of 100 would answer 414 first.
    routerOptions: { maxParamLength: 256 },
    // Router errors (a malformed URL, say) as problem+json too.
    frameworkErrors,
    // Open event streams do not hold a stopping gateway up.
    forceCloseConnections: true,
    ajv: {
      customOptions: {
        // Unknown fields are refused, not dropped; a wrong type is an error, not coerced.
        removeAdditional: false,
        coerceTypes: false,
        useDefaults: true,
        allErrors: true,
        // The configuration's schemas (admin API) are the file's own.
        discriminator: true,
        allowUnionTypes: true,
      },
    },
  });

  installProblems(app);
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Parley gateway',
        version: '1',
        description:
          'The HTTP API of Parley: the chat widget (visitor), the agent console (agent), admins and supervisors. Errors are application/problem+json.',
      },
      components: {
        securitySchemes: {
          bearer: { type: 'http', scheme: 'bearer' },
        },
      },
      security: [{ bearer: [] }],
    },
  });
  await app.register(rateLimit, { global: false });
  await app.register(sse, { heartbeatInterval: limits.heartbeatMs });

  // The live configuration wins over the starting one, and follows every change.
  let live: LiveConfig;
  try {
    live = await LiveConfig.open(options.nc, options.settings, options.log);
  } catch (error) {
    if (error instanceof ParleyError) throw error;
    throw new ParleyError('PARLEY_ERR_NATS_SETUP', [
      'the gateway',
      `${(error as Error).message}: start a worker first (it creates Parley's streams and buckets)`,
    ]);
  }
  await live.watch();
  const backend = await Backend.open(options.nc, live.current.settings, {
    log: options.log.child({ part: 'gateway' }),
    outcomeMs: limits.outcomeMs,
  });
  live.onChange((version) => {
    backend.settings = version.settings;
  });
  const context: GatewayContext = {
    backend,
    auth: new Authenticator(options.credentials),
    presence: new Presence(
      backend,
      limits.presenceGraceMs,
      options.log,
      await new Kvm(options.nc).open(BUCKETS.connections).catch(() => undefined),
    ),
    limits,
  };

  // The widget's pages and CORS follow the live configuration's allowed origins.
  const allowedOrigins = () => [
    ...(backend.settings.widget?.allowedOrigins ?? []),
    ...(options.extraOrigins ?? []),
  ];
  await registerCors(app, allowedOrigins);
  await app.register(
    webRoutes({ allowedOrigins, log: options.log.child({ part: 'web' }), dir: options.webDir }),
  );

  app.get('/healthz', { schema: { hide: true } }, async (_request, reply) => {
    const ok = await backend.healthy();
    return reply.code(ok ? 200 : 503).send({ status: ok ? 'ok' : 'nats-unreachable' });
  });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  await app.register(visitorRoutes(context), { prefix: '/v1' });
  await app.register(agentRoutes(context), { prefix: '/v1' });
  await app.register(adminRoutes(context, live), { prefix: '/v1' });
  // Supervisors' figures: a projection of the events stream, read from its start.
  const reporter = await Reporter.start(options.nc, {
    settings: () => live.current.settings,
    log: options.log.child({ part: 'reports' }),
  });
  await app.register(reportRoutes(context, reporter));
  const notifier = options.notifications
    ? await Notifier.start(jetstream(options.nc), backend.jsm, {
        backend,
        visitorData: await new Kvm(options.nc).open(BUCKETS.visitorData),
        settings: () => live.current.settings,
        log: options.log,
        notifications: options.notifications,
      })
    : undefined;
  app.addHook('onClose', async () => {
    await notifier?.stop();
    await reporter.stop();
    context.presence.close();
    live.close();
    // Requests whose client went away may still be sending: let them end before NATS goes.
    await backend.settled(limits.outcomeMs + 5_000);
  });
  return app;
}

export interface RunningGateway {
  readonly app: FastifyInstance;
  /** `http://host:port` it listens on. */
  readonly url: string;
  stop(): Promise<void>;
}

/** Connects to NATS, builds the gateway and listens on `port` (0: a free one). */
export async function startGateway(
  options: Omit<GatewayOptions, 'nc'> & { url: string | string[]; port: number; host?: string },
): Promise<RunningGateway> {
  const nc = await connectNats(options.url, { name: 'parley-gateway', log: options.log });
  try {
    const app = await buildGateway({ ...options, nc });
    const address = await app.listen({ port: options.port, host: options.host ?? '127.0.0.1' });
    options.log.info({ address }, 'gateway listening');
    return {
      app,
      url: address,
      async stop() {
        await app.close();
        await nc.drain().catch(() => undefined);
      },
    };
  } catch (error) {
    await nc.close();
    throw error;
  }
}
