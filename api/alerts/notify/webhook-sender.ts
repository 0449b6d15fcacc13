import { createHmac } from 'node:crypto';
import type { ChannelRow } from '../alerts.repository.js';
import type { NotificationPayload } from './payload.js';
import { DeliveryError, type Sender } from './sender.js';

export const SIGNATURE_HEADER = 'x-herd-signature';
const TIMEOUT_MS = 10_000;

/** `sha256=<hex>`: HMAC-SHA256 of the exact body bytes with the channel's secret. */
export function sign(secret: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

/**
 * POSTs the payload as JSON. 2xx is delivered; network errors, timeouts, 408, 429 and 5xx are retried; any
 * other answer is the receiver refusing it for good.
 */
export const webhookSender: Sender = {
  async send(channel: ChannelRow, payload: NotificationPayload, meta) {
    const url = String(channel.config.url ?? '');
    const body = JSON.stringify(payload);
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'user-agent': 'herd-alerting',
      'x-herd-notification-id': String(payload.notificationId),
      'x-herd-attempt': String(meta.attempt),
    };
    if (channel.secret) headers[SIGNATURE_HEADER] = sign(channel.secret, body);
    let res: Response;
    try {
      res = await fetch(url, {
        method: 'POST',
        headers,
        body,
        signal: AbortSignal.timeout(TIMEOUT_MS),
        redirect: 'error',
      });
    } catch (err) {
      throw new DeliveryError(`webhook ${url}: ${(err as Error).message}`, true);
    }
    await res.body?.cancel().catch(() => undefined);
    if (res.ok) return { status: res.status };
    const retry = res.status === 408 || res.status === 429 || res.status >= 500;
    throw new DeliveryError(`webhook ${url} answered ${res.status}`, retry, res.status);
  },
};
