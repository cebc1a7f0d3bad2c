// `npm run bench`: on one nats-server started here (temporary store, free port), measures raw
// JetStream, Parley's commands through a worker to events, the latency at a fixed rate, and (in a
// child process, after the server is gone) the memory per hosted open conversation. Prints a table
// and, as its last line, one JSON object. See bench/README.md.
import { execFileSync, spawn } from 'node:child_process';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { connect } from '@nats-io/transport-node';
import { startNatsServer } from '../test/helpers/nats-server.ts';
import { runLatency } from './latency.ts';
import type { MemoryResult } from './memory.ts';
import { runThroughput, startParley, type WorkerActivity, watchWorker } from './parley.ts';
import { runRaw } from './raw.ts';
import { type CpuUse, fmt, round } from './util.ts';

const { values: args } = parseArgs({
  options: {
    count: { type: 'string', default: '20000' },
    size: { type: 'string', default: '256' },
    'in-flight': { type: 'string', default: '256' },
    batch: { type: 'string', default: '256' },
    conversations: { type: 'string', default: '200' },
    rate: { type: 'string', default: '1000' },
    seconds: { type: 'string', default: '10' },
    'memory-conversations': { type: 'string', default: '100000' },
  },
});
const N = Number(args.count);
const SIZE = Number(args.size);
const IN_FLIGHT = Number(args['in-flight']);
const BATCH = Number(args.batch);
const CONVERSATIONS = Number(args.conversations);
const RATE = Number(args.rate);
const SECONDS = Number(args.seconds);
const MEMORY_CONVERSATIONS = Number(args['memory-conversations']);

const out = (line = '') => process.stdout.write(`${line}\n`);
const progress = (line: string) => process.stderr.write(`bench: ${line}\n`);

/** CPU of each process as a share of one core over the run, and per message in µs. */
const cpuShares = (cpu: CpuUse, messages: number) => ({
  node_pct: round((100 * cpu.nodeMs) / cpu.wallMs),
  server_pct: round((100 * cpu.serverMs) / cpu.wallMs),
  node_us_per_msg: round((1000 * cpu.nodeMs) / messages, 1),
  server_us_per_msg: round((1000 * cpu.serverMs) / messages, 1),
});

/** The commit measured, `+` when the work tree differs from it; 'unknown' outside git. */
function commit(): string {
  try {
    const git = (...args: string[]) => execFileSync('git', args, { encoding: 'utf8' }).trim();
    const dirty = git('status', '--porcelain', '--untracked-files=no') !== '';
    return `${git('rev-parse', '--short', 'HEAD')}${dirty ? '+' : ''}`;
  } catch {
    return 'unknown';
  }
}

function measureMemoryInChild(count: number): Promise<MemoryResult> {
  const script = fileURLToPath(new URL('./memory.ts', import.meta.url));
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--expose-gc', '--import', 'tsx', script, String(count)],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.once('error', reject);
    child.once('exit', (code) => {
      const last = stdout.trim().split('\n').pop() ?? '';
      if (code !== 0) return reject(new Error(`bench/memory.ts exited with ${code}: ${stdout}`));
      try {
        resolve(JSON.parse(last) as MemoryResult);
      } catch {
        reject(new Error(`bench/memory.ts printed no JSON: ${stdout}`));
      }
    });
  });
}

