// `npm run bench`: on one nats-server started here (temporary store, free port), measures, in
// rounds taking turns, raw JetStream, raw JetStream relayed to a second stream, and Parley's
// commands through a worker to events (the consuming side of each in a child process, the
// publishing side here); then the latency at a fixed rate, messages over HTTP, and (in a child
// process, after the server is gone) the memory per hosted open conversation. Prints a table and,
// as its last line, one JSON object. See bench/README.md.
import { execFileSync, spawn } from 'node:child_process';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { connect } from '@nats-io/transport-node';
import { startNatsServer } from '../test/helpers/nats-server.ts';
import { type HttpResult, runHttp } from './http.ts';
import { runLatency } from './latency.ts';
import type { MemoryResult } from './memory.ts';
import {
  benchSettings,
  type ParleyRig,
  runThroughput,
  startParley,
  type ThroughputResult,
  type WorkerActivity,
  watchWorker,
} from './parley.ts';
import { type RawResult, runRaw, startRawConsumer } from './raw.ts';
import { runReportsBench } from './reports.ts';
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
    'http-connections': { type: 'string', default: '50' },
    'report-conversations': { type: 'string', default: '100000' },
    rounds: { type: 'string', default: '5' },
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
const HTTP_CONNECTIONS = Number(args['http-connections']);
const REPORT_CONVERSATIONS = Number(args['report-conversations']);
const ROUNDS = Math.max(1, Number(args.rounds));

/** One round: raw JetStream (ack-all), then Parley, on the same server, N messages each. */
interface Round {
  readonly raw: RawResult;
  /** Raw JetStream relaying each message to a second stream, as a worker does (bench/raw.ts). */
  readonly relay: RawResult;
  readonly parley: ThroughputResult;
  readonly activity: WorkerActivity;
  readonly ratio: number;
}

const out = (line = '') => process.stdout.write(`${line}\n`);
const progress = (line: string) => process.stderr.write(`bench: ${line}\n`);

/**
 * CPU as a share of one core over the run, and per message in µs: both Node processes together
 * (`node_*`), then apart: this one (`client_*`: the publisher and the event subscriber) and the
 * consuming one (`worker_*`: the Parley worker, or raw's consumer); and nats-server.
 */
