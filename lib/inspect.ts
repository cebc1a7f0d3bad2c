// The live inspection of a routing group and its conversations (ARCHITECTURE.md rule 6): the NATS
// request/reply protocol that the worker hosting a group answers, and the client the CLI and the
// gateway use. A group with no live owner has no responder, so asking it fails at once.
import { type NatsConnection, RequestError, TimeoutError } from '@nats-io/transport-node';
import type { ConversationContext } from '../actors/conversation.ts';
import type { ConversationState } from '../actors/engine.ts';
import type { Presence } from '../actors/events.ts';
import { ParleyError } from './errors.ts';
import { validateGroupId, validateId } from './nats/streams.ts';

/** The root of the inspection subjects: `parley.inspect.<group>`. */
export const INSPECT_ROOT = 'parley.inspect';

/** How long the client waits for the owner's answer by default. */
export const DEFAULT_INSPECT_TIMEOUT_MS = 5_000;

/** `parley.inspect.<group>`: the subject the worker hosting `group` answers inspections on. */
export function inspectSubject(group: string): string {
  return `${INSPECT_ROOT}.${validateGroupId(group)}`;
}

// ─── The protocol ──────────────────────────────────────────────────────────────────────────

/** What a requester asks: one conversation of the group, or the group itself. */
export type InspectRequest =
  | { readonly what: 'conversation'; readonly conversation: string }
  | { readonly what: 'group' };

/** A deadline the worker's timer index holds for a conversation. */
export interface InspectionTimer {
  readonly kind: 'snooze';
  readonly until: number;
  /** `until` minus the worker's clock: negative when the expiry is due and not yet applied. */
  readonly inMs: number;
}

/** One conversation as its group's owner sees it now. */
export interface ConversationInspection {
  /** The worker that answered. */
  readonly worker: string;
  readonly group: string;
  readonly conversation: string;
  readonly state: ConversationState;
  /** The full state path, e.g. `bot.asking`. */
  readonly path: string;
  readonly context: ConversationContext;
  /** False when the worker had let it out of memory and read it from the conversations bucket. */
  readonly inMemory: boolean;
  /** 1-based place in the waiting list as the visitor sees it; null when not waiting. */
  readonly position: number | null;
  readonly timers: readonly InspectionTimer[];
  /** Ids of the latest commands applied, newest last. */
  readonly recentCommands: readonly string[];
  /** The worker's clock when it answered (ms since the epoch). */
  readonly at: number;
}

export interface WaitingInspection {
  readonly conversation: string;
  /** 1-based, in hand-out order. */
  readonly position: number;
  readonly readyAt: number;
  readonly waitedMs: number;
  readonly woken: boolean;
  readonly visitorOnline: boolean;
  readonly reservedFor: string | null;
}

export interface SnoozedInspection {
  readonly conversation: string;
  readonly until: number;
  readonly inMs: number;
}

export interface AgentInspection {
  readonly id: string;
  readonly name: string;
  readonly presence: Presence;
  /** How many asynchronous conversations the agent holds, in every group. */
  readonly load: number;
  readonly slots: number;
  readonly conversations: readonly string[];
}

/** A routing group as its owner sees it now. */
export interface GroupInspection {
  readonly worker: string;
  readonly group: string;
  /** The configured cap of the waiting list. */
  readonly cap: number;
  /** Seats counted against the cap: waiting, snoozed, or on their way in from another group. */
  readonly seatsTaken: number;
  /** In hand-out order. */
  readonly waiting: readonly WaitingInspection[];
  /** Soonest deadline first. */
  readonly snoozed: readonly SnoozedInspection[];
  /** What the widget shows: the median of recent first responses, else the configured figure. */
  readonly typicalReplyMs: number;
  /** How many conversations the group hosts that are not closed, in memory or stored. */
  readonly open: number;
  /** The agents whose settings list this group. */
  readonly agents: readonly AgentInspection[];
  readonly at: number;
}

