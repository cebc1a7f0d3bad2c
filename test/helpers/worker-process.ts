// Starts a worker in a child process (so a test can SIGKILL it) and stops it when the test ends.
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Settings } from '../../actors/settings.ts';
import { fairShare } from '../../lib/nats/members.ts';

const MAIN = fileURLToPath(new URL('../fixtures/worker-main.ts', import.meta.url));

export interface WorkerProcess {
  readonly id: string;
  readonly child: ChildProcess;
  /** Groups it hosted when it said ready. */
  readonly hosted: string[];
  kill(): void;
  stop(): Promise<number | null>;
}

export async function startWorkerProcess(
  url: string,
  settings: Settings,
  options: {
    id: string;
    /** The lease period (default 1000 ms); `null`: the worker's own default. */
    leaseMs?: number | null;
    /** More environment for the worker (PARLEY_REPLICAS, say). */
    env?: Record<string, string>;
    t?: { teardown(fn: () => unknown): void };
  },
): Promise<WorkerProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN], {
    env: {
      ...process.env,
      NATS_URL: url,
      PARLEY_SETTINGS: JSON.stringify(settings),
      PARLEY_WORKER_ID: options.id,
      PARLEY_LEASE_MS: options.leaseMs === null ? '' : String(options.leaseMs ?? 1000),
      ...options.env,
    },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => resolve(code)),
  );
  const hosted = await new Promise<string[]>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`worker ${options.id} did not start`)), 20_000);
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const line = out.split('\n').find((l) => l.startsWith('ready'));
      if (line) {
        clearTimeout(timer);
        resolve(line.slice('ready '.length).split(',').filter(Boolean));
      }
    });
    child.once('exit', (code) => reject(new Error(`worker ${options.id} exited with ${code}`)));
  });
  const wp: WorkerProcess = {
    id: options.id,
    child,
    hosted,
    kill: () => {
      child.kill('SIGKILL');
    },
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
  options.t?.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  });
  return wp;
}

/** Two worker ids under which `fairShare` puts `a` and `b` on different workers. */
export function splitIds(all: readonly string[], a: string, b: string): [string, string] {
  for (let i = 0; i < 1000; i++) {
    const ids = [`wa${i}`, `wb${i}`];
    const first = fairShare(all, ids, ids[0]!);
    if (first.includes(a) !== first.includes(b)) {
      return first.includes(a) ? [ids[0]!, ids[1]!] : [ids[1]!, ids[0]!];
    }
  }
  throw new Error('no split found');
}
