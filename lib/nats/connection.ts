// Connecting to NATS: one connection per process, with errors that say what to do when the
// server is missing or has no JetStream.

import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { ParleyError } from '../errors.ts';
import type { Logger } from '../log.ts';

export type { NatsConnection };

export interface ConnectOptions {
  /** The connection's name, shown by the server's monitoring (e.g. `parley-worker-<id>`). */
  name?: string;
  /** Receives the connection's life: disconnects, reconnects, errors. */
  log?: Logger;
  /** How long to wait for the first connection before giving up, in ms (default 3000). */
  timeoutMs?: number;
}

/**
 * Connects to the NATS server(s) at `url` (a URL, a comma-separated list, or an array).
 * Throws PARLEY_ERR_NATS_UNREACHABLE, naming the URLs tried, when none answers in time.
 * Once connected, the client reconnects forever; the log hears of each disconnect.
 */
export async function connectNats(
  url: string | string[],
  options: ConnectOptions = {},
): Promise<NatsConnection> {
  const servers = (Array.isArray(url) ? url : url.split(','))
    .map((server) => server.trim())
    .filter(Boolean);
  const timeout = options.timeoutMs ?? 3_000;
  let nc: NatsConnection;
  try {
    if (servers.length === 0) throw new Error('no server URL given');
    nc = await withDeadline(
      connect({
        servers,
        name: options.name,
        timeout,
        maxReconnectAttempts: -1,
        // Async stack traces cost two Errors per request: a third of a worker's CPU, measured.
        noAsyncTraces: true,
        // The first connection fails fast; the caller decides whether to retry.
        waitOnFirstConnect: false,
      }),
      // The client's timeout bounds each server's dial; this bounds the whole attempt.
      timeout * servers.length + 1_000,
    );
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new ParleyError('PARLEY_ERR_NATS_UNREACHABLE', [servers.join(', ') || '(none)', reason], {
      cause: error,
    });
  }
  if (options.log) watchStatus(nc, options.log);
  return nc;
}

/**
 * Throws PARLEY_ERR_JETSTREAM_DISABLED when the server behind `nc` has no JetStream
 * (or not for this account); other failures of the JetStream API pass through.
 */
export async function checkJetStream(nc: NatsConnection): Promise<void> {
  try {
    await jetstreamManager(nc, { timeout: 5_000 });
  } catch (error) {
    // A server that says it runs JetStream and does not answer yet is electing or starting.
    if (nc.info?.jetstream === true && !hasCode(error, 10039)) throw error;
    if (isJetStreamDisabled(error)) {
      throw new ParleyError('PARLEY_ERR_JETSTREAM_DISABLED', [nc.getServer()], { cause: error });
    }
    throw error;
  }
}

function hasCode(error: unknown, code: number): boolean {
  return (error as { code?: unknown } | null)?.code === code;
}

function isJetStreamDisabled(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  // No responders on $JS.API.INFO, or the server answers that the account has no JetStream.
  if (error.name === 'JetStreamNotEnabled') return true;
  const code = (error as { code?: unknown }).code;
  return code === 10039 || code === 503;
}

async function watchStatus(nc: NatsConnection, log: Logger): Promise<void> {
  for await (const status of nc.status()) {
    switch (status.type) {
      case 'disconnect':
        log.warn({ server: status.server }, 'disconnected from NATS');
        break;
      case 'reconnect':
        log.info({ server: status.server }, 'reconnected to NATS');
        break;
      case 'error':
        log.error({ err: status.error }, 'NATS connection error');
        break;
      case 'ldm':
        log.warn({ server: status.server }, 'NATS server entering lame duck mode');
        break;
      case 'update':
        log.debug({ added: status.added, deleted: status.deleted }, 'NATS cluster changed');
        break;
      default:
        break;
    }
  }
}

/** Rejects if no connection was made in `ms`; a connection made later is closed at once. */
async function withDeadline(promise: Promise<NatsConnection>, ms: number): Promise<NatsConnection> {
  let timer: NodeJS.Timeout | undefined;
  let late = false;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      late = true;
      reject(new Error(`no answer in ${ms} ms`));
    }, ms);
  });
  promise.then(
    (nc) => (late ? nc.close() : undefined),
    () => undefined,
  );
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * True for a failure that the NATS server or cluster may get over by itself: a timeout, no
 * responders (a stream leader being elected, JetStream still starting), JetStream answering
 * "temporarily unavailable" or "insufficient resources" (too few servers up for the replicas),
 * a connection being re-established. A wrong setting, a stream of another shape, a server
 * without JetStream, are not.
 */
export function isTransient(error: unknown): boolean {
  for (let e = error, depth = 0; e && depth < 5; depth++) {
    const { name, message, code } = e as { name?: unknown; message?: unknown; code?: unknown };
    if (code === 'PARLEY_ERR_JETSTREAM_DISABLED') return false;
    const text = typeof message === 'string' ? message.toLowerCase() : '';
    if (name === 'TimeoutError' || name === 'NoRespondersError' || name === 'RequestError')
      return true;
    if (code === 503 || code === 10008 || code === 10023 || code === '503' || code === 'TIMEOUT')
      return true;
    if (
      /timeout|no responders|temporarily unavailable|insufficient resources|no suitable peers|not current|leader|disconnect|reconnect/.test(
        text,
      )
    )
      return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

export interface RetryOptions {
  readonly log?: Logger;
  /** What is being waited for, for the log line ("the streams", "the live configuration"). */
  readonly what: string;
  /** Stops retrying (the process is stopping): the last error is thrown. */
  readonly stopped?: () => boolean;
  /** First and longest wait between tries, in ms (default 250 and 5000). */
  readonly firstMs?: number;
  readonly maxMs?: number;
}

/**
 * Runs `work` until it succeeds, again after a growing wait for as long as it fails for a
 * transient reason (isTransient); the log hears of the wait once, and of its end. Any other
 * error is thrown at once: a real configuration error ends the start.
 */
export async function retryTransient<T>(work: () => Promise<T>, options: RetryOptions): Promise<T> {
  let waitMs = options.firstMs ?? 250;
  let since: number | undefined;
  for (;;) {
    try {
      const result = await work();
      if (since !== undefined) {
        options.log?.info({ waitedMs: Date.now() - since }, `${options.what}: ready`);
      }
      return result;
    } catch (error) {
      if (!isTransient(error) || options.stopped?.()) throw error;
      if (since === undefined) {
        since = Date.now();
        options.log?.warn(
          { reason: error instanceof Error ? error.message : String(error) },
          `${options.what}: not ready yet; trying again until it is`,
        );
      }
      await new Promise((r) => setTimeout(r, waitMs));
      waitMs = Math.min(options.maxMs ?? 5_000, waitMs * 2);
    }
  }
}