export type InspectFailureCode = 'not-found' | 'bad-request' | 'internal';

export type InspectReply<T = ConversationInspection | GroupInspection> =
  | { readonly ok: true; readonly inspection: T }
  | { readonly ok: false; readonly code: InspectFailureCode; readonly message: string };

/**
 * Reads a request from the wire; throws an Error whose message says what is wrong (the worker
 * answers it as `bad-request`).
 */
export function parseInspectRequest(data: Uint8Array | string): InspectRequest {
  let body: unknown;
  try {
    body = JSON.parse(typeof data === 'string' ? data : new TextDecoder().decode(data));
  } catch {
    throw new Error('the request is not JSON');
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new Error('the request must be a JSON object');
  }
  const { what, conversation } = body as Record<string, unknown>;
  if (what === 'group') return { what };
  if (what !== 'conversation') throw new Error('"what" must be "conversation" or "group"');
  return { what, conversation: validateId('conversation id', conversation) };
}

// ─── The client ────────────────────────────────────────────────────────────────────────────

export interface InspectOptions {
  /** How long to wait for the owner's answer (default 5 s). No owner at all fails at once. */
  readonly timeoutMs?: number;
}

/**
 * Asks the worker hosting `group` for a conversation's live snapshot. Throws PARLEY_ERR_NOT_HOSTED
 * when no worker hosts the group (or it does not answer in time), PARLEY_ERR_NOT_FOUND when the
 * group does not host the conversation, PARLEY_ERR_INVALID_ID for a malformed id.
 */
export async function inspectConversation(
  nc: NatsConnection,
  group: string,
  conversation: string,
  options: InspectOptions = {},
): Promise<ConversationInspection> {
  const id = validateId('conversation id', conversation);
  return ask<ConversationInspection>(
    nc,
    group,
    { what: 'conversation', conversation: id },
    `Conversation ${id} in routing group ${group}`,
    options,
  );
}

/** Asks the worker hosting `group` for the group's live state; throws as `inspectConversation`. */
export async function inspectGroup(
  nc: NatsConnection,
  group: string,
  options: InspectOptions = {},
): Promise<GroupInspection> {
  return ask<GroupInspection>(nc, group, { what: 'group' }, `Routing group ${group}`, options);
}

async function ask<T>(
  nc: NatsConnection,
  group: string,
  request: InspectRequest,
  what: string,
  options: InspectOptions,
): Promise<T> {
  const subject = inspectSubject(group);
  const timeoutMs = options.timeoutMs ?? DEFAULT_INSPECT_TIMEOUT_MS;
  let reply: InspectReply<T>;
  try {
    const msg = await nc.request(subject, JSON.stringify(request), { timeout: timeoutMs });
    reply = msg.json<InspectReply<T>>();
  } catch (error) {
    if (error instanceof TimeoutError) {
      throw new ParleyError('PARLEY_ERR_NOT_HOSTED', [group], {
        cause: error,
        details: { reason: 'timeout', timeoutMs },
      });
    }
    if (error instanceof RequestError && error.isNoResponders()) {
      throw new ParleyError('PARLEY_ERR_NOT_HOSTED', [group], {
        cause: error,
        details: { reason: 'no-responders' },
      });
    }
    const reason = error instanceof Error ? error.message : String(error);
    throw new ParleyError('PARLEY_ERR_INSPECTION_FAILED', [group, reason], { cause: error });
  }
  if (reply?.ok === true) return reply.inspection;
  if (reply?.ok === false && reply.code === 'not-found') {
    throw new ParleyError('PARLEY_ERR_NOT_FOUND', [what], { details: reply });
  }
  const reason =
    reply?.ok === false ? `${reply.code}: ${reply.message}` : 'the reply is not an inspection';
  throw new ParleyError('PARLEY_ERR_INSPECTION_FAILED', [group, reason], { details: reply });
}
