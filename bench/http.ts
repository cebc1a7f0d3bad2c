// Messages posted over HTTP, as widgets post them: the gateway (in this process, beside the worker
// and the load generator) in front of the worker and the nats-server. Each of `connections`
// visitors writes in a conversation of their own; each request waits, as a widget does, for the
// answer that says the message was stored and applied (201) or stored (202).
import { randomBytes } from 'node:crypto';
import autocannon from 'autocannon';
import pino from 'pino';
import type { Settings } from '../actors/settings.ts';
import { startGateway } from '../lib/gateway/server.ts';

export interface HttpResult {
  readonly msgsPerS: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly requests: number;
  readonly non2xx: number;
  readonly errors: number;
  readonly connections: number;
  readonly seconds: number;
}

export async function runHttp(o: {
  url: string;
  settings: Settings;
  connections: number;
  seconds: number;
}): Promise<HttpResult> {
  const gateway = await startGateway({
    url: o.url,
    settings: o.settings,
    credentials: {
      visitorSecret: randomBytes(32).toString('base64url'),
      adminKeys: [],
      supervisorKeys: [],
      agentKeys: {},
    },
    log: pino({ level: 'warn' }),
    port: 0,
    limits: {
      // The load generator is one IP and each visitor writes flat out: no limits here.
      perIpPerMinute: 1e9,
      perVisitorPerMinute: 1e9,
    },
  });
  try {
    const base = gateway.url;
    const visitors = await Promise.all(
      Array.from({ length: o.connections }, async (_, i) => {
        const me = (await post(base, '/v1/visitors', undefined, {})) as { token: string };
        const conversation = `http-${i}-${randomBytes(4).toString('hex')}`;
        await post(base, '/v1/visitor/conversations', me.token, {
          id: conversation,
          url: 'https://shop.example/',
          message: { id: 'first', text: 'Hello' },
        });
        return { token: me.token, conversation };
      }),
    );
    let next = 0;
    let n = 0;
    const text = `Any news about my order? ${'x'.repeat(180)}`;
    const result = await autocannon({
      url: base,
      connections: o.connections,
      duration: o.seconds,
      requests: [
        {
          method: 'POST',
          setupRequest: (req, context: { visitor?: (typeof visitors)[number] }) => {
            context.visitor ??= visitors[next++ % visitors.length]!;
            const v = context.visitor;
            return {
              ...req,
              path: `/v1/visitor/conversations/${v.conversation}/messages`,
              headers: { 'content-type': 'application/json', authorization: `Bearer ${v.token}` },
              body: JSON.stringify({ id: `m-${++n}`, text }),
            };
          },
        },
      ],
    });
    return {
      msgsPerS: result['2xx'] / o.seconds,
      p50Ms: result.latency.p50,
      p99Ms: result.latency.p99,
      requests: result.requests.total,
      non2xx: result.non2xx,
      errors: result.errors,
      connections: o.connections,
      seconds: o.seconds,
    };
  } finally {
    await gateway.stop();
  }
}

async function post(base: string, path: string, token: string | undefined, body: unknown) {
  const response = await fetch(`${base}${path}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: JSON.stringify(body),
  });
  if (!response.ok) throw new Error(`${path}: ${response.status} ${await response.text()}`);
  return response.json();
}
