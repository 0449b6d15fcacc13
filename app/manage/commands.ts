// `herd pools|hosts|vms|quota|login …`: operators' commands over herd's HTTP API (app/cli-commands.ts adds them).
import os from 'node:os';
import { Argument, type Command, InvalidArgumentError, Option } from 'commander';
import { LIMITS } from '../../api/vms/limits.js';
import { VM_ACTIONS, VM_STATES } from '../../api/vms/vm-states.js';
import {
  ApiError,
  ClientError,
  DEFAULT_URL,
  HerdClient,
  resolveSettings,
  saveCredentials,
} from './client.js';
import { type Column, cell, fields, json, table } from './output.js';
import { readSecret } from './prompt.js';

interface List<T> {
  items: T[];
  total: number;
}
type Row = Record<string, any>;

interface CommonOptions {
  url?: string;
  token?: string;
  json?: boolean;
}

/** What an action prints: the table form, and the value `--json` prints. */
interface Printed {
  text: string;
  value: unknown;
  /** Exit code (default 0), e.g. 1 for a task that failed under `--wait`. */
  code?: number;
}

const MAX_ID = 2_147_483_647;

function id(value: string): number {
  if (!/^[0-9]+$/.test(value) || Number(value) < 1 || Number(value) > MAX_ID)
    throw new InvalidArgumentError(`must be an id (1 to ${MAX_ID})`);
  return Number(value);
}

function count(value: string): number {
  if (!/^[0-9]+$/.test(value) || Number(value) > MAX_ID)
    throw new InvalidArgumentError(`must be a whole number (0 to ${MAX_ID})`);
  return Number(value);
}

/** A quota limit: a number, or `unlimited`/`none` to lift it. */
function limit(value: string): number | null {
  if (value === 'unlimited' || value === 'none') return null;
  if (!/^[0-9]+(\.[0-9]+)?$/.test(value)) throw new InvalidArgumentError('must be a number, or "unlimited"');
  return Number(value);
}

/** A VM's or VM pool's limit: a whole number, or `none` to lift it (kept as 'none': commander turns null into ''). */
function limitValue(value: string): number | 'none' {
  if (value === 'none') return value;
  if (!/^[0-9]{1,16}$/.test(value)) throw new InvalidArgumentError('must be a whole number, or "none"');
  return Number(value);
}

/** The option of each limit (`--net-inbound-kibps` for netInboundKiBps) and where commander puts its value. */
const LIMIT_OPTIONS = LIMITS.map((l) => {
  const flag = l.field.replace(/KiB/g, 'Kib').replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
  const key = flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
  return { ...l, flag: `--${flag} <n>`, key };
});

/** `vms limits` / `pools limits`: sets the limits given (none given: only shows them), then shows them all. */
function limitsCommand(parent: Command, what: 'VM' | 'VM pool', path: string): void {
  let command = apiCommand(
    parent,
    'limits',
    `show a ${what}'s limits, or set those given (a number, or "none" to lift it)${
      what === 'VM' ? "; EFFECTIVE is what the host applies, the lower of the VM's and its pool's" : ''
    }`,
  ).argument('<id>', `${what} id`, id);
  for (const o of LIMIT_OPTIONS) command = command.option(o.flag, o.what, limitValue);
  act(command, async (client, [itemId], opts) => {
    const body = Object.fromEntries(
      LIMIT_OPTIONS.filter((o) => opts[o.key] !== undefined).map((o) => [
        o.field,
        opts[o.key] === 'none' ? null : opts[o.key],
      ]),
    );
    const item = Object.keys(body).length
      ? await client.patch<Row>(`${path}/${itemId}`, body)
      : await client.get<Row>(`${path}/${itemId}`);
    const rows = LIMIT_OPTIONS.map((o) => ({
      limit: o.flag.split(' ')[0].slice(2),
      own: item[o.field],
      effective: item[`effective${o.field[0].toUpperCase()}${o.field.slice(1)}`],
    }));
    const columns: Column<Row>[] = [
      { header: 'LIMIT', value: (r) => r.limit },
      { header: what === 'VM' ? 'OWN' : 'VALUE', value: (r) => r.own ?? '-', align: 'right' },
      ...(what === 'VM'
        ? [{ header: 'EFFECTIVE', value: (r: Row) => r.effective ?? '-', align: 'right' as const }]
        : []),
    ];
    return { text: table(rows, columns), value: item };
  });
}

