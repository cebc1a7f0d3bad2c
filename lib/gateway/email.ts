// The gateway's email settings, from the environment (the SMTP URL may hold a password: it is
// never logged), and sending through nodemailer.
import nodemailer from 'nodemailer';
import { ParleyError } from '../errors.ts';
import type { Mail } from './notifier.ts';

export interface EmailOptions {
  /** Sends one email. */
  readonly send: (mail: Mail) => Promise<void>;
  /** How long an answer stays unread before it is emailed. */
  readonly delayMs: number;
}

export const EMAIL_ENVIRONMENT_HELP = `
  PARLEY_SMTP_URL         where visitors' answer emails go out, e.g. smtp://user:pass@host:587
                          (smtps:// for TLS); unset: no emails
  PARLEY_EMAIL_FROM       their sender (default "Parley <no-reply@localhost>")
  PARLEY_EMAIL_DELAY_MS   how long an answer stays unread before it is emailed (default 120000)`;

/** Email settings from the environment; undefined when PARLEY_SMTP_URL is unset. */
export function emailFromEnv(env: NodeJS.ProcessEnv): EmailOptions | undefined {
  const url = env.PARLEY_SMTP_URL;
  if (!url) return undefined;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    parsed = new URL('invalid:');
  }
  if (parsed.protocol !== 'smtp:' && parsed.protocol !== 'smtps:') {
    throw new ParleyError('PARLEY_ERR_CONFIG_INVALID', [
      'PARLEY_SMTP_URL',
      'environment',
      'use smtp://[user:password@]host[:port] or smtps://… (the value is not shown: it may hold a password)',
    ]);
  }
  const delay = env.PARLEY_EMAIL_DELAY_MS ?? '120000';
  if (!/^\d+$/.test(delay)) {
    throw new ParleyError('PARLEY_ERR_CONFIG_INVALID', [
      'PARLEY_EMAIL_DELAY_MS',
      'environment',
      `a number of milliseconds, got ${JSON.stringify(delay)}`,
    ]);
  }
  const from = env.PARLEY_EMAIL_FROM ?? 'Parley <no-reply@localhost>';
  const transport = nodemailer.createTransport(url);
  return {
    delayMs: Number(delay),
    send: async (mail) => {
      await transport.sendMail({ from, to: mail.to, subject: mail.subject, text: mail.text });
    },
  };
}
