// Memory per hosted open conversation: one in-memory Engine (a MemoryWorld) hosting 100,000 open
// conversations (in the bot, waiting, assigned; a few messages each, then idle), heap measured
// after forced GCs. Run as its own process: `node --expose-gc --import tsx bench/memory.ts [count]`.
// Prints one JSON line.
import { type ConversationJSON, Engine } from '../actors/engine.ts';
import type { Command } from '../actors/events.ts';
import {
  type AgentSettings,
  GROUP_DEFAULTS,
  type RoutingGroupSettings,
  type RoutingRule,
  type Settings,
} from '../actors/settings.ts';
import { MemoryWorld } from '../actors/world.ts';

export interface MemoryResult {
  conversations: number;
  /** By state, as the engine reports it. */
  states: Record<string, number>;
  /** Heap (after GC) the engine and its world grew by, per conversation. */
  heap_bytes_per_conversation: number;
  /** Heap per conversation in an engine hydrated from the stored records (as after a takeover). */
  hydrated_heap_bytes_per_conversation: number;
  /** Heap per conversation when the same records are held as plain parsed JSON, for comparison. */
  plain_json_heap_bytes_per_conversation: number;
  /** Average UTF-8 size of recordToJSON (what a snapshot holds). */
  record_json_bytes: number;
  /** Average UTF-8 size of what the worker stores in KV ({ group, record }). */
  stored_bytes_per_conversation: number;
  /** Commands applied to build the population, and engine time per command. */
  commands: number;
  /** Commands the engine refused while building the population: should be 0. */
  rejected: number;
  engine_us_per_command: number;
}

const gc = (globalThis as { gc?: () => void }).gc;

function collect(): number {
  if (!gc) throw new Error('run with node --expose-gc');
  for (let i = 0; i < 4; i++) gc();
  return process.memoryUsage().heapUsed;
}

const SERVED_GROUPS = 4;
const BACKLOG_GROUPS = 2;
const BACKLOG_CAP = 50;
const AGENTS = 40;

/** Groups served by agents, backlog groups nobody serves (their conversations stay waiting), and a bot rule. */
export function memorySettings(count: number): Settings {
  const group = (id: string, cap: number): RoutingGroupSettings => ({
    ...GROUP_DEFAULTS,
    id,
    name: id,
    cap,
  });
  const direct = (id: string, target: string): RoutingRule => ({
    id,
    match: { pages: [], attributes: {} },
    showChatButton: true,
    hideWhenFull: false,
    target: { group: target, byAnswer: [] },
  });
  const served = Array.from({ length: SERVED_GROUPS }, (_, i) => `team-${i}`);
  const backlog = Array.from({ length: BACKLOG_GROUPS }, (_, i) => `backlog-${i}`);
  const agents: AgentSettings[] = Array.from({ length: AGENTS }, (_, i) => ({
    id: `agent-${i}`,
    name: `Agent ${i}`,
    groups: served,
    slots: Math.ceil(count / AGENTS),
  }));
  return {
    groups: [
      ...served.map((id) => group(id, 1_000)),
      ...backlog.map((id) => group(id, BACKLOG_CAP)),
    ],
    rules: [
      ...served.map((id) => direct(`to-${id}`, id)),
      ...backlog.map((id) => direct(`to-${id}`, id)),
      {
        ...direct('qualify', served[0]!),
        bot: {
          greeting: 'Hello, I am the bot.',
          questions: [
            { id: 'topic', text: 'What is it about?', choices: ['Order', 'Product'] },
            { id: 'email', text: 'Your email?' },
          ],
        },
      },
    ],
    agents,
    cannedAnswers: [],
  };
}

const TEXT = 'Hello, I ordered a television last week and it has not arrived yet. Any news?';

/**
 * The commands that bring conversation `i` to its state, two each: 20% stay with the bot (greeting,
 * question, answer, next question), up to 100 (2%) wait in backlog groups nobody serves, the rest are
 * assigned (automatic message, the visitor's, the agent's reply).
 */
