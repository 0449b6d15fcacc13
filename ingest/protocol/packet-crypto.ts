/**
 * The cryptography of collectd's SecurityLevel Sign / Encrypt: HMAC-SHA-256 keyed with the password for
 * signatures; AES-256-OFB keyed with SHA-256(password) and a SHA-1 checksum of the plaintext for
 * encryption.
 */
import { createCipheriv, createDecipheriv, createHash, createHmac } from 'node:crypto';

const keys = new Map<string, Buffer>();
/** Bound on cached keys: one per distinct password, so only a hostile auth file could exceed it. */
const MAX_CACHED_KEYS = 1024;

/** AES-256 key for a password, cached because every encrypted packet needs it. */
export function cipherKey(password: string): Buffer {
  let key = keys.get(password);
  if (key === undefined) {
    key = createHash('sha256').update(password, 'utf8').digest();
    if (keys.size >= MAX_CACHED_KEYS) keys.clear();
    keys.set(password, key);
  }
  return key;
}

export function hmacSha256(password: string, data: Uint8Array): Buffer {
  return createHmac('sha256', password).update(data).digest();
}

export function sha1(data: Uint8Array): Buffer {
  return createHash('sha1').update(data).digest();
}

/** OFB is a stream mode: no padding, and encryption and decryption are the same operation. */
export function aes256Ofb(password: string, iv: Uint8Array, data: Uint8Array, encrypt: boolean): Buffer {
  const key = cipherKey(password);
  const cipher = encrypt ? createCipheriv('aes-256-ofb', key, iv) : createDecipheriv('aes-256-ofb', key, iv);
  const head = cipher.update(data);
  const tail = cipher.final();
  return tail.length === 0 ? head : Buffer.concat([head, tail]);
}