/** A command of the API group: `--url`, `--token`, `--json`, and an action whose output is printed. */
function apiCommand(parent: Command, name: string, description: string): Command {
  return parent
    .command(name)
    .description(description)
    .option('--url <url>', `herd's address (env HERD_URL; default ${DEFAULT_URL})`)
    .option('--token <token>', 'API token (env HERD_TOKEN, or what `herd login --save` kept)')
    .option('--json', "print the API's JSON answer instead of a table");
}

function act(
  command: Command,
  run: (client: HerdClient, args: any[], opts: any) => Promise<Printed>,
): Command {
  return command.action(async (...all: unknown[]) => {
    const cmd = all.at(-1) as Command;
    const opts = cmd.opts<CommonOptions & Record<string, unknown>>();
    let code = 0;
    try {
      const { url, token } = await resolveSettings(opts);
      const printed = await run(new HerdClient(url, token), cmd.processedArgs, opts);
      process.stdout.write(opts.json ? json(printed.value) : printed.text);
      code = printed.code ?? 0;
    } catch (err) {
      code = 1;
      process.stderr.write(`herd: ${describeError(err)}\n`);
    }
    // Leave explicitly once stdout has the output (an imported module's beforeExit hook would exit with 0).
    await new Promise<void>((resolve) => process.stdout.write('', () => resolve()));
    process.exit(code);
  });
}

