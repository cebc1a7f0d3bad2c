// Stores messages in JetStream with an acknowledgement for each, without a request apiece: a call's
// messages go out at once on core NATS, each replying under one wildcard inbox subscription, and
// the call settles once the streams have acknowledged every one, or fails at the first refusal.

import type { JetStreamClient } from '@nats-io/jetstream';
import {
  createInbox,
  headers,
  type Msg,
  type MsgHdrs,
  type NatsConnection,
  type Subscription,
} from '@nats-io/transport-node';

/** One message for a stream, de-duplicated by the stream on `msgID` (`Nats-Msg-Id`). */
export interface Publication {
  readonly subject: string;
  readonly data: Uint8Array;
  readonly msgID: string;
  /** More headers to set, such as the mark on the last event of a unit of work. */
  readonly headers?: Readonly<Record<string, string>>;
}

/** A publication that no stream acknowledged: refused, unanswered, or lost with the connection. */
export class PublishError extends Error {
  override readonly name = 'PublishError';
  /** The subject published to, when one publication is to blame. */
  readonly subject: string | undefined;
  /** JetStream's `err_code` for a refusal, 503 when no stream captures the subject. */
  readonly code: number | undefined;

  constructor(message: string, options: { subject?: string; code?: number; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.subject = options.subject;
    this.code = options.code;
  }
}

/** JetStream's answer to a publish: a PubAck, or an API error. */
interface PubAckJSON {
  stream?: string;
  seq?: number;
  duplicate?: boolean;
  error?: { code?: number; err_code?: number; description?: string };
}

/** One `publishAll` in flight. */
interface Call {
  readonly items: readonly Publication[];
  /** 1 at index i once item i is acknowledged (a second answer for it is not counted again). */
  readonly acked: Uint8Array;
  remaining: number;
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
  timer: NodeJS.Timeout | undefined;
}

const MSG_ID = 'Nats-Msg-Id';
const decoder = new TextDecoder();
const shared = new WeakMap<NatsConnection, Publisher>();

/**
 * A message's headers, encoded once as nats.js encodes them (`NATS/1.0`, then `Key: value` lines).
 * nats.js's `headers()` validates and canonicalises each key into a map for every message, and
 * encodes it again when publishing: ~3 µs and ~3 KB of garbage per message, measured in a worker.
 * Publishing reads nothing of the headers but `encode()` (test/integration/publisher.test.ts checks
 * that the stream sees the ids). A class, not a closure: tsx names each closure it makes.
 */
class EncodedHeaders {
  readonly #bytes: Uint8Array;
  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
  }
  encode(): Uint8Array {
    return this.#bytes;
  }
}

/**
 * The headers of a publication. Anything unusual (a value with CR or LF, a key that is not a plain
 * token, a second `Nats-Msg-Id`) goes through nats.js's `headers()`, which refuses what it must.
 */
function encodedHeaders(
  msgID: string,
  more: Readonly<Record<string, string>> | undefined,
): MsgHdrs {
  let text = `NATS/1.0\r\n${MSG_ID}: ${msgID.trim()}`;
  let plain = !/[\r\n]/.test(msgID);
  if (more) {
    for (const k in more) {
      const v = more[k]!;
      plain &&= k !== MSG_ID && /^[!-9;-~]+$/.test(k) && !/[\r\n]/.test(v);
      text += `\r\n${k}: ${v.trim()}`;
    }
  }
  if (!plain) {
    const h = headers();
    h.set(MSG_ID, msgID);
    if (more) for (const [k, v] of Object.entries(more)) h.set(k, v);
    return h;
  }
  return new EncodedHeaders(Buffer.from(`${text}\r\n\r\n`)) as unknown as MsgHdrs;
}

/**
 * Publishes to JetStream as `js.publish` does (a `Nats-Msg-Id` each, a PubAck each, a duplicate
 * counting as stored), for the price of a core publish per message: one subscription and one
 * timer serve a whole call, where `js.publish` makes a request with its own timer and promise.
 */
export class Publisher {
  readonly #nc: NatsConnection;
  /** `<inbox>.`: the reply to item i of call c is `<inbox>.c.i`. */
  readonly #prefix: string;
  readonly #sub: Subscription;
  readonly #calls = new Map<number, Call>();
  #next = 0;
  #closed: Error | undefined;

