#!/usr/bin/env bash
# Builds every container image the project runs on its real local node, from pinned Debian packages
# and the project's own code, without Docker or a registry: a root filesystem (mmdebstrap of Debian
# bookworm, or a static binary), packed as a docker-archive tarball that `ctr images import` loads.
# Cached under $SCALABLEAPP_CACHE/images: an image whose archive exists for its inputs is not rebuilt,
# so a warm run takes seconds. See docs/images.md.
#
#   tools/images.sh build [name...]                      build (default: all); needs root
#   tools/images.sh import --address SOCK [--namespace NS] [--snapshotter S] [name...]
#                                                        import into a containerd what it lacks
#   tools/images.sh env                                  print the path of images.env
#   tools/images.sh list [name...]                       name, reference, state and size of each
#   tools/images.sh smoke [--keep] [name...]             run the operator's pods of the built images
#                                                        without a cluster (tools/images/smoke.ts)
#   tools/images.sh run-in --rootfs DIR --user U:G ...   run a command in a root filesystem as a pod
#                                                        would (what the checks and smoke use)
#
# Names: operator demo-app demo-consumer postgres cache rabbitmq nginx postgres-exporter cache-exporter
# nginx-exporter prometheus coredns local-path-provisioner toolbox pause object-store. After a build,
# $SCALABLEAPP_CACHE/images/images.env holds IMAGE_<NAME>=<reference> for every image that is built
# (IMAGE_OPERATOR, IMAGE_DEMO_APP, IMAGE_POSTGRES_EXPORTER, IMAGE_LOCAL_PATH_PROVISIONER, ...); other
# scripts source it.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
source "$here/versions.sh"
source "$here/lib.sh"

# A registry on loopback that does not exist: an image the node lacks fails to pull at once, on this
# machine. (A made-up domain would send a DNS query off the machine first.)
REGISTRY=localhost/scalableapp
ALL_IMAGES=(operator demo-app demo-consumer postgres cache rabbitmq nginx postgres-exporter cache-exporter nginx-exporter
  prometheus coredns local-path-provisioner toolbox pause object-store)
SUITE=bookworm
IMAGES_DIR=$SCALABLEAPP_CACHE/images
ARCHIVES=$IMAGES_DIR/archives
DEBS=$IMAGES_DIR/debs       # every .deb mmdebstrap downloaded, so a rebuild needs only the indexes
LAYERS=$IMAGES_DIR/layers   # layers shared between images (the Node base)
WORK=$IMAGES_DIR/work
ENV_FILE=$IMAGES_DIR/images.env
NODE_BIN=$root/node_modules/.bin/node
PACK=$here/images/pack.mjs
# The apt sources the root filesystems are built from: IMAGES_APT_SOURCES (a .sources or .list file),
# else the host's Debian sources (deb822, as Debian 12 writes them), else deb.debian.org.
APT_SOURCES=${IMAGES_APT_SOURCES:-/etc/apt/sources.list.d/debian.sources}
STD_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# The uid of the restricted pods (operator/tiers/pod-security.ts) and of Postgres and RabbitMQ
# (postgres-cluster.ts, queue.ts: the official images' users, which the pods run as).
NONROOT_UID=65532
SERVER_UID=999

