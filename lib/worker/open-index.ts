// The index of each routing group's open conversations: a key `open.<group>.<conversation>` in the
// groups bucket for every conversation stored open under that group. The group's own record stays
// small whatever the number of open conversations (a KV value is at most 1 MB by default, about
// 25,000 ids): it lists only those a new owner must load at once (waiting, snoozed); the others
// are loaded when a command comes for them, and counted from here.
import type { JetStreamManager } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import { BUCKETS, bucketKeys } from '../nats/streams.ts';

const prefix = (group: string) => `open.${group}.`;

/** The key of `conversation` in `group`'s index. */
export const openKey = (group: string, conversation: string) => `${prefix(group)}${conversation}`;

/** The conversations the index lists as open under `group`, in id order. */
export async function indexedOpen(jsm: JetStreamManager, group: string): Promise<string[]> {
  const keys = await bucketKeys(jsm, BUCKETS.groups, `${prefix(group)}*`);
  return keys.map((k) => k.slice(prefix(group).length));
}

/** Lists `conversation` as open under `group` (the value: when, in ms). */
export async function indexOpen(groups: KV, group: string, conversation: string): Promise<void> {
  await groups.put(openKey(group, conversation), String(Date.now()));
}

/**
 * Takes `conversation` off `group`'s index. Purged from the bucket's stream, not deleted: a KV
 * delete leaves a marker under the key, which the key listing would still show.
 */
export async function unindexOpen(
  jsm: JetStreamManager,
  group: string,
  conversation: string,
): Promise<void> {
  await jsm.streams.purge(`KV_${BUCKETS.groups}`, {
    filter: `$KV.${BUCKETS.groups}.${openKey(group, conversation)}`,
  });
}
