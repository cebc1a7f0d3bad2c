// Answers the live inspection of one routing group this worker hosts (lib/inspect.ts holds the
// protocol and the client): the engine is read between units of work, never in the middle of one,
// and a conversation the host let out of memory is read from the conversations bucket.
import type { JetStreamManager } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { type ConversationContext, currentSnooze } from '../../actors/conversation.ts';
import type { ConversationJSON, ConversationState, Engine } from '../../actors/engine.ts';
import type { Presence } from '../../actors/events.ts';
import { typicalReplyMs } from '../../actors/routing-group.ts';
import type { Settings } from '../../actors/settings.ts';
import type { World } from '../../actors/world.ts';
import {
  type AgentInspection,
  type ConversationInspection,
  type GroupInspection,
  type InspectionTimer,
  type InspectReply,
  type InspectRequest,
  inspectSubject,
  parseInspectRequest,
} from '../inspect.ts';
import type { StoredConversation } from './host.ts';
import type { Lock } from './lock.ts';
import { indexedOpen } from './open-index.ts';

export interface InspectionDeps {
  readonly nc: NatsConnection;
  readonly group: string;
  /** The worker's id, named in every answer. */
  readonly worker: string;
  /** The host's engine as it is now. */
  readonly engine: () => Engine;
  /** The shared world the engine runs on: agents' presence and load, the groups' seats. */
  readonly world: Pick<World, 'agent' | 'seats'>;
  readonly settings: Settings;
  readonly conversations: KV;
  readonly jsm: JetStreamManager;
  /** The worker's lock: an inspection waits for the unit of work under way, then reads at once. */
  readonly lock: Lock;
  readonly log: Logger;
}

/** A group's inspection subscription; `stop()` leaves requesters with no responder. */
export interface InspectionServer {
  stop(): void;
}

const decoder = new TextDecoder();

/**
 * Answers inspections of `deps.group` on `parley.inspect.<group>` until `stop()`. Never throws:
 * a worker that cannot subscribe logs it and hosts the group all the same.
 */
export async function serveInspection(deps: InspectionDeps): Promise<InspectionServer> {
  const log = deps.log.child({ group: deps.group });
  let sub: Subscription | undefined;
  try {
    sub = deps.nc.subscribe(inspectSubject(deps.group), {
      callback: (error, msg) => {
        if (error) log.debug({ err: error }, 'inspection subscription ended');
        else void respond(deps, msg, log);
      },
    });
    // Once the server knows the subscription, a requester finds this worker.
    await deps.nc.flush();
  } catch (error) {
    log.warn({ err: error }, 'cannot answer inspections of the group');
  }
  return {
    stop: () => {
      try {
        sub?.unsubscribe();
      } catch (error) {
        log.debug({ err: error }, 'inspection subscription already closed');
      }
    },
  };
}

async function respond(deps: InspectionDeps, msg: Msg, log: Logger): Promise<void> {
  const started = Date.now();
  const reply = await answerInspection(deps, msg.data);
  try {
    if (msg.reply) msg.respond(JSON.stringify(reply));
    log.debug(
      reply.ok
        ? { ms: Date.now() - started }
        : { ms: Date.now() - started, code: reply.code, reason: reply.message },
      'inspection answered',
    );
  } catch (error) {
    log.debug({ err: error }, 'inspection answer not sent');
  }
}

/** The reply to one request. Never throws: a failure is a reply too. */
export async function answerInspection(
  deps: InspectionDeps,
  data: Uint8Array | string,
): Promise<InspectReply> {
  let request: InspectRequest;
  try {
    request = parseInspectRequest(data);
  } catch (error) {
    return { ok: false, code: 'bad-request', message: messageOf(error) };
  }
  try {
    if (request.what === 'group') return { ok: true, inspection: await inspectGroup(deps) };
    const inspection = await inspectConversation(deps, request.conversation);
    return inspection
      ? { ok: true, inspection }
      : {
          ok: false,
          code: 'not-found',
          message: `routing group ${deps.group} does not host conversation ${request.conversation}`,
        };
  } catch (error) {
    return { ok: false, code: 'internal', message: messageOf(error) };
  }
}

// Conversations -----------------------------------------------------------------------------------

interface Found {
  readonly id: string;
  readonly state: ConversationState;
  readonly path: string;
  readonly context: ConversationContext;
  readonly recentCommands: readonly string[];
}

