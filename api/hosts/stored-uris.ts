import type { Logger } from '../../lib/log.js';
import type { Database } from '../../schema/db.js';
import { HostUriError, parseHostUri } from './host-uri.js';
import { listHostUris, setHostUri } from './hosts.repository.js';

/**
 * At start (worker role): hosts stored before the rule of docs/host-uris.md get their URI in normal form, so
 * the duplicate check and registration find them; one that is the same host as another, or a URI no one may
 * add now (which the driver will not open), is left as it is and said at warn for an admin to remove.
 */
export async function normaliseStoredHostUris(
  db: Database,
  log: Logger,
): Promise<{ normalised: number; refused: number; duplicates: number }> {
  const rows = await listHostUris(db);
  const taken = new Set(rows.map((r) => r.uri));
  const counts = { normalised: 0, refused: 0, duplicates: 0 };
  for (const row of rows) {
    let normal: string;
    try {
      normal = parseHostUri(row.uri).uri;
    } catch (err) {
      if (!(err instanceof HostUriError)) throw err;
      counts.refused++;
      log.warn(
        { hostId: row.id, hostname: row.hostname, reason: err.message },
        'a stored host URI is one no one may add now: herd does not open it; remove the host',
      );
      continue;
    }
    if (normal === row.uri) continue;
    if (taken.has(normal)) {
      counts.duplicates++;
      log.warn(
        { hostId: row.id, hostname: row.hostname, uri: row.uri, sameAs: normal },
        'a stored host is the same host as another (URIs in normal form): remove one',
      );
      continue;
    }
    try {
      await setHostUri(db, row.id, normal);
    } catch (err) {
      // Another process normalised a twin first (uri is unique).
      counts.duplicates++;
      log.warn({ err, hostId: row.id, hostname: row.hostname, uri: row.uri }, 'host URI left as it was');
      continue;
    }
    taken.delete(row.uri);
    taken.add(normal);
    counts.normalised++;
    log.info({ hostId: row.id, from: row.uri, to: normal }, 'host URI stored in normal form');
  }
  return counts;
}
