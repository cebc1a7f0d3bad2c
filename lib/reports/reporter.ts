// The reports on NATS: follows PARLEY_EVENTS from its first event with an ordered consumer and
// feeds the projection, so the figures are rebuilt from the stream at every start, and on demand.
// The gateway's report routes, `parley report` and the Prometheus exposition read from here.
import {
  type ConsumerMessages,
  DeliverPolicy,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  jetstream,
  jetstreamManager,
} from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { DomainEvent } from '../../actors/events.ts';
import type { Settings } from '../../actors/settings.ts';
import { ParleyError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { STREAMS, SUBJECT_ROOTS } from '../nats/streams.ts';
import {
  checkTimeZone,
  type GroupTotals,
  type LiveFigures,
  type PeriodQuery,
  type PeriodReport,
  Projection,
  type ProjectionStats,
} from './projection.ts';

export interface ReporterOptions {
  /** The live configuration now: groups' names and caps, agents' names and slots. */
  readonly settings: () => Settings;
  readonly log: Logger;
  /** The IANA time zone "today" is counted in (default: PARLEY_TIME_ZONE, else UTC). */
  readonly timeZone?: string;
  /** How long start() and rebuild() may take to read the stream up to its end (default 120 s). */
  readonly catchUpMs?: number;
}

/** What the report routes and the metrics read: a Reporter, or anything that answers the same. */
export type ReportSource = Pick<Reporter, 'timeZone' | 'live' | 'period' | 'totals' | 'stats'>;

const MSG_ID = 'Nats-Msg-Id';
const RETRY_MS = 1_000;

/**
 * The IANA time zone "today" is counted in: `explicit`, else PARLEY_TIME_ZONE, else UTC. Throws
 * PARLEY_ERR_CONFIG_INVALID, naming where it came from, for an unknown one.
 */
export function reportTimeZone(explicit?: string): string {
  const fromEnv = explicit === undefined && process.env.PARLEY_TIME_ZONE !== undefined;
  const timeZone = explicit ?? process.env.PARLEY_TIME_ZONE ?? 'UTC';
  try {
    return checkTimeZone(timeZone);
  } catch {
    throw new ParleyError('PARLEY_ERR_CONFIG_INVALID', [
      fromEnv ? 'PARLEY_TIME_ZONE' : 'the reports',
      fromEnv ? 'environment' : 'timeZone',
      `unknown time zone ${JSON.stringify(timeZone)}: use an IANA name such as Europe/Paris`,
    ]);
  }
}

/** The figures of the reports, kept up to date from the events stream. */
export class Reporter {
  readonly timeZone: string;
  readonly #settings: () => Settings;
  readonly #log: Logger;
  readonly #js: JetStreamClient;
  readonly #jsm: JetStreamManager;
  readonly #catchUpMs: number;
  #follower: Follower;
  #rebuilding: Promise<void> = Promise.resolve();
  #stopped = false;

  private constructor(
    options: ReporterOptions,
    timeZone: string,
    js: JetStreamClient,
    jsm: JetStreamManager,
  ) {
    this.timeZone = timeZone;
    this.#settings = options.settings;
    this.#log = options.log;
    this.#js = js;
    this.#jsm = jsm;
    this.#catchUpMs = options.catchUpMs ?? 120_000;
    this.#follower = new Follower(js, new Projection(), options.log);
  }

  /**
   * Starts following the events stream from its first event and resolves once the projection has
   * read everything stored at the start. Throws PARLEY_ERR_CONFIG_INVALID for an unknown time
   * zone and PARLEY_ERR_NATS_SETUP when the events stream does not exist (no worker ran yet).
   */
  static async start(nc: NatsConnection, options: ReporterOptions): Promise<Reporter> {
    const timeZone = reportTimeZone(options.timeZone);
    const jsm = await jetstreamManager(nc, { timeout: 10_000, checkAPI: false });
    try {
      await jsm.streams.info(STREAMS.events);
    } catch (error) {
      const reason =
        (error as { code?: unknown }).code === 10059
          ? `the stream ${STREAMS.events} does not exist: start a worker first`
          : (error as Error).message;
      throw new ParleyError('PARLEY_ERR_NATS_SETUP', ['the reports', reason], { cause: error });
    }
    const reporter = new Reporter(options, timeZone, jetstream(nc), jsm);
    await reporter.#follower.start();
    try {
      await reporter.caughtUp(reporter.#catchUpMs);
    } catch (error) {
      await reporter.stop();
      throw error;
    }
    const { lastSeq, open, closed } = reporter.stats();
    options.log.info({ timeZone, lastSeq, open, closed }, 'reports read the events stream');
    return reporter;
  }

  /** The production report now (or at `now`), "today" being the local day in `timeZone`. */
  live(now: number = Date.now()): LiveFigures {
    return this.#follower.projection.live(now, this.#settings(), this.timeZone);
  }

  /** The conversations closed over a period, and their figures. */
  period(query: PeriodQuery): PeriodReport {
    return this.#follower.projection.period(query);
  }

  /** Conversations closed and transfers per group since the first event of the stream. */
  totals(): GroupTotals[] {
    return this.#follower.projection.totals();
  }

  stats(): ProjectionStats {
    return this.#follower.projection.stats();
  }

  /**
   * Resolves once the projection has read every event stored in the stream when called: what a
   * caller that just saw an event elsewhere waits for before reading the figures.
   */
  async caughtUp(timeoutMs = 10_000): Promise<void> {
    await this.#follower.waitFor(await this.#lastStored(), timeoutMs);
  }

  /**
   * Reads the whole stream again into a new projection and switches to it once it has caught up;
   * the current figures answer until then. Rebuilds one at a time.
   */
  rebuild(): Promise<void> {
    const next = this.#rebuilding.then(() => this.#rebuild());
    this.#rebuilding = next.catch(() => undefined);
    return next;
  }

  async #rebuild(): Promise<void> {
    if (this.#stopped) return;
    const follower = new Follower(this.#js, new Projection(), this.#log);
    try {
      await follower.start();
      await follower.waitFor(await this.#lastStored(), this.#catchUpMs);
    } catch (error) {
      await follower.stop();
      throw error;
    }
    const previous = this.#follower;
    this.#follower = follower;
    await previous.stop();
    if (this.#stopped) await follower.stop();
    this.#log.info({ lastSeq: follower.projection.lastSeq }, 'reports rebuilt from the stream');
  }

  /** The last sequence stored in the events stream, 0 when it holds nothing. */
  async #lastStored(): Promise<number> {
    const info = await this.#jsm.streams.info(STREAMS.events);
    return info.state.messages === 0 ? 0 : info.state.last_seq;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#follower.stop();
  }
}

/** One ordered consumer on the whole events stream, feeding one projection. */
class Follower {
  readonly projection: Projection;
  readonly #js: JetStreamClient;
  readonly #log: Logger;
  /** The last stream sequence read. */
  #seq = 0;
  #messages: ConsumerMessages | undefined;
  #retry: NodeJS.Timeout | undefined;
  #stopped = false;
  readonly #waiters: { seq: number; resolve: () => void }[] = [];

  constructor(js: JetStreamClient, projection: Projection, log: Logger) {
    this.#js = js;
    this.projection = projection;
    this.#log = log;
  }

  /** Opens the consumer; events are read in the background from then on. */
  async start(): Promise<void> {
    // Ordered: one reader, no acknowledgements, gaps mended by the client. After a failure it
    // starts again just after the last sequence read.
    const consumer = await this.#js.consumers.get(STREAMS.events, {
      filter_subjects: `${SUBJECT_ROOTS.events}.>`,
      ...(this.#seq > 0
        ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: this.#seq + 1 }
        : { deliver_policy: DeliverPolicy.All }),
    });
    const messages = await consumer.consume();
    this.#messages = messages;
    void this.#read(messages);
  }

  async #read(messages: ConsumerMessages): Promise<void> {
    try {
      for await (const m of messages) this.#take(m);
    } catch (error) {
      this.#log.warn({ err: error }, 'reading the events stream failed');
    }
    if (this.#stopped) return;
    this.#log.warn({ lastSeq: this.#seq }, 'the events stream ended; reading it again');
    this.#restart();
  }

  /** Opens the consumer again after a pause, until it works or the follower stops. */
  #restart(): void {
    clearTimeout(this.#retry);
    this.#retry = setTimeout(() => {
      if (this.#stopped) return;
      this.start().catch((error) => {
        this.#log.warn({ err: error }, 'cannot read the events stream');
        this.#restart();
      });
    }, RETRY_MS);
  }

  #take(m: JsMsg): void {
    if (m.seq <= this.#seq) return;
    try {
      const event = m.json<DomainEvent>();
      if (typeof event !== 'object' || event === null || typeof event.type !== 'string') {
        throw new Error('not an event');
      }
      if (typeof event.at !== 'number' || !Number.isFinite(event.at)) throw new Error('no time');
      this.projection.apply(event, m.headers?.get(MSG_ID) || `seq:${m.seq}`, m.seq);
    } catch (error) {
      // Only workers publish here; an event that cannot be read is logged and passed over.
      this.#log.warn(
        { seq: m.seq, subject: m.subject, reason: (error as Error).message },
        'event not read',
      );
    }
    this.#seq = m.seq;
    for (const w of [...this.#waiters]) {
      if (w.seq <= this.#seq) {
        this.#waiters.splice(this.#waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  }

  /** Resolves once the sequence `seq` has been read; rejects after `timeoutMs`. */
  waitFor(seq: number, timeoutMs: number): Promise<void> {
    if (seq <= this.#seq) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const waiter = {
        seq,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      const timer = setTimeout(() => {
        this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
        reject(
          new ParleyError('PARLEY_ERR_NATS_SETUP', [
            'the reports',
            `the events stream was not read up to sequence ${seq} in ${timeoutMs} ms (at ${this.#seq})`,
          ]),
        );
      }, timeoutMs);
      this.#waiters.push(waiter);
    });
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#retry);
    await this.#messages?.close().catch(() => undefined);
  }
}
