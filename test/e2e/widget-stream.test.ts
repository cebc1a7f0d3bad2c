// The widget's event stream client (web/shared/sse.ts), run in Node against a real gateway through
// a proxy that cuts the connection: it comes back by itself with Last-Event-ID, and every message
// arrives once, in order, none missing, those written during the cut included.
import { createServer, type Socket, connect as tcpConnect } from 'node:net';
import t from 'tap';
import { EventStream, type SseMessage } from '../../web/shared/sse.ts';
import { call, startParley } from '../helpers/gateway.ts';
import type { Teardown } from '../helpers/nats-server.ts';
import { waitUntil } from '../helpers/poll.ts';

/** A TCP proxy to `port` on a free port; `cut()` drops every connection open through it. */
async function proxy(t: Teardown, port: number) {
  const open = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = tcpConnect(port, '127.0.0.1');
    open.add(client);
    client.pipe(upstream).pipe(client);
    const close = () => {
      open.delete(client);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  t.teardown(() => {
    for (const s of open) s.destroy();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const address = server.address();
  return {
    url: `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`,
    cut: () => {
      for (const s of open) s.destroy();
    },
    get connections() {
      return open.size;
    },
  };
}

t.test(
  'a dropped stream resumes after the last event: nothing twice, nothing missing',
  async (t) => {
    const { http } = await startParley(t);
    const { token } = (await call<{ token: string }>(http, 'POST', '/v1/visitors')).body;
    const post = (id: string) =>
      call(http, 'POST', '/v1/visitor/conversations/c-drop/messages', {
        token,
        body: { id, text: id },
      });
    await call(http, 'POST', '/v1/visitor/conversations', {
      token,
      body: { id: 'c-drop', url: 'https://shop.example/tv/1', message: { id: 'm-1', text: 'm-1' } },
    });

    const via = await proxy(t, Number(new URL(http).port));
    const received: SseMessage[] = [];
    let ups = 0;
    const stream = new EventStream(`${via.url}/v1/visitor/conversations/c-drop/events`, {
      token: () => token,
      onMessage: (m) => received.push(m),
      onConnected: (up) => {
        if (up) ups++;
      },
    });
    t.teardown(() => stream.close());
    const ids = () =>
      received
        .filter((m) => m.event === 'MessageAdded')
        .map((m) => (m.data as { message: { id: string } }).message.id);
    await waitUntil(() => ids().includes('m-1'), 'the history replayed');

    await post('m-2');
    await waitUntil(() => ids().includes('m-2'), 'm-2 live');
    const before = stream.lastEventId;
    t.ok(before > 0, 'an event id to resume from');

    via.cut();
    // Written while the stream is down.
    await post('m-3');
    await post('m-4');
    await waitUntil(() => ups >= 2, 'the stream back by itself');
    await post('m-5');
    await waitUntil(() => ids().includes('m-5'), 'm-5 after the reconnection');

    t.same(
      ids().filter((id) => id !== 'c-drop:1:automatic'),
      ['m-1', 'm-2', 'm-3', 'm-4', 'm-5'],
      'each message once, in order',
    );
    const seqs = received.map((m) => m.id).filter((id): id is number => id !== null);
    t.same(
      seqs,
      [...seqs].sort((a, b) => a - b),
      'event ids only grow',
    );
    t.equal(new Set(seqs).size, seqs.length, 'no event twice');
  },
);
