// `parley send`: a command sent as an integrator sends it (docs/integration.md): validated first,
// published with JetStream to its subject with Nats-Msg-Id = its id, then the events it caused.
import { randomUUID } from 'node:crypto';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Command as CliCommand } from 'commander';
import type { Command, DomainEvent } from '../../actors/events.ts';
import { parseCommand } from '../../lib/commands.ts';
import { isParleyError, ParleyError } from '../../lib/errors.ts';
import { type SeenEvent, type Sent, sendCommand } from '../../lib/nats/command-outcome.ts';
import { STREAMS } from '../../lib/nats/streams.ts';
import { eventLine, paintFor } from './format.ts';
import {
  groupOf,
  integerOption,
  liveConfig,
  type NatsCommandOptions,
  operatorOptions,
  printJson,
  setupError,
  withNats,
} from './operator.ts';

interface SendOptions extends NatsCommandOptions {
  readonly wait: number;
}

/** What `parley send --json` prints. */
export interface SendReport {
  readonly id: string;
  readonly type: Command['type'];
  readonly subject: string;
  /** JetStream acknowledged it (always true here: a command not stored is an error). */
  readonly stored: true;
  /** Its sequence in PARLEY_COMMANDS (that of the first one, for a duplicate). */
  readonly seq: number;
  /** A command with this id was already stored in the last 2 minutes: this one causes nothing. */
  readonly duplicate: boolean;
  /** True once the worker marked the last event of the command (or, for an agent, once they stopped coming). */
  readonly complete: boolean;
  /** The events the command caused (those whose Nats-Msg-Id is `<id>:<n>`), in order. */
  readonly events: readonly DomainEvent[];
}

const DEFAULT_WAIT_MS = 3_000;
const PUBLISH_TIMEOUT_MS = 5_000;
/** Agents' events carry no end mark: this long without another one ends the wait. */
const QUIET_MS = 200;

export function registerSend(program: CliCommand): CliCommand {
  return operatorOptions(
    program
      .command('send <command>')
      .description(
        'send a command as an integrator would (JSON, or - to read it from stdin), and print the events it caused',
      )
      .option(
        '--wait <ms>',
        "how long to wait for the command's events, in ms",
        integerOption('--wait'),
        DEFAULT_WAIT_MS,
      )
      .addHelpText(
        'after',
        `
The command is validated as a worker validates it (docs/schemas/), given an "id" if it has none,
and published to parley.cmd.<group>.<conversation> (the group read from parley-conversations; for
StartConversation, its rule's target group) or parley.cmd._agent.<agent> for SetAgentPresence.

Example:
  parley send '{"type":"SetAgentPresence","agent":"alice","presence":"online"}'
  echo '{"type":"Escalate","conversation":"c-7f3a9c2e"}' | parley send -`,
      ),
    'print one JSON document: { id, type, subject, stored, seq, duplicate, complete, events }',
  ).action(async (argument: string, options: SendOptions) => {
    const command = readCommand(argument === '-' ? await readStdin() : argument);
    const { report, seen } = await withNats(options, 'send', (nc, url) =>
      send(nc, url, command, options.wait),
    );
    if (options.json) printJson(report);
    else process.stdout.write(`${renderReport(report, seen, options.wait).join('\n')}\n`);
  });
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** The command in `text`, with an id made up if it has none; PARLEY_ERR_INVALID_COMMAND if bad. */
export function readCommand(text: string): Command {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return parseCommand(text); // throws, saying what is wrong with the JSON
  }
  if (value !== null && typeof value === 'object' && !Array.isArray(value) && !('id' in value)) {
    value = { ...value, id: randomUUID() };
  }
  return parseCommand(value);
}

async function send(
  nc: NatsConnection,
  url: string,
  command: Command,
  waitMs: number,
): Promise<{ report: SendReport; seen: readonly SeenEvent[] }> {
  const group =
    command.type === 'SetAgentPresence' ? undefined : await targetGroup(nc, url, command);
  let sent: Sent;
  try {
    sent = await sendCommand(nc, command, group, {
      publishTimeoutMs: PUBLISH_TIMEOUT_MS,
      waitMs,
      quietMs: QUIET_MS,
    });
  } catch (error) {
    // No stream captures the subject on a server no worker has started on: say that, not
    // what the client makes of the missing answer.
    const missing = await jetstreamManager(nc)
      .then((jsm) => jsm.streams.info(STREAMS.commands))
      .then(
        () => undefined,
        (e: unknown) => setupError(`stream ${STREAMS.commands}`, url, e),
      );
    if (isParleyError(missing)) throw missing;
    throw new ParleyError('PARLEY_ERR_NOT_STORED', [(error as Error).message], { cause: error });
  }
  const report: SendReport = {
    id: command.id,
    type: command.type,
    subject: sent.subject,
    stored: true,
    seq: sent.seq,
    duplicate: sent.duplicate,
    complete: sent.complete,
    events: sent.seen.map((e) => e.event),
  };
  return { report, seen: sent.seen };
}

/**
 * Where a conversation command goes: the group parley-conversations holds for it; for a
 * StartConversation, its rule's target group in the live configuration.
 */
async function targetGroup(
  nc: NatsConnection,
  url: string,
  command: Exclude<Command, { type: 'SetAgentPresence' }>,
): Promise<string> {
  if (command.type !== 'StartConversation') return groupOf(nc, url, command.conversation);
  const { settings } = await liveConfig(nc, url);
  const rule = settings.rules.find((r) => r.id === command.rule);
  if (!rule) {
    throw new ParleyError('PARLEY_ERR_NOT_FOUND', [
      `Routing rule ${command.rule} (the live configuration's rules: ${settings.rules.map((r) => r.id).join(', ') || 'none'})`,
    ]);
  }
  // Even for an id already taken: the group holding it refuses the start with an event.
  return rule.target.group;
}

function renderReport(r: SendReport, seen: readonly SeenEvent[], waitMs: number): string[] {
  const paint = paintFor();
  const head = `${r.duplicate ? 'Duplicate' : 'Stored'} ${r.type} ${r.id} on ${r.subject} (${STREAMS.commands} #${r.seq})`;
  if (r.duplicate) {
    return [
      `${head}: a command with this id was stored in the last 2 minutes; this one was not stored again and changes nothing.`,
    ];
  }
  const lines = [`${head}.`];
  for (const e of seen) lines.push(eventLine(e, paint));
  const first = r.subject.split('.')[2];
  if (r.events.length === 0) {
    const host =
      r.type === 'SetAgentPresence' ? "the agents' commands (_agent)" : `routing group ${first}`;
    lines.push(
      `No event within ${waitMs} ms. The command is stored: a worker applies it once it hosts ${host} (parley status shows who hosts what). Some commands change nothing and cause no event, such as a presence already held (docs/integration.md, "Commands that change nothing").`,
    );
  } else if (!r.complete) {
    lines.push(paint.dim(`(more events may follow: --wait ${waitMs} ms ran out)`));
  }
  return lines;
}
