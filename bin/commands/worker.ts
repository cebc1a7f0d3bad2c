// `parley worker`: one worker on a running NATS server, until SIGTERM or Ctrl-C; it takes its
// share of the routing groups and hands them over at once when it stops. Also the pieces the
// long-running commands share: their options and their handling of stop signals.
import { resolve } from 'node:path';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { loadConfig } from '../../lib/config.ts';
import { parseDuration } from '../../lib/duration.ts';
import { createLogger, type Logger } from '../../lib/log.ts';
import { defaultDataDir, resolveNatsUrl } from '../../lib/nats/embedded.ts';
import { validateId } from '../../lib/nats/streams.ts';
import { Worker } from '../../lib/worker/worker.ts';

export interface WorkerCommandOptions {
  readonly config?: string;
  readonly id?: string;
  readonly lease?: number;
  readonly replicas?: number;
  readonly dataDir: string;
}

export function registerWorker(program: Command): Command {
  return program
    .command('worker')
    .description(
      'run a worker: it takes its share of the routing groups and applies their commands',
    )
    .addOption(configOption())
    .option('--id <id>', 'worker id (default: a random one)', workerId)
    .option(
      '--lease <ms>',
      "lease period, in ms or as 5s (default 5s): a dead worker's groups move within it",
      lease,
    )
    .addOption(replicasOption())
    .addOption(dataDirOption())
    .addHelpText('after', ENVIRONMENT_HELP)
    .action(async (options: WorkerCommandOptions) => {
      process.exitCode = await runWorker(options);
    });
}

/** Runs a worker until a stop signal; throws PARLEY_ERR_* errors (configuration, NATS). */
export async function runWorker(
  options: WorkerCommandOptions,
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  const settings = loadConfig(options.config, env);
  const log = createLogger({}, undefined, env);
  const stopping = onStopSignal(log);
  try {
    const url = await resolveNatsUrl(env, options.dataDir);
    const worker = await Worker.start({
      url,
      settings,
      log,
      ...(options.id ? { id: options.id } : {}),
      ...(options.lease ? { leaseMs: options.lease } : {}),
      ...(options.replicas !== undefined ? { replicas: options.replicas } : {}),
    });
    await stopping.signal;
    await worker.stop();
    return 0;
  } finally {
    stopping.dispose();
  }
}

// ─── Shared by the long-running commands ─────────────────────────────────────────────────────

export const ENVIRONMENT_HELP = `
Environment:
  NATS_URL        the NATS server or cluster (comma-separated URLs); without it, the URL that
                  \`parley dev\` left in <data dir>/nats.url, else nats://127.0.0.1:4222
  PARLEY_REPLICAS replicas of the streams and buckets, when --replicas is not given
  PARLEY_CONFIG   the configuration file, when --config is not given
  LOG_LEVEL       pino's level: trace, debug, info (default), warn, error, silent`;

export function configOption(): Option {
  return new Option(
    '--config <file>',
    'configuration file (default: PARLEY_CONFIG, else config/default.yaml)',
  );
}

/** Replicas of the streams and buckets (PARLEY_REPLICAS); without it, 3 on a cluster, 1 on one server. */
export function replicasOption(): Option {
  return new Option(
    '--replicas <n>',
    'replicas of every stream and bucket (default: 3 on a cluster, as many as its servers when fewer; 1 on one server)',
  )
    .env('PARLEY_REPLICAS')
    .argParser((value: string) => {
      if (!/^[1-5]$/.test(value)) throw new InvalidArgumentError('use 1 to 5');
      return Number(value);
    });
}

/** The data folder: where `parley dev` keeps its nats-server's store and leaves its URL. */
export function dataDirOption(): Option {
  return new Option('--data-dir <dir>', 'data folder of the embedded nats-server')
    .env('PARLEY_DATA_DIR')
    .default(defaultDataDir({}), 'data/ of this repository')
    .argParser((value: string) => resolve(value));
}

function workerId(value: string): string {
  try {
    return validateId('worker id', value);
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message);
  }
}

/** Milliseconds, or a duration such as 5s. */
function lease(value: string): number {
  let ms: number;
  try {
    ms = /^\d+$/.test(value) ? Number(value) : parseDuration(value);
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message);
  }
  if (ms < 100) throw new InvalidArgumentError('the lease must last at least 100 ms');
  return ms;
}

export interface Stopping {
  /** Resolves with the first SIGINT or SIGTERM. */
  readonly signal: Promise<NodeJS.Signals>;
  /** True once a signal came. */
  readonly requested: boolean;
  /** Gives the signals their default behaviour back. */
  dispose(): void;
}

/**
 * Catches SIGINT and SIGTERM: the first starts a clean stop (which must end within `graceMs`,
 * else the process exits with 1), a second one exits at once.
 */
export function onStopSignal(log: Logger, graceMs = 9_000): Stopping {
  let resolveSignal: (signal: NodeJS.Signals) => void = () => undefined;
  const signal = new Promise<NodeJS.Signals>((resolve) => {
    resolveSignal = resolve;
  });
  let requested = false;
  let timer: NodeJS.Timeout | undefined;
  const handler = (received: NodeJS.Signals) => {
    if (requested) {
      log.warn({ signal: received }, 'second signal: stopping at once');
      process.exit(1);
    }
    requested = true;
    log.info({ signal: received }, 'stopping');
    timer = setTimeout(() => {
      log.error({ graceMs }, 'could not stop cleanly in time: exiting');
      process.exit(1);
    }, graceMs);
    timer.unref();
    resolveSignal(received);
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return {
    signal,
    get requested() {
      return requested;
    },
    dispose() {
      process.off('SIGINT', handler);
      process.off('SIGTERM', handler);
      clearTimeout(timer);
    },
  };
}
