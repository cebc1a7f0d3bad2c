// `parley report live|period`: the supervisors' figures in the terminal (a table) or as one JSON
// document. The figures are those of the gateway's /v1/reports routes, built here by reading the
// events stream from its start (docs/metrics.md defines each).
import type { Command } from 'commander';
import { formatDuration } from '../../lib/duration.ts';
import { createLogger } from '../../lib/log.ts';
import { Reporter } from '../../lib/reports/reporter.ts';
import { invalid, parseReportTime } from '../../lib/reports/time.ts';
import { table } from './format.ts';
import {
  integerOption,
  liveConfig,
  type NatsCommandOptions,
  operatorOptions,
  printJson,
  withNats,
} from './operator.ts';

interface PeriodOptions extends NatsCommandOptions {
  readonly from: string;
  readonly to?: string;
  readonly group?: string;
  readonly agent?: string;
  readonly tag?: string;
  readonly page?: number;
  readonly pageSize?: number;
  readonly timeZone?: string;
}

const ms = (value: number | null) => (value === null ? '—' : formatDuration(value));

async function withReporter<T>(
  options: NatsCommandOptions & { timeZone?: string },
  work: (reporter: Reporter) => T,
): Promise<T> {
  return withNats(options, 'report', async (nc, url) => {
    const version = await liveConfig(nc, url);
    const reporter = await Reporter.start(nc, {
      settings: () => version.settings,
      log: createLogger({ level: 'warn' }),
      ...(options.timeZone ? { timeZone: options.timeZone } : {}),
    });
    try {
      return work(reporter);
    } finally {
      await reporter.stop();
    }
  });
}

export function registerReport(program: Command): Command {
  const report = program
    .command('report')
    .description("the supervisors' figures: live (today) or over a period");
  operatorOptions(
    report
      .command('live')
      .description('the production figures now: per routing group, agents logged in, transfers')
      .option('--time-zone <zone>', 'what "today" is (default PARLEY_TIME_ZONE, else UTC)'),
  ).action(async (options: NatsCommandOptions & { timeZone?: string }) => {
    await withReporter(options, (reporter) => {
      const live = reporter.live();
      if (options.json) return printJson(live);
      const rows = [
        ['GROUP', 'WAITING/CAP', 'SNOOZED', 'HANDLED NOW', 'LONGEST WAIT', 'CLOSED TODAY'],
      ];
      for (const g of live.groups) {
        rows.push([
          g.group,
          `${g.waiting}/${g.cap ?? '—'}`,
          String(g.snoozed),
          String(g.handled),
          ms(g.longestWaitMs),
          String(g.closedToday),
        ]);
      }
      const lines = [
        `Today since ${new Date(live.since).toISOString()} (${live.timeZone}): ${live.closedToday} closed, ${live.handledToday} handled, ${live.transfersToday.count} transfers (${live.transfersToday.percentage ?? 0}%)`,
        ...table(rows),
        `Agents logged in: ${live.agentsLoggedIn}`,
      ];
      for (const a of live.agents) {
        lines.push(
          `  ${a.agent} ${a.presence} ${a.load}/${a.slots ?? '—'} handled today ${a.handledToday}, median first response ${ms(a.firstResponseMedianMs)}`,
        );
      }
      process.stdout.write(`${lines.join('\n')}\n`);
    });
  });
  operatorOptions(
    report
      .command('period')
      .description(
        'conversations closed over a period, with medians, averages, CSAT, NPS, transfers',
      )
      .requiredOption(
        '--from <time>',
        'start: ms since the epoch, a local date (2026-11-25) or an ISO time',
      )
      .option('--to <time>', 'end (default now)')
      .option('--group <id>', 'only this routing group')
      .option('--agent <id>', 'only conversations this agent handled')
      .option('--tag <tag>', 'only conversations closed with this tag')
      .option('--page <n>', 'page of the list', integerOption('--page', 1))
      .option('--page-size <n>', 'conversations per page', integerOption('--page-size', 1))
      .option('--time-zone <zone>', 'the zone of local dates (default PARLEY_TIME_ZONE, else UTC)'),
  ).action(async (options: PeriodOptions) => {
    await withReporter(options, (reporter) => {
      const from = parseReportTime('--from', options.from, reporter.timeZone);
      const to =
        options.to === undefined
          ? Date.now()
          : parseReportTime('--to', options.to, reporter.timeZone);
      if (to <= from) invalid('--to', 'must be after --from');
      const r = reporter.period({
        from,
        to,
        group: options.group,
        agent: options.agent,
        tag: options.tag,
        page: options.page,
        pageSize: options.pageSize,
      });
      if (options.json) return printJson(r);
      const lines = [
        `${new Date(r.from).toISOString()} → ${new Date(r.to).toISOString()}${r.group ? ` group ${r.group}` : ''}${r.agent ? ` agent ${r.agent}` : ''}${r.tag ? ` tag ${r.tag}` : ''}`,
        ...table([
          [
            'CLOSED',
            'HANDLED',
            'MEDIAN WAIT',
            'MEDIAN RESOLUTION',
            'AVG HANDLING',
            'MEDIAN 1ST RESPONSE',
            'CSAT',
            'NPS',
            'TRANSFERS',
          ],
          [
            String(r.closed),
            String(r.handled),
            ms(r.medianWaitingMs),
            ms(r.medianResolutionMs),
            ms(r.averageHandlingMs),
            ms(r.medianFirstResponseMs),
            r.csat.average === null ? '—' : `${r.csat.average} (${r.csat.answers})`,
            r.nps.score === null ? '—' : `${r.nps.score} (${r.nps.answers})`,
            `${r.transfers.count} (${r.transfers.percentage ?? 0}%)`,
          ],
        ]),
        `Page ${r.conversations.page} of ${r.conversations.pages}:`,
        ...r.conversations.items.map(
          (c) =>
            `  ${new Date(c.closedAt).toISOString()} ${c.conversation} ${c.group ?? '—'} ${c.agent ?? '—'} ${c.tags.join(',')}`,
        ),
      ];
      process.stdout.write(`${lines.join('\n')}\n`);
    });
  });
  return report;
}
