import nodemailer from 'nodemailer';
import type SMTPTransport from 'nodemailer/lib/smtp-transport/index.js';
import type { ChannelRow } from '../alerts.repository.js';
import { type NotificationPayload, title } from './payload.js';
import { DeliveryError, type Sender } from './sender.js';

/** SMTP server used by e-mail channels that name none: `smtp://user:pass@host:587` and the sender address. */
export interface SmtpDefaults {
  url?: string;
  from?: string;
}

/** An e-mail channel's config: `to`, optional `from` and `smtp` ({host, port, secure, user, ignoreTLS}); its
 * secret is the SMTP password. */
export interface EmailConfig {
  to: string[];
  from?: string;
  smtp?: {
    host: string;
    port?: number;
    secure?: boolean;
    user?: string;
    ignoreTLS?: boolean;
    requireTLS?: boolean;
  };
}

const TIMEOUT_MS = 15_000;

/** Sends through nodemailer over SMTP; a 5xx SMTP reply is permanent, anything else is retried. */
export function emailSender(defaults: SmtpDefaults = {}): Sender {
  return {
    async send(channel: ChannelRow, payload: NotificationPayload) {
      const config = channel.config as unknown as EmailConfig;
      const transport = transportFor(config, channel.secret, defaults);
      const from = config.from ?? defaults.from ?? 'herd@localhost';
      try {
        const info = await transport.sendMail({
          from,
          to: config.to,
          subject: `[herd] ${title(payload)}`,
          text: text(payload),
          headers: { 'X-Herd-Notification-Id': String(payload.notificationId) },
        });
        return { detail: info.response };
      } catch (err) {
        const code = (err as { responseCode?: number }).responseCode;
        throw new DeliveryError(
          `smtp: ${(err as Error).message}`,
          !(code !== undefined && code >= 500),
          code,
        );
      } finally {
        transport.close();
      }
    },
  };
}

function transportFor(config: EmailConfig, password: string | null, defaults: SmtpDefaults) {
  const timeouts = { connectionTimeout: TIMEOUT_MS, greetingTimeout: TIMEOUT_MS, socketTimeout: TIMEOUT_MS };
  if (config.smtp) {
    const s = config.smtp;
    const options: SMTPTransport.Options = {
      host: s.host,
      port: s.port ?? (s.secure ? 465 : 587),
      secure: s.secure ?? false,
      ignoreTLS: s.ignoreTLS,
      requireTLS: s.requireTLS,
      auth: s.user ? { user: s.user, pass: password ?? '' } : undefined,
      ...timeouts,
    };
    return nodemailer.createTransport(options);
  }
  if (!defaults.url)
    throw new DeliveryError(
      'e-mail channel has no SMTP server and herd has no default (HERD_SMTP_URL)',
      false,
    );
  return nodemailer.createTransport({ url: defaults.url, ...timeouts } as SMTPTransport.Options);
}

function text(p: NotificationPayload): string {
  const lines = [title(p), ''];
  for (const a of p.alerts) {
    lines.push(`- [${a.status}] ${a.summary}`);
    if (a.startsAt) lines.push(`  since ${a.startsAt}${a.endsAt ? `, resolved ${a.endsAt}` : ''}`);
    lines.push(
      `  labels: ${Object.entries(a.labels)
        .map(([k, v]) => `${k}=${v}`)
        .join(', ')}`,
    );
  }
  lines.push('', `notification ${p.notificationId}, group ${p.groupKey}`);
  return lines.join('\n');
}
