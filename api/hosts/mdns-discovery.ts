import { Bonjour, type Browser, type Service } from 'bonjour-service';
import type { Logger } from '../../lib/log.js';
import type { Database } from '../../schema/db.js';
import { audit } from '../audit/audit.service.js';
import type { HostConnections } from './driver/index.js';
import { checkHostUri, HostUriError } from './host-uri.js';
import { findHostByUri, upsertRegisteredHost } from './hosts.repository.js';
import { DEFAULT_HARDWARE_POOL_ID } from './hosts.service.js';

/** libvirtd's own mDNS advertisement (16509 plain TCP, 16514 TLS). */
const LIBVIRT_TLS_PORT = 16514;

/**
 * The libvirt URI an announced service names, as announced, or undefined when it says too little:
 * - `_herd._tcp` (a host announcing itself for herd) carries it in its TXT record `uri`;
 * - `_libvirt._tcp` (libvirtd's advertisement) is reached over TCP, or TLS on 16514.
 */
function announcedUri(service: Announced): string | undefined {
  if (service.type === 'herd') {
    const uri = service.txt?.uri;
    return typeof uri === 'string' ? uri : undefined;
  }
  if (service.type === 'libvirt') {
    const ipv4 = service.addresses?.find((a) => /^\d+\.\d+\.\d+\.\d+$/.test(a));
    const host = ipv4 ?? service.host?.replace(/\.$/, '');
    if (!host) return undefined;
    return service.port === LIBVIRT_TLS_PORT
      ? `qemu+tls://${host}/system`
      : `qemu+tcp://${host}:${service.port}/system`;
  }
  return undefined;
}

type Announced = Pick<Service, 'type' | 'host' | 'port' | 'txt' | 'addresses'>;

/**
 * The announced URI in normal form when a pool admin could add it (docs/host-uris.md: a network transport,
 * no parameter that runs a program or reads a local file; anyone on the network can announce); else no URI,
 * or the reason it is refused.
 */
function checkAnnounced(service: Announced): { uri?: string; refused?: string } {
  const uri = announcedUri(service);
  if (uri === undefined) return {};
  try {
    return { uri: checkHostUri(uri, 'pool-admin').uri };
  } catch (err) {
    if (err instanceof HostUriError) return { refused: err.message };
    throw err;
  }
}

/** The URI herd adds for an announced service, in normal form, or undefined (none, or refused). */
export function discoveredUri(service: Announced): string | undefined {
  return checkAnnounced(service).uri;
}

export interface MdnsDiscoveryOptions {
  db: Database;
  connections: HostConnections;
  log: Logger;
  /** A Bonjour instance to browse with (tests give one on loopback); default: multicast on every interface. */
  bonjour?: Bonjour;
}

/**
 * Adds hosts announced over mDNS (`_libvirt._tcp`, `_herd._tcp`) the way registration does: read the
 * inventory through libvirt, land in the default hardware pool, disabled until an admin enables it.
 * Off by default (HERD_MDNS=1); runs in the worker role.
 */
export class MdnsDiscovery {
  private bonjour: Bonjour | undefined;
  private browsers: Browser[] = [];
  private readonly pending = new Set<Promise<void>>();

  constructor(private readonly options: MdnsDiscoveryOptions) {}

  start(): void {
    if (this.bonjour) return;
    this.bonjour =
      this.options.bonjour ??
      new Bonjour(undefined, (err: unknown) => this.options.log.warn({ err }, 'mDNS error'));
    for (const type of ['libvirt', 'herd']) {
      this.browsers.push(
        this.bonjour.find({ type, protocol: 'tcp' }, (service) => {
          const p = this.onService(service).finally(() => this.pending.delete(p));
          this.pending.add(p);
        }),
      );
    }
    this.options.log.info('mDNS discovery of _libvirt._tcp and _herd._tcp started');
  }

  async stop(): Promise<void> {
    for (const b of this.browsers) b.stop();
    this.browsers = [];
    // An instance given to us belongs to the caller.
    if (this.bonjour && !this.options.bonjour) this.bonjour.destroy();
    this.bonjour = undefined;
    await Promise.all([...this.pending]);
  }

  /** Waits for the hosts being added from announcements already heard (tests, shutdown). */
  async settled(): Promise<void> {
    await Promise.all([...this.pending]);
  }

  private async onService(service: Service): Promise<void> {
    const { db, connections, log } = this.options;
    const { uri, refused } = checkAnnounced(service);
    if (refused) {
      // Anyone on the network can announce: a URI a pool admin could not add is someone trying.
      log.warn({ name: service.name, type: service.type, reason: refused }, 'announced host URI refused');
      return;
    }
    if (!uri) {
      log.debug({ name: service.name, type: service.type }, 'mDNS service without a libvirt URI');
      return;
    }
    if (await findHostByUri(db, uri)) return;
    try {
      const inventory = await (await connections.get(uri)).inventory();
      const { row, created } = await db.transaction().execute(async (trx) => {
        const result = await upsertRegisteredHost(trx, { poolId: DEFAULT_HARDWARE_POOL_ID, uri, inventory });
        if (result.created) {
          await audit(trx, {
            userId: null,
            action: 'host.discover',
            entityType: 'host',
            entityId: result.row.id,
            after: result.row,
          });
        }
        return result;
      });
      if (created)
        log.info(
          { hostId: row.id, uri, name: service.name },
          'host discovered over mDNS (disabled until enabled)',
        );
    } catch (err) {
      log.warn({ err, uri, name: service.name }, 'announced host could not be read; it is not added');
    }
  }
}
