/**
 * Where herd may connect on a user's behalf: every connection whose target a user chose (a webhook's URL, an
 * e-mail channel's SMTP server, any later one) goes through one OutboundGuard. Without it a pool admin reaches
 * herd's own loopback services, the machine's private network and the cloud metadata endpoint (SSRF), or
 * scans their ports. Refused by default: loopback, unspecified, private (RFC 1918, shared 100.64/10, IPv6
 * unique-local), link-local (169.254.169.254, the metadata address, among them), multicast, broadcast and
 * reserved ranges, and IPv6 forms embedding a refused IPv4 address (mapped `::ffff:`, compatible `::a.b.c.d`,
 * NAT64 `64:ff9b::`, 6to4 `2002::`). HERD_WEBHOOK_ALLOW lists addresses or CIDRs let through anyway (a receiver
 * on herd's own machine or network).
 *
 * The check that counts is made at connect time on the addresses the name resolves to, and the connection goes
 * to exactly the address checked, so a name that resolves somewhere else on a second lookup (DNS rebinding)
 * cannot slip through. The checks of names as written (`refusedHost`, `refusedUrl`) only give an early 400.
 */
import dns from 'node:dns';
import net from 'node:net';

const REFUSED_V4: Array<[string, number]> = [
  ['0.0.0.0', 8], // "this network", the unspecified address
  ['10.0.0.0', 8],
  ['100.64.0.0', 10], // shared address space (carrier NAT; Alibaba Cloud's metadata 100.100.100.200)
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24], // IETF protocol assignments
  ['192.168.0.0', 16],
  ['198.18.0.0', 15], // benchmarking
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, and the broadcast address
];
const REFUSED_V6: Array<[string, number]> = [
  ['::', 128],
  ['::1', 128],
  ['fc00::', 7], // unique-local (AWS's metadata service fd00:ec2::254 among them)
  ['fe80::', 10],
  ['fec0::', 10], // site-local, deprecated
  ['ff00::', 8], // multicast
];

/** The error a refused connection fails with: `code` EREFUSEDTARGET, so senders know not to retry. */
export function refusedTarget(why: string): NodeJS.ErrnoException {
  return Object.assign(new Error(why), { code: 'EREFUSEDTARGET' });
}

/** An IPv6 address as its eight 16-bit groups. */
function groups(address: string): number[] {
  let text = address;
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text)?.[1];
  if (dotted) {
    const [a, b, c, d] = dotted.split('.').map(Number);
    text = `${text.slice(0, -dotted.length)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.split('::');
  const part = (s: string | undefined) => (s ? s.split(':').map((g) => Number.parseInt(g, 16)) : []);
  const h = part(head);
  const t = part(tail);
  return tail === undefined ? h : [...h, ...new Array(8 - h.length - t.length).fill(0), ...t];
}

/** The IPv4 address an IPv6 one stands for or carries (mapped, compatible, NAT64, 6to4), if any. */
function embeddedIpv4(address: string): string | undefined {
  const g = groups(address);
  const v4 = (hi: number, lo: number) => `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  const zero = (from: number, to: number) => g.slice(from, to).every((x) => x === 0);
  if (zero(0, 5) && g[5] === 0xffff) return v4(g[6], g[7]); // ::ffff:a.b.c.d
  if (zero(0, 6) && (g[6] !== 0 || g[7] > 1)) return v4(g[6], g[7]); // ::a.b.c.d (not :: or ::1)
  if (g[0] === 0x64 && g[1] === 0xff9b && zero(2, 6)) return v4(g[6], g[7]); // 64:ff9b::a.b.c.d
  if (g[0] === 0x2002) return v4(g[1], g[2]); // 2002:AABB:CCDD::
  return undefined;
}

function family(address: string): 'ipv4' | 'ipv6' {
  return net.isIPv6(address) ? 'ipv6' : 'ipv4';
}

export class OutboundGuard {
  private readonly refusedList = new net.BlockList();
  private readonly allowList = new net.BlockList();

