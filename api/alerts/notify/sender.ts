import type { ChannelRow } from '../alerts.repository.js';
import type { NotificationPayload } from './payload.js';

/** Delivers one notification on one kind of channel; throws DeliveryError when it could not. */
export interface Sender {
  send(
    channel: ChannelRow,
    payload: NotificationPayload,
    meta: { attempt: number },
  ): Promise<{ status?: number; detail?: string }>;
}

export class DeliveryError extends Error {
  constructor(
    message: string,
    /** false: trying again cannot help (the receiver refused it). */
    readonly retryable: boolean,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'DeliveryError';
  }
}