export function describeError(err: unknown): string {
  if (err instanceof ApiError) {
    const hint =
      err.status === 401
        ? '\n  log in with `herd login --save`, or pass --token / set HERD_TOKEN to an API token'
        : '';
    const body = err.body as Record<string, unknown> | undefined;
    const extra =
      body && typeof body === 'object'
        ? Object.entries(body)
            .filter(([k]) => k !== 'error' && k !== 'message')
            .map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : String(v)}`)
            .join(' ')
        : '';
    return `${err.status} ${err.code}: ${err.message}${extra ? ` (${extra})` : ''}${hint}`;
  }
  if (err instanceof ClientError) return err.message;
  return err instanceof Error ? err.message : String(err);
}

function listed<T extends Row>(list: List<T>, columns: Column<T>[]): Printed {
  let text = table(list.items, columns);
  if (list.total > list.items.length)
    text += `(${list.items.length} of ${list.total}; --limit and --offset page through them)\n`;
  return { text, value: list };
}

const shown = (value: Row): Printed => ({ text: fields(value), value });

function withPaging(command: Command): Command {
  return command
    .option('--limit <n>', 'at most this many (API default 100, up to 1000)', id)
    .option('--offset <n>', 'skip this many', count);
}

/** `<noun> list`: the API's list at `path`, the options in `filters` (option → query parameter) as its query. */
function listCommand(
  parent: Command,
  description: string,
  path: string,
  columns: Column<Row>[],
  filters: Record<string, string>,
  configure: (command: Command) => Command,
): void {
  act(configure(withPaging(apiCommand(parent, 'list', description))), async (client, _args, opts) => {
    const query: Record<string, string | number | undefined> = { limit: opts.limit, offset: opts.offset };
    for (const [option, param] of Object.entries(filters)) query[param] = opts[option];
    return listed(await client.get<List<Row>>(path, query), columns);
  });
}

/** `<noun> show <id>`: the API's `path/<id>` as a field table. */
function showCommand(parent: Command, what: string, path: string): void {
  act(
    apiCommand(parent, 'show', `one ${what}`).argument('<id>', `${what} id`, id),
    async (client, [itemId]) => shown(await client.get<Row>(`${path}/${itemId}`)),
  );
}

const POOL_COLUMNS: Column<Row>[] = [
  { header: 'ID', value: (p) => p.id, align: 'right' },
  { header: 'NAME', value: (p) => p.name },
  { header: 'KIND', value: (p) => p.kind },
  { header: 'PARENT', value: (p) => p.parentId, align: 'right' },
  { header: 'ROLE', value: (p) => p.role },
];

const HOST_COLUMNS: Column<Row>[] = [
  { header: 'ID', value: (h) => h.id, align: 'right' },
  { header: 'HOSTNAME', value: (h) => h.hostname },
  { header: 'POOL', value: (h) => h.poolId, align: 'right' },
  { header: 'STATE', value: (h) => h.state },
  { header: 'ENABLED', value: (h) => h.enabled },
  { header: 'CPUS', value: (h) => h.cpus, align: 'right' },
  { header: 'MEMORY_MIB', value: (h) => h.memoryMiB, align: 'right' },
  { header: 'VMS', value: (h) => h.vms?.length, align: 'right' },
  { header: 'LOAD1', value: (h) => h.live?.load1, align: 'right' },
  {
    header: 'VIRT',
    value: (h) =>
      h.effectiveVirtType === undefined ? undefined : `${h.virtType}:${h.effectiveVirtType ?? '-'}`,
  },
  { header: 'URI', value: (h) => h.uri },
];

const VM_COLUMNS: Column<Row>[] = [
  { header: 'ID', value: (v) => v.id, align: 'right' },
  { header: 'NAME', value: (v) => v.name },
  { header: 'POOL', value: (v) => v.poolId, align: 'right' },
  { header: 'STATE', value: (v) => v.state },
  { header: 'HOST', value: (v) => v.hostId, align: 'right' },
  { header: 'VCPUS', value: (v) => v.vcpus, align: 'right' },
  { header: 'MEMORY_MIB', value: (v) => v.memoryMiB, align: 'right' },
  { header: 'OWNER', value: (v) => v.ownerId, align: 'right' },
  { header: 'TASK', value: (v) => v.taskId, align: 'right' },
];

const TASK_COLUMNS: Column<Row>[] = [
  { header: 'TASK', value: (t) => t.id, align: 'right' },
  { header: 'ACTION', value: (t) => t.action },
  { header: 'TARGET', value: (t) => `${t.targetType} ${t.targetId}` },
  { header: 'STATE', value: (t) => t.state },
  { header: 'ERROR', value: (t) => t.error },
];

const RESOURCES = [
  // API field, table heading, option, where commander puts the option's value
  ['vcpus', 'VCPUS', '--vcpus <n>', 'vcpus'],
  ['memoryMiB', 'MEMORY_MIB', '--memory-mib <n>', 'memoryMib'],
  ['storageGiB', 'STORAGE_GIB', '--storage-gib <n>', 'storageGib'],
  ['nics', 'NICS', '--nics <n>', 'nics'],
  ['vms', 'VMS', '--vms <n>', 'vms'],
] as const;

const usedOfLimit = (line: Row, key: string) => {
  const u = line?.[key];
  return u ? `${cell(u.used)}/${u.limit === null ? '-' : cell(u.limit)}` : '-';
};

const FINISHED = new Set(['done', 'failed', 'cancelled']);

async function waitForTask(client: HerdClient, taskId: number, timeoutSeconds: number): Promise<Row> {
  const deadline = Date.now() + timeoutSeconds * 1000;
  for (;;) {
    const task = await client.get<Row>(`/api/v1/tasks/${taskId}`);
    if (FINISHED.has(task.state) || Date.now() > deadline) return task;
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** Adds the management commands to herd's command line. */
export function registerManageCommands(program: Command): void {
  act(
    apiCommand(
      program,
      'login',
      'log in with a password and print an API token (--save keeps it for the CLI)',
    )
      .option('--username <name>', 'who logs in (asked when not given)')
      .option('--save', 'keep the token for later commands (0600 file under ~/.config/herd)')
      .option('--expires-in-days <days>', 'token lifetime (API default 90)', id),
    async (client, _args, opts) => {
      const username = opts.username ?? (await readSecret('username: ', { echo: true }));
      const password = await readSecret('password: ');
      const session = await client.post<{ token: string }>('/api/v1/session', { username, password });
      const authed = new HerdClient(client.url, session.token);
      const made = await authed.post<{ id: number; token: string; name: string; expiresAt: string }>(
        '/api/v1/tokens',
        {
          name: `herd cli ${os.userInfo().username}@${os.hostname()}`.slice(0, 200),
          ...(opts.expiresInDays ? { expiresInDays: opts.expiresInDays } : {}),
        },
      );
      // The login session was only the way to the token.
      await authed.request('DELETE', '/api/v1/session').catch(() => undefined);
      let text = `${made.token}\n`;
      if (opts.save) {
        const file = await saveCredentials({ url: client.url, token: made.token });
        text = `logged in as ${username} on ${client.url}; token ${made.name} (expires ${made.expiresAt}) kept in ${file}\n`;
      }
      return { text, value: { ...made, url: client.url } };
    },
  );

  const pools = program.command('pools').description('pools: list, show, create, limits');
  listCommand(
    pools,
    'the pools you may see',
    '/api/v1/pools',
    POOL_COLUMNS,
    { kind: 'kind', parent: 'parentId' },
    (c) =>
      c
        .addOption(new Option('--kind <kind>', 'only this kind').choices(['hardware', 'vm']))
        .option('--parent <id>', 'only the children of this pool', id),
  );
  showCommand(pools, 'pool', '/api/v1/pools');
  limitsCommand(pools, 'VM pool', '/api/v1/pools');
  act(
    apiCommand(pools, 'create', 'a new pool')
      .argument('<name>', 'its name')
      .addOption(
        new Option('--kind <kind>', 'hardware pools hold hosts, VM pools VMs')
          .choices(['hardware', 'vm'])
          .makeOptionMandatory(),
      )
      .option('--parent <id>', 'the hardware pool it goes in (none: a root pool, super-admin only)', id),
    async (client, [name], opts) => {
      const created = await client.post<Row>('/api/v1/pools', {
        name,
        kind: opts.kind,
        ...(opts.parent ? { parentId: opts.parent } : {}),
      });
      return shown(created);
    },
  );

  const hosts = program.command('hosts').description('hosts: list, show, enable, disable, virt-type');
  listCommand(hosts, 'the hosts you may see', '/api/v1/hosts', HOST_COLUMNS, { pool: 'poolId' }, (c) =>
    c.option('--pool <id>', 'only this pool', id),
  );
  showCommand(hosts, 'host', '/api/v1/hosts');
  for (const [name, enabled] of [
    ['enable', true],
    ['disable', false],
  ] as const) {
    act(
      apiCommand(hosts, name, `${name} a host for placement`).argument('<id>', 'host id', id),
      async (client, [hostId]) => {
        const host = await client.patch<Row>(`/api/v1/hosts/${hostId}`, { enabled });
        return { text: table([host], HOST_COLUMNS), value: host };
      },
    );
  }
  act(
    apiCommand(hosts, 'virt-type', "set how a host's guests are virtualized, and show why")
      .argument('<id>', 'host id', id)
      .addArgument(
        new Argument(
          '<type>',
          'auto: KVM only where offered and the CPU shows vmx/svm; kvm; qemu (TCG)',
        ).choices(['auto', 'kvm', 'qemu']),
      ),
    async (client, [hostId, virtType]) => {
      const host = await client.patch<Row>(`/api/v1/hosts/${hostId}`, { virtType });
      return { text: `${table([host], HOST_COLUMNS)}${host.virtTypeReason}\n`, value: host };
    },
  );

  const vms = program
    .command('vms')
    .description(`VMs: list, show, limits, and the actions ${VM_ACTIONS.join(', ')}`);
  listCommand(
    vms,
    'the VMs you may see',
    '/api/v1/vms',
    VM_COLUMNS,
    { pool: 'poolId', host: 'hostId', state: 'state' },
    (c) =>
      c
        .option('--pool <id>', 'only this pool', id)
        .option('--host <id>', 'only on this host', id)
        .addOption(new Option('--state <state>', 'only in this state').choices([...VM_STATES])),
  );
  showCommand(vms, 'VM', '/api/v1/vms');
  limitsCommand(vms, 'VM', '/api/v1/vms');
  for (const action of VM_ACTIONS) {
    let command = apiCommand(vms, action, `${action} a VM (queues a task)`)
      .argument('<id>', 'VM id', id)
      .option('--wait', 'wait for the task to finish; exit 1 if it fails')
      .option('--wait-seconds <s>', 'how long --wait waits', id, 600);
    if (action === 'start' || action === 'restore' || action === 'migrate')
      command = command.option(
        '--host <id>',
        action === 'migrate' ? 'destination host' : 'place on this host',
        id,
      );
    if (action === 'shutdown')
      command = command
        .option('--timeout <s>', 'how long the guest may take (API default 120)', id)
        .option('--force', 'power off if the guest does not shut down in time');
    act(command, async (client, [vmId], opts) => {
      const { taskId } = await client.post<{ taskId: number }>(`/api/v1/vms/${vmId}/actions`, {
        action,
        ...(opts.host ? { hostId: opts.host } : {}),
        ...(opts.timeout ? { timeoutSeconds: opts.timeout } : {}),
        ...(opts.force ? { force: true } : {}),
      });
      const task = opts.wait
        ? await waitForTask(client, taskId, opts.waitSeconds)
        : await client.get<Row>(`/api/v1/tasks/${taskId}`);
      const failed = opts.wait && task.state !== 'done';
      return { text: table([task], TASK_COLUMNS), value: task, code: failed ? 1 : 0 };
    });
  }

  const quota = program.command('quota').description("quotas: a pool's usage against them, and setting them");
  act(
    apiCommand(
      quota,
      'show',
      "a pool's usage and limits, in total and per user (used/limit; - is unlimited)",
    ).argument('<poolId>', 'pool id', id),
    async (client, [poolId]) => {
      const usage = await client.get<Row>(`/api/v1/pools/${poolId}/usage`);
      const lines: Row[] = [
        { who: '(pool total)', ...usage.total },
        ...usage.users.map((u: Row) => ({ who: u.username, ...u })),
      ];
      const columns: Column<Row>[] = [
        { header: 'USER', value: (l) => l.who },
        ...RESOURCES.map(([key, header]) => ({
          header,
          value: (l: Row) => usedOfLimit(l, key),
          align: 'right' as const,
        })),
        { header: 'LIMIT_POOL', value: (l) => l.limitPoolId, align: 'right' },
      ];
      return { text: table(lines, columns), value: usage };
    },
  );
  let set = apiCommand(
    quota,
    'set',
    "set limits of a user's quota (--user) or of the pool total; limits not given stay as they are",
  )
    .argument('<poolId>', 'pool id', id)
    .option('--user <user>', 'user id or username (none: the pool total over all users)');
  for (const [, , flag] of RESOURCES) set = set.option(flag, 'limit, or "unlimited"', limit);
  act(set, async (client, [poolId], opts) => {
    const userId = opts.user === undefined ? null : await userIdOf(client, opts.user);
    const current = (await client.get<List<Row>>(`/api/v1/pools/${poolId}/quotas`)).items.find(
      (q) => q.userId === userId,
    );
    const body: Row = {};
    for (const [key, , , opt] of RESOURCES) {
      const given = opts[opt];
      body[key] = given !== undefined ? given : (current?.[key] ?? null);
    }
    if (RESOURCES.every(([, , , opt]) => opts[opt] === undefined))
      throw new ClientError(
        `give at least one limit: ${RESOURCES.map(([, , f]) => f.split(' ')[0]).join(', ')}`,
      );
    const url =
      userId === null ? `/api/v1/pools/${poolId}/quota` : `/api/v1/pools/${poolId}/quotas/${userId}`;
    const saved = await client.put<Row>(url, body);
    return shown(saved);
  });
}

async function userIdOf(client: HerdClient, user: string): Promise<number> {
  if (/^[0-9]+$/.test(user)) return id(user);
  for (let offset = 0; ; offset += 1000) {
    const page = await client.get<List<Row>>('/api/v1/users', { limit: 1000, offset });
    const found = page.items.find((u) => u.username === user);
    if (found) return found.id;
    if (offset + page.items.length >= page.total || page.items.length === 0)
      throw new ClientError(`no user named ${user}`);
  }
}
