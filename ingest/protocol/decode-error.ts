/**
 * Why a packet was not (fully) decoded. `malformed`: the bytes break the protocol (truncated part, bad
 * length, missing NUL, unknown data source type...). `auth`: a signed or encrypted packet whose user is
 * unknown or whose signature / checksum does not match — never decoded, and counted apart from
 * malformed packets because it points at a misconfigured or hostile sender rather than a broken one.
 */
export type DecodeErrorKind = 'malformed' | 'auth';

export class DecodeError extends Error {
  override readonly name = 'DecodeError';

  constructor(
    readonly kind: DecodeErrorKind,
    /** Human-readable cause, e.g. `values part at byte 40: length 20 does not match 2 values`. */
    readonly reason: string,
  ) {
    super(reason);
  }
}

export function malformed(reason: string): DecodeError {
  return new DecodeError('malformed', reason);
}

export function authFailure(reason: string): DecodeError {
  return new DecodeError('auth', reason);
}
