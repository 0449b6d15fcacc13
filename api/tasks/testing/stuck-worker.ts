import { createLogger } from '../../../lib/log.js';
import { connect } from '../../../schema/db.js';
import { createHostDriver, HostConnections, type HostDriver } from '../../hosts/driver/index.js';
import { createVmTaskHandler } from '../../vms/vm-task-handler.js';
import { startWorker } from '../worker.js';

/**
 * A worker process for the killed-worker test: a real worker on DATABASE_URL whose libvirt `start` call never
 * returns (as a hung hypervisor would), so the test can kill it in the middle of a task.
 */
const log = createLogger(process.env.HERD_LOG_LEVEL ?? 'warn');
const database = connect(process.env.DATABASE_URL!, { log });
const hanging = async (uri: string): Promise<HostDriver> => {
  const driver = await createHostDriver(uri, log);
  return new Proxy(driver, {
    get(target, prop, receiver) {
      if (prop === 'start') return () => new Promise<void>(() => {});
      const value = Reflect.get(target, prop, receiver);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
};
await startWorker({
  db: database.db,
  pgPool: database.pool,
  log,
  handlers: {
    vm: createVmTaskHandler({ hosts: new HostConnections(log, hanging), saveDir: process.env.HERD_SAVE_DIR }),
  },
  workerId: process.env.HERD_WORKER_ID,
  heartbeatMs: 200,
});
process.stdout.write('worker started\n');
