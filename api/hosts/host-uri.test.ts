import { describe, expect, test } from 'vitest';
import { checkHostUri, type HostUriCaller, HostUriError } from './host-uri.js';

/** The URI in normal form, or the refusal's status and a word its message must hold. */
function outcome(uri: string, caller: HostUriCaller): string | { status: number; message: string } {
  try {
    return checkHostUri(uri, caller).uri;
  } catch (err) {
    if (!(err instanceof HostUriError)) throw err;
    return { status: err.status, message: err.message };
  }
}

describe('accepted, in normal form', () => {
  const table: Array<[string, HostUriCaller, string]> = [
    ['qemu+ssh://root@hv1.example/system', 'pool-admin', 'qemu+ssh://root@hv1.example/system'],
    ['QEMU+SSH://root@HV1.Example:22/system', 'pool-admin', 'qemu+ssh://root@hv1.example/system'],
    [
      'qemu+ssh://hv1:2222/system?no_tty=1&mode=direct',
      'pool-admin',
      'qemu+ssh://hv1:2222/system?mode=direct&no_tty=1',
    ],
    ['qemu+ssh://hv1/system?proxy=Native', 'pool-admin', 'qemu+ssh://hv1/system?proxy=native'],
    ['qemu+tls://hv1.example/system', 'pool-admin', 'qemu+tls://hv1.example/system'],
    ['qemu://hv1.example:16514/system', 'pool-admin', 'qemu+tls://hv1.example/system'],
    ['qemu+tcp://10.0.0.5:16509/session', 'pool-admin', 'qemu+tcp://10.0.0.5/session'],
    ['qemu+tcp://10.0.0.5:16510//system/', 'pool-admin', 'qemu+tcp://10.0.0.5:16510/system'],
    ['qemu+tcp://[2001:DB8::1]:16510/system', 'pool-admin', 'qemu+tcp://[2001:db8::1]:16510/system'],
    [
      'qemu+unix:///system?socket=/run/x//libvirt-sock',
      'super-admin',
      'qemu+unix:///system?socket=/run/x/libvirt-sock',
    ],
    ['qemu+unix:///system', 'super-admin', 'qemu+unix:///system'],
    ['test+unix:///default?socket=/run/x/sock', 'super-admin', 'test+unix:///default?socket=/run/x/sock'],
    [
      'test+unix:///srv/hosts/a.xml?socket=/run/x/sock',
      'super-admin',
      'test+unix:///srv/hosts/a.xml?socket=/run/x/sock',
    ],
    ['qemu:///system', 'super-admin', 'qemu:///system'],
    ['qemu:///session', 'super-admin', 'qemu:///session'],
    ['test:///default', 'super-admin', 'test:///default'],
    ['test:///tmp/herd-x/rack-a-01.xml', 'super-admin', 'test:///tmp/herd-x/rack-a-01.xml'],
    ['test:////tmp//herd-x/rack-a-01.xml', 'super-admin', 'test:///tmp/herd-x/rack-a-01.xml'],
    [
      'qemu+ssh://hv1/system?keyfile=/root/.ssh/id_herd&no_verify=1',
      'super-admin',
      'qemu+ssh://hv1/system?keyfile=/root/.ssh/id_herd&no_verify=1',
    ],
    [
      'qemu+tls://hv1/system?pkipath=/etc/pki/herd&tls_priority=NORMAL:-VERS-SSL3.0',
      'super-admin',
      'qemu+tls://hv1/system?pkipath=/etc/pki/herd&tls_priority=NORMAL:-VERS-SSL3.0',
    ],
    ['qemu+ssh://hv1/system?%6Do%64e=auto', 'pool-admin', 'qemu+ssh://hv1/system?mode=auto'],
  ];
  test.each(table)('%s by the %s', (uri, caller, normal) => {
    expect(outcome(uri, caller)).toBe(normal);
  });
});

