import { buildApp } from '../../../api/app.js';
import { loadConfig } from '../../../lib/config.js';
import { connect } from '../../../lib/db.js';
import { createLogger } from '../../../lib/log.js';
import { createRegistry } from '../../../lib/metrics.js';
import { routesWithVms } from './routes-with-vms.js';

/**
 * A herd API process on DATABASE_URL for tests, used while `herd serve --only api` does not serve the VM routes
 * yet: listens on a free loopback port and logs its address as the CLI does.
 */
const config = loadConfig();
const log = createLogger(config.logLevel);
const database = connect(config.databaseUrl!, { log });
const app = await buildApp({ config, db: database.db, log, registry: createRegistry() }, routesWithVms);
const address = await app.listen({ host: '127.0.0.1', port: 0 });
log.info({ address }, 'HTTP API listening');
process.on('SIGTERM', () => {
  app
    .close()
    .then(() => database.close())
    .then(() => process.exit(0));
});
