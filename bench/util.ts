// What the benchmarks share: a window of requests in flight, CPU accounting for this process, the
// consuming process and the nats-server, the bench's child processes, and number formatting.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect, type NatsConnection } from '@nats-io/transport-node';

/** Calls `send(0…count-1)` with at most `window` calls unresolved at any time. */
export async function inFlight(
  count: number,
  window: number,
  send: (i: number) => Promise<unknown>,
): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < count) {
      const i = next++;
      await send(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(window, count) }, lane));
}

/** CPU time of a process in ms (user + system), read from /proc; 0 where /proc is missing. */
export function processCpuMs(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // USER_HZ is 100 on Linux
  } catch {
    return 0;
  }
}

export interface CpuUse {
  /** Every Node process of the pipeline (this one and the consuming one), ms of CPU. */
  nodeMs: number;
  /** This process (the publisher: the integrator's client, or raw's publisher), ms of CPU. */
  clientMs: number;
  /** The consuming process (the Parley worker, or raw's consumer), ms of CPU. */
  workerMs: number;
  /** The nats-server process, ms of CPU. */
  serverMs: number;
  wallMs: number;
}

/**
 * Starts counting CPU: this process's, the consuming process's (`workerPid`) and the
 * nats-server's (`serverPid`), the last two from /proc. The returned function tells what was
 * used since.
 */
export function cpuMeter(pids: {
  serverPid?: number | undefined;
  workerPid?: number | undefined;
}): () => CpuUse {
  const self = process.cpuUsage();
  const server = processCpuMs(pids.serverPid);
  const worker = processCpuMs(pids.workerPid);
  const wall = performance.now();
  return () => {
    const d = process.cpuUsage(self);
    const clientMs = (d.user + d.system) / 1000;
    const workerMs = processCpuMs(pids.workerPid) - worker;
    return {
      nodeMs: clientMs + workerMs,
      clientMs,
      workerMs,
      serverMs: processCpuMs(pids.serverPid) - server,
      wallMs: performance.now() - wall,
    };
  };
}

/** A Node process running one of the bench's scripts, speaking in lines on stdin and stdout. */
export interface BenchChild {
  readonly pid: number;
  /** Sends one line on its stdin. */
  send(line: string): void;
  /** The next line it prints that starts with `prefix` (waiting at most `timeoutMs`). */
  next(prefix: string, timeoutMs?: number): Promise<string>;
  /** Closes its stdin (it exits on that) and waits for it to exit, SIGKILL after 10 s. */
  stop(): Promise<void>;
}

/**
 * Starts `node --import tsx <script>` with `env` added, stderr shared; resolves once it printed
 * a line starting with `ready`.
 */
export async function startChild(
  script: string,
  env: Record<string, string>,
  timeoutMs = 30_000,
): Promise<BenchChild> {
  const child = spawn(process.execPath, ['--import', 'tsx', script], {
    env: { ...process.env, ...env },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const lines: string[] = [];
  const waiting: {
    prefix: string;
    resolve: (line: string) => void;
    reject: (error: Error) => void;
  }[] = [];
  let partial = '';
  let gone: Error | undefined;
  const deliver = () => {
    for (let w = 0; w < waiting.length; w++) {
      const i = lines.findIndex((l) => l.startsWith(waiting[w]!.prefix));
      if (i < 0) continue;
      const [line] = lines.splice(i, 1);
      waiting.splice(w--, 1)[0]!.resolve(line!);
    }
  };
  child.stdout.on('data', (chunk: Buffer) => {
    partial += chunk.toString();
    const parts = partial.split('\n');
    partial = parts.pop() ?? '';
    lines.push(...parts);
    deliver();
  });
  child.once('exit', (code, signal) => {
    gone = new Error(`${script} exited (${code ?? signal})`);
    for (const w of waiting.splice(0)) w.reject(gone);
  });
  const next = (prefix: string, ms = 60_000) =>
    new Promise<string>((resolve, reject) => {
      if (gone) return reject(gone);
      const timer = setTimeout(() => {
        const i = waiting.indexOf(entry);
        if (i >= 0) waiting.splice(i, 1);
        reject(new Error(`${script}: no line "${prefix}…" in ${ms} ms`));
      }, ms);
      const entry = {
        prefix,
        resolve: (line: string) => {
          clearTimeout(timer);
          resolve(line);
        },
        reject: (error: Error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
      waiting.push(entry);
      deliver();
    });
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.stdin.end();
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
  };
  try {
    await next('ready', timeoutMs);
  } catch (error) {
    child.kill('SIGKILL');
    await exited;
    throw error;
  }
  return {
    pid: child.pid!,
    send: (line) => child.stdin.write(`${line}\n`),
    next,
    stop,
  };
}

/** Waits until `test()` holds, polling every 2 ms; throws after `timeoutMs` naming `what`. */
export async function until(
  test: () => boolean,
  timeoutMs: number,
  what: string | (() => string),
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!test()) {
    if (Date.now() > deadline) {
      const said = typeof what === 'string' ? what : what();
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${said}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

export const round = (value: number, digits = 0) => {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
};

/** A number with thousands separators: 12,345. */
export const fmt = (value: number, digits = 0) =>
  value.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

/**
 * A connection for the bench's own clients: nats.js's defaults but for async stack traces, which
 * cost two Error objects per request; every connection of both pipelines (and the worker's, see
 * lib/nats/connection.ts) goes without them.
 */
export function benchConnect(url: string, name: string): Promise<NatsConnection> {
  return connect({ servers: url, name, noAsyncTraces: true });
}

/** For bench/profile.ts: sampled allocations, counting those collected since (what feeds the GC). */
export const ALLOCATION_SAMPLING = {
  samplingInterval: 4096,
  includeObjectsCollectedByMajorGC: true,
  includeObjectsCollectedByMinorGC: true,
};