async function main(): Promise<void> {
  const began = performance.now();
  const loadBefore = loadavg()[0]!;
  progress('starting nats-server');
  const server = await startNatsServer();
  const stopServer = () => server.stop();
  process.once('SIGINT', () => {
    void stopServer().finally(() => process.exit(130));
  });
  let natsVersion = 'unknown';
  const raw: Awaited<ReturnType<typeof runRaw>>[] = [];
  let parley: Awaited<ReturnType<typeof runThroughput>>;
  let latency: Awaited<ReturnType<typeof runLatency>>;
  let activity: WorkerActivity;
  let latencyActivity: WorkerActivity;
  try {
    const probe = await connect({ servers: server.url });
    natsVersion = probe.info?.version ?? natsVersion;
    await probe.close();
    const pid = server.pid;
    const rawOptions = { url: server.url, size: SIZE, inFlight: IN_FLIGHT, batch: BATCH };

    progress(`raw JetStream: ${N} messages of ${SIZE} bytes, ${IN_FLIGHT} in flight`);
    await runRaw({ ...rawOptions, count: Math.min(N, 2_000), ack: 'all' }); // warm-up
    raw.push(await runRaw({ ...rawOptions, count: N, ack: 'all', serverPid: pid }));
    raw.push(await runRaw({ ...rawOptions, count: N, ack: 'each', serverPid: pid }));

    progress(`Parley: a worker, ${CONVERSATIONS} conversations in 2 groups`);
    const rig = await startParley({
      url: server.url,
      conversations: CONVERSATIONS,
      size: SIZE,
      batch: BATCH,
    });
    try {
      await runThroughput(rig, { count: Math.min(N, 2_000), inFlight: IN_FLIGHT, prefix: 'warm' });
      progress(`Parley: ${N} SendMessage commands, ${IN_FLIGHT} in flight`);
      const stopWatch = await watchWorker(rig.client);
      parley = await runThroughput(rig, {
        count: N,
        inFlight: IN_FLIGHT,
        prefix: 'tp',
        serverPid: pid,
      });
      activity = stopWatch();
      progress(`latency: ${RATE} commands/s for ${SECONDS} s`);
      const stopLatencyWatch = await watchWorker(rig.client);
      latency = await runLatency(rig, { rate: RATE, seconds: SECONDS, serverPid: pid });
      latencyActivity = stopLatencyWatch();
    } finally {
      await rig.stop();
    }
  } finally {
    await stopServer();
  }

  progress(`memory: ${MEMORY_CONVERSATIONS} open conversations in one engine (child process)`);
  const memory = await measureMemoryInChild(MEMORY_CONVERSATIONS);

  const [rawAll, rawEach] = raw as [(typeof raw)[0], (typeof raw)[0]];
  const ratio = parley.cmdsPerS / rawAll.msgsPerS;
  const meanBatch = activity.acks > 0 ? N / activity.acks : 0;
  const result = {
    raw_msgs_per_s: round(rawAll.msgsPerS),
    raw_ack_each_msgs_per_s: round(rawEach.msgsPerS),
    parley_cmds_per_s: round(parley.cmdsPerS),
    ratio: round(ratio, 3),
    p50_ms: round(latency.p50Ms, 2),
    p90_ms: round(latency.p90Ms, 2),
    p99_ms: round(latency.p99Ms, 2),
    max_ms: round(latency.maxMs, 2),
    latency_rate: round(latency.rate),
    latency_received: latency.received,
    latency_mean_batch: round(latency.sent / Math.max(1, latencyActivity.acks), 2),
    latency_sent: latency.sent,
    bytes_per_conversation: memory.heap_bytes_per_conversation,
    hydrated_bytes_per_conversation: memory.hydrated_heap_bytes_per_conversation,
    plain_json_bytes_per_conversation: memory.plain_json_heap_bytes_per_conversation,
    stored_bytes_per_conversation: memory.stored_bytes_per_conversation,
    memory_conversations: memory.conversations,
    memory_states: memory.states,
    engine_us_per_command: memory.engine_us_per_command,
    n: N,
    message_bytes: SIZE,
    in_flight: IN_FLIGHT,
    conversations: CONVERSATIONS,
    batch_max: BATCH,
    parley_mean_batch: round(meanBatch, 1),
    raw_mean_batch: round(rawAll.meanBatch, 1),
    parley_batches: activity.acks,
    parley_group_writes: activity.groupWrites,
    group_record_bytes: activity.groupRecordBytes,
    parley_refused: parley.refused,
    raw_cpu: cpuShares(rawAll.cpu, N),
    parley_cpu: cpuShares(parley.cpu, N),
    latency_cpu: cpuShares(latency.cpu, latency.sent),
    commit: commit(),
    node: process.version,
    nats_server: natsVersion,
    duration_s: round((performance.now() - began) / 1000, 1),
    // Other processes on the machine disturb the figures: the 1-minute load before and after.
    load_avg: [round(loadBefore, 2), round(loadavg()[0]!, 2)],
  };

  const row = (what: string, value: string, note = '') =>
    out(`${what.padEnd(46)} ${value.padStart(12)}  ${note}`);
  const cpuNote = (cpu: CpuUse, n: number) => {
    const c = cpuShares(cpu, n);
    return `CPU: node ${c.node_pct}% (${c.node_us_per_msg} µs/msg), nats-server ${c.server_pct}% (${c.server_us_per_msg} µs/msg)`;
  };
  out();
  out(
    `Parley benchmark (${result.commit}): node ${result.node}, nats-server ${natsVersion}, ${N} messages of ${SIZE} bytes, ${IN_FLIGHT} in flight, batches of at most ${BATCH}`,
  );
  out('-'.repeat(110));
  row('raw JetStream, ack-all per batch (msgs/s)', fmt(rawAll.msgsPerS), cpuNote(rawAll.cpu, N));
  row('raw JetStream, ack each (msgs/s)', fmt(rawEach.msgsPerS), cpuNote(rawEach.cpu, N));
  row('Parley, SendMessage → MessageAdded (cmds/s)', fmt(parley.cmdsPerS), cpuNote(parley.cpu, N));
  row('ratio Parley / raw (target ≥ 0.5, goal 0.8)', fmt(ratio, 3));
  row(
    'Parley batches: mean size',
    fmt(meanBatch, 1),
    `${activity.acks} batches (acks); ${activity.groupWrites} group-record writes (checkpoints) of ${fmt(activity.groupRecordBytes)} B`,
  );
  row(
    `latency at ${fmt(latency.rate)} cmds/s: p50 (ms)`,
    fmt(latency.p50Ms, 2),
    `${latency.received}/${latency.sent} events; mean batch ${fmt(latency.sent / Math.max(1, latencyActivity.acks), 2)}; ${cpuNote(latency.cpu, latency.sent)}`,
  );
  row('latency p90 (ms)', fmt(latency.p90Ms, 2));
  row('latency p99 (ms, target ≤ 25)', fmt(latency.p99Ms, 2), `max ${fmt(latency.maxMs, 2)} ms`);
  row(
    `heap per open conversation, live engine (B)`,
    fmt(memory.heap_bytes_per_conversation),
    `target ≤ 2048; ${fmt(memory.conversations)} conversations ${JSON.stringify(memory.states)}`,
  );
  row(
    'heap per conversation, hydrated from KV (B)',
    fmt(memory.hydrated_heap_bytes_per_conversation),
  );
  row(
    'heap per conversation, as plain JSON (B)',
    fmt(memory.plain_json_heap_bytes_per_conversation),
  );
  row(
    'stored JSON per conversation (B)',
    fmt(memory.stored_bytes_per_conversation),
    `record alone ${fmt(memory.record_json_bytes)} B`,
  );
  row('engine time per command, in memory (µs)', fmt(memory.engine_us_per_command, 1));
  out('-'.repeat(110));
  out(
    `whole run ${fmt(result.duration_s, 1)} s; load average ${result.load_avg.join(' → ')} (other processes disturb the figures)`,
  );
  out(JSON.stringify(result));
}

main().catch((error) => {
  process.stderr.write(`bench failed: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