  /** Subscribes to a new inbox under the connection's inbox prefix (`_INBOX` by default). */
  constructor(nc: NatsConnection, options: { inboxPrefix?: string } = {}) {
    this.#nc = nc;
    const inboxPrefix =
      options.inboxPrefix ?? (nc as { options?: { inboxPrefix?: string } }).options?.inboxPrefix;
    this.#prefix = `${createInbox(inboxPrefix)}.`;
    this.#sub = nc.subscribe(`${this.#prefix}*.*`, {
      callback: (error, msg) => this.#answer(error, msg),
    });
    nc.closed().then(
      () => this.#close(new PublishError('the NATS connection closed')),
      () => this.#close(new PublishError('the NATS connection closed')),
    );
  }

  /** The publisher of `nc`, made on first use: one inbox subscription per connection. */
  static of(nc: NatsConnection): Publisher {
    let publisher = shared.get(nc);
    if (!publisher || publisher.closed) {
      publisher = new Publisher(nc);
      shared.set(nc, publisher);
    }
    return publisher;
  }

  /** True once closed, or once the connection or the inbox subscription is gone. */
  get closed(): boolean {
    return this.#closed !== undefined;
  }

  /**
   * Publishes every item, and resolves once JetStream acknowledged each one (stored, or a
   * duplicate of one stored). Rejects with a PublishError at the first refusal, at a subject no
   * stream captures, after `timeoutMs` without every acknowledgement, or when the connection
   * closes. Some items may be stored even so: their ids make publishing them again harmless.
   */
  publishAll(items: readonly Publication[], timeoutMs: number): Promise<void> {
    if (this.#closed) return Promise.reject(this.#closed);
    if (items.length === 0) return Promise.resolve();
    const id = ++this.#next;
    return new Promise<void>((resolve, reject) => {
      const call: Call = {
        items,
        acked: new Uint8Array(items.length),
        remaining: items.length,
        resolve,
        reject,
        timer: undefined,
      };
      this.#calls.set(id, call);
      call.timer = setTimeout(() => {
        const error = new PublishError(
          `${call.remaining} of ${items.length} publications not acknowledged in ${timeoutMs} ms`,
        );
        this.#fail(id, error);
      }, timeoutMs);
      const inbox = `${this.#prefix}${id}.`;
      try {
        for (let i = 0; i < items.length; i++) {
          const item = items[i]!;
          this.#nc.publish(item.subject, item.data, {
            reply: `${inbox}${i}`,
            headers: encodedHeaders(item.msgID, item.headers),
          });
        }
      } catch (error) {
        this.#fail(
          id,
          new PublishError(`cannot publish: ${(error as Error).message}`, { cause: error }),
        );
      }
    });
  }

  /** Stops listening for acknowledgements; calls still waiting fail. */
  close(): void {
    this.#close(new PublishError('the publisher is closed'));
  }

  #answer(error: Error | null, msg: Msg): void {
    if (error) {
      this.#close(
        new PublishError(`the inbox subscription ended: ${error.message}`, { cause: error }),
      );
      return;
    }
    const token = msg.subject.slice(this.#prefix.length);
    const dot = token.indexOf('.');
    const id = Number(token.slice(0, dot));
    const i = Number(token.slice(dot + 1));
    const call = this.#calls.get(id);
    if (call?.acked[i] !== 0) return; // settled already, a second answer, or not ours
    const refusal = refusalOf(msg, call.items[i]!.subject);
    if (refusal) {
      this.#fail(id, refusal);
      return;
    }
    call.acked[i] = 1;
    if (--call.remaining === 0) {
      this.#calls.delete(id);
      clearTimeout(call.timer);
      call.resolve();
    }
  }

  #fail(id: number, error: Error): void {
    const call = this.#calls.get(id);
    if (!call) return;
    this.#calls.delete(id);
    clearTimeout(call.timer);
    call.reject(error);
  }

  #close(error: Error): void {
    if (this.#closed) return;
    this.#closed = error;
    if (!this.#sub.isClosed()) this.#sub.unsubscribe();
    for (const id of [...this.#calls.keys()]) this.#fail(id, error);
  }
}

/** `{"stream":"`: how nats-server starts a PubAck; a refusal starts with its `"error"`. */
const PUBACK_START = Buffer.from('{"stream":"');
const SEQ = Buffer.from('"seq":');

/**
 * Whether `data` is a PubAck as nats-server writes one (`{"stream":"<name>", "seq":<digits>`,
 * and maybe more; 2.9 puts a space after the comma), with no error. Reading that takes a tenth of
 * what JSON.parse does; anything else is parsed.
 */
function plainPubAck(data: Uint8Array): boolean {
  const n = data.length;
  let i = PUBACK_START.length;
  if (n < i + 10) return false;
  for (let k = 0; k < i; k++) if (data[k] !== PUBACK_START[k]) return false;
  const nameStart = i;
  while (i < n && data[i] !== 0x22 && data[i] !== 0x5c) i++; // the name: up to its quote, no escapes
  if (i === nameStart || data[i] !== 0x22 || data[i + 1] !== 0x2c) return false; // `",`
  i += 2;
  while (data[i] === 0x20) i++;
  for (let k = 0; k < SEQ.length; k++) if (data[i + k] !== SEQ[k]) return false;
  i += SEQ.length;
  while (data[i] === 0x20) i++;
  const digit = data[i];
  return digit !== undefined && digit >= 0x30 && digit <= 0x39;
}

/** Why an answer to a publish is not a PubAck, or undefined when it is one. */
function refusalOf(msg: Msg, subject: string): PublishError | undefined {
  const data = msg.data;
  if (plainPubAck(data)) return undefined;
  if (data.length === 0) {
    const code = msg.headers?.code;
    return code === 503
      ? new PublishError(`no stream captures ${subject} (no responders)`, { subject, code })
      : new PublishError(`empty answer to a publish on ${subject} (status ${code ?? 'none'})`, {
          subject,
          ...(code ? { code } : {}),
        });
  }
  let ack: PubAckJSON;
  try {
    ack = JSON.parse(decoder.decode(data)) as PubAckJSON;
  } catch {
    return new PublishError(`unreadable answer to a publish on ${subject}`, { subject });
  }
  if (ack.error) {
    const code = ack.error.err_code ?? ack.error.code;
    return new PublishError(
      `JetStream refused ${subject}: ${ack.error.description ?? 'no description'}`,
      { subject, ...(code === undefined ? {} : { code }) },
    );
  }
  if (typeof ack.stream !== 'string' || ack.stream === '' || typeof ack.seq !== 'number') {
    return new PublishError(`invalid acknowledgement of a publish on ${subject}`, { subject });
  }
  return undefined;
}

/** The connection under a client made by `jetstream(nc)`, which the client's type does not show. */
export function connectionOf(js: JetStreamClient): NatsConnection {
  const nc = (js as { getConnection?: () => NatsConnection }).getConnection?.();
  if (!nc) throw new Error('this JetStream client does not expose its NATS connection');
  return nc;
}
