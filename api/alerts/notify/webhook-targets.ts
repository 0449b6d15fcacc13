/**
 * Where webhooks may go. A channel's URL is set by a pool admin and fetched by herd, from inside the fleet's
 * network: without a check it reaches herd's own loopback services and the cloud metadata endpoint (SSRF).
 * Refused by default: loopback, link-local (which holds the metadata address 169.254.169.254), unspecified,
 * and their IPv4-mapped IPv6 forms. HERD_WEBHOOK_ALLOW lists addresses or CIDRs let through anyway (a
 * receiver on herd's own machine). The check is made on the addresses the name resolves to at connect time,
 * so a name that resolves somewhere else on a second lookup (DNS rebinding) cannot slip through.
 */
import dns from 'node:dns';
import net from 'node:net';

const REFUSED: Array<[string, number, 'ipv4' | 'ipv6']> = [
  ['127.0.0.0', 8, 'ipv4'],
  ['0.0.0.0', 8, 'ipv4'],
  ['169.254.0.0', 16, 'ipv4'],
  ['100.100.100.200', 32, 'ipv4'], // Alibaba Cloud's metadata service
  ['::1', 128, 'ipv6'],
  ['::', 128, 'ipv6'],
  ['fe80::', 10, 'ipv6'],
  ['fd00:ec2::254', 128, 'ipv6'], // AWS's IPv6 metadata service
];

export class WebhookTargets {
  private readonly refusedList = new net.BlockList();
  private readonly allowList = new net.BlockList();

  /** `allow`: addresses or CIDRs (`127.0.0.1`, `10.0.0.0/8`, `::1`) let through although refused by default. */
  constructor(allow: readonly string[] = []) {
    for (const [address, prefix, family] of REFUSED) this.refusedList.addSubnet(address, prefix, family);
    for (const entry of allow) {
      const [address, prefix] = entry.split('/');
      const family = net.isIPv6(address) ? 'ipv6' : 'ipv4';
      if (!net.isIP(address)) throw new Error(`HERD_WEBHOOK_ALLOW: ${entry} is not an address or CIDR`);
      if (prefix === undefined) this.allowList.addAddress(address, family);
      else this.allowList.addSubnet(address, Number(prefix), family);
    }
  }

  /** Why a webhook may not connect to `address`, or undefined when it may. */
  refused(address: string): string | undefined {
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1];
    const plain = mapped ?? address;
    const family = net.isIPv6(plain) ? 'ipv6' : 'ipv4';
    if (this.allowList.check(plain, family) || !this.refusedList.check(plain, family)) return undefined;
    return `${address} is a loopback, link-local or metadata address, refused for webhooks (HERD_WEBHOOK_ALLOW lets it through)`;
  }

  /** Why a URL's host is refused as written (a literal address or `localhost`), before any lookup. */
  refusedUrl(url: string): string | undefined {
    let host: string;
    try {
      host = new URL(url).hostname.replace(/^\[|\]$/g, '');
    } catch {
      return `${url} is not a URL`;
    }
    if (host === 'localhost' || host.endsWith('.localhost')) return this.refused('127.0.0.1');
    return net.isIP(host) ? this.refused(host) : undefined;
  }

  /** A `lookup` for http.request: resolves as usual, then fails the connection to a refused address. */
  readonly lookup: net.LookupFunction = (hostname, options, callback) => {
    dns.lookup(hostname, options, (err, address, family) => {
      if (err) return callback(err, address, family);
      const addresses = Array.isArray(address) ? address : [{ address, family }];
      for (const a of addresses) {
        const why = this.refused(a.address);
        if (why) return callback(Object.assign(new Error(why), { code: 'EREFUSEDTARGET' }), address, family);
      }
      callback(null, address, family);
    });
  };
}
