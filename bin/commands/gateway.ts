// `parley gateway`: the HTTP gateway on a running NATS server, until SIGTERM or Ctrl-C.
// Stateless: run as many as needed behind a load balancer.
import { type Command, InvalidArgumentError, Option } from 'commander';
import { loadConfig } from '../../lib/config.ts';
import { loadCredentials } from '../../lib/gateway/auth.ts';
import {
  NOTIFICATION_ENVIRONMENT_HELP,
  notificationsFromEnv,
} from '../../lib/gateway/notifications.ts';
import { startGateway } from '../../lib/gateway/server.ts';
import { createLogger } from '../../lib/log.ts';
import { resolveNatsUrl } from '../../lib/nats/embedded.ts';
import { configOption, dataDirOption, ENVIRONMENT_HELP, onStopSignal } from './worker.ts';

export interface GatewayCommandOptions {
  readonly config?: string;
  readonly port: number;
  readonly host: string;
  readonly dataDir: string;
}

export const GATEWAY_ENVIRONMENT_HELP = `
  PORT                    the HTTP port (default 3000), when --port is not given
  PARLEY_CREDENTIALS      a JSON file: { visitorSecret, adminKeys, supervisorKeys, agentKeys }
  PARLEY_VISITOR_SECRET   signs visitors' tokens (32+ characters); overrides the file's
  PARLEY_ADMIN_KEY, PARLEY_SUPERVISOR_KEY
                          the admins' and supervisors' API keys; override the file's
  PARLEY_AGENT_KEYS       agents' API keys as alice=<key>,bob=<key>; added to the file's
  PARLEY_IDENTITY_SECRET  shared with the brand's backend, which signs logged-in customers' ids
                          (32+ characters); overrides the file's; unset: anonymous visitors only${NOTIFICATION_ENVIRONMENT_HELP}`;

/** Parses a port number for commander (0: a free one). */
export function portNumber(value: string): number {
  const port = Number(value);
  if (!/^\d+$/.test(value) || port > 65_535) {
    throw new InvalidArgumentError('a port is a number from 0 to 65535');
  }
  return port;
}

export function portOption(): Option {
  return new Option('--port <port>', 'HTTP port (0: a free one)')
    .env('PORT')
    .default(3000)
    .argParser(portNumber);
}

export function registerGateway(program: Command): Command {
  return program
    .command('gateway')
    .description("run the HTTP gateway: the widget's, the agent console's and the admins' API")
    .addOption(configOption())
    .addOption(portOption())
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .addOption(dataDirOption())
    .addHelpText('after', `${ENVIRONMENT_HELP}${GATEWAY_ENVIRONMENT_HELP}`)
    .action(async (options: GatewayCommandOptions) => {
      process.exitCode = await runGateway(options);
    });
}

export async function runGateway(
  options: GatewayCommandOptions,
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  const settings = loadConfig(options.config, env);
  const credentials = loadCredentials(env);
  const notifications = notificationsFromEnv(env);
  const log = createLogger({}, undefined, env);
  const stopping = onStopSignal(log);
  try {
    const url = await resolveNatsUrl(env, options.dataDir);
    const gateway = await startGateway({
      url,
      settings,
      credentials,
      log,
      port: options.port,
      host: options.host,
      ...(notifications ? { notifications } : {}),
    });
    process.stdout.write(`Parley gateway listening on ${gateway.url}\n`);
    await stopping.signal;
    await gateway.stop();
    return 0;
  } finally {
    stopping.dispose();
  }
}
