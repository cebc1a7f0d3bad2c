// Parley as the widget and the console meet it: a real nats-server, a worker and the HTTP
// gateway listening on a free port, all stopped with the test; an HTTP client and an SSE reader.

import type { Test } from 'tap';
import { HOUR_MS, type Settings } from '../../actors/settings.ts';
import type { Credentials } from '../../lib/gateway/auth.ts';
import type { NotificationOptions } from '../../lib/gateway/notifications.ts';
import { type GatewayLimits, type RunningGateway, startGateway } from '../../lib/gateway/server.ts';
import type { Worker, WorkerOptions } from '../../lib/worker/worker.ts';
import { type NatsServer, startNatsServer, type Teardown } from './nats-server.ts';
import { startWorker, testLog } from './runtime.ts';
import { agent, group, rule } from './settings.ts';

export const KEYS = {
  admin: 'admin-key-for-tests-only',
  supervisor: 'supervisor-key-for-tests-only',
  agents: {
    alice: 'alice-key-for-tests-only',
    bob: 'bob-key-for-tests-only',
    carol: 'carol-key-for-tests-only',
  },
  /** The brand's backend signs its logged-in customers' ids with it. */
  identity: 'an-identity-secret-of-at-least-32-characters',
} as const;

export const testCredentials = (): Credentials => ({
  visitorSecret: 'a-visitor-secret-of-at-least-32-characters',
  adminKeys: [KEYS.admin],
  supervisorKeys: [KEYS.supervisor],
  agentKeys: { ...KEYS.agents },
  identitySecret: KEYS.identity,
});

/**
 * Two routing groups: tv (pages under /tv/, cap 3) and orders (cap 2); alice and bob serve tv,
 * carol orders. Snoozes short enough to wait for.
 */
export function gatewaySettings(): Settings {
  const snooze = { defaultMs: 60 * 60_000, minMs: 100, maxMs: 24 * HOUR_MS };
  return {
    groups: [
      group('tv', { cap: 3, snooze, automaticMessage: 'Hi! Leave us a message.' }),
      group('orders', { cap: 2, snooze }),
    ],
    rules: [
      rule('tv-pages', {
        match: { pages: ['https://shop.example/tv/*'], attributes: {} },
        hideWhenFull: true,
        target: { group: 'tv', byAnswer: [] },
      }),
      rule('orders-pages', {
        match: { pages: ['https://shop.example/orders*'], attributes: {} },
        target: { group: 'orders', byAnswer: [] },
      }),
    ],
    agents: [agent('alice', ['tv'], 2), agent('bob', ['tv'], 2), agent('carol', ['orders'], 2)],
    cannedAnswers: [
      { id: 'hello', title: 'Hello', text: 'Hello, how can I help?', groups: [] },
      {
        id: 'orders-delay',
        title: 'Order delay',
        text: 'Orders ship in 2 days.',
        groups: ['orders'],
      },
    ],
  };
}

export interface Parley {
  readonly server: NatsServer;
  readonly http: string;
  readonly natsUrl: string;
  readonly gateway: RunningGateway;
  readonly worker: Worker;
}

export async function startParley(
  t: Test,
  options: {
    settings?: Settings;
    limits?: Partial<GatewayLimits>;
    worker?: Partial<WorkerOptions>;
    notifications?: NotificationOptions;
  } = {},
): Promise<Parley> {
  const server = await startNatsServer({ t });
  const settings = options.settings ?? gatewaySettings();
  const worker = await startWorker(t, server.url, { settings, ...options.worker });
  const gateway = await startGateway({
    url: server.url,
    settings,
    credentials: testCredentials(),
    log: testLog,
    port: 0,
    limits: { presenceGraceMs: 300, outcomeMs: 5_000, ...options.limits },
    ...(options.notifications ? { notifications: options.notifications } : {}),
  });
  t.teardown(() => gateway.stop());
  return { server, http: gateway.url, natsUrl: server.url, gateway, worker };
}

