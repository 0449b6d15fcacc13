#!/usr/bin/env bash
# Proves the README's first command on a machine where nothing is preinstalled: a pristine Debian 12 root made with
# `debootstrap --variant=minbase bookworm`, plus git, ca-certificates and this machine's node and npm (with its
# global npmrc and the CA bundle named by NODE_EXTRA_CA_CERTS), entered with chroot in a mount namespace of its own.
# There it clones this repository's HEAD, runs `npm run demo` as root and waits (at most 60 s from the demo's start)
# for collectd traffic on /metrics. Needs root. Not part of the suite (it downloads Debian's packages: minutes).
#   bash .ci/pristine-demo.sh            # KEEP=1 keeps the root afterwards
set -euo pipefail
[ "$(id -u)" -eq 0 ] || { echo "run as root" >&2; exit 1; }
repo="$(cd "$(dirname "$0")/.." && pwd)"
command -v debootstrap >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }

root="$(mktemp -d /var/tmp/herd-pristine.XXXXXX)"
cleanup() {
  if [ "${KEEP:-0}" = 1 ]; then echo "kept: $root"; else rm -rf --one-file-system "$root"; fi
}
trap cleanup EXIT

# The mirror this machine's apt uses.
mirror="$(grep -h -m1 -E '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
  | head -1 | sed -E 's/^URIs: *//; s/^deb (\[[^]]*\] )?//; s/ .*//')"
echo "debootstrap minbase bookworm from $mirror into $root"
debootstrap --variant=minbase bookworm "$root" "$mirror" >"$root.debootstrap.log" 2>&1 \
  || { tail -20 "$root.debootstrap.log"; exit 1; }
rm -f "$root.debootstrap.log"
cp /etc/resolv.conf "$root/etc/resolv.conf"

# This machine's node and npm, as a person would have installed them.
node_bin="$(readlink -f "$(command -v node)")"
npm_dir="$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")"
mkdir -p "$root/usr/bin" "$root$(dirname "$npm_dir")"
cp "$node_bin" "$root/usr/bin/node"
cp -a "$npm_dir" "$root$npm_dir"
ln -sf "$npm_dir/bin/npm-cli.js" "$root/usr/bin/npm"
ln -sf "$npm_dir/bin/npx-cli.js" "$root/usr/bin/npx"
[ -d /usr/include/node ] && mkdir -p "$root/usr/include" && cp -a /usr/include/node "$root/usr/include/node"
global_npmrc="$(npm config get globalconfig)"
[ -f "$global_npmrc" ] && mkdir -p "$root$(dirname "$global_npmrc")" && cp "$global_npmrc" "$root$global_npmrc"
if [ -n "${NODE_EXTRA_CA_CERTS:-}" ] && [ -f "$NODE_EXTRA_CA_CERTS" ]; then
  mkdir -p "$root$(dirname "$NODE_EXTRA_CA_CERTS")"
  cp "$NODE_EXTRA_CA_CERTS" "$root$NODE_EXTRA_CA_CERTS.machine"
fi

# A fresh clone of what is committed.
git clone -q --no-local "$repo" "$root/root/herd"

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
http_port=18080; while ! port_free $http_port; do http_port=$((http_port + 1)); done

cat >"$root/root/run.sh" <<EOF
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
apt-get update -qq && apt-get install -y -qq --no-install-recommends git ca-certificates >/dev/null
# The CA bundle npm is told about (NODE_EXTRA_CA_CERTS) is only now in place, after ca-certificates made its folder.
[ -f "${NODE_EXTRA_CA_CERTS:-/nonexistent}.machine" ] && cat "${NODE_EXTRA_CA_CERTS:-}.machine" >> "${NODE_EXTRA_CA_CERTS:-/dev/null}"
export NODE_EXTRA_CA_CERTS="${NODE_EXTRA_CA_CERTS:-}"
cd /root/herd
started=\$(date +%s)
HERD_HTTP_PORT=$http_port HERD_COLLECTD_PORT=0 setsid npm run demo > /root/demo.log 2>&1 &
demo=\$!
# The first command is done once the demo answers; then collectd traffic must show on /metrics within 60 s.
until node -e "fetch('http://127.0.0.1:$http_port/api/health').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"; do
  kill -0 \$demo 2>/dev/null || { echo "the demo exited:"; tail -30 /root/demo.log; exit 1; }
  sleep 2
done
ready=\$(date +%s)
echo "install, build and start: \$((ready - started)) s"
for i in \$(seq 1 30); do
  packets=\$(node -e "fetch('http://127.0.0.1:$http_port/metrics').then(r=>r.text()).then(t=>{const m=/^herd_collectd_packets_received(?:_total)? (\\\\d+)/m.exec(t);console.log(m?m[1]:0)})")
  if [ "\${packets:-0}" -gt 0 ]; then
    echo "collectd packets on /metrics \$((\$(date +%s) - ready)) s after the demo answered: \$packets"
    kill -TERM -- -\$demo; wait \$demo || true
    exit 0
  fi
  sleep 2
done
echo "no collectd traffic on /metrics within 60 s"; tail -30 /root/demo.log
kill -TERM -- -\$demo; wait \$demo || true
exit 1
EOF

unshare -m --propagation private sh -c "
  mount -t proc proc '$root/proc' && mount -t sysfs sys '$root/sys' && mount --rbind /dev '$root/dev' &&
  mount -t tmpfs tmpfs '$root/tmp' && exec chroot '$root' /bin/bash /root/run.sh"
