// `parley status`: the live workers and the routing groups each one hosts (with the age of each
// lease), the NATS server or cluster, and the health of Parley's streams and buckets.
import { type JetStreamManager, jetstreamManager, type StreamInfo } from '@nats-io/jetstream';
import { type KV, Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Command } from 'commander';
import type { LeaseRecord } from '../../lib/nats/leases.ts';
import type { WorkerRecord } from '../../lib/nats/members.ts';
import { AGENT_TOKEN, BUCKETS, bucketKeys, STREAMS } from '../../lib/nats/streams.ts';
import { duration, type Paint, paintFor, relative, table } from './format.ts';
import {
  type NatsCommandOptions,
  openLiveConfig,
  operatorOptions,
  printJson,
  withNats,
} from './operator.ts';

/** A live lease: `group` (or `_agent`, the agents' commands) held by `worker`. */
export interface LeaseStatus {
  readonly group: string;
  readonly worker: string;
  /** When the lease runs out unless renewed (ms since the epoch). */
  readonly until: number;
  readonly expiresInMs: number;
  /** The lease's age: time since its holder last wrote it (took or renewed it), in ms. */
  readonly renewedMsAgo: number;
  readonly revision: number;
}

export interface WorkerStatus {
  readonly worker: string;
  /** When it joined (ms since the epoch). */
  readonly since: number;
  /** Its last heartbeat. */
  readonly seen: number;
  readonly seenMsAgo: number;
  /** False when its last heartbeat is older than the bucket's TTL: it died or is cut off. */
  readonly live: boolean;
  /** The groups (and `_agent`) whose lease it holds, sorted. */
  readonly hosts: readonly string[];
}

export interface GroupStatus {
  readonly group: string;
  /** False for a lease on a group the live configuration no longer has. */
  readonly configured: boolean;
  /** The worker holding the group's lease now; null when nobody does. */
  readonly worker: string | null;
  readonly lease: LeaseStatus | null;
}

export interface StreamStatus {
  readonly name: string;
  /** The KV bucket the stream holds, or null for a stream of its own. */
  readonly bucket: string | null;
  readonly exists: boolean;
  readonly messages: number;
  readonly bytes: number;
  /** Configured replicas. */
  readonly replicas: number;
  /** On a cluster: the leader and each replica's state. */
  readonly cluster: {
    readonly leader: string | null;
    readonly replicas: readonly { name: string; current: boolean; offline: boolean; lag: number }[];
  } | null;
  readonly healthy: boolean;
  /** What is wrong, when not healthy. */
  readonly problem: string | null;
}

export interface StatusReport {
  readonly at: number;
  readonly url: string;
  readonly nats: {
    /** The server this connection reached. */
    readonly server: string;
    readonly serverId: string;
    readonly version: string;
    readonly jetstream: boolean;
    /** The cluster, null on a single server. */
    readonly cluster: {
      readonly name: string;
      readonly size: number;
      readonly servers: readonly string[];
    } | null;
  };
  readonly workers: readonly WorkerStatus[];
  readonly groups: readonly GroupStatus[];
  readonly streams: readonly StreamStatus[];
  /** Everything that is wrong, one sentence each; empty when all is well. */
  readonly problems: readonly string[];
  readonly healthy: boolean;
}

export function registerStatus(program: Command): Command {
  return operatorOptions(
    program
      .command('status')
      .description(
        'show the live workers and the routing groups each hosts, the NATS server or cluster, and the health of the streams and buckets',
      ),
  ).action(async (options: NatsCommandOptions) => {
    const report = await withNats(options, 'status', (nc, url) => readStatus(nc, url));
    if (options.json) printJson(report);
    else process.stdout.write(`${renderStatus(report, paintFor()).join('\n')}\n`);
  });
}

