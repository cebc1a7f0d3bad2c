// `parley top`: a live screen of the production figures of each routing group and of the agents
// logged in, refreshed in place every second until q or Ctrl-C; `--once` prints one frame.
import type { NatsConnection } from '@nats-io/transport-node';
import type { Command } from 'commander';
import { type ProductionFigures, productionFigures } from '../../lib/figures.ts';
import type { LiveConfig } from '../../lib/nats/live-config.ts';
import { clock, duration, type Paint, paintFor, relative, table } from './format.ts';
import {
  integerOption,
  type NatsCommandOptions,
  openLiveConfig,
  operatorOptions,
  printJson,
  withNats,
} from './operator.ts';

interface TopOptions extends NatsCommandOptions {
  readonly once?: boolean;
  readonly interval: number;
}

/** What `parley top --json` prints: the figures (lib/figures.ts defines each one). */
export interface TopDocument extends Omit<ProductionFigures, 'agents'> {
  readonly url: string;
  /** The live configuration's revision the groups were read from. */
  readonly revision: number;
  /** The agents logged in (online or away). */
  readonly agents: ProductionFigures['agents'];
}

const ESC = '\u001b[';

export function registerTop(program: Command): Command {
  return operatorOptions(
    program
      .command('top')
      .description(
        'a live screen of the figures of each routing group and of the agents logged in; q or Ctrl-C quits',
      )
      .option('--once', 'print one frame and exit')
      .option(
        '--interval <ms>',
        'time between two frames, in ms',
        integerOption('--interval', 100),
        1_000,
      )
      .addHelpText(
        'after',
        `
Per routing group: waiting / cap (conversations in the waiting list, and its cap), seats (taken
by waiting and snoozed conversations, of the cap), snoozed and the next wake-up, the longest wait
in the list now,
being handled (conversations of the group assigned to an agent now), closed today (since local
midnight). Then the agents logged in, with their load and slots. docs/operations.md defines each
figure.`,
      ),
    'print the figures once as one JSON document (implies --once)',
  ).action(async (options: TopOptions) => {
    await withNats(options, 'top', async (nc, url) => {
      const live = await openLiveConfig(nc, url);
      try {
        if (options.once || options.json) {
          const doc = await topDocument(nc, url, live);
          if (options.json) printJson(doc);
          else process.stdout.write(`${renderFrame(doc, paintFor(), false).join('\n')}\n`);
          return;
        }
        await live.watch();
        await runScreen(nc, url, live, options.interval);
      } finally {
        live.close();
      }
    });
    process.exitCode = 0;
  });
}

async function topDocument(
  nc: NatsConnection,
  url: string,
  live: LiveConfig,
): Promise<TopDocument> {
  const { settings, revision } = live.current;
  const figures = await productionFigures(nc, settings);
  return {
    ...figures,
    url,
    revision,
    agents: figures.agents.filter((a) => a.presence !== 'offline'),
  };
}

/** Frames until q, Ctrl-C or SIGTERM; on a terminal, in place on the alternate screen. */
async function runScreen(
  nc: NatsConnection,
  url: string,
  live: LiveConfig,
  intervalMs: number,
): Promise<void> {
  const out = process.stdout;
  const stdin = process.stdin;
  const paint = paintFor();
  const inPlace = out.isTTY === true;
  let stopped = false;
  let wake: () => void = () => undefined;
  const stop = () => {
    stopped = true;
    wake();
  };
  const onKey = (data: Buffer) => {
    const key = data.toString();
    if (key === 'q' || key === 'Q' || key === '\u0003') stop();
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  if (stdin.isTTY) {
    stdin.setRawMode(true);
    stdin.on('data', onKey);
    stdin.resume();
  }
  // The alternate screen, cursor hidden: the terminal is given back as it was.
  if (inPlace) out.write(`${ESC}?1049h${ESC}?25l`);
  try {
    while (!stopped) {
      let lines: string[];
      try {
        lines = renderFrame(await topDocument(nc, url, live), paint, stdin.isTTY === true);
      } catch (error) {
        lines = [
          `Parley top  ${clock(Date.now())}  ${url}`,
          '',
          paint.red(`Cannot read the figures: ${(error as Error).message}`),
        ];
      }
      if (inPlace) out.write(`${ESC}H${lines.map((l) => `${l}${ESC}K`).join('\n')}\n${ESC}J`);
      else out.write(`${lines.join('\n')}\n\n`);
      if (stopped) break;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, intervalMs);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  } finally {
    if (inPlace) out.write(`${ESC}?25h${ESC}?1049l`);
    if (stdin.isTTY) {
      stdin.off('data', onKey);
      stdin.setRawMode(false);
      stdin.pause();
    }
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}

function renderFrame(doc: TopDocument, paint: Paint, keys: boolean): string[] {
  const dash = '—';
  const lines = [
    `${paint.bold('Parley top')}  ${clock(doc.at)}  ${doc.url}  configuration revision ${doc.revision}${keys ? paint.dim('  (q quits)') : ''}`,
    '',
  ];
  const groupRows = [
    [
      'GROUP',
      'WAITING/CAP',
      'SEATS',
      'SNOOZED',
      'NEXT WAKE',
      'LONGEST WAIT',
      'HANDLED',
      'CLOSED TODAY',
      'WORKER',
    ],
    ...doc.groups.map((g) => [
      g.group,
      `${g.waiting ?? dash}/${g.cap}`,
      g.seatsTaken === null ? dash : `${g.seatsTaken}/${g.cap}`,
      g.snoozed === null ? dash : String(g.snoozed),
      g.nextWakeInMs === null ? dash : relative(g.nextWakeInMs),
      g.longestWaitMs === null ? dash : g.waiting === 0 ? dash : duration(g.longestWaitMs),
      g.handled === null ? dash : String(g.handled),
      g.closedToday === null ? dash : String(g.closedToday),
      g.worker ?? `none: ${g.problem ?? 'not hosted'}`,
    ]),
  ];
  lines.push(
    ...table(groupRows, (row, column, text) => {
      if (row === 0) return paint.dim(text);
      const g = doc.groups[row - 1]!;
      if (column === 8 && g.worker === null) return paint.red(text);
      if (column === 2 && g.seatsTaken !== null && g.seatsTaken >= g.cap) return paint.red(text);
      if (column === 1 && (g.waiting ?? 0) > 0) return paint.yellow(text);
      return text;
    }),
  );
  lines.push('', paint.bold(`Agents logged in: ${doc.agents.length}`));
  if (doc.agents.length > 0) {
    const agentRows = [
      ['AGENT', 'PRESENCE', 'LOAD/SLOTS', 'GROUPS'],
      ...doc.agents.map((a) => [
        `${a.id} (${a.name})`,
        a.presence,
        `${a.load}/${a.slots}`,
        a.groups.join(', '),
      ]),
    ];
    lines.push(
      ...table(agentRows, (row, column, text) => {
        if (row === 0) return paint.dim(text);
        if (column === 1) return text.startsWith('online') ? paint.green(text) : paint.yellow(text);
        return text;
      }),
    );
  }
  return lines;
}
