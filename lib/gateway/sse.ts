// Server-Sent Events from the events stream: each SSE message's id is the event's stream
// sequence, so a client that reconnects with Last-Event-ID gets exactly what followed it, none
// lost and none repeated.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ParleyError } from '../errors.ts';
import type { Backend, StoredEvent } from './backend.ts';

export interface StreamOptions {
  /** The events-stream subjects followed. */
  readonly filter: string;
  /**
   * Where reading starts: 0 from the first event (what the projection needs to be exact), -1
   * from now; left out, right after Last-Event-ID. Events up to Last-Event-ID are never sent.
   */
  readonly replayFrom?: number;
  /** The data sent for an event, or undefined to skip it. */
  readonly project: (e: StoredEvent) => Record<string, unknown> | undefined;
  /** Sent first (without an id): what the client needs before the events. */
  readonly first?: () => Promise<{ event: string; data: unknown } | undefined>;
  readonly onClose?: () => void;
}

/** The stream sequence the client last received, from the Last-Event-ID header. */
export function lastEventId(request: FastifyRequest): number {
  const raw = request.headers['last-event-id'];
  if (raw === undefined || raw === '') return 0;
  const value = Array.isArray(raw) ? raw[0] : raw;
  if (!/^\d{1,15}$/.test(value ?? '')) {
    throw new ParleyError('PARLEY_ERR_VALIDATION', ['headers.last-event-id: not an event id'], {
      details: { errors: [{ field: 'headers.last-event-id', message: 'not an event id' }] },
    });
  }
  return Number(value);
}

export async function streamEvents(
  request: FastifyRequest,
  reply: FastifyReply,
  backend: Backend,
  options: StreamOptions,
): Promise<void> {
  let closed = false;
  let stop: (() => void) | undefined;
  const close = () => {
    if (closed) return;
    closed = true;
    stop?.();
    options.onClose?.();
  };
  try {
    const after = lastEventId(request);
    // Events are projected and sent in stream order, and only once the head is out: the head
    // may prepare the projection (the conversations an agent holds), and is sent before them.
    let opened: () => void = () => undefined;
    let sending = new Promise<void>((resolve) => {
      opened = resolve;
    });
    const from = options.replayFrom ?? after;
    stop = await backend.follow(options.filter, from, (e) => {
      sending = sending
        .then(async () => {
          // Projected even when not sent: a projection replayed from the start stays exact
          // (the unread count) however far the client had read.
          const data = options.project(e);
          if (!data || e.seq <= after || closed) return;
          const event = typeof data.type === 'string' ? data.type : e.event.type;
          await reply.sse.send({ id: String(e.seq), event, data });
        })
        .catch((error) => request.log.warn({ err: error, seq: e.seq }, 'event not sent'));
    });
    // The headers go once the events are followed: a client that saw the stream open misses
    // nothing that happens after.
    reply.sse.keepAlive();
    reply.sse.sendHeaders();
    try {
      const head = await options.first?.();
      if (head) await reply.sse.send(head);
    } finally {
      opened();
    }
  } catch (error) {
    close();
    if (!reply.raw.headersSent) throw error;
    request.log.warn({ err: error }, 'event stream failed');
    reply.sse.close();
    return;
  }
  reply.sse.onClose(close);
  if (!reply.sse.isConnected) close();
}
