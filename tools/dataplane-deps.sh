#!/usr/bin/env bash
# Installs the real server binaries the data-plane tests (server-tests/*.test.ts) run: nginx for the
# edge cache, redis-server for the cache tier and the PostgreSQL 15 server (initdb, postgres,
# pg_rewind; pg_basebackup comes with the client package) for the database tier, the three Prometheus
# exporters of the tiers' metrics and the Prometheus server that scrapes them (promtool with it), and
# pgBackRest for the backups, as pinned Debian bookworm packages via apt-get.
# Idempotent: when the binaries already report the pinned upstream versions apt is not touched at
# all, so a warm run takes milliseconds and needs neither root nor the network.
#
#   tools/dataplane-deps.sh           install whatever is missing (as root when it is)
#   tools/dataplane-deps.sh --print   print the directories holding the binaries, one per line
#
# The packages' system services are never started: the tests start their own processes on loopback,
# and a system nginx on :80, redis on :6379, postgres on :5432, prometheus on :9090 or an exporter on
# :9187/:9121/:9113 would only be a shared, stateful thing to trip over. Nor is Debian's `main`
# Postgres cluster created on a fresh install.
set -euo pipefail

# The pins, in one place: Debian package=version. Bumping one makes the next run install it.
# `nginx`, not `nginx-light`: in bookworm the nginx binary (with proxy and proxy_cache compiled in,
# all the edge cache needs) lives in the `nginx` package; `nginx-light` is only a metapackage that
# adds the echo module on top of it, which nothing here uses.
PINS=(
  nginx=1.22.1-9+deb12u12
  redis-server=5:7.0.15-1~deb12u10
  # Server and client of one minor version: pg_basebackup (client) and pg_rewind (server) talk to the
  # same servers. The tests run whatever major is here against the operator's scripts.
  postgresql-15=15.18-0+deb12u1
  postgresql-client-15=15.18-0+deb12u1
  # The message queue's broker. Its Erlang runtime comes as a dependency, pinned by the package.
  rabbitmq-server=3.10.8-1.1+deb12u1
  # The exporters beside the database, the cache and the edge cache: the same upstream releases as the
  # operator's default images (postgres_exporter 0.11.1, redis_exporter 1.45.0, nginx-prometheus-
  # exporter 0.11.0). Debian names the binaries after the packages (/usr/bin/prometheus-*-exporter).
  prometheus-postgres-exporter=0.11.1-3+b5
  prometheus-redis-exporter=1.45.0-2+b4
  prometheus-nginx-exporter=0.11.0-1+b4
  # The server that scrapes them; bookworm ships promtool in this same package, not a separate one.
  # Its Recommends (prometheus-node-exporter) are not installed.
  prometheus=2.42.0+ds-5+deb12u1
  # Continuous archiving, backups and point-in-time recovery of the database and the shards (ADR 0029).
  pgbackrest=2.45-1
)

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/lib.sh"
source "$here/apt-pins.sh"

# Debian installs both under /usr/sbin and /usr/bin, and /usr/sbin is not on a normal user's PATH.
# Postgres binaries live in a directory per major version, on nobody's PATH; it goes first, because
# /usr/bin has Debian's pg_wrapper under the client tools' names.
export PATH=/usr/lib/postgresql/15/bin:$PATH:/usr/local/sbin:/usr/sbin:/sbin

# 5:7.0.15-1~deb12u10 -> 7.0.15: drop the epoch and the Debian revision.
upstream_of() {
  local v=${1#*:}
  echo "${v%-*}"
}
binary_of() {
  case $1 in
    nginx) echo nginx ;;
    redis-server) echo redis-server ;;
    postgresql-15) echo postgres ;;
    postgresql-client-15) echo pg_basebackup ;;
    rabbitmq-server) echo rabbitmq-server ;;
    prometheus-postgres-exporter | prometheus-redis-exporter | prometheus-nginx-exporter) echo "$1" ;;
    prometheus) echo prometheus ;;
    pgbackrest) echo pgbackrest ;;
    *) die "no binary known for package $1" ;;
  esac
}
# The upstream version a binary reports, or nothing when it is not installed.
reported_version() {
  command -v "$1" >/dev/null || return 0
  case $1 in
    nginx) nginx -v 2>&1 | sed -n 's|^nginx version: nginx/\([^ ]*\).*|\1|p' ;;
    redis-server) redis-server --version | sed -n 's/.* v=\([^ ]*\) .*/\1/p' ;;
    # "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)" -> 15.18
    postgres | pg_basebackup) "$1" --version | sed -n 's/^[^ ]* (PostgreSQL) \([^ ]*\).*/\1/p' ;;
    # The server has no --version that works without a running node; the package's own record does.
    rabbitmq-server) dpkg-query -W -f='${Version}' rabbitmq-server 2>/dev/null | sed 's/^[0-9]*://; s/-[^-]*$//' ;;
    # "postgres_exporter, version 0.11.1 (branch: debian/sid, revision: 0.11.1-3+b5)" -> 0.11.1, and
    # the same layout for prometheus and promtool: "prometheus, version 2.42.0+ds (...)" -> 2.42.0+ds
    # (+ds, Debian's mark of a repacked source, is in the upstream part of the pin's version too).
    prometheus-postgres-exporter | prometheus | promtool) "$1" --version 2>&1 | sed -n 's/^[^ ]*, version \([^ ]*\) .*/\1/p' ;;
    # These two print the full Debian version: drop its revision.
    # 'level=info msg="Redis Metrics Exporter 1.45.0-2+b4    build date: ..."' -> 1.45.0
    prometheus-redis-exporter) "$1" --version 2>&1 | sed -n 's/.*Redis Metrics Exporter \([^ ]*\)-[^- ]* .*/\1/p' ;;
    # "NGINX Prometheus Exporter version=0.11.0-1+b4 commit= ..." -> 0.11.0
    prometheus-nginx-exporter) "$1" --version 2>&1 | sed -n 's/^NGINX Prometheus Exporter version=\([^ ]*\)-[^- ]* .*/\1/p' ;;
    # "pgBackRest 2.45" -> 2.45
    pgbackrest) pgbackrest version | sed -n 's/^pgBackRest \([^ ]*\)$/\1/p' ;;
  esac
}

