// Where Parley's CPU goes in the throughput run: CPU profiles (node:inspector, 100 µs sampling) of
// the integrator's client (this process) and of the worker (its own process), taken after the
// warm-up over one run of `--count` commands, summed per function (self time) and per place (a
// package, a file of the repository, node's internals), in µs per command. The profiler inflates
// the totals: compare shares, not the figures of `npm run bench`.
//
//   node --import tsx bench/profile.ts [--count 20000] [--top 30] [--out <dir>]
//
// Writes client.cpuprofile and worker.cpuprofile to the folder (default: a temporary one), which
// Chrome's DevTools open.

import { mkdtempSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startNatsServer } from '../test/helpers/nats-server.ts';
import { runThroughput, startParley } from './parley.ts';
import { ALLOCATION_SAMPLING } from './util.ts';

const { values: args } = parseArgs({
  options: {
    count: { type: 'string', default: '20000' },
    size: { type: 'string', default: '256' },
    'in-flight': { type: 'string', default: '256' },
    conversations: { type: 'string', default: '200' },
    top: { type: 'string', default: '30' },
    out: { type: 'string' },
  },
});
const N = Number(args.count);
const TOP = Number(args.top);
const OUT = args.out ?? mkdtempSync(join(tmpdir(), 'parley-profile-'));
const ROOT = fileURLToPath(new URL('..', import.meta.url));

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Where a function lives: a package, a file of the repository, node's internals, or V8's own. */
function place(url: string, name: string): string {
  if (url === '') return name.startsWith('(') ? name : '(native)';
  const path = url.startsWith('file://') ? fileURLToPath(url) : url;
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(path);
  if (pkg) return pkg[1]!;
  if (path.startsWith('node:')) return 'node:internals';
  return relative(ROOT, path);
}

function summarise(title: string, profile: Profile, commands: number): void {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  // The profiler's own work (collecting the profile when asked to stop) is left out.
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const profiler = new Set<number>();
  for (const n of profile.nodes) {
    for (let id: number | undefined = n.id; id !== undefined; id = parent.get(id)) {
      if (byId.get(id)!.callFrame.url === 'node:inspector') profiler.add(n.id);
    }
  }
  const self = new Map<number, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i]!;
    self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  }
  const functions = new Map<string, number>();
  const places = new Map<string, number>();
  let total = 0;
  let idle = 0;
  for (const [id, us] of self) {
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
    if (profiler.has(id)) continue;
    if (functionName === '(idle)') {
      idle += us;
      continue;
    }
    total += us;
    const where = place(url, functionName);
    // (tsx compiles a file of the repository to one line: its functions go by name alone.)
    const key = `${functionName || '(anonymous)'} ${where}${lineNumber > 0 ? `:${lineNumber + 1}` : ''}`;
    functions.set(key, (functions.get(key) ?? 0) + us);
    places.set(where, (places.get(where) ?? 0) + us);
  }
  const per = (us: number) => (us / commands).toFixed(1).padStart(7);
  const out = (line: string) => process.stdout.write(`${line}\n`);
  out(`\n${title}: ${per(total)} µs per command busy, ${per(idle)} idle`);
  out('  by place (self time):');
  for (const [k, us] of [...places].sort((a, b) => b[1] - a[1]).slice(0, TOP))
    out(`  ${per(us)}  ${k}`);
  out('  by function (self time):');
  for (const [k, us] of [...functions].sort((a, b) => b[1] - a[1]).slice(0, TOP))
    out(`  ${per(us)}  ${k}`);
}

interface HeapNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: HeapNode[];
}

/** Bytes allocated per command, by place and by function (sampled). */
function allocations(title: string, head: HeapNode, commands: number): void {
  const functions = new Map<string, number>();
  const places = new Map<string, number>();
  let total = 0;
  const walk = (n: HeapNode) => {
    const { functionName, url, lineNumber } = n.callFrame;
    if (n.selfSize > 0) {
      total += n.selfSize;
      const where = place(url, functionName);
      const key = `${functionName || '(anonymous)'} ${where}${lineNumber > 0 ? `:${lineNumber + 1}` : ''}`;
      functions.set(key, (functions.get(key) ?? 0) + n.selfSize);
      places.set(where, (places.get(where) ?? 0) + n.selfSize);
    }
    for (const c of n.children) walk(c);
  };
  walk(head);
  const per = (bytes: number) =>
    Math.round(bytes / commands)
      .toString()
      .padStart(7);
  const out = (line: string) => process.stdout.write(`${line}\n`);
  out(`\n${title}: ${per(total)} B allocated per command`);
  out('  by place:');
  for (const [k, b] of [...places].sort((a, b) => b[1] - a[1]).slice(0, TOP))
    out(`  ${per(b)}  ${k}`);
  out('  by function:');
  for (const [k, b] of [...functions].sort((a, b) => b[1] - a[1]).slice(0, TOP))
    out(`  ${per(b)}  ${k}`);
}

const server = await startNatsServer();
try {
  const rig = await startParley({
    url: server.url,
    conversations: Number(args.conversations),
    size: Number(args.size),
  });
  try {
    const inFlight = Number(args['in-flight']);
    await runThroughput(rig, { count: 2_000, inFlight, prefix: 'warm' });
    await runThroughput(rig, { count: N, inFlight, prefix: 'warm2' });
    const session = new Session();
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.setSamplingInterval', { interval: 100 });
    rig.worker.send('profile start');
    await rig.worker.next('profiling');
    await session.post('Profiler.start');
    await session.post('HeapProfiler.startSampling', ALLOCATION_SAMPLING);
    const result = await runThroughput(rig, { count: N, inFlight, prefix: 'prof' });
    const { profile: clientHeap } = await session.post('HeapProfiler.stopSampling');
    const { profile } = await session.post('Profiler.stop');
    session.disconnect();
    const workerFile = join(OUT, 'worker.cpuprofile');
    rig.worker.send(`profile stop ${workerFile}`);
    await rig.worker.next('profiled');
    const clientFile = join(OUT, 'client.cpuprofile');
    await writeFile(clientFile, JSON.stringify(profile));
    const worker = JSON.parse(await readFile(workerFile, 'utf8')) as Profile;
    process.stdout.write(
      `${N} commands in ${result.ms.toFixed(0)} ms (${result.cmdsPerS.toFixed(0)}/s, profiled); CPU µs per command: client ${((1000 * result.cpu.clientMs) / N).toFixed(1)}, worker ${((1000 * result.cpu.workerMs) / N).toFixed(1)}\nprofiles: ${clientFile}, ${workerFile}\n`,
    );
    const workerHeap = JSON.parse(
      await readFile(workerFile.replace(/\.cpuprofile$/, '.heapprofile'), 'utf8'),
    ) as HeapNode & { head: HeapNode };
    summarise('worker', worker, N);
    allocations('worker', workerHeap.head, N);
    summarise('client', profile as unknown as Profile, N);
    allocations('client', (clientHeap as unknown as { head: HeapNode }).head, N);
  } finally {
    await rig.stop();
  }
} finally {
  await server.stop();
}
