// `parley config validate|apply|show`: check a configuration file, make it the live configuration
// of a running engine (validated first, written by compare-and-set, applied by the workers
// without a restart), and print the live one.
import type { Command } from 'commander';
import { stringify } from 'yaml';
import { loadConfigDocument } from '../../lib/config.ts';
import { ParleyError } from '../../lib/errors.ts';
import { connectNats } from '../../lib/nats/connection.ts';
import { resolveNatsUrl } from '../../lib/nats/embedded.ts';
import { LiveConfig } from '../../lib/nats/live-config.ts';
import { dataDirOption } from './worker.ts';

interface ConfigOptions {
  readonly json?: boolean;
  readonly dataDir: string;
  readonly ifRevision?: string;
}

export function registerConfig(program: Command): Command {
  const config = program
    .command('config')
    .description(
      'check a configuration file, apply it to the running engine, or show the live one',
    );
  config
    .command('validate <file>')
    .description('check a configuration file as a worker would, without applying it')
    .option('--json', 'print one JSON document')
    .action((file: string, options: ConfigOptions) => {
      const { settings, path } = loadConfigDocument(file);
      const summary = {
        valid: true,
        file: path,
        groups: settings.groups.map((g) => g.id),
        rules: settings.rules.map((r) => r.id),
        agents: settings.agents.map((a) => a.id),
        cannedAnswers: settings.cannedAnswers.map((c) => c.id),
      };
      process.stdout.write(
        options.json
          ? `${JSON.stringify(summary)}\n`
          : `${path} is valid: ${summary.groups.length} routing groups, ${summary.rules.length} rules, ${summary.agents.length} agents, ${summary.cannedAnswers.length} canned answers\n`,
      );
    });
  config
    .command('apply <file>')
    .description(
      'make a configuration file the live configuration; running workers and gateways apply it at once',
    )
    .option('--if-revision <n>', 'refuse if the live configuration is no longer at this revision')
    .option('--json', 'print one JSON document')
    .addOption(dataDirOption())
    .action(async (file: string, options: ConfigOptions) => {
      const { document, settings, path } = loadConfigDocument(file);
      const expected = revisionOption(options.ifRevision);
      const url = await resolveNatsUrl(process.env, options.dataDir);
      const nc = await connectNats(url, { name: 'parley-config' });
      try {
        const live = await openLive(nc, settings, url);
        const before = live.current.revision;
        const version = await live.update(() => document, expected);
        live.close();
        const result = { applied: true, file: path, from: before, revision: version.revision };
        process.stdout.write(
          options.json
            ? `${JSON.stringify(result)}\n`
            : `${path} is the live configuration now (revision ${before} → ${version.revision})\n`,
        );
      } finally {
        await nc.close();
      }
    });
  config
    .command('show')
    .description('print the live configuration (YAML, or JSON with --json)')
    .option('--json', 'print one JSON document')
    .addOption(dataDirOption())
    .action(async (options: ConfigOptions) => {
      const url = await resolveNatsUrl(process.env, options.dataDir);
      const nc = await connectNats(url, { name: 'parley-config' });
      try {
        const live = await openLive(nc, undefined, url);
        const { document, revision } = live.current;
        live.close();
        process.stdout.write(
          options.json
            ? `${JSON.stringify({ revision, config: document })}\n`
            : `# live configuration, revision ${revision}\n${stringify(document)}`,
        );
      } finally {
        await nc.close();
      }
    });
  return config;
}

function revisionOption(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) {
    throw new ParleyError('PARLEY_ERR_VALIDATION', [
      `--if-revision ${value}: not a revision number`,
    ]);
  }
  return Number(value);
}

async function openLive(
  nc: Parameters<typeof LiveConfig.open>[0],
  seed: Parameters<typeof LiveConfig.open>[1],
  url: string,
): Promise<LiveConfig> {
  try {
    return await LiveConfig.open(nc, seed);
  } catch (error) {
    if (error instanceof ParleyError) throw error;
    throw new ParleyError('PARLEY_ERR_NATS_SETUP', [
      `the live configuration on ${url}`,
      `${(error as Error).message}; has a worker started on this NATS server yet?`,
    ]);
  }
}