const cpuShares = (cpu: CpuUse, messages: number) => ({
  node_pct: round((100 * cpu.nodeMs) / cpu.wallMs),
  server_pct: round((100 * cpu.serverMs) / cpu.wallMs),
  node_us_per_msg: round((1000 * cpu.nodeMs) / messages, 1),
  server_us_per_msg: round((1000 * cpu.serverMs) / messages, 1),
  client_pct: round((100 * cpu.clientMs) / cpu.wallMs),
  worker_pct: round((100 * cpu.workerMs) / cpu.wallMs),
  client_us_per_msg: round((1000 * cpu.clientMs) / messages, 1),
  worker_us_per_msg: round((1000 * cpu.workerMs) / messages, 1),
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
  const rounds: Round[] = [];
  let rawEach: RawResult;
  let latency: Awaited<ReturnType<typeof runLatency>>;
  let latencyActivity: WorkerActivity;
  let http: HttpResult;
  try {
    const probe = await connect({ servers: server.url });
    natsVersion = probe.info?.version ?? natsVersion;
    await probe.close();
    const pid = server.pid;
    const rawOptions = { url: server.url, size: SIZE, inFlight: IN_FLIGHT, batch: BATCH };

    progress(`raw JetStream's consumer and a Parley worker, ${CONVERSATIONS} conversations`);
    const consumer = await startRawConsumer(server.url);
    let rig: ParleyRig | undefined;
    try {
      rig = await startParley({
        url: server.url,
        conversations: CONVERSATIONS,
        size: SIZE,
        batch: BATCH,
      });
      // Warm-ups, then rounds of raw JetStream and Parley taking turns (see bench/README.md).
      await runRaw(consumer, { ...rawOptions, count: Math.min(N, 2_000), ack: 'all' });
      await runRaw(consumer, { ...rawOptions, count: Math.min(N, 2_000), ack: 'all', relay: true });
      await runThroughput(rig, { count: Math.min(N, 2_000), inFlight: IN_FLIGHT, prefix: 'warm' });
      for (let r = 1; r <= ROUNDS; r++) {
        progress(`round ${r}/${ROUNDS}: ${N} messages of ${SIZE} bytes, ${IN_FLIGHT} in flight`);
        const raw = await runRaw(consumer, { ...rawOptions, count: N, ack: 'all', serverPid: pid });
        const relay = await runRaw(consumer, {
          ...rawOptions,
          count: N,
          ack: 'all',
          relay: true,
          serverPid: pid,
        });
        const stopWatch = await watchWorker(rig.client);
        const parley = await runThroughput(rig, {
          count: N,
          inFlight: IN_FLIGHT,
          prefix: `tp${r}`,
          serverPid: pid,
        });
        const activity = stopWatch();
        rounds.push({ raw, relay, parley, activity, ratio: parley.cmdsPerS / raw.msgsPerS });
      }
      rawEach = await runRaw(consumer, { ...rawOptions, count: N, ack: 'each', serverPid: pid });
    } catch (error) {
      await rig?.stop();
      throw error;
    } finally {
      await consumer.stop();
    }
    try {
      progress(`latency: ${RATE} commands/s for ${SECONDS} s`);
      const stopLatencyWatch = await watchWorker(rig.client);
      latency = await runLatency(rig, { rate: RATE, seconds: SECONDS, serverPid: pid });
      latencyActivity = stopLatencyWatch();
      progress(`HTTP: ${HTTP_CONNECTIONS} visitors posting messages for ${SECONDS} s`);
      http = await runHttp({
        url: server.url,
        settings: benchSettings(CONVERSATIONS),
        connections: HTTP_CONNECTIONS,
        seconds: SECONDS,
      });
    } finally {
      await rig.stop();
    }
  } finally {
    await stopServer();
  }

  progress(`memory: ${MEMORY_CONVERSATIONS} open conversations in one engine (child process)`);
  const memory = await measureMemoryInChild(MEMORY_CONVERSATIONS);
  progress(`reports: a period report over ${REPORT_CONVERSATIONS} closed conversations`);
  const reports = runReportsBench(REPORT_CONVERSATIONS);

  // The round whose ratio is the median: its two figures and its CPU are the ones reported.
  const {
    raw: rawAll,
    relay,
    parley,
    activity,
    ratio,
  } = [...rounds].sort((a, b) => a.ratio - b.ratio)[Math.floor((rounds.length - 1) / 2)]!;
  const meanBatch = activity.acks > 0 ? N / activity.acks : 0;
  const result = {
    raw_msgs_per_s: round(rawAll.msgsPerS),
    raw_ack_each_msgs_per_s: round(rawEach.msgsPerS),
    parley_cmds_per_s: round(parley.cmdsPerS),
    ratio: round(ratio, 3),
    relay_msgs_per_s: round(relay.msgsPerS),
    // Parley against the same two hops without Parley (raw JetStream relaying).
    parley_to_relay: round(parley.cmdsPerS / relay.msgsPerS, 3),
    // Every round: raw msgs/s, Parley cmds/s, ratio, relay msgs/s.
    rounds: rounds.map((r) => [
      round(r.raw.msgsPerS),
      round(r.parley.cmdsPerS),
      round(r.ratio, 3),
      round(r.relay.msgsPerS),
    ]),
    p50_ms: round(latency.p50Ms, 2),
    p90_ms: round(latency.p90Ms, 2),
    p99_ms: round(latency.p99Ms, 2),
    max_ms: round(latency.maxMs, 2),
    latency_rate: round(latency.rate),
    latency_received: latency.received,
    latency_mean_batch: round(latency.sent / Math.max(1, latencyActivity.acks), 2),
    latency_sent: latency.sent,
    http_msgs_per_s: round(http.msgsPerS),
    http_p50_ms: round(http.p50Ms, 2),
    http_p99_ms: round(http.p99Ms, 2),
    http_connections: http.connections,
    http_non2xx: http.non2xx,
    http_errors: http.errors,
    report_closed: reports.closed,
    report_ms: round(reports.ms, 1),
    report_filtered_ms: round(reports.filteredMs, 1),
    report_apply_ms: round(reports.applyMs),
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
    relay_cpu: cpuShares(relay.cpu, N),
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
    return `CPU: node ${c.node_pct}% (${c.node_us_per_msg} µs/msg: client ${c.client_us_per_msg}, worker ${c.worker_us_per_msg}), nats-server ${c.server_pct}% (${c.server_us_per_msg} µs/msg)`;
  };
  out();
  out(
    `Parley benchmark (${result.commit}): node ${result.node}, nats-server ${natsVersion}, ${N} messages of ${SIZE} bytes, ${IN_FLIGHT} in flight, batches of at most ${BATCH}`,
  );
  out('-'.repeat(110));
  row('raw JetStream, ack-all per batch (msgs/s)', fmt(rawAll.msgsPerS), cpuNote(rawAll.cpu, N));
  row('raw JetStream, ack each (msgs/s)', fmt(rawEach.msgsPerS), cpuNote(rawEach.cpu, N));
  row('raw JetStream relayed to a 2nd stream (msgs/s)', fmt(relay.msgsPerS), cpuNote(relay.cpu, N));
  row('Parley, SendMessage → MessageAdded (cmds/s)', fmt(parley.cmdsPerS), cpuNote(parley.cpu, N));
  row(
    'ratio Parley / raw (target ≥ 0.5, goal 0.8)',
    fmt(ratio, 3),
    `the median of ${rounds.length} rounds: ${rounds.map((r) => `${fmt(r.raw.msgsPerS)} / ${fmt(r.parley.cmdsPerS)} = ${fmt(r.ratio, 3)}`).join('; ')}`,
  );
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
    'HTTP: messages posted (2xx/s)',
    fmt(http.msgsPerS),
    `${http.connections} visitors, ${fmt(http.non2xx)} non-2xx, ${fmt(http.errors)} errors`,
  );
  row('HTTP: latency p50 / p99 (ms)', `${fmt(http.p50Ms, 1)} / ${fmt(http.p99Ms, 1)}`);
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
  row(
    `period report over ${fmt(reports.closed)} closed conversations (ms)`,
    fmt(reports.ms, 1),
    `filtered by group, agent and tag ${fmt(reports.filteredMs, 1)} ms; ${fmt(reports.events)} events applied in ${fmt(reports.applyMs)} ms`,
  );
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
