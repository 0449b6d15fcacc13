#!/usr/bin/env bash
# Installs the Debian packages herd needs, when missing. Idempotent; needs root (or sudo) only when something is
# missing. `system-deps.sh demo`: what `npm run demo` needs; no argument: everything the test suite uses.
# Daemons that a package installed here starts are stopped and disabled again (herd's tests and demo start their
# own on free ports); services of packages that were already installed are never touched.
set -euo pipefail

# libvirtd serving the demo's test-driver hosts (herd speaks libvirt's protocol itself: no addon, no virsh), and
# collectd to send the demo hosts' traffic.
demo=(libvirt-daemon collectd-core)
# The tests add: the toolchain and libkrb5-dev that build the optional `kerberos` addon, virsh (libvirt-clients) to act
# on hosts outside herd, and the services they start.
tests=("${demo[@]}" python3 make g++ pkg-config libvirt-clients influxdb slapd ldap-utils chromium
  libvirt-daemon-system qemu-system-x86 ipxe-qemu busybox-static linux-image-amd64
  krb5-kdc krb5-admin-server krb5-user libkrb5-dev openssh-server netcat-openbsd
  tgt libvirt-daemon-driver-storage-iscsi-direct qemu-block-extra lvm2
  prometheus)

case "${1:-tests}" in
  demo) packages=("${demo[@]}") ;;
  tests) packages=("${tests[@]}") ;;
  *) echo "usage: $0 [demo|tests]" >&2; exit 2 ;;
esac

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "herd: missing Debian packages (${missing[*]}); run this as root or install sudo" >&2; exit 1; }
  SUDO="sudo"
fi
echo "installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get update -qq; then
  echo "herd: apt-get update failed (see above): the Debian package lists could not be read, so nothing was installed" >&2
  exit 1
fi
# INITRD=No: the kernel is for test guests, which bring their own initramfs (no update-initramfs run).
$SUDO env INITRD=No apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

# The daemons of the packages installed just now, which their maintainer scripts started.
services=()
for p in "${missing[@]}"; do
  case "$p" in
    influxdb) services+=(influxdb) ;;
    slapd) services+=(slapd) ;;
    libvirt-daemon-system) services+=(libvirtd virtlogd virtlockd) ;;
    krb5-kdc) services+=(krb5-kdc) ;;
    krb5-admin-server) services+=(krb5-admin-server) ;;
    openssh-server) services+=(ssh) ;;
    tgt) services+=(tgt) ;;
    prometheus) services+=(prometheus) ;;
  esac
done
for svc in "${services[@]}"; do
  if [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now "$svc" "$svc.socket" "$svc-ro.socket" "$svc-admin.socket" >/dev/null 2>&1 || true
  else
    $SUDO service "$svc" stop >/dev/null 2>&1 || true
    $SUDO update-rc.d "$svc" disable >/dev/null 2>&1 || true
  fi
done
[ ${#services[@]} -eq 0 ] || echo "stopped and disabled the services just installed: ${services[*]}"
