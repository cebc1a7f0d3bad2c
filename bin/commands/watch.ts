// `parley watch`: every event (every transition of every actor) as it is stored, one line each
// (one JSON object per line with --json), until Ctrl-C or SIGTERM.
import { DeliverPolicy, jetstream } from '@nats-io/jetstream';
import type { Command } from 'commander';
import type { DomainEvent } from '../../actors/events.ts';
import { STREAMS, SUBJECT_ROOTS, validateId } from '../../lib/nats/streams.ts';
import { eventLine, paintFor, type SeenEvent } from './format.ts';
import {
  configuredGroup,
  liveConfig,
  type NatsCommandOptions,
  operatorOptions,
  setupError,
  withNats,
} from './operator.ts';

interface WatchOptions extends NatsCommandOptions {
  readonly group?: string;
  readonly conversation?: string;
}

export function registerWatch(program: Command): Command {
  return operatorOptions(
    program
      .command('watch')
      .description(
        'print every transition (event) as it happens, one line each, until Ctrl-C or SIGTERM',
      )
      .option('--group <id>', "only this routing group's conversations")
      .option(
        '--conversation <id>',
        'only this conversation (it may not have started yet), in whichever group it is',
      )
      .addHelpText(
        'after',
        `
Each line: the local time of the event, its routing group (_agent for an agent's presence), its
conversation (or agent), its type and its key facts. Coloured on a terminal; plain when piped.`,
      ),
    'print one JSON object per line: { seq, subject, id, event }',
  ).action(async (options: WatchOptions) => {
    await withNats(options, 'watch', async (nc, url) => {
      const filter = await watchFilter(options, () => liveConfig(nc, url));
      const consumer = await jetstream(nc)
        .consumers.get(STREAMS.events, {
          filter_subjects: filter,
          deliver_policy: DeliverPolicy.New,
        })
        .catch((error: unknown) => {
          throw setupError(`stream ${STREAMS.events}`, url, error);
        });
      const messages = await consumer.consume();
      const stop = () => void messages.close().catch(() => undefined);
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      process.stderr.write(`parley watch: following ${filter} on ${url}; Ctrl-C stops\n`);
      const paint = paintFor();
      for await (const m of messages) {
        const seen: SeenEvent = {
          seq: m.seq,
          subject: m.subject,
          id: m.headers?.get('Nats-Msg-Id') ?? '',
          event: m.json<DomainEvent>(),
        };
        process.stdout.write(
          options.json ? `${JSON.stringify(seen)}\n` : `${eventLine(seen, paint)}\n`,
        );
      }
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
    });
    process.exitCode = 0;
  });
}

/** The subject filter of the options; a group must be in the live configuration. */
async function watchFilter(
  options: WatchOptions,
  config: () => ReturnType<typeof liveConfig>,
): Promise<string> {
  const conversation =
    options.conversation === undefined
      ? undefined
      : validateId('conversation id', options.conversation);
  const group =
    options.group === undefined ? undefined : configuredGroup(await config(), options.group);
  if (group === undefined && conversation === undefined) return `${SUBJECT_ROOTS.events}.>`;
  return `${SUBJECT_ROOTS.events}.${group ?? '*'}.${conversation ?? '*'}.*`;
}