if [[ ${1:-} == --print ]]; then
  for pin in "${PINS[@]}"; do
    bin=$(binary_of "$(pkg_of "$pin")")
    path=$(command -v "$bin") || die "$bin is not installed; run tools/dataplane-deps.sh first"
    dirname "$path"
  done | sort -u
  exit 0
fi
[[ $# == 0 ]] || die "usage: tools/dataplane-deps.sh [--print]"

missing=()
for pin in "${PINS[@]}"; do
  pkg=$(pkg_of "$pin")
  bin=$(binary_of "$pkg")
  want=$(upstream_of "$(version_of "$pin")")
  have=$(reported_version "$bin")
  if [[ $have == "$want" ]]; then
    step "$bin $want: installed"
  else
    step "$bin $want: ${have:+found $have, }installing $pin"
    missing+=("$pin")
  fi
done
((${#missing[@]} == 0)) && exit 0

# postgresql-common's postinst creates and starts a `main` cluster on a first install unless this
# says not to; the drop-in is read through the include_dir of its createcluster.conf.
for pin in "${missing[@]}"; do
  if [[ $(pkg_of "$pin") == postgresql-[0-9]* ]]; then
    mkdir -p /etc/postgresql-common/createcluster.d
    printf '# Written by tools/dataplane-deps.sh: tests run their own clusters.\ncreate_main_cluster = false\n' \
      >/etc/postgresql-common/createcluster.d/scalableapp-no-main-cluster.conf
  fi
done

fresh=()
for pin in "${missing[@]}"; do
  pkg=$(pkg_of "$pin")
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || fresh+=("$pkg")
done

apt_install_pins tools/dataplane-deps.sh "${missing[@]}"

# Belt and braces: should a service have started anyway (a host whose init ignores policy-rc.d), stop
# it, and keep it from starting at boot. Only for packages this run installed fresh: a system nginx or
# redis someone set up on purpose is upgraded in place but otherwise left as it was.
# The prometheus and prometheus-*-exporter postinsts enable their unit and run `invoke-rc.d ... start`
# (and deb-systemd-invoke under systemd), both of which obey the policy-rc.d apt_install_pins puts in
# place; their services are named after their packages, so this loop covers them as they are.
for pkg in "${fresh[@]}"; do
  case $pkg in
    postgresql-client-*) continue ;;
    postgresql-*) svc=postgresql ;;
    *) svc=$pkg ;;
  esac
  if command -v systemctl >/dev/null; then
    systemctl disable --quiet "$svc" >/dev/null 2>&1 || true
    if [[ $(systemctl is-system-running 2>/dev/null || true) != offline ]]; then
      systemctl stop "$svc" >/dev/null 2>&1 || true
    fi
  fi
  if [[ -x /etc/init.d/$svc ]]; then
    update-rc.d "$svc" disable >/dev/null 2>&1 || true
    if /etc/init.d/"$svc" status >/dev/null 2>&1; then
      step "stopping the $svc system service the install started"
      /etc/init.d/"$svc" stop >/dev/null 2>&1 || true
    fi
  fi
done

for pin in "${missing[@]}"; do
  bin=$(binary_of "$(pkg_of "$pin")")
  want=$(upstream_of "$(version_of "$pin")")
  have=$(reported_version "$bin")
  [[ $have == "$want" ]] || die "installed $pin but $bin reports '${have:-nothing}', not $want"
  step "$bin $want: installed"
done
