import { createHmac } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import { OutboundGuard } from '../../../lib/outbound-guard.js';
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
 * POSTs the payload as JSON, to allowed targets only (lib/outbound-guard.ts). 2xx is delivered; network errors,
 * timeouts, 408, 429 and 5xx are retried; a refused target, a redirect or any other answer is final.
 */
export function createWebhookSender(targets = new OutboundGuard()): Sender {
  return {
    async send(channel: ChannelRow, payload: NotificationPayload, meta) {
      const url = String(channel.config.url ?? '');
      const refused = targets.refusedUrl(url);
      if (refused) throw new DeliveryError(`webhook ${url}: ${refused}`, false);
      const body = JSON.stringify(payload);
      const headers: Record<string, string> = {
        'content-type': 'application/json',
        'content-length': String(Buffer.byteLength(body)),
        'user-agent': 'herd-alerting',
        'x-herd-notification-id': String(payload.notificationId),
        'x-herd-attempt': String(meta.attempt),
      };
      if (channel.secret) headers[SIGNATURE_HEADER] = sign(channel.secret, body);
      let status: number;
      try {
        status = await post(url, headers, body, targets.lookup);
      } catch (err) {
        const final = (err as { code?: string }).code === 'EREFUSEDTARGET';
        throw new DeliveryError(`webhook ${url}: ${(err as Error).message}`, !final);
      }
      if (status >= 200 && status < 300) return { status };
      const retry = status === 408 || status === 429 || status >= 500;
      throw new DeliveryError(`webhook ${url} answered ${status}`, retry, status);
    },
  };
}

function post(
  url: string,
  headers: Record<string, string>,
  body: string,
  lookup: LookupFunction,
): Promise<number> {
  return new Promise((resolve, reject) => {
    const target = new URL(url);
    const client = target.protocol === 'https:' ? https : http;
    const req = client.request(target, { method: 'POST', headers, lookup, timeout: TIMEOUT_MS }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${TIMEOUT_MS / 1000} s`)));
    req.on('error', reject);
    req.end(body);
  });
}
