// What the operators' commands (status, inspect, watch, top, send) share: their NATS connection,
// the live configuration, a conversation's routing group, reading events back from the stream,
// and errors that say what to do.
import { type Consumer, DeliverPolicy, jetstream } from '@nats-io/jetstream';
import { type KvEntry, Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { type Command, InvalidArgumentError, Option } from 'commander';
import type { DomainEvent } from '../../actors/events.ts';
import { isParleyError, ParleyError } from '../../lib/errors.ts';
import { connectNats } from '../../lib/nats/connection.ts';
import { resolveNatsUrl } from '../../lib/nats/embedded.ts';
import { type ConfigVersion, LiveConfig } from '../../lib/nats/live-config.ts';
import { BUCKETS, STREAMS, validateGroupId, validateId } from '../../lib/nats/streams.ts';
import type { SeenEvent } from './format.ts';
import { dataDirOption } from './worker.ts';

export interface NatsCommandOptions {
  readonly dataDir: string;
  readonly json?: boolean;
}

export const OPERATOR_ENVIRONMENT_HELP = `
Environment:
  NATS_URL   the NATS server or cluster (comma-separated URLs); without it, the URL that
             \`parley dev\` left in <data dir>/nats.url, else nats://127.0.0.1:4222
  NO_COLOR   set (to anything but the empty string): no colours, even on a terminal`;

/** The options every operator's command has: --json and --data-dir, and the environment help. */
export function operatorOptions(command: Command, json = 'print one JSON document'): Command {
  return command
    .addOption(new Option('--json', json))
    .addOption(dataDirOption())
    .addHelpText('after', OPERATOR_ENVIRONMENT_HELP);
}

/** Connects to the NATS server the environment names, runs `work`, and closes the connection. */
export async function withNats<T>(
  options: NatsCommandOptions,
  name: string,
  work: (nc: NatsConnection, url: string) => Promise<T>,
): Promise<T> {
  const url = await resolveNatsUrl(process.env, options.dataDir);
  const nc = await connectNats(url, { name: `parley-${name}` });
  try {
    return await work(nc, url);
  } finally {
    await nc.close().catch(() => undefined);
  }
}

/** Writes one JSON document and a newline. */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

/** True for JetStream's answer about a stream (or a bucket's stream) that does not exist. */
export function isStreamNotFound(error: unknown): boolean {
  return (
    (error as { code?: unknown } | null)?.code === 10059 ||
    (error instanceof Error && error.name === 'StreamNotFoundError')
  );
}

/**
 * PARLEY_ERR_NOT_SET_UP for a stream or bucket that does not exist (no worker has started on
 * this server); other errors as they are.
 */
export function setupError(what: string, url: string, error: unknown): unknown {
  if (!isStreamNotFound(error)) return error;
  return new ParleyError('PARLEY_ERR_NOT_SET_UP', [url, `${what} does not exist`], {
    cause: error,
  });
}

/** Opens the live configuration (to watch it, or to read it once and close it). */
export async function openLiveConfig(nc: NatsConnection, url: string): Promise<LiveConfig> {
  try {
    return await LiveConfig.open(nc, undefined);
  } catch (error) {
    // Stored but invalid says so itself; not stored yet is a server no worker started on.
    if (isParleyError(error, 'PARLEY_ERR_NOT_FOUND')) {
      throw new ParleyError('PARLEY_ERR_NOT_SET_UP', [url, 'no live configuration stored'], {
        cause: error,
      });
    }
    throw setupError(`bucket ${BUCKETS.config}`, url, error);
  }
}

/** The live configuration as it is now. */
export async function liveConfig(nc: NatsConnection, url: string): Promise<ConfigVersion> {
  const live = await openLiveConfig(nc, url);
  live.close();
  return live.current;
}

/** `group` if the live configuration has it; PARLEY_ERR_UNKNOWN_GROUP (or _INVALID_ID) if not. */
export function configuredGroup(version: ConfigVersion, group: string): string {
  validateGroupId(group);
  const groups = version.settings.groups.map((g) => g.id);
  if (!groups.includes(group)) {
    throw new ParleyError('PARLEY_ERR_UNKNOWN_GROUP', [group, groups.join(', ') || 'none']);
  }
  return group;
}

/** The routing group hosting `conversation`, from parley-conversations; undefined when not stored. */
export async function storedGroup(
  nc: NatsConnection,
  url: string,
  conversation: string,
): Promise<string | undefined> {
  validateId('conversation id', conversation);
  let entry: KvEntry | null;
  try {
    const kv = await new Kvm(nc).open(BUCKETS.conversations);
    entry = await kv.get(conversation);
  } catch (error) {
    throw setupError(`bucket ${BUCKETS.conversations}`, url, error);
  }
  if (entry?.operation !== 'PUT') return undefined;
  const group = entry.json<{ group?: unknown }>().group;
  return typeof group === 'string' ? group : undefined;
}

/** Like {@link storedGroup}, and PARLEY_ERR_UNKNOWN_CONVERSATION when the conversation is not stored. */
export async function groupOf(nc: NatsConnection, url: string, conversation: string) {
  const group = await storedGroup(nc, url, conversation);
  if (group === undefined) throw new ParleyError('PARLEY_ERR_UNKNOWN_CONVERSATION', [conversation]);
  return group;
}

/** PARLEY_ERR_NOT_HOSTED with what to do about it; other errors as they are. */
export function withHostingHint(error: unknown, group: string): unknown {
  if (!isParleyError(error, 'PARLEY_ERR_NOT_HOSTED')) return error;
  return new ParleyError(
    'PARLEY_ERR_NOT_HOSTED',
    [
      `${group}: start a worker (parley worker), or retry in a few seconds if one just stopped (its groups move within a lease period); parley status shows who hosts what`,
    ],
    { cause: error, details: error.details },
  );
}

/**
 * Calls `visit` with each event stored under `filter` in PARLEY_EVENTS, oldest first, and
 * returns how many there were. An ordered consumer reads them; it is deleted at the end.
 */
export async function readStoredEvents(
  nc: NatsConnection,
  url: string,
  filter: string,
  visit: (seen: SeenEvent) => void,
): Promise<number> {
  let consumer: Consumer;
  try {
    consumer = await jetstream(nc).consumers.get(STREAMS.events, {
      filter_subjects: filter,
      deliver_policy: DeliverPolicy.All,
      inactive_threshold: 10_000,
    });
  } catch (error) {
    throw setupError(`stream ${STREAMS.events}`, url, error);
  }
  try {
    let pending = (await consumer.info(true)).num_pending;
    let count = 0;
    while (pending > 0) {
      const batch = await consumer.fetch({
        max_messages: Math.min(pending, 1_000),
        expires: 2_000,
      });
      let got = 0;
      for await (const m of batch) {
        got++;
        count++;
        visit({
          seq: m.seq,
          subject: m.subject,
          id: m.headers?.get('Nats-Msg-Id') ?? '',
          event: m.json<DomainEvent>(),
        });
        pending = m.info.pending;
        if (pending === 0) break;
      }
      if (got === 0) break; // nothing came before the fetch expired: stop rather than spin
    }
    return count;
  } finally {
    void consumer.delete().catch(() => undefined);
  }
}

/** A number of at least `min` from the command line. */
export function integerOption(name: string, min = 0) {
  return (value: string): number => {
    if (!/^\d+$/.test(value) || Number(value) < min) {
      throw new InvalidArgumentError(`${name} takes a whole number of at least ${min}`);
    }
    return Number(value);
  };
}
