/**
 * Failed logins per client address, across usernames: a password sprayed over many usernames from one address
 * is stopped here (the per-address-and-username limit of auth.routes.ts cannot see it). Only failures count,
 * so an office behind one NAT address logging in at nine o'clock is not held up. Fixed windows, in memory
 * per process; bounded so that a flood of addresses cannot grow it without limit.
 */
const MAX_ADDRESSES = 100_000;

export class LoginFailures {
  private readonly windows = new Map<string, { count: number; endsAt: number }>();

  constructor(
    readonly limit: number,
    private readonly windowMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Milliseconds until `address` may try again, or 0 when it may now. */
  blockedFor(address: string): number {
    const w = this.windows.get(address);
    if (!w) return 0;
    const left = w.endsAt - this.now();
    if (left <= 0) {
      this.windows.delete(address);
      return 0;
    }
    return w.count >= this.limit ? left : 0;
  }

  record(address: string): void {
    const now = this.now();
    let w = this.windows.get(address);
    if (!w || w.endsAt <= now) {
      if (this.windows.size >= MAX_ADDRESSES) this.prune(now);
      w = { count: 0, endsAt: now + this.windowMs };
      this.windows.set(address, w);
    }
    w.count++;
  }

  private prune(now: number): void {
    for (const [address, w] of this.windows) if (w.endsAt <= now) this.windows.delete(address);
    // Still full: every entry is live, so forget the oldest (Map keeps insertion order).
    for (const address of this.windows.keys()) {
      if (this.windows.size < MAX_ADDRESSES) break;
      this.windows.delete(address);
    }
  }
}