export async function readStatus(nc: NatsConnection, url: string): Promise<StatusReport> {
  const at = Date.now();
  const info = nc.info;
  const jetstream = info?.jetstream === true;
  const problems: string[] = [];
  if (!jetstream) {
    problems.push(
      'JetStream is not enabled on this server: run nats-server with -js, or set NATS_URL to the server your workers use',
    );
  }
  const jsm = jetstream ? await jetstreamManager(nc, { timeout: 5_000 }) : undefined;
  const streams = jsm ? await streamStatuses(jsm) : [];
  if (streams.length > 0 && streams.every((s) => !s.exists)) {
    problems.push(
      "Parley's streams and buckets do not exist: no worker has started on this NATS server yet. Start one (parley worker, or parley dev), or set NATS_URL to the server your workers use",
    );
  } else {
    for (const s of streams) if (s.problem) problems.push(`${s.name}: ${s.problem}`);
  }

  const kvm = new Kvm(nc);
  const exists = new Set(streams.filter((s) => s.exists).map((s) => s.bucket));
  const workersKv = exists.has(BUCKETS.workers) ? await kvm.open(BUCKETS.workers) : undefined;
  const leasesKv = exists.has(BUCKETS.leases) ? await kvm.open(BUCKETS.leases) : undefined;
  const [heartbeats, leases, configured] = await Promise.all([
    jsm && workersKv ? readWorkers(jsm, workersKv) : [],
    jsm && leasesKv ? readLeases(jsm, leasesKv) : [],
    exists.has(BUCKETS.config) ? configuredGroups(nc, url) : undefined,
  ]);

  const workers = heartbeats.map(
    (w): WorkerStatus => ({
      ...w,
      hosts: leases.filter((l) => l.worker === w.worker).map((l) => l.group),
    }),
  );
  if (workersKv && !workers.some((w) => w.live)) {
    problems.push('no live worker: start one (parley worker, or parley dev)');
  }
  const names = [
    ...(configured ?? []),
    AGENT_TOKEN,
    ...leases.map((l) => l.group).filter((g) => g !== AGENT_TOKEN && !configured?.includes(g)),
  ];
  const groups = [...new Set(names)].map((group): GroupStatus => {
    const lease = leases.find((l) => l.group === group) ?? null;
    return {
      group,
      configured: group === AGENT_TOKEN || configured === undefined || configured.includes(group),
      worker: lease?.worker ?? null,
      lease,
    };
  });
  if (workers.some((w) => w.live)) {
    for (const g of groups) {
      if (g.configured && g.worker === null) {
        problems.push(
          `${g.group === AGENT_TOKEN ? "the agents' commands (_agent)" : `routing group ${g.group}`}: no worker holds its lease`,
        );
      }
    }
  }
  for (const l of leases) {
    if (!workers.some((w) => w.worker === l.worker && w.live)) {
      problems.push(`${l.group}: held by ${l.worker}, which sends no heartbeat`);
    }
  }

  const connectUrls = info?.connect_urls ?? [];
  return {
    at,
    url,
    nats: {
      server: info?.server_name ?? '',
      serverId: info?.server_id ?? '',
      version: info?.version ?? '',
      jetstream,
      cluster: info?.cluster
        ? { name: info.cluster, size: Math.max(1, connectUrls.length), servers: connectUrls }
        : null,
    },
    workers,
    groups,
    streams,
    problems,
    healthy: problems.length === 0,
  };
}

async function readWorkers(jsm: JetStreamManager, kv: KV): Promise<Omit<WorkerStatus, 'hosts'>[]> {
  const ttl = (await kv.status()).ttl;
  const out: Omit<WorkerStatus, 'hosts'>[] = [];
  for (const key of await bucketKeys(jsm, BUCKETS.workers)) {
    const entry = await kv.get(key);
    const now = Date.now();
    if (entry?.operation !== 'PUT') continue;
    try {
      const r = entry.json<WorkerRecord>();
      if (typeof r.seen !== 'number') continue;
      out.push({
        worker: r.worker ?? key,
        since: r.since,
        seen: r.seen,
        seenMsAgo: Math.max(0, now - r.seen),
        live: ttl <= 0 || r.seen + ttl > now,
      });
    } catch {
      // not a heartbeat
    }
  }
  return out.sort((a, b) => (a.worker < b.worker ? -1 : 1));
}

async function readLeases(jsm: JetStreamManager, kv: KV): Promise<LeaseStatus[]> {
  const out: LeaseStatus[] = [];
  for (const key of await bucketKeys(jsm, BUCKETS.leases)) {
    const entry = await kv.get(key);
    const now = Date.now();
    if (entry?.operation !== 'PUT') continue;
    try {
      const r = entry.json<LeaseRecord>();
      if (typeof r.worker !== 'string' || typeof r.until !== 'number' || r.until <= now) continue;
      out.push({
        group: key,
        worker: r.worker,
        until: r.until,
        expiresInMs: r.until - now,
        renewedMsAgo: Math.max(0, now - entry.created.getTime()),
        revision: entry.revision,
      });
    } catch {
      // not a lease
    }
  }
  return out.sort((a, b) => (a.group < b.group ? -1 : 1));
}

async function configuredGroups(nc: NatsConnection, url: string): Promise<string[] | undefined> {
  try {
    const live = await openLiveConfig(nc, url);
    live.close();
    return live.current.settings.groups.map((g) => g.id);
  } catch {
    return undefined; // no configuration stored yet: the leases alone are listed
  }
}

const WANTED: readonly { name: string; bucket: string | null }[] = [
  { name: STREAMS.commands, bucket: null },
  { name: STREAMS.events, bucket: null },
  ...Object.values(BUCKETS).map((bucket) => ({ name: `KV_${bucket}`, bucket })),
];