export interface Answer<T = Record<string, unknown>> {
  readonly status: number;
  readonly type: string;
  readonly body: T;
  readonly headers: Headers;
}

/** One HTTP call; the body parsed as JSON when there is one. */
export async function call<T = Record<string, unknown>>(
  base: string,
  method: string,
  path: string,
  options: { token?: string; body?: unknown; raw?: string; headers?: Record<string, string> } = {},
): Promise<Answer<T>> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  let body: string | undefined;
  if (options.raw !== undefined) body = options.raw;
  else if (options.body !== undefined) body = JSON.stringify(options.body);
  if (body !== undefined) headers['content-type'] ??= 'application/json';
  const response = await fetch(`${base}${path}`, { method, headers, body: body ?? null });
  const text = await response.text();
  return {
    status: response.status,
    type: response.headers.get('content-type') ?? '',
    body: (text ? JSON.parse(text) : {}) as T,
    headers: response.headers,
  };
}

export interface SseEvent {
  readonly id: string | undefined;
  readonly event: string;
  readonly data: Record<string, unknown>;
}

/** Reads a Server-Sent Events stream as a browser's EventSource would, until closed. */
export class SseReader {
  readonly events: SseEvent[] = [];
  readonly #controller = new AbortController();
  readonly #waiters: { test: (e: SseEvent) => boolean; resolve: (e: SseEvent) => void }[] = [];
  status = 0;
  #done: Promise<void> = Promise.resolve();

  static async open(
    url: string,
    options: { token?: string; lastEventId?: string } = {},
  ): Promise<SseReader> {
    const reader = new SseReader();
    const headers: Record<string, string> = { accept: 'text/event-stream' };
    if (options.token) headers.authorization = `Bearer ${options.token}`;
    if (options.lastEventId) headers['last-event-id'] = options.lastEventId;
    const response = await fetch(url, { headers, signal: reader.#controller.signal });
    reader.status = response.status;
    if (response.body) reader.#done = reader.#read(response.body).catch(() => undefined);
    return reader;
  }

  async #read(body: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    let buffer = '';
    for await (const chunk of body) {
      buffer += decoder.decode(chunk, { stream: true });
      let end = buffer.indexOf('\n\n');
      while (end >= 0) {
        this.#take(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
        end = buffer.indexOf('\n\n');
      }
    }
  }

  #take(block: string): void {
    let id: string | undefined;
    let event = 'message';
    const data: string[] = [];
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'id') id = value;
      else if (field === 'event') event = value;
      else if (field === 'data') data.push(value);
    }
    if (data.length === 0) return;
    const e: SseEvent = { id, event, data: JSON.parse(data.join('\n')) };
    this.events.push(e);
    for (const w of [...this.#waiters]) {
      if (w.test(e)) {
        this.#waiters.splice(this.#waiters.indexOf(w), 1);
        w.resolve(e);
      }
    }
  }

  /** The first event, received or to come, that passes `test`. */
  waitFor(test: (e: SseEvent) => boolean, what: string, timeoutMs = 10_000): Promise<SseEvent> {
    const seen = this.events.find(test);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no SSE event: ${what} (had ${this.events.map((e) => e.event)})`)),
        timeoutMs,
      );
      this.#waiters.push({
        test,
        resolve: (e) => {
          clearTimeout(timer);
          resolve(e);
        },
      });
    });
  }

  /** The last event id received (what a browser sends as Last-Event-ID). */
  get lastId(): string | undefined {
    return [...this.events].reverse().find((e) => e.id !== undefined)?.id;
  }

  async close(): Promise<void> {
    this.#controller.abort();
    await this.#done;
  }
}

/**
 * Opens a stream that the test's teardown closes before it stops the gateway (a gateway does
 * not stop while a stream is open).
 */
export async function openStream(
  t: Teardown,
  url: string,
  options: { token?: string; lastEventId?: string } = {},
): Promise<SseReader> {
  const reader = await SseReader.open(url, options);
  t.teardown(() => reader.close());
  return reader;
}
