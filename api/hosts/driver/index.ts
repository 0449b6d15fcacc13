import type { Logger } from '../../../lib/log.js';
import { parseHostUri } from '../host-uri.js';
import type { HostDriver } from './host-driver.js';
import { RpcDriver } from './rpc-driver.js';
import { connectUri } from './test-daemon.js';

export * from './host-driver.js';
export { stopTestDaemon } from './test-daemon.js';
export * from './virt-type.js';

/**
 * Opens a driver for the libvirt host at `uri` (qemu+ssh://, qemu+tls://, qemu+tcp://, qemu:///system,
 * test:///file.xml) over herd's own RPC client; `test:///…` hosts through a libvirtd (see test-daemon.ts).
 */
export async function createHostDriver(
  uri: string,
  log: Logger,
  options: HostDriverOptions = {},
): Promise<HostDriver> {
  // The last gate before libvirt: a URI no one may add (docs/host-uris.md) is never opened, even one
  // stored before the rule existed.
  const parsed = parseHostUri(uri);
  // A `pkipath` in the URI names the host's certificates; else herd's (HERD_LIBVIRT_TLS_*), else libvirt's layout.
  const pkipath = parsed.params.some(([name]) => name === 'pkipath');
  const tls = pkipath ? undefined : definedOnly(options.tls ?? {});
  return RpcDriver.open(uri, log, await connectUri(uri, log), tls ? { tls } : {});
}

export interface HostDriverOptions {
  /** Client certificate, key and CA files for `+tls` hosts (config `hosts.libvirtTls`). */
  tls?: { cert?: string; key?: string; ca?: string };
}

/** The options for every host of a running herd, from its config. */
export function hostDriverFactory(options: HostDriverOptions): HostDriverFactory {
  return (uri, log) => createHostDriver(uri, log, options);
}

function definedOnly<T extends object>(o: T): T | undefined {
  const entries = Object.entries(o).filter(([, v]) => v !== undefined);
  return entries.length > 0 ? (Object.fromEntries(entries) as T) : undefined;
}

export type HostDriverFactory = (uri: string, log: Logger) => Promise<HostDriver>;

/**
 * One driver per host URI for the whole process. Every part of herd that acts on a host must go through
 * here: with the test driver a second connection would be a second, independent fake host.
 */
export class HostConnections {
  private readonly drivers = new Map<string, Promise<HostDriver>>();

  constructor(
    private readonly log: Logger,
    private readonly factory: HostDriverFactory = createHostDriver,
  ) {}

  /** The host's driver, opened on first use; a failed open is not cached, so the next call retries. */
  get(uri: string): Promise<HostDriver> {
    let driver = this.drivers.get(uri);
    if (!driver) {
      driver = this.factory(uri, this.log);
      this.drivers.set(uri, driver);
      driver.catch(() => {
        if (this.drivers.get(uri) === driver) this.drivers.delete(uri);
      });
    }
    return driver;
  }

  /** True when a driver for `uri` is open or opening. */
  has(uri: string): boolean {
    return this.drivers.has(uri);
  }

  /**
   * Closes and forgets one host's driver (host removed, or its connection broke and must be reopened).
   * Never needed for test:// hosts, whose state would be lost with the connection.
   */
  async drop(uri: string): Promise<void> {
    const driver = this.drivers.get(uri);
    if (!driver) return;
    this.drivers.delete(uri);
    await driver.then(
      (d) => d.close(),
      () => {},
    );
  }

  async closeAll(): Promise<void> {
    const all = [...this.drivers.keys()];
    await Promise.all(all.map((uri) => this.drop(uri)));
  }
}
