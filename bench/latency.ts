// Latency at a fixed rate: SendMessage commands published open-loop at `rate` per second (not
// waiting for earlier ones), each timed from the moment it is handed to the client until its
// MessageAdded event arrives on the core subscription (matched by message id).
import * as hdr from 'hdr-histogram-js';
import type { ParleyRig } from './parley.ts';
import { type CpuUse, cpuMeter, until } from './util.ts';

export interface LatencyResult {
  readonly sent: number;
  readonly received: number;
  /** The rate achieved by the publisher, commands/s. */
  readonly rate: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly cpu: CpuUse;
}

export async function runLatency(
  rig: ParleyRig,
  o: { rate: number; seconds: number; serverPid?: number | undefined },
): Promise<LatencyResult> {
  const { client } = rig;
  const total = Math.round(o.rate * o.seconds);
  const histogram = hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 60_000_000,
    numberOfSignificantValueDigits: 3,
  });
  const sentAt = new Map<string, number>();
  let received = 0;
  client.watched.add('MessageAdded');
  client.onEvent = (event, at) => {
    if (event.type !== 'MessageAdded') return;
    const t = sentAt.get(event.message.id);
    if (t === undefined) return;
    sentAt.delete(event.message.id);
    histogram.recordValue(Math.max(1, Math.round((at - t) * 1000)));
    received++;
  };
  const failures: unknown[] = [];
  const commands = Array.from({ length: total }, (_, i) => rig.command('lat', i));
  const cpu = cpuMeter({ serverPid: o.serverPid, workerPid: rig.worker.pid });
  const started = performance.now();
  let sent = 0;
  try {
    await new Promise<void>((resolve) => {
      const tick = () => {
        const due = Math.min(total, Math.floor(((performance.now() - started) * o.rate) / 1000));
        while (sent < due) {
          const c = commands[sent++]!;
          sentAt.set(`${c.id}:m`, performance.now());
          client.js.publish(c.subject, c.data, { msgID: c.id }).catch((e) => failures.push(e));
        }
        if (sent >= total) resolve();
        else setTimeout(tick, 1);
      };
      tick();
    });
    const sendMs = performance.now() - started;
    // Missing events are reported, not fatal.
    await until(() => received >= total, 15_000, 'the latency run').catch(() => undefined);
    if (failures.length > 0) throw new Error(`${failures.length} publishes failed: ${failures[0]}`);
    const ms = (v: number) => v / 1000;
    return {
      sent,
      received,
      rate: total / (sendMs / 1000),
      p50Ms: ms(histogram.getValueAtPercentile(50)),
      p90Ms: ms(histogram.getValueAtPercentile(90)),
      p99Ms: ms(histogram.getValueAtPercentile(99)),
      maxMs: ms(histogram.maxValue),
      cpu: cpu(),
    };
  } finally {
    client.onEvent = undefined;
    client.watched.clear();
    histogram.destroy();
  }
}
