// `parley demo`: one scripted day of the engine in one process, on the simulation's manual clock,
// told as readable lines (or, with --json, the events as JSON lines). Hours pass in an instant.
import type { Command } from 'commander';
import { formatDurationShort } from '../../actors/conversation.ts';
import type { Attachment, Author, DomainEvent, TransferTarget } from '../../actors/events.ts';
import { matchRule, showsChatButton } from '../../actors/routing.ts';
import { waitingListFull } from '../../actors/routing-group.ts';
import { HOUR_MS, MINUTE_MS, type Settings } from '../../actors/settings.ts';
import { type CommandInput, Simulation } from '../../actors/simulation.ts';
import { DEFAULT_CONFIG_PATH, loadConfig } from '../../lib/config.ts';

/** The simulated day: Monday 5 January 2026, times in UTC. */
const DAY = Date.UTC(2026, 0, 5);

/** What the story needs from the configuration; the demo refuses to run on anything else. */
const NEEDED = {
  groups: ['pro-tv', 'orders'],
  rules: ['pro-tv-pages'],
  agents: ['alice', 'bruno', 'dev'],
} as const;

/** The group whose waiting list the demo fills, and the seats it leaves it. */
const SMALL_GROUP = 'orders';
const SMALL_CAP = 1;

export function registerDemo(program: Command): Command {
  return program
    .command('demo')
    .description('run a scripted story through the engine on a simulated clock')
    .option('--json', 'print the events as JSON lines instead of the story')
    .addHelpText(
      'after',
      `
Runs a scripted story through the engine on a simulated clock, using config/default.yaml
(with the Orders waiting list cut to one seat, so that it fills up).`,
    )
    .action(async (options: { json?: boolean }) => {
      process.exitCode = await runDemo({ json: options.json ?? false });
    });
}

export async function runDemo({ json }: { json: boolean }): Promise<number> {
  const configured = loadConfig(DEFAULT_CONFIG_PATH, {});
  const missing = missingIds(configured);
  if (missing.length > 0) {
    process.stderr.write(
      `parley demo: config/default.yaml lacks what the story needs: ${missing.join(', ')}\n`,
    );
    return 1;
  }
  const demo = new Demo(demoSettings(configured), json);
  demo.story(configured);
  return demo.finish();
}

function missingIds(settings: Settings): string[] {
  const has = {
    groups: new Set(settings.groups.map((g) => g.id)),
    rules: new Set(settings.rules.map((r) => r.id)),
    agents: new Set(settings.agents.map((a) => a.id)),
  };
  return (Object.keys(NEEDED) as (keyof typeof NEEDED)[]).flatMap((kind) =>
    NEEDED[kind].filter((id) => !has[kind].has(id)).map((id) => `${kind} ${id}`),
  );
}

/** The configuration with the Orders waiting list cut to one seat. */
function demoSettings(settings: Settings): Settings {
  return {
    ...settings,
    groups: settings.groups.map((g) => (g.id === SMALL_GROUP ? { ...g, cap: SMALL_CAP } : g)),
  };
}

class Demo {
  readonly sim: Simulation;
  readonly #json: boolean;
  readonly #names: Map<string, string>;
  #rejected = 0;

