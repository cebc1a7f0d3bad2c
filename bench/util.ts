// What the benchmarks share: a window of requests in flight, CPU accounting for this process and
// the nats-server, and number formatting.
import { readFileSync } from 'node:fs';

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
function processCpuMs(pid: number | undefined): number {
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
  /** This Node process (client, worker, everything in it), ms of CPU. */
  nodeMs: number;
  /** The nats-server process, ms of CPU. */
  serverMs: number;
  wallMs: number;
}

/** Starts counting CPU; the returned function tells what was used since. */
export function cpuMeter(serverPid: number | undefined): () => CpuUse {
  const node = process.cpuUsage();
  const server = processCpuMs(serverPid);
  const wall = performance.now();
  return () => {
    const d = process.cpuUsage(node);
    return {
      nodeMs: (d.user + d.system) / 1000,
      serverMs: processCpuMs(serverPid) - server,
      wallMs: performance.now() - wall,
    };
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
