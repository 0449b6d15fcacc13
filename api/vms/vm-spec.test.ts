import { describe, expect, test } from 'vitest';
import { domainXml } from '../hosts/driver/domain-xml.js';
import { buildDomainSpec, pxeBootUrl } from './vm-spec.js';

const vm = {
  id: 7,
  uuid: '0d7c0d0c-7a6b-4c3e-9f55-2f0c4a9e7b01',
  name: 'web',
  vcpus: 1,
  memory_mib: 128,
  boot_network: true,
};
const parts = {
  volumes: [{ name: 'root', path: '/var/lib/herd/web.img' }],
  nics: [
    { mac: '52:54:00:00:00:01', network: 'default' },
    { mac: '52:54:00:00:00:02', network: 'user' },
  ],
};
const networkImage = { name: 'busybox', iso_path: null, iso_volume_id: null };

describe('network installs on qemu’s user network', () => {
  test('while installing, the user-network NIC goes to qemu with herd’s script as its boot file', () => {
    const spec = buildDomainSpec(vm, parts, networkImage, undefined, 'http://10.0.2.2:8080');
    expect(spec.nics[1].bootUrl).toBe('http://10.0.2.2:8080/pxe/boot?mac=52:54:00:00:00:02');
    expect(spec.nics[0].bootUrl).toBeUndefined();
    const xml = domainXml(spec, 'qemu');
    expect(xml).toContain('xmlns:qemu="http://libvirt.org/schemas/domain/qemu/1.0"');
    expect(xml).toContain(
      'value="user,id=herdpxe0,bootfile=http://10.0.2.2:8080/pxe/boot?mac=52:54:00:00:00:02"',
    );
    expect(xml).toContain('mac=52:54:00:00:00:02,bootindex=1');
    // The libvirt NIC stays; the disk boots second, per device (no <os><boot> beside per-device orders).
    expect(xml).toContain('<source network="default"/>');
    expect(xml).not.toContain('<interface type="user">');
    expect(xml).toContain('<boot order="2"/>');
    expect(xml).not.toContain('<boot dev=');
  });

  test('installed, an ISO image, or no base URL: plain libvirt NICs', () => {
    for (const spec of [
      buildDomainSpec({ ...vm, boot_network: false }, parts, networkImage, undefined, 'http://h:1'),
      buildDomainSpec(
        vm,
        parts,
        { name: 'cd', iso_path: '/isos/cd.iso', iso_volume_id: 3 },
        undefined,
        'http://h:1',
      ),
      buildDomainSpec(vm, parts, networkImage),
    ]) {
      const xml = domainXml(spec, 'qemu');
      expect(xml).toContain('<interface type="user">');
      expect(xml).not.toContain('qemu:commandline');
    }
  });

  test('commas are escaped for qemu; a URL too long for DHCP’s boot file name is refused', () => {
    const spec = buildDomainSpec(vm, parts, networkImage, undefined, 'http://10.0.2.2:8080');
    spec.nics[1].bootUrl = 'http://h/a,b';
    expect(domainXml(spec, 'qemu')).toContain('bootfile=http://h/a,,b');
    expect(() => pxeBootUrl(`http://${'x'.repeat(100)}`, '52:54:00:00:00:02')).toThrow(/HERD_PXE_BASE_URL/);
  });
});

describe('a LUN of a herd iSCSI pool', () => {
  const lun = {
    name: 'unit:0:0:3',
    path: 'ip-192.0.2.10:3260-iscsi-iqn.2026-01.com.example:vms-lun-3',
    storage_type: 'iscsi',
    storage_name: 'san-a',
    storage_params: {
      portal: '192.0.2.10',
      port: 3260,
      targetIqn: 'iqn.2026-01.com.example:vms',
      chapUsername: 'herd',
    },
  };

  test('is a network disk qemu opens over iSCSI, CHAP through the host’s libvirt secret', () => {
    const spec = buildDomainSpec({ ...vm, boot_network: false }, { ...parts, volumes: [lun] }, undefined);
    const xml = domainXml(spec, 'qemu');
    expect(xml).toContain('<disk type="network" device="disk">');
    expect(xml).toContain('<source protocol="iscsi" name="iqn.2026-01.com.example:vms/3">');
    expect(xml).toContain('<host name="192.0.2.10" port="3260"/>');
    expect(xml).toContain('<iqn name="iqn.2026-12.org.herd:san-a"/>');
    expect(xml).toMatch(
      /<auth username="herd">\s*<secret type="iscsi" usage="herd-iscsi-san-a"\/>\s*<\/auth>/,
    );
    expect(xml).toContain('cache="none"');
  });

  test('without CHAP: no auth; a volume that is no LUN is refused', () => {
    const open = { ...lun, storage_params: { ...lun.storage_params, chapUsername: undefined } };
    const xml = domainXml(buildDomainSpec(vm, { ...parts, volumes: [open] }, undefined), 'qemu');
    expect(xml).toContain('protocol="iscsi"');
    expect(xml).not.toContain('<auth');
    expect(() => buildDomainSpec(vm, { ...parts, volumes: [{ ...lun, name: 'lun3' }] }, undefined)).toThrow(
      /not a LUN/,
    );
  });
});