async function inspectConversation(
  deps: InspectionDeps,
  id: string,
): Promise<ConversationInspection | undefined> {
  const live = await deps.lock(async () => fromMemory(deps, id));
  if (live) return live;
  const entry = await deps.conversations.get(id);
  if (entry?.operation !== 'PUT') return undefined;
  const stored = JSON.parse(decoder.decode(entry.value)) as StoredConversation;
  const record = stored.record;
  if (stored.group !== deps.group || record === null) return undefined;
  // A command may have brought it back meanwhile: memory is then the newer.
  return deps.lock(async () => fromMemory(deps, id) ?? fromRecord(deps, id, record));
}

function fromMemory(deps: InspectionDeps, id: string): ConversationInspection | undefined {
  const engine = deps.engine();
  const view = engine.conversation(id);
  if (!view) return undefined;
  const recentCommands = engine.record(id)?.recentCommands ?? [];
  return describe(deps, engine, { id, ...view, recentCommands }, true);
}

function fromRecord(deps: InspectionDeps, id: string, record: ConversationJSON) {
  const path = pathOf(record.value);
  const state = path.split('.')[0] as ConversationState;
  const found = { id, state, path, context: record.context, recentCommands: record.recentCommands };
  return describe(deps, deps.engine(), found, false);
}

function describe(
  deps: InspectionDeps,
  engine: Engine,
  c: Found,
  inMemory: boolean,
): ConversationInspection {
  const at = Date.now();
  const i = engine.waitingList(deps.group).findIndex((e) => e.conversation === c.id);
  // The deadline the timer index holds, else (never expected) the one the conversation records.
  const held = engine.group(deps.group)?.snoozed.find((e) => e.conversation === c.id);
  const until =
    held?.until ?? (c.state === 'snoozed' ? currentSnooze(c.context)?.until : undefined);
  const timers: InspectionTimer[] =
    until === undefined ? [] : [{ kind: 'snooze', until, inMs: until - at }];
  return {
    worker: deps.worker,
    group: deps.group,
    conversation: c.id,
    state: c.state,
    path: c.path,
    context: c.context,
    inMemory,
    position: i < 0 ? null : i + 1,
    timers,
    recentCommands: [...c.recentCommands],
    at,
  };
}

/** `{ bot: 'asking' }` → `bot.asking`, as the engine writes it. */
function pathOf(value: unknown): string {
  if (typeof value === 'string') return value;
  const [k, v] = Object.entries((value ?? {}) as Record<string, unknown>)[0] ?? ['', ''];
  return v === '' ? k : `${k}.${pathOf(v)}`;
}

// The group -----------------------------------------------------------------------------------

async function inspectGroup(deps: InspectionDeps): Promise<GroupInspection> {
  // Conversations out of memory are known from the group's open index.
  const stored = await indexedOpen(deps.jsm, deps.group);
  return deps.lock(async () => {
    const engine = deps.engine();
    const ctx = engine.group(deps.group);
    const settings = deps.settings.groups.find((g) => g.id === deps.group);
    if (!ctx || !settings) throw new Error(`this worker does not host routing group ${deps.group}`);
    const at = Date.now();
    const open = new Set(stored);
    for (const id of engine.conversationIds()) {
      if (engine.conversation(id)?.state === 'closed') open.delete(id);
      else open.add(id);
    }
    const agents: AgentInspection[] = deps.settings.agents
      .filter((a) => a.groups.includes(deps.group))
      .map((a) => {
        const snapshot = deps.world.agent(a.id);
        const conversations = [...(snapshot?.context.conversations ?? [])];
        return {
          id: a.id,
          name: a.name,
          presence: (snapshot ? String(snapshot.value) : 'offline') as Presence,
          load: conversations.length,
          slots: snapshot?.context.slots ?? a.slots,
          conversations,
        };
      });
    return {
      worker: deps.worker,
      group: deps.group,
      cap: settings.cap,
      seatsTaken: deps.world.seats(deps.group).length,
      waiting: engine.waitingList(deps.group).map((e, i) => ({
        conversation: e.conversation,
        position: i + 1,
        readyAt: e.readyAt,
        waitedMs: at - e.readyAt,
        woken: e.woken,
        visitorOnline: e.visitorOnline,
        reservedFor: e.reservedFor,
      })),
      snoozed: [...ctx.snoozed]
        .sort((a, b) => a.until - b.until || (a.conversation < b.conversation ? -1 : 1))
        .map((s) => ({ conversation: s.conversation, until: s.until, inMs: s.until - at })),
      typicalReplyMs: typicalReplyMs(ctx, settings.typicalReplyMs),
      open: open.size,
      agents,
      at,
    };
  });
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