async function streamStatuses(jsm: JetStreamManager): Promise<StreamStatus[]> {
  return Promise.all(
    WANTED.map(async ({ name, bucket }): Promise<StreamStatus> => {
      let info: StreamInfo;
      try {
        info = await jsm.streams.info(name);
      } catch (error) {
        if ((error as { code?: unknown }).code !== 10059) throw error;
        return {
          name,
          bucket,
          exists: false,
          messages: 0,
          bytes: 0,
          replicas: 0,
          cluster: null,
          healthy: false,
          problem: 'missing: a worker creates it when it starts',
        };
      }
      const cluster = info.cluster?.replicas?.length
        ? {
            leader: info.cluster.leader ?? null,
            replicas: info.cluster.replicas.map((r) => ({
              name: r.name,
              current: r.current,
              offline: r.offline ?? false,
              lag: r.lag ?? 0,
            })),
          }
        : info.cluster?.leader
          ? { leader: info.cluster.leader, replicas: [] }
          : null;
      const behind = cluster?.replicas.filter((r) => r.offline || !r.current) ?? [];
      const problem =
        cluster && cluster.leader === null
          ? 'no leader: the servers are electing one, or too many are down'
          : behind.length > 0
            ? `replicas behind or offline: ${behind.map((r) => r.name).join(', ')}`
            : null;
      return {
        name,
        bucket,
        exists: true,
        messages: info.state.messages,
        bytes: info.state.bytes,
        replicas: info.config.num_replicas,
        cluster,
        healthy: problem === null,
        problem,
      };
    }),
  );
}

// ─── Text ────────────────────────────────────────────────────────────────────────────────────

function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = n / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

export function renderStatus(r: StatusReport, paint: Paint): string[] {
  const lines: string[] = [];
  const { nats } = r;
  // A server without a name is named by its id, 56 characters: its start is enough to tell.
  const named = nats.server !== nats.serverId ? nats.server : `${nats.serverId.slice(0, 8)}…`;
  lines.push(
    `${paint.bold('NATS')}     ${r.url}: nats-server ${nats.version} (${named}), JetStream ${nats.jetstream ? 'on' : paint.red('off')}`,
  );
  lines.push(
    nats.cluster
      ? `         cluster ${nats.cluster.name}: ${nats.cluster.size} servers (${nats.cluster.servers.join(', ')})`
      : '         a single server, no cluster',
  );

  const live = r.workers.filter((w) => w.live);
  lines.push(
    '',
    `${paint.bold('Workers')}  ${live.length} live${r.workers.length > live.length ? `, ${r.workers.length - live.length} silent` : ''}`,
  );
  if (r.workers.length > 0) {
    const rows = [
      ['WORKER', 'UP', 'HEARTBEAT', 'HOSTS'],
      ...r.workers.map((w) => [
        w.worker,
        duration(Math.max(0, r.at - w.since)),
        `${duration(w.seenMsAgo)} ago${w.live ? '' : ' (silent)'}`,
        w.hosts.join(', ') || '—',
      ]),
    ];
    for (const line of table(rows, (row, _c, text) => (row === 0 ? paint.dim(text) : text))) {
      lines.push(`  ${line}`);
    }
  }

  lines.push('', paint.bold('Routing groups'));
  const groupRows = [
    ['GROUP', 'WORKER', 'LEASE RENEWED', 'EXPIRES'],
    ...r.groups.map((g) => [
      `${g.group}${g.configured ? '' : ' (not configured)'}`,
      g.worker ?? 'none',
      g.lease ? `${duration(g.lease.renewedMsAgo)} ago` : '—',
      g.lease ? relative(g.lease.expiresInMs) : '—',
    ]),
  ];
  for (const line of table(groupRows, (row, column, text) =>
    row === 0 ? paint.dim(text) : column === 1 && text.trim() === 'none' ? paint.red(text) : text,
  )) {
    lines.push(`  ${line}`);
  }

  lines.push('', paint.bold('Streams and buckets'));
  const streamRows = [
    ['STREAM', 'MESSAGES', 'BYTES', 'REPLICAS', 'HEALTH'],
    ...r.streams.map((s) => [
      s.name,
      s.exists ? String(s.messages) : '—',
      s.exists ? bytes(s.bytes) : '—',
      s.exists ? String(s.replicas) : '—',
      s.healthy
        ? s.cluster?.leader
          ? `ok (leader ${s.cluster.leader})`
          : 'ok'
        : (s.problem ?? 'unhealthy'),
    ]),
  ];
  for (const line of table(streamRows, (row, column, text) =>
    row === 0
      ? paint.dim(text)
      : column === 4
        ? text.startsWith('ok')
          ? paint.green(text)
          : paint.red(text)
        : text,
  )) {
    lines.push(`  ${line}`);
  }

  lines.push('');
  if (r.healthy) lines.push(paint.green('All healthy.'));
  else {
    lines.push(paint.red(`${r.problems.length} problem${r.problems.length === 1 ? '' : 's'}:`));
    for (const p of r.problems) lines.push(`  - ${p}`);
  }
  return lines;
}
