import { api, get, getAll } from '../api.js';
import { badge, fill, h, meter, toast } from '../dom.js';
import { ago, mib } from '../format.js';
import { form } from '../forms.js';
import type { Page } from '../page.js';
import { loadAll, state } from '../state.js';
import { dataTable } from '../table.js';
import type { Host } from '../types.js';

const TABS: Array<[string, string]> = [
  ['users', 'Users'],
  ['roles', 'Roles'],
  ['quotas', 'Quotas'],
  ['storage', 'Storage'],
  ['images', 'Images'],
  ['hosts', 'Hosts waiting'],
];

interface User {
  id: number;
  username: string;
  source: string;
  displayName?: string | null;
  isSuperAdmin: boolean;
  disabled?: boolean;
}

/** Administration: users, roles on pools, quotas, storage, install images, hosts waiting to be enabled. */
export const adminPage: Page = async (main, [tab = 'users']) => {
  const body = h('div', { class: 'admin-body' });
  fill(
    main,
    h('h1', null, 'Administration'),
    h(
      'nav',
      { class: 'tabs', 'aria-label': 'Administration' },
      TABS.map(([id, title]) =>
        h('a', { href: `#/admin/${id}`, 'aria-current': id === tab ? 'page' : undefined }, title),
      ),
    ),
    body,
  );
  const draw = SECTIONS[tab];
  if (!draw) throw new Error('No such administration page.');
  await draw(body);
  return undefined;
};

const poolOptions = (kind?: 'hardware' | 'vm'): Array<[string, string]> =>
  [...state.pools.values()]
    .filter((p) => !kind || p.kind === kind)
    .map((p) => [String(p.id), `${p.name} (${p.kind})`]);

