// The command line's single entry: `parley <command>`, parsed by commander; each command lives in
// bin/commands/ and registers itself with its options and help.
import { Command, CommanderError } from 'commander';
import { isParleyError } from '../lib/errors.ts';
import { registerConfig } from './commands/config.ts';
import { registerDemo } from './commands/demo.ts';
import { registerDev } from './commands/dev.ts';
import { registerGateway } from './commands/gateway.ts';
import { registerInspect } from './commands/inspect.ts';
import { registerModel } from './commands/model.ts';
import { registerReport } from './commands/report.ts';
import { registerSend } from './commands/send.ts';
import { registerStatus } from './commands/status.ts';
import { registerTop } from './commands/top.ts';
import { registerWatch } from './commands/watch.ts';
import { registerWorker } from './commands/worker.ts';

/** The exit status of a command line commander refuses (unknown command or option…). */
const USAGE_ERROR = 2;

function program(): Command {
  const parley = new Command('parley')
    .description('Parley: asynchronous customer-service messaging on NATS JetStream')
    .usage('<command> [options]')
    .exitOverride()
    .addHelpText('after', '\nparley <command> --help shows the options of a command.');
  for (const register of [
    registerDev,
    registerWorker,
    registerGateway,
    registerConfig,
    registerStatus,
    registerInspect,
    registerWatch,
    registerTop,
    registerSend,
    registerReport,
    registerDemo,
    registerModel,
  ]) {
    oneLineErrors(register(parley));
  }
  return oneLineErrors(parley);
}

/** Commander's error (and its "did you mean" suggestion) as one line that says where to look. */
function oneLineErrors(command: Command): Command {
  const names: string[] = [];
  for (let c: Command | null = command; c; c = c.parent) names.unshift(c.name());
  const name = names.join(' ');
  for (const sub of command.commands) oneLineErrors(sub);
  return command.configureOutput({
    outputError: (text, write) => {
      const message = text
        .replace(/^error: /, '')
        .replace(/\s*\n\s*\(Did you mean (.*)\)/, '; did you mean $1')
        .replace(/\s*\n\s*/g, ' ')
        .trim();
      write(`${name}: ${message} (${name} --help)\n`);
    },
  });
}

async function main(argv: readonly string[]): Promise<number | undefined> {
  let running = 'parley';
  const parley = program().hook('preAction', (_, action) => {
    const names: string[] = [];
    for (let c: Command | null = action; c; c = c.parent) names.unshift(c.name());
    running = names.join(' ');
  });
  try {
    await parley.parseAsync([...argv], { from: 'user' });
    return undefined; // the command set process.exitCode
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : USAGE_ERROR;
    // Errors Parley expects (a bad configuration, no NATS…) end in their message and a status;
    // others are bugs, with their stack.
    if (!isParleyError(error)) throw error;
    process.stderr.write(`${running}: ${error.message}\n`);
    return error.code === 'PARLEY_ERR_USAGE' ? USAGE_ERROR : 1;
  }
}

// A reader that stops early (`parley demo | head`) is not an error.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code !== 'EPIPE') throw error;
  process.exit(process.exitCode ?? 0);
});

const status = await main(process.argv.slice(2));
if (status !== undefined) process.exitCode = status;
