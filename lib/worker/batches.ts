// Turns a JetStream consumer's messages into batches: everything that arrived by the time the
// event loop is free again, at most `max` at once, handed over in order.
import type { Consumer, ConsumerMessages, JsMsg } from '@nats-io/jetstream';

/**
 * Consumes `consumer` (pulling `max` messages at a time), calling `handle` with each batch.
 * `handle` is called without waiting for the previous call: it must queue the work itself (hosts
 * serialise it). Messages come through nats.js's callback, not its async iterator, which costs a
 * promise per message. Stop it with the returned messages' `close()`; what arrived before is
 * still handed over.
 */
export function consumeBatches(
  consumer: Consumer,
  max: number,
  handle: (batch: JsMsg[]) => void,
): Promise<ConsumerMessages> {
  let buffer: JsMsg[] = [];
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    const arrived = buffer;
    buffer = [];
    for (let i = 0; i < arrived.length; i += max) {
      handle(arrived.length <= max ? arrived : arrived.slice(i, i + max));
    }
  };
  // The consumer's own pending count is not reliable for this (it counts its queued pull
  // requests), so a batch is what arrived before the next turn of the event loop.
  return consumer.consume({
    max_messages: max,
    callback: (m) => {
      buffer.push(m);
      if (!scheduled) {
        scheduled = true;
        setImmediate(flush);
      }
    },
  });
}
