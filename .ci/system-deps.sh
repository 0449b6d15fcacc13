#!/usr/bin/env bash
# Installs the Debian packages herd's tests need, when missing. Idempotent; needs root (or sudo).
set -euo pipefail
packages=(influxdb collectd-core libvirt-dev libvirt-clients pkg-config slapd ldap-utils chromium
  libvirt-daemon-system qemu-system-x86 ipxe-qemu busybox-static linux-image-amd64
  krb5-kdc krb5-admin-server krb5-user libkrb5-dev openssh-server netcat-openbsd)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# INITRD=No: the kernel is for test guests, which bring their own initramfs (no update-initramfs run).
$SUDO env INITRD=No apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The Debian packages start their daemons; herd's tests start their own on free ports.
for svc in influxdb slapd libvirtd virtlogd krb5-kdc krb5-admin-server; do $SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || true; done
for d in influxd slapd libvirtd virtlogd krb5kdc kadmind; do $SUDO pkill -x "$d" >/dev/null 2>&1 || true; done
