// The command line's single entry: `parley <command>`. A small dispatcher until the CLI grows
// enough subcommands to want a library for it; each command parses its own options.
import { isParleyError } from '../lib/errors.ts';
import { runDemo } from './commands/demo.ts';
import { runModel } from './commands/model.ts';

interface Command {
  readonly summary: string;
  readonly run: (args: readonly string[]) => Promise<number>;
}

const COMMANDS: Record<string, Command> = {
  demo: {
    summary: 'run a scripted story through the engine on a simulated clock (--json: events only)',
    run: runDemo,
  },
  model: {
    summary: 'print the state machines as Markdown with Mermaid diagrams',
    run: runModel,
  },
};

function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((name) => name.length));
  const lines = Object.entries(COMMANDS).map(
    ([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`,
  );
  return `Usage: parley <command> [options]\n\nCommands:\n${lines.join('\n')}\n\nparley <command> --help shows a command's options.\n`;
}

async function main(argv: readonly string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) {
    process.stderr.write(usage());
    return 2;
  }
  if (name === '-h' || name === '--help' || name === 'help') {
    process.stdout.write(usage());
    return 0;
  }
  const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!command) {
    process.stderr.write(`parley: unknown command '${name}' (parley --help lists them)\n`);
    return 2;
  }
  try {
    return await command.run(rest);
  } catch (error) {
    // Errors Parley expects (a bad configuration…) end in a message and a status; others are bugs.
    if (!isParleyError(error)) throw error;
    process.stderr.write(`parley ${name}: ${error.code}: ${error.message}\n`);
    return 1;
  }
}

// A reader that stops early (`parley demo | head`) is not an error.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code !== 'EPIPE') throw error;
  process.exit(process.exitCode ?? 0);
});

process.exitCode = await main(process.argv.slice(2));