  constructor(settings: Settings, json: boolean) {
    this.sim = new Simulation(settings, { start: at('09:00') });
    this.#json = json;
    this.#names = new Map([
      ...settings.groups.map((g) => [g.id, g.name] as const),
      ...settings.agents.map((a) => [a.id, a.name] as const),
    ]);
  }

  story(configured: Settings): void {
    const { sim } = this;
    const cap = configured.groups.find((g) => g.id === SMALL_GROUP)?.cap;
    this.header(
      'Parley demo: one day of asynchronous messaging, on a simulated clock (Monday 5 January 2026, UTC).',
      `Settings: config/default.yaml, with the ${this.name(SMALL_GROUP)} waiting list cut to ${SMALL_CAP} seat (configured: ${cap}) so that it fills up.`,
    );

    // A visitor starts a conversation while no agent is online: automatic message, then the bot.
    const visit = { url: 'https://shop.example/tv/oled-55', attributes: { segment: 'pro' } };
    this.say(`Marie, a professional customer, opens ${visit.url}; no agent is online.`);
    const rule = matchRule(sim.engine.settings.rules, visit);
    if (!rule) throw new Error(`no routing rule matches ${visit.url}`);
    const full = (g: string) => {
      const cap = sim.engine.settings.groups.find((x) => x.id === g)?.cap ?? 0;
      return waitingListFull(sim.engine.state().seats[g]?.length ?? 0, cap);
    };
    this.say(
      `Rule ${rule.id} matches: the chat button ${showsChatButton(rule, full(rule.target.group)) ? 'shows' : 'is hidden'}. She writes.`,
    );
    const marie = 'conv-marie';
    this.do({
      type: 'StartConversation',
      conversation: marie,
      visitor: 'marie',
      rule: rule.id,
      visitorOnline: true,
      message: { id: 'marie-1', text: 'Hello! My new OLED screen flickers on HDMI 2.' },
    });

    this.to('09:01');
    this.say(
      'She answers the question in her own words: not one of the choices, so the bot asks again.',
    );
    this.visitor(marie, 'marie', 'The screen');
    this.say('She picks a choice (the bot compares without case): escalation to the waiting list.');
    this.visitor(marie, 'marie', 'a product');
    this.waiting(marie);
    this.do({ type: 'MarkRead', conversation: marie, visitor: 'marie' });

    this.to('09:05');
    this.say('Marie leaves the site.');
    this.do({ type: 'SetVisitorPresence', conversation: marie, online: false });

    // An agent comes online: the conversation is pushed to her panel.
    this.to('09:30');
    this.say('Alice comes online and gets the conversation by push.');
    this.do({ type: 'SetAgentPresence', agent: 'alice', presence: 'online' });
    this.to('09:32');
    this.agent(
      marie,
      'alice',
      'Hello Marie, sorry about that. Which firmware version does the screen show under Settings > About?',
    );
    this.to('09:33');
    this.say('Alice snoozes it without choosing a duration: the group default.');
    this.do({ type: 'Snooze', conversation: marie, agent: 'alice' });

    // The visitor writes again: the conversation wakes, with a note about the snooze.
    this.to('11:10');
    this.say(
      `Marie comes back to the site; her minimised widget shows ${sim.engine.conversation(marie)?.context.unread} new message.`,
    );
    this.do({ type: 'SetVisitorPresence', conversation: marie, online: true });
    this.do({ type: 'MarkRead', conversation: marie, visitor: 'marie' });
    this.to('11:12');
    this.say('She answers: the conversation wakes and goes back to Alice.');
    this.visitor(marie, 'marie', 'It says firmware 3.1.');
    this.to('11:20');
    this.agent(
      marie,
      'alice',
      'Thanks! Version 3.2 fixes the HDMI 2 flicker: https://shop.example/pro/tv/firmware 🙂 Tell me if it helps.',
      [
        {
          kind: 'file',
          ref: 'https://shop.example/pro/tv/firmware/3.2/notes.pdf',
          name: 'release-notes.pdf',
          mimeType: 'application/pdf',
        },
      ],
    );
    this.to('11:21');
    this.say('Alice snoozes it again.');
    this.do({ type: 'Snooze', conversation: marie, agent: 'alice' });

    // Nobody writes: the timer wakes it when the snooze is over.
    this.say('Five hours pass without a word (instantly, on the simulated clock).');
    this.to('16:25');
    this.say(
      'Alice hands it to Bruno, the firmware specialist, who is offline: it waits on his panel.',
    );
    this.do({ type: 'Transfer', conversation: marie, agent: 'alice', to: { agent: 'bruno' } });

    this.to('17:00');
    this.say('Bruno comes online, finds it on his panel, and finishes the job.');
    this.do({ type: 'SetAgentPresence', agent: 'bruno', presence: 'online' });
    this.agent(marie, 'bruno', 'Hello Marie, Bruno here. Did the update fix the flicker?');
    this.to('17:03');
    this.visitor(marie, 'marie', 'Yes, all good now, thank you!');
    this.to('17:04');
    this.do({ type: 'Tag', conversation: marie, agent: 'bruno', tags: ['hdmi', 'firmware'] });
    this.do({ type: 'Close', conversation: marie, by: { agent: 'bruno' }, tags: ['resolved'] });
    this.to('17:05');
    this.say('Marie answers the satisfaction survey.');
    this.do({
      type: 'AnswerSurvey',
      conversation: marie,
      visitor: 'marie',
      csat: 5,
      nps: 9,
      comment: 'Quick and helpful',
    });

    // A full waiting list: the overflow policy of the group applies.
    const orders = this.name(SMALL_GROUP);
    this.to('17:10');
    this.say(
      `Tom asks about an order; no ${orders} agent is online, so he waits (the list is now full).`,
    );
    this.start('conv-tom', 'tom', rule.id, 'Where is my order 4821?');
    this.visitor('conv-tom', 'tom', 'An order');
    this.waiting('conv-tom');
    this.to('17:15');
    this.say(
      `Léa asks about an order too: the ${orders} waiting list is full, and its overflow policy is`,
    );
    this.say('"bot": the bot keeps the conversation and says so; her next message tries again.');
    this.start('conv-lea', 'lea', rule.id, 'Hi, I need to change my delivery address.');
    this.visitor('conv-lea', 'lea', 'An order');
    this.to('17:30');
    this.say(`Dev comes online and takes Tom's conversation: a seat is free again.`);
    this.do({ type: 'SetAgentPresence', agent: 'dev', presence: 'online' });
    this.to('17:32');
    this.say('Léa writes again: the escalation is retried, and Dev gets it.');
    this.visitor('conv-lea', 'lea', 'It is for order 4907.');
  }

  /** Writes what is left and returns the exit status: 1 if the engine refused a step of the story. */
  finish(): number {
    if (this.#rejected > 0) {
      process.stderr.write(
        `parley demo: the engine rejected ${this.#rejected} command(s) of the story\n`,
      );
      return 1;
    }
    return 0;
  }

  // ─── Steps ─────────────────────────────────────────────────────────────────────────────────

  do(command: CommandInput): void {
    this.show(this.sim.do(command));
  }

  start(conversation: string, visitor: string, rule: string, text: string): void {
    this.do({
      type: 'StartConversation',
      conversation,
      visitor,
      rule,
      visitorOnline: true,
      message: { text },
    });
  }

  visitor(conversation: string, visitor: string, text: string): void {
    this.do({
      type: 'SendMessage',
      conversation,
      author: { kind: 'visitor', id: visitor },
      message: { text },
    });
  }

  agent(conversation: string, agent: string, text: string, attachments?: Attachment[]): void {
    this.do({
      type: 'SendMessage',
      conversation,
      author: { kind: 'agent', id: agent },
      message: { text, ...(attachments ? { attachments } : {}) },
    });
  }

  /** Moves the clock to a time of the day, delivering the snooze deadlines passed on the way. */
  to(hhmm: string): void {
    const now = this.sim.clock.now();
    const target = at(hhmm);
    if (target > now) this.show(this.sim.advance(target - now));
  }

  /** What the widget shows a waiting visitor. */
  waiting(conversation: string): void {
    const info = this.sim.engine.waitingInfo(conversation);
    if (!info || info.position === null) return;
    this.say(
      `The widget shows: position ${info.position} in the waiting list, the team typically replies in ${formatDurationShort(info.typicalReplyMs)}.`,
    );
  }

  // ─── Output ────────────────────────────────────────────────────────────────────────────────

  header(...lines: string[]): void {
    if (!this.#json) process.stdout.write(`${lines.join('\n')}\n\n`);
  }

  say(text: string): void {
    if (!this.#json) process.stdout.write(`${clock(this.sim.clock.now())} ▸ ${text}\n`);
  }

  show(events: readonly DomainEvent[]): void {
    for (const e of events) {
      if (e.type === 'CommandRejected') this.#rejected++;
      if (this.#json) {
        process.stdout.write(`${JSON.stringify(e)}\n`);
      } else {
        const who = 'conversation' in e && e.conversation !== null ? e.conversation : '';
        process.stdout.write(
          `${clock(e.at)}   ${e.type.padEnd(24)} ${who.padEnd(11)} ${this.describe(e)}\n`,
        );
      }
    }
  }

  name(id: string): string {
    return this.#names.get(id) ?? id;
  }

  /** The key fields of an event, in words. */
  describe(e: DomainEvent): string {
    switch (e.type) {
      case 'ConversationStarted':
        return `visitor ${e.visitor}, rule ${e.rule}`;
      case 'MessageAdded': {
        const m = e.message;
        const note = m.note ? ` (${m.note})` : '';
        const files = m.attachments.map((a) => ` [${a.kind}: ${a.name ?? a.ref}]`).join('');
        return `#${m.seq} ${this.author(m.author)}${note}: ${m.text}${files}`;
      }
      case 'MessageRefused':
        return `from ${this.author(e.author)}: ${e.reason}`;
      case 'BotAnswerRecorded':
        return `${e.question} = ${e.answer}`;
      case 'ConversationQueued':
        return `into the ${this.name(e.group)} waiting list (${e.reason})${e.reservedFor ? `, reserved for ${this.name(e.reservedFor)}` : ''}`;
      case 'ConversationParked':
        return `the ${this.name(e.group)} waiting list is full: the bot keeps it`;
      case 'ConversationAssigned':
        return `to ${this.name(e.agent)} (${this.name(e.group)}) waited ${formatDurationShort(e.waitedMs)}; visitor ${e.visitorOnline ? 'online' : 'offline'}${e.wasSnoozed ? '; was snoozed before' : ''}`;
      case 'ConversationSnoozed':
        return `by ${this.name(e.agent)} for ${formatDurationShort(e.durationMs)}, until ${clock(e.until)}`;
      case 'ConversationWoken':
        return `by the ${e.by}, after ${formatDurationShort(e.snoozedMs)} snoozed by ${this.name(e.snoozedBy)}`;
      case 'ConversationTransferred':
        return `from ${this.name(e.from)} to ${this.target(e.to)}`;
      case 'ConversationReturned':
        return `from ${this.name(e.agent)} (${e.reason})`;
      case 'ConversationTagged':
        return `tags: ${e.tags.join(', ')}`;
      case 'ConversationClosed':
        return `by the ${e.by}${e.agent ? ` (${this.name(e.agent)})` : ''}; tags: ${e.tags.join(', ') || 'none'}; handling ${formatDurationShort(e.handlingMs)}, resolution ${formatDurationShort(e.resolutionMs)}`;
      case 'SurveyAnswered':
        return `CSAT ${e.csat ?? '-'}, NPS ${e.nps ?? '-'}${e.comment ? `: "${e.comment}"` : ''}`;
      case 'VisitorBlocked':
        return `${e.visitor}, by ${this.name(e.agent)}`;
      case 'VisitorPresenceChanged':
        return `${e.visitor} is ${e.online ? 'online' : 'offline'}`;
      case 'MessagesRead':
        return `${e.visitor} read up to #${e.upToSeq}`;
      case 'PageViewed':
        return `${e.visitor} on ${e.page.url}`;
      case 'AgentPresenceChanged':
        return `${this.name(e.agent)} is ${e.presence}`;
      case 'CommandRejected':
        return `${e.commandType} ${e.command}: ${e.code} (${e.reason})`;
      default:
        return unreachable(e);
    }
  }

  author(a: Author): string {
    return a.kind === 'visitor' || a.kind === 'agent' ? `${a.kind} ${this.name(a.id)}` : a.kind;
  }

  target(to: TransferTarget): string {
    return 'agent' in to ? `agent ${this.name(to.agent)}` : `group ${this.name(to.group)}`;
  }
}

function unreachable(e: never): string {
  return JSON.stringify(e);
}

/** A time of the simulated day, from `HH:MM`. */
function at(hhmm: string): number {
  const [h, m] = hhmm.split(':').map(Number);
  return DAY + (h ?? 0) * HOUR_MS + (m ?? 0) * MINUTE_MS;
}

/** `HH:MM` of a time on the simulated clock (UTC), with the day when it is not the first. */
function clock(t: number): string {
  const d = new Date(t);
  const hhmm = `${String(d.getUTCHours()).padStart(2, '0')}:${String(d.getUTCMinutes()).padStart(2, '0')}`;
  const days = Math.floor((t - DAY) / (24 * HOUR_MS));
  return days === 0 ? hhmm : `+${days}d ${hhmm}`;
}
