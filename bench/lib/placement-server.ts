// The heap limits every herd process started from its command line runs with (app/cli.ts).
import '../../lib/small-heap.js';
import { buildApp } from '../../api/app.js';
import { apiRoutes } from '../../api/routes.js';
import { LiveView } from '../../ingest/live-view.js';
import { loadConfig } from '../../lib/config.js';
import { createLogger } from '../../lib/log.js';
import { createRegistry } from '../../lib/metrics.js';
import { connect } from '../../schema/db.js';

/**
 * The API process of the placement benchmark (bench/placement.ts): herd's HTTP API on DATABASE_URL with a live
 * view holding collectd figures for every host, as the ingest role would keep it. Logs its address.
 * BENCH_POOL_SIZE: PostgreSQL connections (default: herd's, DEFAULT_POOL_SIZE in schema/db.ts).
 */
const config = loadConfig();
const log = createLogger(config.logLevel);
const database = connect(config.databaseUrl!, {
  log,
  ...(process.env.BENCH_POOL_SIZE ? { max: Number(process.env.BENCH_POOL_SIZE) } : {}),
});
const liveView = new LiveView();

const hosts = await database.db.selectFrom('hosts').select(['id', 'hostname', 'memory_mib']).execute();
const now = Date.now() / 1000;
for (const h of hosts) {
  const base = { host: h.hostname, time: now, interval: 3600, pluginInstance: '', typeInstance: '' };
  const load = (h.id % 17) / 4;
  liveView.update(
    {
      ...base,
      plugin: 'load',
      type: 'load',
      dsTypes: ['gauge', 'gauge', 'gauge'],
      values: [load, load, load],
    },
    ['shortterm', 'midterm', 'longterm'],
  );
  const freeMiB = h.memory_mib * (0.3 + (h.id % 7) / 10);
  liveView.update(
    {
      ...base,
      plugin: 'memory',
      type: 'memory',
      typeInstance: 'free',
      dsTypes: ['gauge'],
      values: [freeMiB * 1024 * 1024],
    },
    ['value'],
  );
  for (const [state, value] of [
    ['idle', 60 + (h.id % 30)],
    ['user', 40 - (h.id % 30)],
  ] as const) {
    liveView.update(
      {
        ...base,
        plugin: 'cpu',
        pluginInstance: '',
        type: 'percent',
        typeInstance: state,
        dsTypes: ['gauge'],
        values: [value],
      },
      ['value'],
    );
  }
}

const app = await buildApp({ config, db: database.db, log, registry: createRegistry(), liveView }, apiRoutes);
const address = await app.listen({ host: '127.0.0.1', port: 0 });
// Its own line (the log level may hide info): the benchmark reads the address from it.
process.stdout.write(`${JSON.stringify({ msg: 'HTTP API listening', address, hosts: hosts.length })}\n`);
process.on('SIGTERM', () => {
  app
    .close()
    .then(() => database.close())
    .finally(() => process.exit(0));
});
