// The benchmark's Parley worker, in its own process as in production (an integrator is never inside
// a worker): started by bench/parley.ts with NATS_URL, PARLEY_SETTINGS (JSON), PARLEY_BATCH and
// PARLEY_GROUPS (comma-separated) in the environment. Prints `ready` once it hosts every one of
// those groups; stops (storing what it applied) when its stdin closes or on SIGTERM. For
// bench/profile.ts, the stdin lines `profile start` and `profile stop <file>.cpuprofile` take a CPU
// profile and a sampled allocation profile (<file>.heapprofile), answered by `profiling` and
// `profiled`.
import { writeFile } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import { createInterface } from 'node:readline';
import pino from 'pino';
import type { Settings } from '../actors/settings.ts';
import { Worker } from '../lib/worker/worker.ts';
import { ALLOCATION_SAMPLING } from './util.ts';

const settings = JSON.parse(process.env.PARLEY_SETTINGS ?? '{}') as Settings;
const groups = (process.env.PARLEY_GROUPS ?? '').split(',').filter(Boolean);
const batch = Number(process.env.PARLEY_BATCH ?? 0);
const worker = await Worker.start({
  url: process.env.NATS_URL ?? '',
  settings,
  log: pino({ level: 'warn' }, pino.destination(2)),
  id: 'bench-worker',
  ...(batch > 0 ? { batch } : {}),
});
const deadline = Date.now() + 10_000;
while (!groups.every((g) => worker.hosted().includes(g))) {
  if (Date.now() > deadline) {
    process.stderr.write(`bench worker: hosts ${worker.hosted().join(',')}, not ${groups}\n`);
    process.exit(1);
  }
  await new Promise((resolve) => setTimeout(resolve, 2));
}
process.stdout.write(`ready ${worker.hosted().join(',')}\n`);

let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  void worker.stop().finally(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
// The bench holds our stdin open: when it closes it (or dies), we stop.
let session: Session | undefined;
createInterface({ input: process.stdin })
  .on('line', (line) => {
    void (async () => {
      const [, what, file] = line.split(' ');
      if (what === 'start') {
        session = new Session();
        session.connect();
        await session.post('Profiler.enable');
        await session.post('Profiler.setSamplingInterval', { interval: 100 });
        await session.post('Profiler.start');
        await session.post('HeapProfiler.startSampling', ALLOCATION_SAMPLING);
        process.stdout.write('profiling\n');
      } else if (what === 'stop' && session && file) {
        const { profile: heap } = await session.post('HeapProfiler.stopSampling');
        const { profile } = await session.post('Profiler.stop');
        session.disconnect();
        session = undefined;
        await writeFile(file, JSON.stringify(profile));
        await writeFile(file.replace(/\.cpuprofile$/, '.heapprofile'), JSON.stringify(heap));
        process.stdout.write('profiled\n');
      }
    })();
  })
  .on('close', stop);
