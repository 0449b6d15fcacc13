import { describe, expect, it } from 'vitest';
import { defaultSocketPath, parseLibvirtUri, sshRemoteCommand } from './uri.js';

describe('parseLibvirtUri', () => {
  it("sends the daemon the URI without transport, host and the remote driver's own parameters", () => {
    const cases: Array<[string, Partial<ReturnType<typeof parseLibvirtUri>>]> = [
      ['qemu:///system', { driver: 'qemu', transport: 'unix', name: 'qemu:///system', socket: null }],
      [
        'qemu+unix:///system?socket=/run/x/libvirt-sock',
        { transport: 'unix', name: 'qemu:///system', socket: '/run/x/libvirt-sock' },
      ],
      ['test+unix:///default?socket=/s/sock', { driver: 'test', name: 'test:///default', socket: '/s/sock' }],
      ['test+unix:///var/hosts/h1.xml?socket=/s/sock', { name: 'test:///var/hosts/h1.xml' }],
      [
        'qemu+tcp://10.0.0.5:16600/system',
        { transport: 'tcp', host: '10.0.0.5', port: 16600, name: 'qemu:///system' },
      ],
      [
        'qemu+tls://host.example/system?pkipath=/etc/p',
        { transport: 'tls', port: null, name: 'qemu:///system' },
      ],
      ['qemu://host.example/system', { transport: 'tls', host: 'host.example' }],
      [
        'qemu+ssh://admin@kvm7.example:2222/system?keyfile=/k&no_verify=1',
        { transport: 'ssh', user: 'admin', host: 'kvm7.example', port: 2222, name: 'qemu:///system' },
      ],
      ['qemu+tcp://[::1]:16509/system', { host: '[::1]', name: 'qemu:///system' }],
      ['qemu:///session', { name: 'qemu:///session' }],
      ['qemu:///embed?root=/tmp/x', { name: 'qemu:///embed?root=%2Ftmp%2Fx' }],
      ['qemu+unix:///system?name=qemu:///other', { name: 'qemu:///other' }],
    ];
    for (const [uri, expected] of cases) expect(parseLibvirtUri(uri), uri).toMatchObject(expected);
  });

  it('refuses what it cannot reach or would pass unchecked to a process', () => {
    for (const [uri, message] of [
      ['qemu+libssh2://h/system', /not supported/],
      ['qemu+ext:///system?command=/bin/x', /not supported/],
      ['qemu+carrier-pigeon://h/system', /unknown transport/],
      ['qemu+tcp:///system', /needs a host/],
      ['qemu+unix://host/system', /names no host/],
      ['qemu+ssh://u:pw@h/system', /password/],
      ['qemu+ssh://h/system?socket=relative', /socket path/],
      ['qemu+ssh://h/system?netcat=nc;reboot', /netcat/],
      ['qemu+ssh://h/system?mode=weird', /Unknown remote mode/],
      ['not a uri', /cannot parse/],
    ] as const) {
      expect(() => parseLibvirtUri(uri), uri).toThrow(message);
    }
  });
});

describe('defaultSocketPath', () => {
  const parsed = (uri: string) => parseLibvirtUri(uri);
  it("picks libvirtd's socket where it exists, else the driver's own daemon, as libvirt's auto mode does", () => {
    expect(defaultSocketPath(parsed('qemu:///system'), () => true)).toBe('/var/run/libvirt/libvirt-sock');
    expect(defaultSocketPath(parsed('qemu:///system'), () => false)).toBe('/var/run/libvirt/virtqemud-sock');
    expect(defaultSocketPath(parsed('qemu:///system?mode=legacy'), () => false)).toBe(
      '/var/run/libvirt/libvirt-sock',
    );
    expect(
      defaultSocketPath(parsed('qemu:///session'), () => true, { XDG_RUNTIME_DIR: '/run/user/1000' }),
    ).toBe('/run/user/1000/libvirt/libvirt-sock');
  });
});

describe('sshRemoteCommand', () => {
  it('runs nc -U on a named socket, else virt-ssh-helper with the name (nc on libvirtd as the fallback)', () => {
    expect(sshRemoteCommand(parseLibvirtUri('qemu+ssh://h/system?socket=/run/l/sock'))).toBe(
      `'nc' -U '/run/l/sock'`,
    );
    expect(sshRemoteCommand(parseLibvirtUri('qemu+ssh://h/system'))).toBe(
      `sh -c 'if command -v virt-ssh-helper >/dev/null 2>&1; then exec virt-ssh-helper '\\''qemu:///system'\\''; else exec '\\''nc'\\'' -U /var/run/libvirt/libvirt-sock; fi'`,
    );
  });
});
