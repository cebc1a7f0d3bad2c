// `parley dev` (what `npm start` runs): Parley on one machine in one process. Without NATS_URL, an
// embedded nats-server with its store in the data folder; then a worker; Ctrl-C stops them all,
// in the reverse order of their start.
import { join } from 'node:path';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { loadConfig } from '../../lib/config.ts';
import { ParleyError } from '../../lib/errors.ts';
import { devCredentials, loadCredentials } from '../../lib/gateway/auth.ts';
import { notificationsFromEnv } from '../../lib/gateway/notifications.ts';
import { startGateway } from '../../lib/gateway/server.ts';
import { createLogger } from '../../lib/log.ts';
import { NATS_URL_FILE, startEmbeddedNats } from '../../lib/nats/embedded.ts';
import { Worker } from '../../lib/worker/worker.ts';
import { startDemoSite } from './demo-site.ts';
import { GATEWAY_ENVIRONMENT_HELP, portNumber, portOption } from './gateway.ts';
import {
  configOption,
  dataDirOption,
  ENVIRONMENT_HELP,
  onStopSignal,
  replicasOption,
} from './worker.ts';

export interface DevCommandOptions {
  readonly config?: string;
  readonly dataDir: string;
  readonly port: number;
  /** Embedded nats-servers: 1, or a cluster of 3 or 5. */
  readonly cluster?: number;
  readonly replicas?: number;
  /** The demo site's port: the gateway's plus one by default (a free one when that is 0); false: none. */
  readonly demoPort?: number | false;
}

/** The credentials file `parley dev` makes in the data folder when none is given. */
export const DEV_CREDENTIALS_FILE = 'credentials.json';

export function registerDev(program: Command): Command {
  return program
    .command('dev')
    .description(
      'run Parley on this machine: an embedded nats-server (unless NATS_URL is set), a worker and the HTTP gateway',
    )
    .addOption(configOption())
    .addOption(dataDirOption())
    .addOption(portOption())
    .addOption(
      new Option(
        '--cluster <servers>',
        'embedded nats-servers as one JetStream cluster (3 or 5), streams and buckets replicated three times',
      ).argParser((value: string) => {
        if (!/^[35]$/.test(value)) throw new InvalidArgumentError('use 3 or 5');
        return Number(value);
      }),
    )
    .addOption(replicasOption())
    .addOption(
      new Option('--demo-port <port>', "the demo site's port (default: the HTTP port + 1)")
        .env('PARLEY_DEMO_PORT')
        .argParser(portNumber),
    )
    .option('--no-demo', 'serve no demo site')
    .addHelpText(
      'after',
      `${ENVIRONMENT_HELP}${GATEWAY_ENVIRONMENT_HELP}

Without NATS_URL, the embedded nats-server (the binary on PATH, else /usr/sbin/nats-server, or
PARLEY_NATS_SERVER) listens on 127.0.0.1 and a free port, keeps its store in <data dir>/nats and
writes its URL to <data dir>/${NATS_URL_FILE}, where the other parley commands find it. Without
PARLEY_CREDENTIALS or PARLEY_VISITOR_SECRET, the gateway's keys (admin, supervisor, one per
agent) are made once in <data dir>/${DEV_CREDENTIALS_FILE}.`,
    )
    .action(async (options: DevCommandOptions & { demo: boolean }) => {
      process.exitCode = await runDev({ ...options, ...(options.demo ? {} : { demoPort: false }) });
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
      const nats = await startEmbeddedNats({
        dataDir: options.dataDir,
        log,
        env,
        servers: options.cluster ?? 1,
      });
      parts.push({ name: 'nats-server', stop: () => nats.stop() });
      url = nats.url;
      where =
        nats.servers.length > 1
          ? `${nats.servers.length} embedded nats-servers as one cluster, pids in ${nats.servers.map((s) => s.pidFile).join(', ')}; other parley commands of this folder find them in ${join(options.dataDir, NATS_URL_FILE)}`
          : `embedded nats-server, store in ${join(options.dataDir, 'nats')}; other parley commands of this folder find it in ${join(options.dataDir, NATS_URL_FILE)}`;
    } else if (options.cluster) {
      throw new ParleyError('PARLEY_ERR_USAGE', [
        '--cluster',
        'it starts embedded nats-servers, and NATS_URL names others: leave one out',
      ]);
    }
    if (stopping.requested) return 0;

    const worker = await Worker.start({
      url,
      settings,
      log,
      ...(options.replicas !== undefined ? { replicas: options.replicas } : {}),
    });
    parts.push({ name: 'worker', stop: () => worker.stop() });
    if (stopping.requested) return 0;

    // After the worker, so that it stops first and no request is taken that nobody would apply.
    const ownKeys = !env.PARLEY_CREDENTIALS && !env.PARLEY_VISITOR_SECRET;
    const credentialsFile = join(options.dataDir, DEV_CREDENTIALS_FILE);
    const made = ownKeys
      ? devCredentials(
          credentialsFile,
          settings.agents.map((a) => a.id),
        )
      : undefined;
    const credentials = made
      ? {
          ...made,
          ...(env.PARLEY_IDENTITY_SECRET ? { identitySecret: env.PARLEY_IDENTITY_SECRET } : {}),
        }
      : loadCredentials(env);
    const notifications = notificationsFromEnv(env);
    // The demo site first: the gateway must know its origin to let it embed the widget.
    const demoPort =
      options.demoPort ?? (options.port === 0 ? 0 : Math.min(options.port + 1, 65_535));
    const demo = demoPort === false ? undefined : await startDemoSite(demoPort);
    if (demo) parts.push({ name: 'demo site', stop: () => demo.stop() });
    const gateway = await startGateway({
      url,
      settings,
      credentials,
      log,
      port: options.port,
      ...(notifications ? { notifications } : {}),
      ...(demo ? { extraOrigins: [demo.origin] } : {}),
    });
    parts.push({ name: 'gateway', stop: () => gateway.stop() });
    demo?.setGateway(gateway.url);

    process.stdout.write(
      `Parley is running. NATS: ${url} (${where}). HTTP: ${gateway.url}${ownKeys ? ` (keys in ${credentialsFile})` : ''}.${demo ? ` Demo page: ${demo.origin}/ (a brand's page with the chat widget).` : ''} Ctrl-C stops it.\n`,
    );
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
