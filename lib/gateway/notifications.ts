// How the gateway reaches visitors answered while away, from the environment: email through an
// SMTP server (nodemailer), text messages through the brand's SMS gateway (an HTTP endpoint taking
// JSON). The URLs and the token may hold secrets: they are never logged nor shown in errors.
import nodemailer from 'nodemailer';
import { ParleyError } from '../errors.ts';

/** An email to send. */
export interface Mail {
  readonly to: string;
  readonly subject: string;
  readonly text: string;
}

/** A text message to send, to an E.164 number. */
export interface TextMessage {
  readonly to: string;
  readonly text: string;
}

export interface NotificationOptions {
  /** How long an answer stays unread before the visitor is notified. */
  readonly delayMs: number;
  /** Sends one email; absent: no emails. A rejection means not sent (tried again later). */
  readonly email?: (mail: Mail) => Promise<void>;
  /** Sends one text message; absent: no text messages. */
  readonly sms?: (message: TextMessage) => Promise<void>;
}

export const NOTIFICATION_ENVIRONMENT_HELP = `
  PARLEY_SMTP_URL         where emails to visitors answered while away go out, e.g.
                          smtp://user:pass@host:587 (smtps:// for TLS); unset: no emails
  PARLEY_EMAIL_FROM       their sender (default "Parley <no-reply@localhost>")
  PARLEY_SMS_URL          the brand's SMS gateway: each text message is POSTed to it as JSON
                          { "to", "text" }; unset: no text messages
  PARLEY_SMS_TOKEN        sent to it as "Authorization: Bearer <token>"
  PARLEY_NOTIFY_DELAY_MS  how long an answer stays unread before the visitor is notified
                          (default 120000)`;

const invalid = (variable: string, why: string) =>
  new ParleyError('PARLEY_ERR_CONFIG_INVALID', [variable, 'environment', why]);

/** A URL of one of `protocols`, or a configuration error that does not show the value. */
function urlOf(
  env: NodeJS.ProcessEnv,
  variable: string,
  protocols: readonly string[],
  example: string,
) {
  let url: URL | undefined;
  try {
    url = new URL(env[variable] ?? '');
  } catch {
    url = undefined;
  }
  if (!url || !protocols.includes(url.protocol)) {
    throw invalid(variable, `use ${example} (the value is not shown: it may hold a secret)`);
  }
  return url;
}

/** The notification settings from the environment; undefined when neither channel is set up. */
export function notificationsFromEnv(env: NodeJS.ProcessEnv): NotificationOptions | undefined {
  const email = env.PARLEY_SMTP_URL ? emailSender(env) : undefined;
  const sms = env.PARLEY_SMS_URL ? smsSender(env) : undefined;
  if (!email && !sms) return undefined;
  const delay = env.PARLEY_NOTIFY_DELAY_MS ?? '120000';
  if (!/^\d+$/.test(delay)) {
    throw invalid(
      'PARLEY_NOTIFY_DELAY_MS',
      `a number of milliseconds, got ${JSON.stringify(delay)}`,
    );
  }
  return { delayMs: Number(delay), ...(email ? { email } : {}), ...(sms ? { sms } : {}) };
}

function emailSender(env: NodeJS.ProcessEnv): (mail: Mail) => Promise<void> {
  const url = urlOf(
    env,
    'PARLEY_SMTP_URL',
    ['smtp:', 'smtps:'],
    'smtp://[user:password@]host[:port] or smtps://…',
  );
  const from = env.PARLEY_EMAIL_FROM ?? 'Parley <no-reply@localhost>';
  const transport = nodemailer.createTransport(url.href);
  return async (mail) => {
    await transport.sendMail({ from, to: mail.to, subject: mail.subject, text: mail.text });
  };
}

function smsSender(env: NodeJS.ProcessEnv): (message: TextMessage) => Promise<void> {
  const url = urlOf(env, 'PARLEY_SMS_URL', ['http:', 'https:'], 'https://host/path');
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (env.PARLEY_SMS_TOKEN) headers.authorization = `Bearer ${env.PARLEY_SMS_TOKEN}`;
  return async (message) => {
    const response = await fetch(url, {
      method: 'POST',
      headers,
      body: JSON.stringify({ to: message.to, text: message.text }),
      signal: AbortSignal.timeout(10_000),
    });
    await response.body?.cancel();
    if (!response.ok) throw new Error(`the SMS gateway answered ${response.status}`);
  };
}
