import nodemailer from 'nodemailer';
import type SMTPTransport from 'nodemailer/lib/smtp-transport/index.js';
import { OutboundGuard } from '../../../lib/outbound-guard.js';
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

/**
 * Sends through nodemailer over SMTP; a 5xx SMTP reply or a refused server is permanent, anything else is
 * retried. A channel's own server (set by a pool admin) is reached through `guard` only: herd resolves the
 * name, checks every address and hands nodemailer a socket already connected to the checked one (TLS still
 * verifies the name). The operator's HERD_SMTP_URL is trusted as it is.
 */
export function emailSender(defaults: SmtpDefaults = {}, guard = new OutboundGuard()): Sender {
  return {
    async send(channel: ChannelRow, payload: NotificationPayload) {
      const config = channel.config as unknown as EmailConfig;
      const transport = transportFor(config, channel.secret, defaults, guard);
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
        const refused = (err as { code?: string }).code === 'EREFUSEDTARGET';
        throw new DeliveryError(
          `smtp: ${(err as Error).message}`,
          !refused && !(code !== undefined && code >= 500),
          code,
        );
      } finally {
        transport.close();
      }
    },
  };
}

function transportFor(
  config: EmailConfig,
  password: string | null,
  defaults: SmtpDefaults,
  guard: OutboundGuard,
) {
  const timeouts = { connectionTimeout: TIMEOUT_MS, greetingTimeout: TIMEOUT_MS, socketTimeout: TIMEOUT_MS };
  if (config.smtp) {
    const s = config.smtp;
    const port = s.port ?? (s.secure ? 465 : 587);
    const options: SMTPTransport.Options = {
      host: s.host, // the name TLS verifies; the socket comes from getSocket
      port,
      getSocket: (_options, callback) =>
        guard.connect(s.host, port, TIMEOUT_MS).then(
          (connection) => callback(null, { connection }),
          (err: Error) => callback(err, undefined),
        ),
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