describe('refused', () => {
  const table: Array<[string, HostUriCaller, 400 | 403, string]> = [
    // A program run by libvirt: nobody.
    ['qemu+ext:///system?command=/tmp/x.sh', 'super-admin', 400, 'ext transport'],
    ['QEMU+EXT:///system?command=/tmp/x.sh', 'super-admin', 400, 'ext transport'],
    ['qemu+ssh://hv1/system?command=/tmp/x.sh', 'super-admin', 400, 'command makes libvirt run a program'],
    ['qemu+ssh://hv1/system?COMMAND=/tmp/x.sh', 'super-admin', 400, 'command'],
    ['qemu+ssh://hv1/system?%63ommand=/tmp/x.sh', 'super-admin', 400, 'command'],
    ['qemu+ssh://hv1/system?netcat=/tmp/x.sh', 'super-admin', 400, 'netcat makes libvirt run a program'],
    ['qemu+ssh://hv1/system?name=test:///etc/shadow', 'super-admin', 400, 'name'],
    ['qemu+ssh://hv1/system?mode=auto;command=/tmp/x.sh', 'super-admin', 400, '";"'],
    ['qemu+libssh2://hv1/system', 'super-admin', 400, 'libssh2'],
    ['xen+ssh://hv1/system', 'super-admin', 400, 'driver xen'],
    ['remote://hv1/', 'super-admin', 400, 'driver remote'],
    ['qemu+ssh+ext://hv1/system', 'super-admin', 400, 'more than one transport'],
    // Unknown, repeated, malformed.
    ['qemu+ssh://hv1/system?foo=bar', 'super-admin', 400, '"foo" is not one herd accepts'],
    ['qemu+ssh://hv1/system?mode=auto&mode=direct', 'super-admin', 400, 'given twice'],
    ['qemu+ssh://hv1/system?mode=auto&MODE=direct', 'super-admin', 400, 'given twice'],
    ['qemu+ssh://hv1/system?mode=%zz', 'super-admin', 400, 'two hex digits'],
    ['qemu+ssh://hv1/system?mode=a%00b', 'super-admin', 400, 'control'],
    ['qemu+ssh://hv1/system?=x', 'super-admin', 400, 'without a name'],
    ['qemu+ssh://hv1/system?no_tty=yes', 'super-admin', 400, '0 or 1'],
    ['qemu+ssh://hv1/system?proxy=/bin/sh', 'super-admin', 400, 'one of auto, netcat, native'],
    ['qemu+tcp://hv1/system?mode=auto', 'super-admin', 400, 'not read by the tcp transport'],
    ['qemu:///system?socket=/run/x', 'super-admin', 400, 'not read by the local transport'],
    ['qemu+ssh://hv1/system#frag', 'super-admin', 400, 'fragment'],
    ['qemu+ssh://hv 1/system', 'super-admin', 400, 'spaces'],
    ['qemu+ssh://hv1..example/system', 'super-admin', 400, 'not a host name'],
    ['qemu+ssh://-oProxyCommand=x/system', 'super-admin', 400, 'not a host name'],
    ['qemu+ssh://-l@hv1/system', 'super-admin', 400, 'user name'],
    ['qemu+ssh://a@b@hv1/system', 'super-admin', 400, 'more than one @'],
    ['qemu+ssh://hv%31/system', 'super-admin', 400, 'percent-encoding'],
    ['qemu+tcp://::1/system', 'super-admin', 400, 'brackets'],
    ['qemu+tcp://[::g]/system', 'super-admin', 400, 'not an IPv6 address'],
    ['qemu+tcp://hv1:70000/system', 'super-admin', 400, 'port'],
    ['qemu+tcp://hv1:0/system', 'super-admin', 400, 'port'],
    ['qemu+tls:///system', 'super-admin', 400, 'needs a host name'],
    ['qemu+tcp://hv1/', 'super-admin', 400, 'empty'],
    ['qemu+tcp://hv1/embed', 'super-admin', 400, '/system or /session'],
    ['qemu:///embed?root=/tmp', 'super-admin', 400, '/system or /session'],
    ['test+tcp://hv1/default', 'super-admin', 400, 'qemu only'],
    ['test:///etc/shadow', 'super-admin', 400, '.xml'],
    ['test:///tmp/../etc/x.xml', 'super-admin', 400, '".."'],
    ['test:///tmp/./x.xml', 'super-admin', 400, '".."'],
    ['test:///tmp/%2e%2e/x.xml', 'super-admin', 400, 'percent-encoding'],
    ['test://hv1/tmp/x.xml', 'super-admin', 400, 'qemu only'],
    ['qemu+unix://hv1/system', 'super-admin', 400, 'names no host'],
    ['qemu+unix:///system?socket=/run/../etc/x', 'super-admin', 400, '".."'],
    ['qemu+unix:///system?socket=relative/sock', 'super-admin', 400, 'absolute'],
    ['not a uri', 'super-admin', 400, 'spaces'],
    ['qemu/system', 'super-admin', 400, 'expected driver'],
    // Local files, sockets and weakened checks: the super-admin only.
    ['test:///etc/shadow.xml', 'pool-admin', 403, 'only the super-admin'],
    ['test:///default', 'pool-admin', 403, 'only the super-admin'],
    ['qemu:///system', 'pool-admin', 403, 'only the super-admin'],
    ['qemu+unix:///system', 'pool-admin', 403, 'qemu+unix'],
    ['qemu+unix:///system?socket=/run/x', 'pool-admin', 403, 'socket'],
    ['qemu+ssh://hv1/system?keyfile=/root/.ssh/id_rsa', 'pool-admin', 403, 'keyfile'],
    ['qemu+ssh://hv1/system?no_verify=1', 'pool-admin', 403, 'no_verify'],
    ['qemu+ssh://hv1/system?no_verify=0', 'pool-admin', 403, 'no_verify'],
    ['qemu+tls://hv1/system?pkipath=/etc/pki', 'pool-admin', 403, 'pkipath'],
    ['qemu+tls://hv1/system?no_sanity=1', 'pool-admin', 403, 'no_sanity'],
    ['qemu+tcp://hv1/system?authfile=/etc/shadow', 'pool-admin', 403, 'authfile'],
    ['qemu+tls://hv1/system?tls_priority=NONE', 'pool-admin', 403, 'tls_priority'],
  ];
  test.each(table)('%s by the %s: %i', (uri, caller, status, word) => {
    const got = outcome(uri, caller);
    expect(got).toMatchObject({ status });
    expect((got as { message: string }).message).toContain(word);
    expect((got as { message: string }).message).toContain('docs/host-uris.md');
  });
});

test('the same host written two ways is one URI', () => {
  const pairs = [
    ['test:////tmp/x/rack-a-01.xml', 'test:///tmp/x/rack-a-01.xml'],
    ['qemu+ssh://root@HV1/system?no_tty=1&mode=auto', 'qemu+ssh://root@hv1:22//system?mode=auto&no_tty=1'],
    ['qemu://hv1/system', 'qemu+tls://hv1:16514/system'],
  ];
  for (const [a, b] of pairs)
    expect(checkHostUri(a, 'super-admin').uri).toBe(checkHostUri(b, 'super-admin').uri);
});

test('the parts: kind, transport, host', () => {
  expect(checkHostUri('qemu+ssh://root@hv1/system', 'pool-admin')).toMatchObject({
    driver: 'qemu',
    transport: 'ssh',
    kind: 'network',
    user: 'root',
    host: 'hv1',
    path: '/system',
    params: [],
  });
  expect(checkHostUri('qemu+unix:///system?socket=/run/s', 'super-admin')).toMatchObject({
    transport: 'unix',
    kind: 'local-socket',
    params: [['socket', '/run/s']],
  });
  expect(checkHostUri('test:///default', 'super-admin')).toMatchObject({ transport: 'none', kind: 'local' });
});
