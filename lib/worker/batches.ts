// Turns a JetStream consumer's messages into batches: everything that arrived by the time the
// event loop is free again, at most `max` at once, handed over in order.
import type { ConsumerMessages, JsMsg } from '@nats-io/jetstream';

/**
 * Reads `messages` until they end, calling `handle` with each batch. `handle` is called without
 * waiting for the previous call: it must queue the work itself (hosts serialise it).
 */
export async function readBatches(
  messages: ConsumerMessages,
  max: number,
  handle: (batch: JsMsg[]) => void,
): Promise<void> {
  const buffer: JsMsg[] = [];
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    while (buffer.length > 0) handle(buffer.splice(0, max));
  };
  // The iterator's own pending count is not reliable for this (it counts its internal
  // callbacks), so a batch is what arrived before the next turn of the event loop.
  for await (const m of messages) {
    buffer.push(m);
    if (!scheduled) {
      scheduled = true;
      setImmediate(flush);
    }
  }
  flush();
}
