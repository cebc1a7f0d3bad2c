// `parley dev` (what `npm start` runs): Parley on one machine in one process. Without NATS_URL, an
// embedded nats-server with its store in the data folder; then a worker; Ctrl-C stops them all,
// in the reverse order of their start.
import { join } from 'node:path';
import type { Command } from 'commander';
import { loadConfig } from '../../lib/config.ts';
import { createLogger } from '../../lib/log.ts';
import { NATS_URL_FILE, startEmbeddedNats } from '../../lib/nats/embedded.ts';
import { Worker } from '../../lib/worker/worker.ts';
import { configOption, dataDirOption, ENVIRONMENT_HELP, onStopSignal } from './worker.ts';

export interface DevCommandOptions {
  readonly config?: string;
  readonly dataDir: string;
}

export function registerDev(program: Command): Command {
  return program
    .command('dev')
    .description(
      'run Parley on this machine: an embedded nats-server (unless NATS_URL is set) and a worker',
    )
    .addOption(configOption())
    .addOption(dataDirOption())
    .addHelpText(
      'after',
      `${ENVIRONMENT_HELP}

Without NATS_URL, the embedded nats-server (the binary on PATH, else /usr/sbin/nats-server, or
PARLEY_NATS_SERVER) listens on 127.0.0.1 and a free port, keeps its store in <data dir>/nats and
writes its URL to <data dir>/${NATS_URL_FILE}, where the other parley commands find it.`,
    )
    .action(async (options: DevCommandOptions) => {
      process.exitCode = await runDev(options);
    });
}

/** One running part of Parley, stopped when the command stops. */
interface Part {
  readonly name: string;
  stop(): Promise<void>;
}

/** Runs Parley until a stop signal; throws PARLEY_ERR_* errors (configuration, NATS). */
export async function runDev(
  options: DevCommandOptions,
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  const settings = loadConfig(options.config, env);
  const log = createLogger({}, undefined, env);
  const stopping = onStopSignal(log);
  // In the order they started; stopped in reverse: what depends on NATS before NATS.
  const parts: Part[] = [];
  try {
    let url = env.NATS_URL?.trim();
    let where = 'from NATS_URL';
    if (!url) {
      const nats = await startEmbeddedNats({ dataDir: options.dataDir, log, env });
      parts.push({ name: 'nats-server', stop: () => nats.stop() });
      url = nats.url;
      where = `embedded nats-server, store in ${join(options.dataDir, 'nats')}; other parley commands of this folder find it in ${join(options.dataDir, NATS_URL_FILE)}`;
    }
    if (stopping.requested) return 0;

    const worker = await Worker.start({ url, settings, log });
    parts.push({ name: 'worker', stop: () => worker.stop() });
    if (stopping.requested) return 0;

    // The gateway starts here, on the same URL, once it exists: after the worker, so that it
    // stops first and no request is taken that nobody would apply.

    process.stdout.write(`Parley is running. NATS: ${url} (${where}). Ctrl-C stops it.\n`);
    log.info({ url }, 'parley dev running');
    await stopping.signal;
    return 0;
  } finally {
    for (const part of parts.reverse()) {
      try {
        await part.stop();
      } catch (error) {
        log.error({ err: error, part: part.name }, 'could not stop cleanly');
      }
    }
    stopping.dispose();
  }
}
