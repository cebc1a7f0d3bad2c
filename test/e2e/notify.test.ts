// A visitor who is away gets an email and a text message when an agent answers: through the
// gateway's settings to a real SMTP server of the test's own (smtp-server, standing in for the
// brand's mail relay) and an HTTP server standing in for the brand's SMS gateway. One of each for
// answers given in a row; none for a visitor on the site or one who read the answer in time.
import { createServer } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { SMTPServer } from 'smtp-server';
import t, { type Test } from 'tap';
import { notificationsFromEnv } from '../../lib/gateway/notifications.ts';
import { call, KEYS, openStream, startParley } from '../helpers/gateway.ts';
import { waitUntil } from '../helpers/poll.ts';

const TV_PAGE = 'https://shop.example/tv/oled-55';
const ALICE = KEYS.agents.alice;
const DELAY_MS = 600;

interface Received {
  readonly to: string[];
  readonly raw: string;
}

/** An SMTP server on a free port that keeps what it receives. */
async function mailbox(t: Test): Promise<{ url: string; mails: Received[] }> {
  const mails: Received[] = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onData(stream, session, done) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        mails.push({
          to: session.envelope.rcptTo.map((r) => r.address),
          raw: Buffer.concat(chunks).toString('utf8'),
        });
        done();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const { port } = server.server.address() as { port: number };
  return { url: `smtp://127.0.0.1:${port}`, mails };
}

/** An HTTP server standing in for the brand's SMS gateway, keeping what it is sent. */
async function smsGateway(t: Test): Promise<{ url: string; texts: unknown[] }> {
  const texts: unknown[] = [];
  const server = createServer((request, response) => {
    let body = '';
    request.on('data', (c) => {
      body += c;
    });
    request.on('end', () => {
      if (request.headers.authorization === 'Bearer sms-token') texts.push(JSON.parse(body));
      response.writeHead(request.headers.authorization === 'Bearer sms-token' ? 202 : 401).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}/send`, texts };
}

t.test('answers given while the visitor is away are told once, after the delay', async (t) => {
  const box = await mailbox(t);
  const sms = await smsGateway(t);
  const notifications = notificationsFromEnv({
    PARLEY_SMTP_URL: box.url,
    PARLEY_EMAIL_FROM: 'TV shop <help@shop.example>',
    PARLEY_SMS_URL: sms.url,
    PARLEY_SMS_TOKEN: 'sms-token',
    PARLEY_NOTIFY_DELAY_MS: String(DELAY_MS),
  });
  const { http } = await startParley(t, { ...(notifications ? { notifications } : {}) });
  const console = await openStream(t, `${http}/v1/agent/events`, { token: ALICE });
  await call(http, 'PUT', '/v1/agent/presence', { token: ALICE, body: { presence: 'online' } });
  const presence = (conversation: string, online: boolean) =>
    console.waitFor(
      (e) =>
        e.event === 'VisitorPresenceChanged' &&
        e.data.conversation === conversation &&
        e.data.online === online,
      `${conversation}'s visitor ${online ? 'online' : 'away'}`,
    );

  /** A visitor with a conversation assigned to alice; with an email address and a number if given. */
  const visitor = async (conversation: string, address?: string, phone?: string) => {
    const me = await call<{ token: string }>(http, 'POST', '/v1/visitors');
    const token = me.body.token;
    if (address) {
      const put = await call(http, 'PUT', '/v1/visitor/email', { token, body: { email: address } });
      t.equal(put.status, 204);
    }
    if (phone) {
      const put = await call(http, 'PUT', '/v1/visitor/phone', { token, body: { phone } });
      t.equal(put.status, 204);
    }
    const started = await call(http, 'POST', '/v1/visitor/conversations', {
      token,
      body: {
        id: conversation,
        url: TV_PAGE,
        message: { id: `${conversation}-m`, text: 'Hello?' },
      },
    });
    t.equal(started.status, 201);
    return token;
  };
  /** The visitor's widget opens its event stream, then the visitor leaves the site. */
  const leave = async (conversation: string, token: string) => {
    const widget = await openStream(t, `${http}/v1/visitor/conversations/${conversation}/events`, {
      token,
    });
    await widget.waitFor(() => true, 'the widget stream');
    await widget.close();
    await presence(conversation, false);
  };
  const close = async (conversation: string) => {
    const closed = await call(http, 'POST', `/v1/agent/conversations/${conversation}/close`, {
      token: ALICE,
      body: {},
    });
    t.equal(closed.status, 200, `${conversation} closed`);
  };
  const reply = async (conversation: string, id: string, text: string) => {
    const r = await call(http, 'POST', `/v1/agent/conversations/${conversation}/messages`, {
      token: ALICE,
      body: { id, text },
    });
    t.equal(r.status, 201, `${id} sent`);
  };

  // Away: the visitor wrote from the widget, then left the site (its event stream closed, and
  // stayed closed past the grace period). Two answers in a row make one email, with both.
  await leave('c-away', await visitor('c-away', 'away@visitor.example', '+33612345678'));
  await reply('c-away', 'a-1', 'Have you tried turning it off and on?');
  await reply('c-away', 'a-2', 'Also check the HDMI cable.');

  // On the site: the widget's event stream is open, so the visitor counts as online.
  const hereToken = await visitor('c-here', 'here@visitor.example', '+33698765432');
  const stream = await openStream(t, `${http}/v1/visitor/conversations/c-here/events`, {
    token: hereToken,
  });
  await stream.waitFor(() => true, 'the stream');
  await reply('c-here', 'h-1', 'I can see you are here: try the settings menu.');

  await waitUntil(
    () => box.mails.length > 0 && sms.texts.length > 0,
    'the email and the text message',
    15_000,
  );
  t.same(
    sms.texts,
    [
      {
        to: '+33612345678',
        text: "TV: Also check the HDMI cable. (+1 more) Reply on the site's chat.",
      },
    ],
    'one text message: the last answer, and how many more',
  );
  t.equal(box.mails.length, 1, 'one email');
  const mail = box.mails[0]!;
  t.same(mail.to, ['away@visitor.example']);
  t.match(mail.raw, /^From: TV shop <help@shop\.example>/m);
  t.match(mail.raw, /^Subject: 2 replies from TV/m);
  t.match(mail.raw, /Have you tried turning it off and on\?/);
  t.match(mail.raw, /Also check the HDMI cable\./);
  t.match(mail.raw, /^Alice:/m, "the agent's name");

  // Away, but read in time (from another tab, say): no email. (Closing a conversation frees
  // alice's slot for the next.)
  await close('c-here');
  const readerToken = await visitor('c-read', 'reader@visitor.example', '+33611111111');
  await leave('c-read', readerToken);
  await reply('c-read', 'r-1', 'Your order ships tomorrow.');
  const read = await call(http, 'POST', '/v1/visitor/conversations/c-read/read', {
    token: readerToken,
  });
  t.equal(read.status, 200);

  // Wait well past the delay: nothing more comes (c-away's second answer was in the first email).
  await sleep(DELAY_MS + 3_000);
  t.equal(
    box.mails.length,
    1,
    'no email for a visitor on the site, one who read, nor a second one',
  );
  t.equal(sms.texts.length, 1, 'nor a second text message');
});