function* commandsFor(
  i: number,
  count: number,
  agentOf: (conversation: string) => string,
): Generator<Command> {
  const conversation = `c-${i.toString(36).padStart(6, '0')}`;
  const visitor = `v-${i.toString(36).padStart(6, '0')}`;
  const id = (k: number) => `${conversation}-cmd-${k}-5d1c7a90-8f0e-4b2b`;
  const backlog = count - Math.min(BACKLOG_GROUPS * BACKLOG_CAP, Math.floor(count * 0.02));
  if (i % 5 === 0 && i < backlog) {
    yield { type: 'StartConversation', id: id(0), conversation, visitor, rule: 'qualify' };
    yield {
      type: 'SendMessage',
      id: id(1),
      conversation,
      author: { kind: 'visitor', id: visitor },
      message: { text: 'Product' },
    };
    return;
  }
  const rule = i >= backlog ? `to-backlog-${i % BACKLOG_GROUPS}` : `to-team-${i % SERVED_GROUPS}`;
  yield {
    type: 'StartConversation',
    id: id(0),
    conversation,
    visitor,
    rule,
    message: { text: TEXT },
  };
  yield i < backlog
    ? {
        type: 'SendMessage',
        id: id(1),
        conversation,
        author: { kind: 'agent', id: agentOf(conversation) },
        message: { text: 'Thanks, let me check the delivery for you.' },
      }
    : {
        type: 'SendMessage',
        id: id(1),
        conversation,
        author: { kind: 'visitor', id: visitor },
        message: { text: 'Is anybody there?' },
      };
}

export function measureMemory(count: number): MemoryResult {
  const settings = memorySettings(count);
  const base = collect();
  let engine: Engine | undefined = new Engine(settings, { world: new MemoryWorld() });
  for (let a = 0; a < AGENTS; a++) {
    engine.step(
      { type: 'SetAgentPresence', id: `presence-${a}`, agent: `agent-${a}`, presence: 'online' },
      0,
    );
  }
  const agentOf = (id: string) => engine?.conversation(id)?.context.agent ?? 'nobody';
  let commands = 0;
  let rejected = 0;
  let now = Date.UTC(2025, 0, 6, 9);
  const started = process.hrtime.bigint();
  for (let i = 0; i < count; i++) {
    for (const command of commandsFor(i, count, agentOf)) {
      now += 7;
      // Through JSON, as a worker receives it (its strings flat, not concatenations).
      const received = JSON.parse(JSON.stringify(command)) as Command;
      for (const e of engine.step(received, now).events) {
        if (e.type === 'CommandRejected' || e.type === 'MessageRefused') rejected++;
      }
      commands++;
    }
  }
  const engineNs = Number(process.hrtime.bigint() - started);
  const heap = collect() - base;

  // What is stored, and what the same conversations cost once hydrated from it (as a worker
  // that takes a group over holds them) or kept as plain parsed JSON.
  const states: Record<string, number> = {};
  let recordBytes = 0;
  let storedBytes = 0;
  const stored: string[] = [];
  for (const id of engine.conversationIds()) {
    const view = engine.conversation(id)!;
    states[view.state] = (states[view.state] ?? 0) + 1;
    const record = engine.record(id)!;
    recordBytes += Buffer.byteLength(JSON.stringify(record));
    const json = JSON.stringify({ group: view.context.group ?? 'team-0', record });
    storedBytes += Buffer.byteLength(json);
    stored.push(json);
  }
  engine = undefined;
  const n = stored.length;

  const base1 = collect();
  let hydrated: Engine | undefined = new Engine(settings, { world: new MemoryWorld() });
  const byGroup = new Map<string, ConversationJSON[]>();
  for (const json of stored) {
    const { group, record } = JSON.parse(json) as { group: string; record: ConversationJSON };
    const records = byGroup.get(group) ?? [];
    records.push(record);
    byGroup.set(group, records);
  }
  for (const [group, records] of byGroup) hydrated.hydrate(group, undefined, records);
  byGroup.clear();
  const hydratedHeap = collect() - base1;
  if (hydrated.conversationIds().length !== n) throw new Error('hydration lost conversations');
  hydrated = undefined;

  const base2 = collect();
  let plain: unknown[] | undefined = stored.map((json) => JSON.parse(json) as unknown);
  const plainHeap = collect() - base2;
  if (plain.length !== n) throw new Error('lost records');
  plain = undefined;

  const per = (bytes: number) => Math.round(bytes / n);
  return {
    conversations: n,
    states,
    heap_bytes_per_conversation: per(heap),
    hydrated_heap_bytes_per_conversation: per(hydratedHeap),
    plain_json_heap_bytes_per_conversation: per(plainHeap),
    record_json_bytes: per(recordBytes),
    stored_bytes_per_conversation: per(storedBytes),
    commands,
    rejected,
    engine_us_per_command: Math.round(engineNs / commands / 100) / 10,
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const count = Number(process.argv[2] ?? 100_000);
  process.stdout.write(`${JSON.stringify(measureMemory(count))}\n`);
}