  /** `allow`: addresses or CIDRs (`127.0.0.1`, `10.0.0.0/8`, `::1`) let through although refused by default. */
  constructor(allow: readonly string[] = []) {
    for (const [address, prefix] of REFUSED_V4) this.refusedList.addSubnet(address, prefix, 'ipv4');
    for (const [address, prefix] of REFUSED_V6) this.refusedList.addSubnet(address, prefix, 'ipv6');
    for (const entry of allow) {
      const [address, prefix] = entry.split('/');
      if (!net.isIP(address)) throw new Error(`HERD_WEBHOOK_ALLOW: ${entry} is not an address or CIDR`);
      if (prefix === undefined) this.allowList.addAddress(address, family(address));
      else this.allowList.addSubnet(address, Number(prefix), family(address));
    }
  }

  /** Why herd may not connect to the address `address` for a user, or undefined when it may. */
  refused(address: string): string | undefined {
    const forms = [address];
    if (net.isIPv6(address)) {
      const v4 = embeddedIpv4(address);
      if (v4) forms.push(v4);
    }
    if (forms.some((a) => this.allowList.check(a, family(a)))) return undefined;
    if (!forms.some((a) => this.refusedList.check(a, family(a)))) return undefined;
    return `${address} is a loopback, private, link-local, multicast or reserved address, refused as a target (HERD_WEBHOOK_ALLOW lets it through)`;
  }

  /**
   * Why a host name or address as a user wrote it is refused before any lookup (`localhost`, `LOCALHOST.`,
   * `[::1]`, `127.1`, `2130706433`), or undefined. Names are checked again, resolved, at connect time.
   */
  refusedHost(host: string): string | undefined {
    const name = host
      .trim()
      .toLowerCase()
      .replace(/^\[(.*)\]$/, '$1')
      .replace(/\.+$/, '');
    if (name === 'localhost' || name.endsWith('.localhost')) return this.refused('127.0.0.1');
    if (net.isIP(name)) return this.refused(name);
    let parsed: string;
    try {
      // The URL parser reads IPv4 shorthands (127.1, 0x7f.0.0.1, 2130706433) as getaddrinfo does.
      parsed = new URL(`http://${name}/`).hostname;
    } catch {
      return `${host} is not a host name`;
    }
    return net.isIP(parsed) ? this.refused(parsed) : undefined;
  }

  /** Why a URL's host is refused as written, or undefined. */
  refusedUrl(url: string): string | undefined {
    let host: string;
    try {
      host = new URL(url).hostname;
    } catch {
      return `${url} is not a URL`;
    }
    return this.refusedHost(host);
  }

  /** A `lookup` for http.request and net.connect: resolves as usual, then fails if any address is refused. */
  readonly lookup: net.LookupFunction = (hostname, options, callback) => {
    dns.lookup(hostname, options, (err, address, family) => {
      if (err) return callback(err, address, family);
      const addresses = Array.isArray(address) ? address : [{ address, family }];
      for (const a of addresses) {
        const why = this.refused(a.address);
        if (why) return callback(refusedTarget(why), address, family);
      }
      callback(null, address, family);
    });
  };

  /**
   * A TCP connection to `host`:`port` through the check: a literal address is checked as it is, a name is
   * resolved by `lookup` and the socket connects to the very address checked.
   */
  connect(host: string, port: number, timeoutMs: number): Promise<net.Socket> {
    const target = host.replace(/^\[(.*)\]$/, '$1');
    const why = net.isIP(target) ? this.refused(target) : undefined;
    if (why) return Promise.reject(refusedTarget(why));
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: target, port, lookup: this.lookup, timeout: timeoutMs });
      const fail = (err: Error) => {
        socket.destroy();
        reject(err);
      };
      const timedOut = () => fail(new Error(`no connection to ${host}:${port} within ${timeoutMs / 1000} s`));
      socket.once('error', fail);
      socket.once('timeout', timedOut);
      socket.once('connect', () => {
        socket.off('error', fail);
        socket.off('timeout', timedOut);
        socket.setTimeout(0);
        resolve(socket);
      });
    });
  }
}