const SECTIONS: Record<string, (el: HTMLElement) => Promise<void>> = {
  async users(el) {
    const table = dataTable<User>({
      label: 'Users',
      search: (u) => `${u.username} ${u.displayName ?? ''}`,
      columns: [
        { title: 'User', value: (u) => u.username },
        { title: 'Name', value: (u) => u.displayName ?? null, secondary: true },
        { title: 'Source', value: (u) => u.source },
        { title: 'Super-admin', value: (u) => (u.isSuperAdmin ? 'yes' : 'no') },
        {
          title: 'Status',
          value: (u) => (u.disabled ? 'disabled' : 'active'),
          render: (u) =>
            h(
              'button',
              {
                type: 'button',
                class: 'small',
                onclick: async () => {
                  await api('PATCH', `/api/v1/users/${u.id}`, { disabled: !u.disabled }).catch((e) =>
                    toast(e.message, 'error'),
                  );
                  await reload();
                },
              },
              u.disabled ? 'Enable' : 'Disable',
            ),
        },
      ],
    });
    const reload = async () => table.setRows(await getAll<User>('/api/v1/users'));
    const directory = h('div');
    fill(
      el,
      h('section', { class: 'card' }, h('h2', null, 'Users'), table.el),
      h(
        'section',
        { class: 'card' },
        form({
          title: 'Add a user',
          submitLabel: 'Add',
          fields: [
            { name: 'username', label: 'Username', required: true },
            {
              name: 'source',
              label: 'Source',
              type: 'select',
              options: [
                ['local', 'local'],
                ['ldap', 'directory (LDAP)'],
              ],
            },
            { name: 'password', label: 'Password (local users)', type: 'password' },
            { name: 'displayName', label: 'Name' },
            { name: 'isSuperAdmin', label: 'Super-admin', type: 'checkbox' },
          ],
          submit: async (values) => {
            await api('POST', '/api/v1/users', values);
            await reload();
          },
        }),
      ),
      h(
        'section',
        { class: 'card' },
        h('h2', null, 'Directory'),
        h(
          'button',
          {
            type: 'button',
            onclick: async () => {
              try {
                const list = await get<{
                  items: Array<{ username: string; displayName: string | null; userId: number | null }>;
                }>('/api/v1/directory/users');
                fill(
                  directory,
                  h(
                    'ul',
                    null,
                    list.items.map((u) =>
                      h(
                        'li',
                        null,
                        u.username,
                        u.displayName ? ` (${u.displayName})` : '',
                        u.userId ? ' — added' : '',
                      ),
                    ),
                  ),
                );
              } catch (err) {
                fill(directory, h('p', { class: 'muted' }, (err as Error).message));
              }
            },
          },
          'List directory users',
        ),
        directory,
      ),
    );
    await reload();
  },

  async roles(el) {
    const list = h('div');
    const poolSelect = h(
      'select',
      { 'aria-label': 'Pool', onchange: () => void show() },
      poolOptions().map(([v, l]) => h('option', { value: v }, l)),
    );
    const show = async () => {
      const poolId = Number(poolSelect.value);
      const perms = await getAll<{
        userId: number;
        username: string;
        role: string;
        inherited?: boolean;
        poolId: number;
      }>(`/api/v1/pools/${poolId}/permissions`).catch(() => []);
      fill(
        list,
        h(
          'ul',
          null,
          perms.map((p) =>
            h(
              'li',
              null,
              `${p.username}: ${p.role}`,
              p.inherited
                ? h(
                    'span',
                    { class: 'muted' },
                    ` (from ${state.pools.get(p.poolId)?.name ?? 'a parent pool'})`,
                  )
                : [
                    ' ',
                    h(
                      'button',
                      {
                        type: 'button',
                        class: 'small',
                        onclick: async () => {
                          await api('DELETE', `/api/v1/pools/${poolId}/permissions/${p.userId}`).catch((e) =>
                            toast(e.message, 'error'),
                          );
                          await show();
                        },
                      },
                      'Revoke',
                    ),
                  ],
            ),
          ),
        ),
      );
    };
    const users = await getAll<User>('/api/v1/users').catch(() => [] as User[]);
    fill(
      el,
      h(
        'section',
        { class: 'card' },
        h('h2', null, 'Roles on a pool'),
        h('label', null, 'Pool ', poolSelect),
        list,
      ),
      h(
        'section',
        { class: 'card' },
        form({
          title: 'Grant a role',
          submitLabel: 'Grant',
          fields: [
            {
              name: 'userId',
              label: 'User',
              type: 'select',
              options: users.map((u) => [String(u.id), u.username]),
            },
            {
              name: 'role',
              label: 'Role',
              type: 'select',
              options: [
                ['user', 'user'],
                ['monitor', 'monitor'],
                ['admin', 'admin'],
              ],
            },
          ],
          submit: async (v) => {
            await api('PUT', `/api/v1/pools/${poolSelect.value}/permissions/${v.userId}`, { role: v.role });
            await show();
          },
        }),
      ),
    );
    await show();
  },

  async quotas(el) {
    const usage = h('div');
    const poolSelect = h(
      'select',
      { 'aria-label': 'Pool', onchange: () => void show() },
      poolOptions().map(([v, l]) => h('option', { value: v }, l)),
    );
    type Line = Record<string, { used: number; limit: number | null }> & { username?: string };
    const show = async () => {
      const u = await get<{ total: Line; users: Line[] }>(`/api/v1/pools/${poolSelect.value}/usage`).catch(
        () => undefined,
      );
      if (!u) return fill(usage, h('p', { class: 'muted' }, 'No usage for this pool.'));
      const line = (title: string, l: Line) =>
        h(
          'div',
          { class: 'usage-line' },
          h('h3', null, title),
          (['vcpus', 'memoryMiB', 'storageGiB', 'nics', 'vms'] as const).map((k) =>
            h(
              'div',
              { class: 'bar-line' },
              h('span', { class: 'bar-title' }, k),
              meter(
                l[k].used,
                l[k].limit ?? 0,
                l[k].limit === null ? `${l[k].used} (no limit)` : `${l[k].used} of ${l[k].limit}`,
              ),
            ),
          ),
        );
      fill(
        usage,
        line('Total', u.total),
        u.users.map((x) => line(x.username ?? '', x)),
      );
    };
    const users = await getAll<User>('/api/v1/users').catch(() => [] as User[]);
    fill(
      el,
      h(
        'section',
        { class: 'card' },
        h('h2', null, 'Quotas and use'),
        h('label', null, 'Pool ', poolSelect),
        usage,
      ),
      h(
        'section',
        { class: 'card' },
        form({
          title: 'Set a quota',
          submitLabel: 'Set',
          fields: [
            {
              name: 'userId',
              label: 'User (none: the pool total)',
              type: 'select',
              options: [
                ['', '— pool total —'],
                ...users.map((u): [string, string] => [String(u.id), u.username]),
              ],
            },
            { name: 'vcpus', label: 'vCPUs', type: 'number' },
            { name: 'memoryMiB', label: 'Memory (MiB)', type: 'number' },
            { name: 'storageGiB', label: 'Storage (GiB)', type: 'number' },
            { name: 'nics', label: 'NICs', type: 'number' },
            { name: 'vms', label: 'VMs', type: 'number' },
          ],
          submit: async ({ userId, ...limits }) => {
            await api(
              'PUT',
              userId
                ? `/api/v1/pools/${poolSelect.value}/quotas/${userId}`
                : `/api/v1/pools/${poolSelect.value}/quota`,
              limits,
            );
            await show();
          },
        }),
      ),
    );
    await show();
  },

  async storage(el) {
    interface StoragePool {
      id: number;
      poolId: number;
      name: string;
      type: string;
      volumes?: number;
      sizeGiB?: number;
      attachedGiB?: number;
    }
    const volumes = h('div');
    const table = dataTable<StoragePool>({
      label: 'Storage pools',
      columns: [
        {
          title: 'Storage',
          value: (s) => s.name,
          render: (s) =>
            h('button', { type: 'button', class: 'link', onclick: () => void showVolumes(s) }, s.name),
        },
        { title: 'Type', value: (s) => s.type },
        { title: 'Pool', value: (s) => state.pools.get(s.poolId)?.name ?? String(s.poolId) },
        { title: 'Volumes', value: (s) => s.volumes ?? null, numeric: true },
        {
          title: 'Attached',
          value: (s) => s.attachedGiB ?? null,
          render: (s) =>
            meter(s.attachedGiB ?? 0, s.sizeGiB ?? 0, `${s.attachedGiB ?? 0} of ${s.sizeGiB ?? '?'} GiB`),
        },
      ],
    });
    const showVolumes = async (s: StoragePool) => {
      const list = await getAll<{ id: number; name: string; sizeGiB: number; vmId: number | null }>(
        `/api/v1/storage-pools/${s.id}/volumes`,
      );
      fill(
        volumes,
        h('h3', null, `Volumes of ${s.name}`),
        h(
          'ul',
          null,
          list.map((v) =>
            h(
              'li',
              null,
              `${v.name} — ${v.sizeGiB} GiB`,
              v.vmId
                ? [' — ', h('a', { href: `#/vm/${v.vmId}` }, state.vms.get(v.vmId)?.name ?? `VM ${v.vmId}`)]
                : ' — free',
            ),
          ),
        ),
      );
    };
    const reload = async () => table.setRows(await getAll<StoragePool>('/api/v1/storage-pools'));
    fill(
      el,
      h('section', { class: 'card' }, h('h2', null, 'Storage pools'), table.el, volumes),
      h(
        'section',
        { class: 'card' },
        form({
          title: 'Add storage',
          submitLabel: 'Add',
          fields: [
            { name: 'poolId', label: 'Hardware pool', type: 'select', options: poolOptions('hardware') },
            {
              name: 'type',
              label: 'Type',
              type: 'select',
              options: [
                ['libvirt', 'libvirt (adopt)'],
                ['nfs', 'NFS'],
                ['iscsi', 'iSCSI'],
                ['lvm', 'LVM'],
              ],
            },
            { name: 'name', label: 'Name', required: true },
            { name: 'server', label: 'NFS server' },
            { name: 'export', label: 'NFS export' },
            { name: 'portal', label: 'iSCSI portal' },
            { name: 'targetIqn', label: 'iSCSI target IQN' },
            { name: 'volumeGroup', label: 'LVM volume group' },
          ],
          submit: async (v) => {
            await api('POST', '/api/v1/storage-pools', { ...v, poolId: Number(v.poolId) });
            await reload();
          },
        }),
      ),
    );
    await reload();
  },

  async images(el) {
    interface Image {
      id: number;
      name: string;
      kind: string;
      kernel?: string | null;
      ipxeUrl?: string | null;
      isoVolumeId?: number | null;
    }
    const table = dataTable<Image>({
      label: 'Install images',
      columns: [
        { title: 'Image', value: (i) => i.name },
        { title: 'Kind', value: (i) => i.kind },
        {
          title: 'Source',
          value: (i) => i.kernel ?? i.ipxeUrl ?? (i.isoVolumeId ? `volume ${i.isoVolumeId}` : null),
        },
      ],
    });
    const reload = async () => table.setRows(await getAll<Image>('/api/v1/images'));
    fill(
      el,
      h('section', { class: 'card' }, h('h2', null, 'Install images'), table.el),
      h(
        'section',
        { class: 'card' },
        form({
          title: 'Add an image',
          submitLabel: 'Add',
          fields: [
            { name: 'name', label: 'Name', required: true },
            { name: 'kernel', label: 'Kernel URL', type: 'url' },
            { name: 'initrd', label: 'Initrd URL', type: 'url' },
            { name: 'cmdline', label: 'Kernel command line' },
            { name: 'ipxeUrl', label: 'iPXE script URL (instead of a kernel)', type: 'url' },
            { name: 'isoVolumeId', label: 'ISO volume id (instead)', type: 'number' },
          ],
          submit: async (v) => {
            await api('POST', '/api/v1/images', v);
            await reload();
          },
        }),
      ),
    );
    await reload();
  },

  async hosts(el) {
    const table = dataTable<Host>({
      label: 'Hosts waiting to be enabled',
      empty: 'No host is waiting.',
      columns: [
        {
          title: 'Host',
          value: (x) => x.hostname,
          render: (x) => h('a', { href: `#/host/${x.id}` }, x.hostname),
        },
        { title: 'URI', value: (x) => x.uri, secondary: true },
        { title: 'State', value: (x) => x.state, render: (x) => badge(x.state) },
        { title: 'CPUs', value: (x) => x.cpus, numeric: true },
        { title: 'Memory', value: (x) => x.memoryMiB, render: (x) => mib(x.memoryMiB), numeric: true },
        {
          title: 'Registered',
          value: (x) => x.lastSeen ?? null,
          render: (x) => ago(x.lastSeen),
          secondary: true,
        },
        {
          title: 'Enable',
          value: () => null,
          render: (x) =>
            h(
              'button',
              {
                type: 'button',
                class: 'small',
                onclick: async () => {
                  await api('PATCH', `/api/v1/hosts/${x.id}`, { enabled: true }).catch((e) =>
                    toast(e.message, 'error'),
                  );
                  await reload();
                },
              },
              'Enable',
            ),
        },
      ],
    });
    const reload = async () => {
      await loadAll();
      table.setRows([...state.hosts.values()].filter((x) => !x.enabled));
    };
    fill(
      el,
      h('section', { class: 'card' }, h('h2', null, 'Hosts waiting to be enabled'), table.el),
      h(
        'section',
        { class: 'card' },
        form({
          title: 'Add a host',
          submitLabel: 'Add',
          fields: [
            { name: 'uri', label: 'libvirt URI', required: true, placeholder: 'qemu+ssh://root@host/system' },
            { name: 'poolId', label: 'Hardware pool', type: 'select', options: poolOptions('hardware') },
          ],
          submit: async (v) => {
            await api('POST', '/api/v1/hosts', { uri: v.uri, poolId: Number(v.poolId) });
            await reload();
          },
        }),
      ),
    );
    await reload();
  },
};