# The Debian pins: the same versions the data-plane tests run, read from the one list of them in
# tools/dataplane-deps.sh so the tests and the pods never drift apart.
pin_of() {
  local pkg=$1 pin
  pin=$(sed -n '/^PINS=(/,/^)/s/^[[:space:]]*\('"${pkg//./\\.}"'=[^[:space:]#]*\)[[:space:]]*$/\1/p' "$here/dataplane-deps.sh")
  [[ -n $pin ]] || die "no pin for $pkg in the PINS list of tools/dataplane-deps.sh"
  echo "$pin"
}
# A Debian version as an image tag: 5:7.0.15-1~deb12u10 -> 7.0.15-1-deb12u10.
deb_tag() {
  local v=${1#*=}
  v=${v#*:}
  echo "${v//[~+:]/-}"
}
sha() { sha256sum | cut -c1-64; }
# file_sha FILE: its sha256, remembered by path, size, mtime and inode: hashing the Node and CoreDNS
# binaries on every run would be most of a warm run's time.
file_sha() {
  local f id hit cache=$IMAGES_DIR/.file-sha
  f=$(readlink -f "$1")
  id="$f $(stat -c '%s %.9Y %i' "$f")"
  hit=$(grep -F "$id " "$cache" 2>/dev/null | tail -n 1) || true
  if [[ -n $hit ]]; then echo "${hit##* }"; return 0; fi
  hit=$(sha256sum "$f" | cut -c1-64)
  { mkdir -p "$IMAGES_DIR" && echo "$id $hit" >>"$cache"; } 2>/dev/null || true
  echo "$hit"
}
logged_to() { local log=$1; shift; "$@" >"$log" 2>&1; }

# ---------------------------------------------------------------------------------------------------
# Building blocks, shared by the recipes below. Their text is part of every image's cache key.

# debian_rootfs DIR [mmdebstrap args...]: a Debian bookworm minbase in DIR, with the given --include
# pins and hooks. Recommends are not installed (mmdebstrap's default), services are never started
# (mmdebstrap's policy-rc.d), man pages, docs (but copyrights) and translations are never unpacked.
debian_rootfs() {
  local dir=$1; shift
  mkdir -p "$DEBS"
  if [[ ! -r $APT_SOURCES ]]; then
    [[ -z ${IMAGES_APT_SOURCES:-} ]] || die "IMAGES_APT_SOURCES=$IMAGES_APT_SOURCES is not readable"
    APT_SOURCES=$IMAGES_DIR/$SUITE.list
    printf 'deb http://deb.debian.org/debian %s main\ndeb http://deb.debian.org/debian %s-updates main\ndeb http://deb.debian.org/debian-security %s-security main\n' \
      "$SUITE" "$SUITE" "$SUITE" >"$APT_SOURCES"
  fi
  local log=$dir.mmdebstrap.log
  # The merged-usr hook lays /bin, /lib, /sbin out as links into /usr directly, as bookworm expects,
  # instead of installing the usrmerge package (which pulls in all of perl).
  if ! with_heartbeat mmdebstrap logged_to "$log" mmdebstrap --mode=root --format=directory --variant=minbase \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --aptopt='Acquire::Languages "none"' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    --dpkgopt='path-exclude=/usr/share/info/*' --dpkgopt='path-exclude=/usr/share/lintian/*' \
    --skip=download/empty --skip=essential/unlink \
    --setup-hook='mkdir -p "$1"/var/cache/apt/archives/' \
    --setup-hook="sync-in $DEBS /var/cache/apt/archives/" \
    --customize-hook="sync-out /var/cache/apt/archives $DEBS" \
    "$@" "$SUITE" "$dir" "$APT_SOURCES"; then
    tail -n 25 "$log" >&2
    die "mmdebstrap failed (log: $log). If apt says a version was not found, the pin has left the mirror: update it in tools/dataplane-deps.sh"
  fi
  rm -f "$log"
}

# An --essential-hook that adds a system user and group before the packages that want them are
# installed, so their postinst (adduser --system) finds them with the uid the pods run as.
user_hook() { # name uid home shell
  printf -- '--essential-hook=set -e; r=$1; ! grep -q "^[^:]*:[^:]*:%s:" "$r/etc/passwd" "$r/etc/group"; ' "$2"
  printf -- 'echo "%s:x:%s:%s:%s:%s:%s" >>"$r/etc/passwd"; echo "%s:x:%s:" >>"$r/etc/group"; ' "$1" "$2" "$2" "$1" "$3" "$4" "$1" "$2"
  printf -- 'if [ -f "$r/etc/shadow" ]; then echo "%s:*:19000:0:99999:7:::" >>"$r/etc/shadow"; fi; ' "$1"
  printf -- 'if [ -f "$r/etc/gshadow" ]; then echo "%s:*::" >>"$r/etc/gshadow"; fi' "$1"
}

# add_user DIR name uid home shell: the same, after the fact (for images whose packages want no user).
add_user() {
  local dir=$1 name=$2 uid=$3 home=$4 shell=$5
  grep -q "^[^:]*:[^:]*:$uid:" "$dir/etc/passwd" && return 0
  echo "$name:x:$uid:$uid:$name:$home:$shell" >>"$dir/etc/passwd"
  echo "$name:x:$uid:" >>"$dir/etc/group"
  if [[ -f $dir/etc/shadow ]]; then echo "$name:*:19000:0:99999:7:::" >>"$dir/etc/shadow"; fi
  if [[ -f $dir/etc/gshadow ]]; then echo "$name:*::" >>"$dir/etc/gshadow"; fi
}

# finish_rootfs DIR: what every Debian image drops or adds after its packages are installed.
finish_rootfs() {
  local dir=$1
  add_user "$dir" nonroot "$NONROOT_UID" /nonexistent /usr/sbin/nologin
  # No setuid or setgid programs: the pods run with allowPrivilegeEscalation=false anyway.
  find "$dir" -xdev -type f -perm /6000 -exec chmod ug-s {} +
  # Package lists and caches (mmdebstrap already emptied the apt ones), logs, backups of dpkg state.
  rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/* "$dir"/var/cache/debconf/*-old \
    "$dir"/var/lib/dpkg/*-old "$dir"/var/cache/ldconfig/aux-cache "$dir"/tmp/* "$dir"/var/tmp/*
  find "$dir/var/log" -type f -delete
  # A private key in an image is every pod's key: ssl-cert's snakeoil pair (postgresql-common's
  # dependency) is generated at install time and used by nothing here.
  rm -f "$dir"/etc/ssl/private/ssl-cert-snakeoil.key "$dir"/etc/ssl/certs/ssl-cert-snakeoil.pem
  find "$dir/etc/ssl/certs" -xtype l -delete 2>/dev/null || true # its hash link
  # The runtime mounts its own /dev, /etc/hosts, /etc/hostname and /etc/resolv.conf; mmdebstrap left
  # the host's copies and device nodes here.
  rm -rf "${dir:?}"/dev/*
  printf '' >"$dir/etc/resolv.conf" && chmod 644 "$dir/etc/resolv.conf"
  printf 'localhost\n' >"$dir/etc/hostname" && chmod 644 "$dir/etc/hostname"
  printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$dir/etc/hosts"
}

# layer_of DIR OUT: a layer tarball of DIR's content (names relative to it, numeric owners, sorted).
layer_of() {
  local dir=$1 out=$2
  (cd "$dir" && find . -mindepth 1 -maxdepth 1 -printf '%P\n' | LC_ALL=C sort) >"$out.list"
  tar --create --file="$out" --directory="$dir" --numeric-owner --sort=name --one-file-system \
    --format=posix --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
    --verbatim-files-from --files-from="$out.list"
  rm -f "$out.list"
}

# packages_of DIR: the installed packages and versions, kept beside the archive.
packages_of() { chroot "$1" dpkg-query -W -f='${Package}=${Version}\n' | LC_ALL=C sort; }

# run_in DIR USER MOUNTS CMD...: runs CMD in the root filesystem DIR the way runc would run it in a
# pod: as USER (uid:gid, supplementary groups $run_groups, default the gid), in $run_workdir (default
# /), with the host name $run_hostname, the root read-only, only the environment $image_env, its own
# /proc and a minimal /dev, and MOUNTS, a comma-separated list of PATH (an empty tmpfs: an emptyDir),
# SRC:PATH (a bind mount: a volume) or SRC:PATH:ro. Mount paths are taken literally and must not leave
# DIR through a symlink. Its stdout and stderr are pipes it owns, as runc makes them, so /dev/stdout
# can be opened again. Network: the caller's (tools/images.sh smoke runs in a namespace of its own).
run_in() {
  local dir=$1 user=$2 mounts=$3; shift 3
  env -i "${image_env[@]}" /usr/bin/unshare --mount --uts --pid --fork --kill-child --propagation private -- /bin/bash -c '
    set -e
    r=$1 user=$2 groups=$3 workdir=$4 host=$5 mounts=$6; shift 6
    hostname "$host"
    target() {
      local p; p=$(realpath -m "$r$1")
      [[ $p == "$r"/* ]] || { echo "run_in: $1 resolves outside the root filesystem" >&2; exit 1; }
      echo "$p"
    }
    mount --bind "$r" "$r" && mount -o remount,bind,ro "$r"
    mount -t proc proc "$r/proc"
    mount -t tmpfs -o mode=755 dev "$r/dev"
    for n in null zero full random urandom tty; do touch "$r/dev/$n"; mount --bind "/dev/$n" "$r/dev/$n"; done
    ln -s /proc/self/fd "$r/dev/fd"
    for n in 0:stdin 1:stdout 2:stderr; do ln -s "/proc/self/fd/${n%%:*}" "$r/dev/${n#*:}"; done
    IFS=, read -ra list <<<"$mounts"
    for m in "${list[@]}"; do
      IFS=: read -r a b c <<<"$m"
      if [[ -z $b ]]; then
        t=$(target "$a"); mkdir -p "$t" 2>/dev/null || true
        mount -t tmpfs -o mode=1777 tmpfs "$t"
      else
        t=$(target "$b")
        mount --bind "$a" "$t"
        if [[ $c == ro ]]; then mount -o remount,bind,ro "$t"; fi
      fi
    done
    exec 5>&1 6>&2
    exec 1> >(cat >&5); out=$!
    exec 2> >(cat >&6); err=$!
    chown "$user" /proc/self/fd/1 /proc/self/fd/2
    rc=0
    /usr/sbin/chroot --userspec="$user" --groups="$groups" "$r" /usr/bin/env --chdir="$workdir" "$@" || rc=$?
    exec 1>&5 2>&6
    wait "$out" "$err" 2>/dev/null || true
    exit "$rc"
  ' run_in "$dir" "$user" "${run_groups:-${user#*:}}" "${run_workdir:-/}" "${run_hostname:-image-check}" "$mounts" "$@"
}

# ---------------------------------------------------------------------------------------------------
# Recipes. Each plan_<name> sets tag (the image tag) and inputs (text whose hash keys the cache) or
# blocked (why it cannot be built now); each recipe_<name> WORK fills layers (tarballs) and
# pack_args (the image config for pack.mjs), and may set packages (the package list to keep).

plan_debian() { # name pkg...: the tag is the first package's version, the inputs every pin + recipe
  local name=$1; shift
  local pins=() p
  for p in "$@"; do pins+=("$(pin_of "$p")"); done
  tag=$(deb_tag "${pins[0]}")
  inputs="$SUITE ${pins[*]} $(declare -f "recipe_$name" debian_rootfs user_hook add_user finish_rootfs layer_of) $(cat "$PACK")"
}

# --- postgres: Debian's PostgreSQL server and client, for sh /config/start.sh
# (operator/server-config/postgres-instance-script.ts), which calls initdb, postgres, pg_basebackup,
# pg_rewind and psql by name: the major version's bin directory goes first on PATH, ahead of Debian's
# pg_wrapper links in /usr/bin (a perl script that wants a cluster in /etc/postgresql), as in the
# official image. initdb looks its own uid up: user postgres is 999, as in the official image.
# pgBackRest archives WAL (archive_command = sh /config/archive.sh, ADR 0029) with the system's CAs
# when the user names none: ca-certificates, pinned here as only the image has it.
PG_MAJOR=15
POSTGRES_CA_CERTIFICATES=ca-certificates=20250419~deb12u2
plan_postgres() {
  plan_debian postgres "postgresql-$PG_MAJOR" "postgresql-client-$PG_MAJOR" pgbackrest
  inputs="$inputs $POSTGRES_CA_CERTIFICATES"
}
recipe_postgres() {
  local work=$1 rootfs=$1/rootfs major=$PG_MAJOR
  debian_rootfs "$rootfs" \
    --include="$(pin_of "postgresql-$major"),$(pin_of "postgresql-client-$major"),$(pin_of pgbackrest),$POSTGRES_CA_CERTIFICATES" \
    "$(user_hook postgres "$SERVER_UID" /var/lib/postgresql /bin/bash)" \
    --essential-hook='mkdir -p "$1/etc/postgresql-common/createcluster.d" && echo "create_main_cluster = false" >"$1/etc/postgresql-common/createcluster.d/no-main-cluster.conf"'
  finish_rootfs "$rootfs"
  [[ $(stat -c %u "$rootfs/var/lib/postgresql") == "$SERVER_UID" ]] || die "postgres is not uid $SERVER_UID in the image"
  # The pod mounts its volume on data/ and an emptyDir on /var/run/postgresql (= /run/postgresql).
  install -d -o "$SERVER_UID" -g "$SERVER_UID" -m 700 "$rootfs/var/lib/postgresql/data"
  install -d -o "$SERVER_UID" -g "$SERVER_UID" -m 2775 "$rootfs/run/postgresql"
  local bin=/usr/lib/postgresql/$major/bin
  image_env=("PATH=$bin:$STD_PATH" "PGDATA=/var/lib/postgresql/data/pgdata" "LANG=C.UTF-8")
  local b
  for b in postgres initdb pg_ctl pg_rewind pg_basebackup psql pg_isready; do
    [[ -x $rootfs$bin/$b ]] || die "$bin/$b is missing from the postgres image"
  done
  step "  checking: initdb and postgres --single as uid $SERVER_UID on a read-only root"
  run_in "$rootfs" "$SERVER_UID:$SERVER_UID" /var/lib/postgresql/data,/run/postgresql,/tmp sh -ec '
    postgres --version; pg_basebackup --version >/dev/null; pg_rewind --version >/dev/null
    pgbackrest version; [ -s /etc/ssl/certs/ca-certificates.crt ]
    [ "$(command -v pg_isready)" = "$1/pg_isready" ]
    out=$(initdb -D "$PGDATA" -U postgres --auth=trust --data-checksums --encoding=UTF8 --locale=C.UTF-8 2>&1) ||
      { echo "$out"; exit 1; }
    out=$(echo "SELECT 1;" | postgres --single -D "$PGDATA" postgres 2>&1) || { echo "$out"; exit 1; }
    echo "initdb, postgres --single: ok"' sh "$bin" >&2
  layer_of "$rootfs" "$work/layer.tar"
  layers=("$work/layer.tar")
  packages=$(packages_of "$rootfs")
  pack_args=(--user "$SERVER_UID:$SERVER_UID" --workdir / --cmd '["postgres"]' --expose 5432/tcp
    --stop-signal SIGINT) # fast shutdown, as the official image: SIGTERM would wait for every client
}

# --- cache: Debian's redis-server (bookworm has no valkey), for sh /config/start.sh
# (operator/tiers/cache.ts), which runs `valkey-server`, else `redis-server`, with /config/cache.conf.
plan_cache() { plan_debian cache redis-server; }
recipe_cache() {
  local work=$1 rootfs=$1/rootfs
  debian_rootfs "$rootfs" --include="$(pin_of redis-server)"
  finish_rootfs "$rootfs"
  install -d -m 755 "$rootfs/data"
  image_env=("PATH=$STD_PATH")
  step "  checking: redis-server as uid $NONROOT_UID on a read-only root"
  run_in "$rootfs" "$NONROOT_UID:$NONROOT_UID" /data,/tmp sh -ec 'redis-server --version; command -v redis-cli >/dev/null' >&2
  layer_of "$rootfs" "$work/layer.tar"
  layers=("$work/layer.tar")
  packages=$(packages_of "$rootfs")
  pack_args=(--user "$NONROOT_UID:$NONROOT_UID" --workdir /data --cmd '["redis-server"]' --expose 6379/tcp)
}

# --- rabbitmq: Debian's rabbitmq-server and its Erlang, for sh /config/start.sh
# (operator/server-config/rabbitmq.ts). /usr/sbin/rabbitmq-* are Debian's wrapper, which runs the
# tools only as root or as the user named rabbitmq; /usr/lib/rabbitmq/bin (the real scripts, as in the
# official image) goes first on PATH instead. The Elixir CLI of the probes wants a UTF-8 locale.
plan_rabbitmq() { plan_debian rabbitmq rabbitmq-server; }
recipe_rabbitmq() {
  local work=$1 rootfs=$1/rootfs
  debian_rootfs "$rootfs" --include="$(pin_of rabbitmq-server)" \
    "$(user_hook rabbitmq "$SERVER_UID" /var/lib/rabbitmq /usr/sbin/nologin)"
  finish_rootfs "$rootfs"
  [[ $(stat -c %u "$rootfs/var/lib/rabbitmq") == "$SERVER_UID" ]] || die "rabbitmq is not uid $SERVER_UID in the image"
  # The package's postinst generated an Erlang cookie: a secret every pod of this image would share.
  # The pods bring their own (the start script writes it into HOME from the Secret).
  rm -f "$rootfs/var/lib/rabbitmq/.erlang.cookie"
  # The pod mounts its volume on /var/lib/rabbitmq and an emptyDir (HOME) on /run/rabbitmq.
  install -d -o "$SERVER_UID" -g "$SERVER_UID" -m 750 "$rootfs/run/rabbitmq"
  ls -d "$rootfs"/usr/lib/rabbitmq/lib/rabbitmq_server-*/plugins/rabbitmq_management-* >/dev/null 2>&1 ||
    die "the rabbitmq_management plugin is missing from the rabbitmq image"
  image_env=("PATH=/usr/lib/rabbitmq/bin:$STD_PATH" "HOME=/var/lib/rabbitmq" "RABBITMQ_DATA_DIR=/var/lib/rabbitmq"
    "LANG=C.UTF-8" "LC_ALL=C.UTF-8" "LANGUAGE=C.UTF-8")
  step "  checking: erl and the rabbitmq scripts as uid $SERVER_UID on a read-only root"
  run_in "$rootfs" "$SERVER_UID:$SERVER_UID" /var/lib/rabbitmq,/run/rabbitmq,/tmp sh -ec '
    [ "$(command -v rabbitmq-server)" = /usr/lib/rabbitmq/bin/rabbitmq-server ]
    [ "$(command -v rabbitmq-diagnostics)" = /usr/lib/rabbitmq/bin/rabbitmq-diagnostics ]
    erl -noshell -eval "io:format(\"erlang ~s~n\", [erlang:system_info(otp_release)]), halt()."' >&2
  layer_of "$rootfs" "$work/layer.tar"
  layers=("$work/layer.tar")
  packages=$(packages_of "$rootfs")
  pack_args=(--user "$SERVER_UID:$SERVER_UID" --workdir / --cmd '["rabbitmq-server"]'
    --expose 4369/tcp --expose 5672/tcp --expose 15672/tcp --expose 25672/tcp)
}

# --- nginx: Debian's nginx for the edge cache (operator/tiers/edge-cache.ts runs
# `nginx -c /config/nginx.conf -e stderr -g 'daemon off;'`; its config puts the pid, the temp paths
# and the cache under /tmp, the pod's emptyDir, and logs to stderr/stdout).
plan_nginx() { plan_debian nginx nginx; }
recipe_nginx() {
  local work=$1 rootfs=$1/rootfs
  debian_rootfs "$rootfs" --include="$(pin_of nginx)"
  finish_rootfs "$rootfs"
  image_env=("PATH=$STD_PATH")
  # The configuration the operator generates (with an address for the origin: there is no DNS here),
  # tested with the operator's own arguments, as the pod runs it.
  local conf args
  conf=$(cd "$root" && "$NODE_BIN" --input-type=module -e '
    const { edgeCacheNginxConfig } = await import("./operator/server-config/edge-cache.ts");
    process.stdout.write(edgeCacheNginxConfig({ listenPort: 8080, originHost: "127.0.0.1", originPort: 8081,
      pathPrefix: "/static", ttlSeconds: 3600, staleIfErrorSeconds: 86400, assetVersion: "1", cacheSize: "512m", runDir: "/tmp" }));')
  args=$(cd "$root" && "$NODE_BIN" --input-type=module -e '
    const { edgeCacheNginxArgs } = await import("./operator/server-config/edge-cache.ts");
    process.stdout.write(edgeCacheNginxArgs("/tmp/nginx.conf").join("\n"));')
  step "  checking: nginx -t on the operator's edge-cache config, as uid $NONROOT_UID on a read-only root"
  local argv; mapfile -t argv <<<"$args"
  run_in "$rootfs" "$NONROOT_UID:$NONROOT_UID" /tmp sh -ec 'printf "%s" "$1" >/tmp/nginx.conf; shift; exec nginx "$@" -t' sh "$conf" "${argv[@]}" >&2
  layer_of "$rootfs" "$work/layer.tar"
  layers=("$work/layer.tar")
  packages=$(packages_of "$rootfs")
  pack_args=(--user "$NONROOT_UID:$NONROOT_UID" --workdir /
    --cmd '["nginx", "-c", "/config/nginx.conf", "-e", "stderr", "-g", "daemon off;"]' --expose 8080/tcp
    --stop-signal SIGQUIT) # graceful: finish the requests in flight, as the official image
}

# --- postgres-exporter, cache-exporter, nginx-exporter: Debian's Prometheus exporters, the containers
# beside each Postgres instance, cache server and edge-cache proxy when monitoring is on
# (operator/api/platform.ts, exporterImages). The pod gives only args, written for the upstream images
# (quay.io/prometheuscommunity/postgres-exporter, oliver006/redis_exporter,
# nginx/nginx-prometheus-exporter), whose entrypoint is the exporter: so is this one's, under Debian's
# name for it (/usr/bin/prometheus-*-exporter), with no Cmd. Debian builds Go with cgo, so these link
# libc dynamically (`file -L`: not static): a minbase with the package, as cache, not a static image.
# The package's postinst adds a `prometheus` system user, and its init script and unit are never run:
# the pod runs the binary as 65532, and it writes nothing, so a read-only root needs no emptyDir.
plan_exporter() { # name package
  plan_debian "$1" "$2"
  inputs+=" $(declare -f exporter_image)"
}
exporter_image() { # work package port
  local work=$1 pkg=$2 port=$3 rootfs=$1/rootfs bin=/usr/bin/$2
  debian_rootfs "$rootfs" --include="$(pin_of "$pkg")"
  finish_rootfs "$rootfs"
  file -L "$rootfs$bin" | grep -q 'ELF.*executable' || die "$bin is missing from the $pkg image"
  image_env=("PATH=$STD_PATH")
  step "  checking: $bin --version as uid $NONROOT_UID on a read-only root, nothing writable"
  local said; said=$(run_in "$rootfs" "$NONROOT_UID:$NONROOT_UID" '' "$bin" --version 2>&1) || { echo "$said" >&2; die "$bin --version failed"; }
  echo "${said%%$'\n'*}" >&2
  layer_of "$rootfs" "$work/layer.tar"
  layers=("$work/layer.tar")
  packages=$(packages_of "$rootfs")
  pack_args=(--user "$NONROOT_UID:$NONROOT_UID" --workdir / --entrypoint "[\"$bin\"]" --expose "$port/tcp")
}
plan_postgres-exporter() { plan_exporter postgres-exporter prometheus-postgres-exporter; }
recipe_postgres-exporter() { exporter_image "$1" prometheus-postgres-exporter 9187; }
plan_cache-exporter() { plan_exporter cache-exporter prometheus-redis-exporter; }
recipe_cache-exporter() { exporter_image "$1" prometheus-redis-exporter 9121; }
plan_nginx-exporter() { plan_exporter nginx-exporter prometheus-nginx-exporter; }
recipe_nginx-exporter() { exporter_image "$1" prometheus-nginx-exporter 9113; }

# --- prometheus: Debian's Prometheus server, for the real-node tests that scrape the tiers and
# evaluate the operator's alert rules (e2e/support/prometheus.ts). Its entrypoint is the server, as in
# the upstream prom/prometheus image, so a pod gives only args (--config.file, --storage.tsdb.path,
# ...); no Cmd. It runs as 65532 on a read-only root: the TSDB goes to an emptyDir the pod mounts at
# /prometheus (the image's working directory, as upstream's), and nothing else is written. The
# package's `prometheus` system user, init script and unit are there and unused; promtool comes along.
plan_prometheus() { plan_debian prometheus prometheus; }
recipe_prometheus() {
  local work=$1 rootfs=$1/rootfs bin=/usr/bin/prometheus
  debian_rootfs "$rootfs" --include="$(pin_of prometheus)"
  finish_rootfs "$rootfs"
  file -L "$rootfs$bin" | grep -q 'ELF.*executable' || die "$bin is missing from the prometheus image"
  install -d -m 755 "$rootfs/prometheus"
  image_env=("PATH=$STD_PATH")
  step "  checking: prometheus --version and promtool check config as uid $NONROOT_UID on a read-only root"
  run_in "$rootfs" "$NONROOT_UID:$NONROOT_UID" /prometheus sh -ec '
    prometheus --version 2>&1 | head -n 1
    printf "global: {scrape_interval: 5s}\nscrape_configs: [{job_name: self, static_configs: [{targets: [\"127.0.0.1:9090\"]}]}]\n" >/prometheus/p.yml
    promtool check config /prometheus/p.yml >/dev/null' >&2
  layer_of "$rootfs" "$work/layer.tar"
  layers=("$work/layer.tar")
  packages=$(packages_of "$rootfs")
  pack_args=(--user "$NONROOT_UID:$NONROOT_UID" --workdir /prometheus --entrypoint "[\"$bin\"]" --expose 9090/tcp)
}

# --- operator, demo-app, demo-consumer: one Node image, two layers. The base (Debian minbase, which
# has libc6, libstdc++6 and libgcc-s1, plus libatomic1, and the project's pinned Node binary) changes
# only with Node; the app layer holds /app: the compiled operator and demo app (tsc with the root
# options, tools/images/tsconfig.json), production node_modules (npm ci --omit=dev), crds/ and
# package.json ("type": "module"). The three images differ only in their entrypoint.
NODE_APP_FILES=(package.json package-lock.json tsconfig.json tools/images/tsconfig.json)
node_app_sources() { # every input file, NUL-separated, relative to the repository
  cd "$root" && {
    find operator examples -type f \( -name '*.ts' -o -name '*.json' \) ! -name '*.test.ts' ! -path '*/testdata/*' -print0 2>/dev/null
    find crds -type f -print0
    printf '%s\0' "${NODE_APP_FILES[@]}"
  } | LC_ALL=C sort -z
}
plan_node_app() {
  [[ -x $NODE_BIN ]] || { blocked="$NODE_BIN is missing: run npm ci first"; return 0; }
  # Computed once per run: the three images share it.
  if [[ -z ${node_tag:-} ]]; then
    local node_sha sources
    node_sha=$(file_sha "$NODE_BIN")
    sources=$(node_app_sources | (cd "$root" && xargs -0 sha256sum))
    node_inputs="node $node_sha $sources $(declare -f recipe_node_base recipe_node_app node_app_sources node_image recipe_operator recipe_demo-app recipe_demo-consumer debian_rootfs add_user finish_rootfs layer_of) $(cat "$PACK")"
    node_tag=$(printf '%s' "$node_inputs" | sha | cut -c1-12)
    node_base_key=$(printf '%s' "$node_sha $(declare -f recipe_node_base debian_rootfs add_user finish_rootfs layer_of)" | sha | cut -c1-12)
  fi
  tag=$node_tag inputs=$node_inputs
}
plan_operator() { plan_node_app; }
plan_demo-app() { plan_node_app; demo_entry server; }
plan_demo-consumer() { plan_node_app; demo_entry consumer; }
demo_entry() {
  [[ -f $root/examples/demo-app/$1.ts ]] ||
    blocked="examples/demo-app/$1.ts does not exist (yet): the demo images run dist/examples/demo-app/$1.js"
}

# The base layer, cached in $LAYERS by the Node binary and this recipe.
recipe_node_base() {
  local out=$LAYERS/node-base-$node_base_key.tar
  [[ -f $out ]] && { echo "$out"; return 0; }
  local rootfs=$WORK/node-base.$BASHPID
  rm -rf "$rootfs"
  step "  node base: Debian minbase + libatomic1 + $("$NODE_BIN" --version)" >&2
  debian_rootfs "$rootfs" --include=libatomic1 >&2
  finish_rootfs "$rootfs" >&2
  install -D -m 755 "$(readlink -f "$NODE_BIN")" "$rootfs/usr/local/bin/node"
  install -d -m 755 "$rootfs/app"
  image_env=("PATH=$STD_PATH")
  run_in "$rootfs" "$NONROOT_UID:$NONROOT_UID" /tmp node -e 'console.log(`node ${process.version} runs as uid ${process.getuid()}`)' >&2
  mkdir -p "$LAYERS"
  layer_of "$rootfs" "$out.tmp" && mv "$out.tmp" "$out"
  rm -rf "$rootfs"
  # Older bases (another Node) are not needed by any current image.
  find "$LAYERS" -name 'node-base-*.tar' ! -name "node-base-$node_base_key.tar" -delete
  echo "$out"
}

# The app layer, built once per tag and shared by the three images of that tag.
recipe_node_app() {
  local out=$LAYERS/node-app-$tag.tar
  [[ -f $out ]] && { echo "$out"; return 0; }
  local stage=$WORK/node-app.$BASHPID
  rm -rf "$stage" && mkdir -p "$stage/app"
  step "  node app: tsc (operator + examples) into a staging directory" >&2
  (cd "$root" && with_heartbeat tsc "$NODE_BIN" node_modules/.bin/tsc -p tools/images/tsconfig.json --outDir "$stage/app/dist") >&2 ||
    die "tsc failed: the operator or the demo app does not compile (see above)"
  [[ -f $stage/app/dist/operator/main.js ]] || die "tsc produced no dist/operator/main.js"
  cp "$root/package.json" "$root/package-lock.json" "$stage/app/"
  cp -r "$root/crds" "$stage/app/crds"
  step "  node app: npm ci --omit=dev --ignore-scripts (from npm's cache when it has them)" >&2
  # The project's Node first on PATH, so npm runs on it as every project script does.
  (cd "$stage/app" && PATH=$(dirname "$(readlink -f "$NODE_BIN")"):$PATH with_heartbeat npm \
    npm ci --omit=dev --ignore-scripts --no-audit --no-fund --prefer-offline --loglevel=error) >&2 ||
    die "npm ci --omit=dev failed (see above)"
  mkdir -p "$LAYERS"
  # Root-owned and read-only for the pods' uid: nothing in /app is ever written.
  chmod -R u+rwX,go+rX,go-w "$stage/app"
  tar --create --file="$out.tmp" --directory="$stage" --owner=0 --group=0 --numeric-owner --sort=name \
    --format=posix --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime app
  rm -rf "$stage"
  # Check the app loads every production dependency, in the image's own layout, once per layer.
  local base=$1 rootfs=$WORK/node-check.$BASHPID
  rm -rf "$rootfs" && mkdir -p "$rootfs"
  tar -xf "$base" -C "$rootfs" && tar -xf "$out.tmp" -C "$rootfs"
  local entry
  for entry in dist/operator/main.js dist/operator/reshard-main.js dist/examples/demo-app/server.js dist/examples/demo-app/consumer.js; do
    [[ -f $rootfs/app/$entry || $entry != dist/operator/* ]] || die "tsc did not emit /app/$entry"
  done
  image_env=("PATH=$STD_PATH" "NODE_ENV=production")
  # reflect-metadata is a polyfill that tsyringe (under @peculiar/x509) needs before it loads: first,
  # as the one module that imports x509 has it (operator/tls/certificates.ts).
  local js='import { readFileSync } from "node:fs";
    const all = Object.keys(JSON.parse(readFileSync("package.json", "utf8")).dependencies);
    const deps = [...all.filter((d) => d === "reflect-metadata"), ...all.filter((d) => d !== "reflect-metadata")];
    for (const d of deps) await import(d);
    console.log(`node ${process.version} as uid ${process.getuid()}: ${deps.join(", ")} load from /app`);'
  # In a command substitution errexit does not hold: without the `|| die` a failed check went unseen.
  run_in "$rootfs" "$NONROOT_UID:$NONROOT_UID" /tmp sh -ec 'cd /app && exec node --input-type=module -e "$1"' sh "$js" >&2 ||
    die "a production dependency does not load in the image (see above)"
  rm -rf "$rootfs"
  mv "$out.tmp" "$out"
  find "$LAYERS" -name 'node-app-*.tar' ! -name "node-app-$tag.tar" -mmin +60 -delete
  echo "$out"
}

node_image() { # work entry-script
  local work=$1 entry=$2 base app
  base=$(recipe_node_base)
  app=$(recipe_node_app "$base")
  layers=("$base" "$app")
  tar -tf "$app" "app/$entry" >/dev/null 2>&1 || die "/app/$entry is not in the app layer: tsc did not emit it"
  image_env=("PATH=$STD_PATH" "NODE_ENV=production")
  pack_args=(--user "$NONROOT_UID:$NONROOT_UID" --workdir /app
    --entrypoint "[\"node\", \"/app/$entry\"]")
}
recipe_operator() {
  node_image "$1" dist/operator/main.js
  pack_args+=(--expose 8080/tcp)
}
recipe_demo-app() { node_image "$1" dist/examples/demo-app/server.js; }
recipe_demo-consumer() { node_image "$1" dist/examples/demo-app/consumer.js; }

# --- coredns, local-path-provisioner: static binaries tools/toolchain.sh builds, each alone in its
# image (entrypoint /<name>), tagged with the version tools/versions.sh pins.
COREDNS_BIN=$TOOLS_BIN/coredns
LOCAL_PATH_BIN=$TOOLS_BIN/local-path-provisioner
plan_static_tool() { # name binary version
  tag=${3#v}
  if [[ ! -x $2 ]]; then
    blocked="$2 is missing: tools/toolchain.sh builds it ($1 $3)"
    return 0
  fi
  inputs="$1 $(file_sha "$2") $(declare -f recipe_static_tool static_image layer_of) $(cat "$PACK")"
}
plan_coredns() { plan_static_tool coredns "$COREDNS_BIN" "$COREDNS_VERSION"; }
plan_local-path-provisioner() {
  plan_static_tool local-path-provisioner "$LOCAL_PATH_BIN" "${LOCAL_PATH_PROVISIONER_VERSION:-unknown}"
}
# static_image WORK BINARY NAME UID: a root filesystem of one static binary at /NAME, plus the empty
# mount points and a passwd naming the uid (for tools that look it up).
static_image() {
  local work=$1 bin=$2 name=$3 uid=$4 rootfs=$1/rootfs
  file -L "$bin" | grep -q 'statically linked' || die "$bin is not a static binary"
  mkdir -p "$rootfs"/{dev,etc,proc,sys,tmp}
  chmod 1777 "$rootfs/tmp"
  install -m 755 "$bin" "$rootfs/$name"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%s:%s:nonroot:/nonexistent:/sbin/nologin\n' "$uid" "$uid" >"$rootfs/etc/passwd"
  printf 'root:x:0:\nnonroot:x:%s:\n' "$uid" >"$rootfs/etc/group"
  layer_of "$rootfs" "$work/layer.tar"
  layers=("$work/layer.tar")
}
recipe_static_tool() { # work name binary
  local work=$1 name=$2
  # Without its symbol table and DWARF (as -ldflags "-s -w" would have built it): a third smaller.
  strip -o "$work/$name" "$(readlink -f "$3")"
  # Read whole (`| head` under pipefail can fail by SIGPIPE), then its first line shown.
  local said; said=$("$work/$name" --version 2>&1)
  echo "${said%%$'\n'*}" >&2
  static_image "$work" "$work/$name" "$name" "$NONROOT_UID"
  pack_args=(--user "$NONROOT_UID:$NONROOT_UID" --workdir / --entrypoint "[\"/$name\"]")
}
recipe_coredns() {
  recipe_static_tool "$1" coredns "$COREDNS_BIN"
  pack_args+=(--expose 53/udp --expose 53/tcp)
}
recipe_local-path-provisioner() { recipe_static_tool "$1" local-path-provisioner "$LOCAL_PATH_BIN"; }

# --- object-store: versitygw, the S3-compatible store the backup tests archive into on the real
# node (e2e/real-backup.test.ts), as the data-plane tests run it on loopback. A test fixture, never
# part of a ScalableApp: users bring their own store.
VERSITYGW_BIN=$TOOLS_BIN/versitygw
plan_object-store() { plan_static_tool versitygw "$VERSITYGW_BIN" "$VERSITYGW_VERSION"; }
recipe_object-store() {
  recipe_static_tool "$1" versitygw "$VERSITYGW_BIN"
  pack_args+=(--expose 7070/tcp)
}

# --- toolbox: a Debian minbase (sh, coreutils, findutils, grep, sed, tar, nc) for the local-path
# provisioner's helper pods, which create and delete the volume directories on the node
# (manifests/cluster/real-node/local-path.yaml). The one image that runs as root: it must create
# directories in the node's root-owned volumes directory and delete data that Postgres (uid 999)
# left behind, exactly as the busybox image upstream uses does. Tagged with the suite and its recipe.
plan_toolbox() {
  inputs="$SUITE $TOOLBOX_NETCAT $(declare -f recipe_toolbox debian_rootfs add_user finish_rootfs layer_of) $(cat "$PACK")"
  tag=$SUITE-$(printf '%s' "$inputs" | sha | cut -c1-12)
}
# netcat-openbsd: the HTTP and TCP checks of the charts' `helm test` pods (e2e/real-charts.test.ts).
TOOLBOX_NETCAT=netcat-openbsd=1.219-1
recipe_toolbox() {
  local work=$1 rootfs=$1/rootfs
  debian_rootfs "$rootfs" --include="$TOOLBOX_NETCAT"
  finish_rootfs "$rootfs"
  image_env=("PATH=$STD_PATH")
  run_in "$rootfs" 0:0 /tmp sh -ec 'mkdir -m 0777 -p /tmp/v/x && rm -rf /tmp/v && command -v nc >/dev/null && echo "sh, mkdir, rm, nc: ok"' >&2
  layer_of "$rootfs" "$work/layer.tar"
  layers=("$work/layer.tar")
  packages=$(packages_of "$rootfs")
  pack_args=(--user 0:0 --workdir / --cmd '["sh"]')
}

# --- pause: the sandbox image, compiled from the pause.c of the Kubernetes release (build/pause/linux
# in the k8s.io/kubernetes module), tagged with the version its Makefile builds.
pause_source() {
  local dir
  dir=$(GOTOOLCHAIN=local go env GOMODCACHE)/k8s.io/kubernetes@$KUBERNETES_VERSION
  if [[ -f $dir/build/pause/linux/pause.c ]]; then echo "$dir/build/pause"; return 0; fi
  local tmp; tmp=$(mktemp -d) # outside any module: go mod download of one module@version
  dir=$(cd "$tmp" && GOTOOLCHAIN=local GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  rmdir "$tmp"
  [[ -f $dir/build/pause/linux/pause.c ]] || die "k8s.io/kubernetes@$KUBERNETES_VERSION has no build/pause/linux/pause.c"
  echo "$dir/build/pause"
}
plan_pause() {
  command -v go >/dev/null || { blocked="go is not on PATH: the pause source comes from the k8s.io/kubernetes module"; return 0; }
  command -v gcc >/dev/null || { blocked="gcc is not installed (apt-get install gcc libc6-dev)"; return 0; }
  pause_dir=$(pause_source)
  tag=$(sed -n 's/^TAG ?= *\([0-9.]*\)$/\1/p' "$pause_dir/Makefile")
  [[ -n $tag ]] || die "no TAG in $pause_dir/Makefile"
  inputs="pause $(sha256sum "$pause_dir/linux/pause.c") $(gcc --version | head -1) $(declare -f recipe_pause static_image layer_of) $(cat "$PACK")"
}
recipe_pause() {
  local work=$1
  gcc -static -O2 -Wall -Werror -DVERSION="v$tag-$KUBERNETES_VERSION" -o "$work/pause" "$pause_dir/linux/pause.c"
  strip "$work/pause"
  "$work/pause" -v >&2
  static_image "$work" "$work/pause" pause 65535
  # As upstream's image: uid 65535, entrypoint /pause.
  pack_args=(--user 65535:65535 --workdir / --entrypoint '["/pause"]')
}

# ---------------------------------------------------------------------------------------------------

# plan NAME: sets ref, archive and blocked for NAME (tag and key from its plan_ function).
plan() {
  local name=$1
  tag='' inputs='' blocked=''
  "plan_$name"
  ref=$REGISTRY/$name:${tag:-unknown}
  if [[ -n $blocked ]]; then archive=''; return 0; fi
  local key; key=$(printf '%s %s' "$REGISTRY" "$inputs" | sha | cut -c1-12)
  archive=$ARCHIVES/${name}_${tag}_$key.tar
}

build_one() {
  local name=$1 start; start=$(date +%s)
  plan "$name"
  [[ -z $blocked ]] || die "$name: $blocked"
  if [[ -f $archive ]]; then
    step "$name: cached $ref ($(du -h "$archive" | cut -f1))"
    return 0
  fi
  step "$name: building $ref"
  local work=$WORK/$name.$BASHPID
  rm -rf "$work" && mkdir -p "$work" "$ARCHIVES"
  # shellcheck disable=SC2064 # expanded now: the locals are gone when the trap runs
  trap "rm -rf '$work' '$archive.tmp' '$archive.json.tmp'" EXIT
  layers=() pack_args=() packages='' image_env=()
  "recipe_$name" "$work"
  local env
  for env in "${image_env[@]}"; do pack_args+=(--env "$env"); done
  local layer_args=() l
  for l in "${layers[@]}"; do layer_args+=(--layer "$l"); done
  SOURCE_DATE_EPOCH=0 "$NODE_BIN" "$PACK" --out "$archive" --ref "$ref" "${layer_args[@]}" "${pack_args[@]}" \
    --label "org.opencontainers.image.title=$name" --label "io.scalableapp.built-by=tools/images.sh" \
    --created-by "tools/images.sh build $name" >"$archive.json.tmp"
  mv "$archive.json.tmp" "$archive.json"
  if [[ -n $packages ]]; then echo "$packages" >"$archive.packages"; fi
  local took=$(($(date +%s) - start))
  echo "$(date -u +%FT%TZ) $name $ref ${took}s $(stat -c %s "$archive")" >>"$IMAGES_DIR/build-times.log"
  step "$name: built $ref in ${took}s ($(du -h "$archive" | cut -f1))"
  # Keep the three newest archives of each image (switching branches back finds them), drop the rest.
  ls -t "$ARCHIVES/${name}"_*.tar 2>/dev/null | tail -n +4 | while read -r old; do rm -f "$old" "$old.json" "$old.packages"; done
}

write_env() {
  local tmp=$ENV_FILE.tmp name var
  {
    echo "# Written by tools/images.sh build: the local images of the real node, by reference."
    echo "# Import them into the node's containerd with: tools/images.sh import --address <socket>"
    for name in "${ALL_IMAGES[@]}"; do
      plan "$name"
      var=IMAGE_$(echo "$name" | tr 'a-z-' 'A-Z_')
      if [[ -n $archive && -f $archive ]]; then
        echo "$var=$ref"
      else
        echo "# $var: not built${blocked:+ ($blocked)}"
      fi
    done
  } >"$tmp"
  mv "$tmp" "$ENV_FILE"
}

# Sets names to the arguments, or to every image when there are none.
names_or_all() {
  local n
  for n in "$@"; do
    [[ " ${ALL_IMAGES[*]} " == *" $n "* ]] || die "unknown image '$n' (images: ${ALL_IMAGES[*]})"
  done
  if (($# == 0)); then names=("${ALL_IMAGES[@]}"); else names=("$@"); fi
}

cmd_build() {
  local names; names_or_all "$@"
  [[ $(id -u) == 0 ]] || die "building images needs root: mmdebstrap builds root filesystems in root mode and the checks chroot into them; run: sudo tools/images.sh build ${*}"
  local t
  for t in mmdebstrap tar unshare chroot file sha256sum; do command -v "$t" >/dev/null || die "$t is not installed"; done
  [[ -x $NODE_BIN ]] || die "$NODE_BIN is missing: run npm ci first (it also packs the archives)"
  mkdir -p "$IMAGES_DIR" "$WORK"
  # One build at a time per cache: two would build the same images into the same places.
  exec 9>"$IMAGES_DIR/.build.lock"
  flock -n 9 || { step "another tools/images.sh build is running; waiting for it"; flock 9; }
  step "images into $ARCHIVES"
  local failed=() name rc
  # Every image's tag now, in this shell: the three Node images share one snapshot of the sources
  # (and images.env names it) even when files change while the build runs.
  for name in "${names[@]}"; do plan "$name"; done
  for name in "${names[@]}"; do
    # A subshell per image (errexit inside, its own EXIT trap), so one that cannot be built now does
    # not stop the others; the failures are listed at the end.
    set +e
    (set -e; build_one "$name")
    rc=$?
    set -e
    ((rc == 0)) || failed+=("$name")
  done
  write_env
  step "wrote $ENV_FILE"
  ((${#failed[@]} == 0)) || die "not built: ${failed[*]} (see the errors above)"
}

cmd_list() {
  local names name; names_or_all "$@"
  for name in "${names[@]}"; do
    plan "$name"
    if [[ -n $blocked ]]; then printf '%-23s %-56s blocked: %s\n' "$name" "$ref" "$blocked"
    elif [[ -f $archive ]]; then printf '%-23s %-56s built   %s\n' "$name" "$ref" "$(du -h "$archive" | cut -f1)"
    else printf '%-23s %-56s not built\n' "$name" "$ref"; fi
  done
}

# The digest of the config of the image REF in the containerd, or nothing when it has no such image.
present_config() {
  local manifest
  manifest=$(ctr "${ctr_args[@]}" images ls "name==$1" 2>/dev/null | awk 'NR > 1 { print $3 }')
  [[ -n $manifest ]] || return 0
  ctr "${ctr_args[@]}" content get "$manifest" 2>/dev/null | tr -d ' \n\t' |
    sed -n 's/.*"config":{[^}]*"digest":"\(sha256:[0-9a-f]\{64\}\)".*/\1/p'
}

cmd_import() {
  local address='' namespace=k8s.io snapshotter='' names=() unpack=1
  while (($#)); do
    case $1 in
      --address) address=${2:?--address needs a socket path}; shift 2 ;;
      --namespace) namespace=${2:?}; shift 2 ;;
      --snapshotter) snapshotter=${2:?}; shift 2 ;;
      --no-unpack) unpack=0; shift ;;
      -*) die "unknown option $1 (import --address SOCK [--namespace NS] [--snapshotter S] [--no-unpack] [name...])" ;;
      *) names+=("$1"); shift ;;
    esac
  done
  [[ -n $address ]] || die "import needs --address <containerd socket>"
  [[ -S $address ]] || die "$address is not a socket: is containerd running?"
  command -v ctr >/dev/null || die "ctr is not installed (Debian package containerd)"
  names_or_all "${names[@]}"
  ctr_args=(--address "$address" --namespace "$namespace")
  local name want have import_args=()
  ((unpack)) || import_args+=(--no-unpack)
  [[ -z $snapshotter ]] || import_args+=(--snapshotter "$snapshotter")
  for name in "${names[@]}"; do
    plan "$name"
    [[ -z $blocked ]] || die "$name: $blocked"
    [[ -f $archive ]] || die "$name: $ref is not built: run tools/images.sh build $name"
    want=$(sed -n 's/^  "config": "\(sha256:[0-9a-f]*\)",$/\1/p' "$archive.json")
    have=$(present_config "$ref")
    if [[ -n $want && $have == "$want" ]]; then
      step "$name: $ref present"
      continue
    fi
    step "$name: importing $ref${have:+ (replacing another build of the same tag)}"
    with_heartbeat "import $name" ctr "${ctr_args[@]}" images import "${import_args[@]}" "$archive" >&2
    have=$(present_config "$ref")
    [[ $have == "$want" ]] || die "$name: imported $archive, but $ref in $address has config ${have:-nothing}, not $want"
  done
}

# run-in --rootfs DIR --user UID:GID [--groups G,G] [--workdir DIR] [--hostname H] [--mount SPEC]...
#        [--env K=V]... -- CMD...
# run_in from the command line (tools/images/smoke.ts runs its containers and exec probes with it).
cmd_run_in() {
  local rootfs='' user='' mounts=()
  image_env=() run_groups='' run_workdir=/ run_hostname=
  while (($#)); do
    case $1 in
      --rootfs) rootfs=$2; shift 2 ;;
      --user) user=$2; shift 2 ;;
      --groups) run_groups=$2; shift 2 ;;
      --workdir) run_workdir=$2; shift 2 ;;
      --hostname) run_hostname=$2; shift 2 ;;
      --mount) mounts+=("$2"); shift 2 ;;
      --env) image_env+=("$2"); shift 2 ;;
      --) shift; break ;;
      *) die "run-in: unknown option $1" ;;
    esac
  done
  [[ -d $rootfs && -n $user && $# -gt 0 ]] || die "usage: tools/images.sh run-in --rootfs DIR --user UID:GID [--groups G,G] [--workdir DIR] [--mount SPEC]... [--env K=V]... -- CMD..."
  [[ $(id -u) == 0 ]] || die "run-in needs root (mounts and chroot)"
  local IFS=,
  run_in "$rootfs" "$user" "${mounts[*]}" "$@"
}

# smoke [name...]: runs the operator's pods of the server and demo images, and the operator as
# manifests/operator deploys it (tools/images/smoke.ts), from the built archives, in a network
# namespace of its own. Default: all of them.
SMOKE_IMAGES=(postgres cache rabbitmq nginx demo-app demo-consumer operator)
cmd_smoke() {
  local keep=0 names=() name
  while (($#)); do
    case $1 in
      --keep) keep=1; shift ;;
      *) names+=("$1"); shift ;;
    esac
  done
  ((${#names[@]})) || names=("${SMOKE_IMAGES[@]}")
  for name in "${names[@]}"; do
    [[ " ${SMOKE_IMAGES[*]} " == *" $name "* ]] || die "smoke runs only the images of the tiers: ${SMOKE_IMAGES[*]}"
  done
  [[ $(id -u) == 0 ]] || die "smoke needs root (mounts, chroot, a network namespace)"
  command -v ip >/dev/null || die "ip (iproute2) is not installed"
  local work=$WORK/smoke.$$
  rm -rf "$work" && mkdir -p "$work"
  # shellcheck disable=SC2064 # expanded now
  ((keep)) || trap "rm -rf '$work'" EXIT
  local manifest=$work/images.json entries=() layer
  # Every tier's image in the sample app is referenced even when not run: plan them all.
  for name in "${SMOKE_IMAGES[@]}"; do
    plan "$name"
    if [[ -n $blocked || ! -f $archive ]]; then
      [[ " ${names[*]} " != *" $name "* ]] || die "$name: $ref is not built${blocked:+ ($blocked)}: run tools/images.sh build $name"
      continue
    fi
    mkdir -p "$work/$name/rootfs"
    if [[ " ${names[*]} " == *" $name "* ]]; then
      step "smoke: unpacking $ref"
      while read -r layer; do
        tar -xOf "$archive" "$layer" | tar -x -C "$work/$name/rootfs"
      done < <("$NODE_BIN" -e 'for (const l of JSON.parse(require("fs").readFileSync(0, "utf8"))[0].Layers) console.log(l)' < <(tar -xOf "$archive" manifest.json))
    fi
    entries+=("$name" "$archive.json" "$work/$name/rootfs")
  done
  "$NODE_BIN" -e '
    const fs = require("fs"); const a = process.argv.slice(1); const out = {};
    for (let i = 0; i + 3 < a.length; i += 3) {
      const s = JSON.parse(fs.readFileSync(a[i + 1], "utf8"));
      out[a[i]] = { ref: s.ref, rootfs: a[i + 2], config: s.imageConfig };
    }
    fs.writeFileSync(a.at(-1), JSON.stringify(out, null, 2));' "${entries[@]}" "$manifest"
  local smoke_names=()
  for name in "${names[@]}"; do smoke_names+=("$name"); done
  step "smoke: running ${smoke_names[*]} in a network namespace of their own"
  unshare --net -- /bin/bash -c 'ip link set lo up && exec "$@"' smoke \
    "$NODE_BIN" "$here/images/smoke.ts" "$manifest" "$work/pods" "${smoke_names[@]}"
}

case ${1:-} in
  build) shift; cmd_build "$@" ;;
  import) shift; cmd_import "$@" ;;
  env) echo "$ENV_FILE" ;;
  list) shift; cmd_list "$@" ;;
  smoke) shift; cmd_smoke "$@" ;;
  run-in) shift; cmd_run_in "$@" ;;
  *) die "usage: tools/images.sh build [name...] | import --address SOCK [name...] | env | list [name...] | smoke [name...]  (names: ${ALL_IMAGES[*]})" ;;
esac
