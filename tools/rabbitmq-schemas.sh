#!/usr/bin/env bash
# What a RabbitMQ release nearer the operator's default image (rabbitmq:4.1-management) accepts, for
# server-tests/rabbitmq-schemas.test.ts: the configuration schemas (cuttlefish `*.schema`), the plugin
# names and the rabbit application's compiled modules (where advanced.config's settings are read) of
# Debian trixie's rabbitmq-server 4.0,
# the nearest release any allowed registry serves (Debian's archive has no 4.1). The local image runs
# 3.10 (bookworm), which the test reads from the installed package. Pinned by version and SHA-256,
# cached under $HOME; only these files are kept. Prints the directory.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/lib.sh"

VERSION=4.0.5-6+deb13u2
SHA256=2d77b12be64d480db03489825b96d241dbd38db59673adccf5b5feefacdf8e41
POOL=pool/main/r/rabbitmq-server
MIRROR=${RABBITMQ_SCHEMAS_MIRROR:-http://deb.debian.org/debian}

out=${SCALABLEAPP_CACHE:-$HOME/.cache/scalableapp}/rabbitmq-schemas/$VERSION
if [[ -f $out/.done ]]; then
  echo "$out"
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
deb=$work/rabbitmq-server.deb
step "rabbitmq-server $VERSION: downloading Debian's package for its schemas (16 MB, once)"
curl -fsSL --retry 3 -o "$deb" "$MIRROR/$POOL/rabbitmq-server_${VERSION}_all.deb" ||
  die "could not download rabbitmq-server $VERSION from $MIRROR; if Debian dropped it, update VERSION and SHA256 in tools/rabbitmq-schemas.sh"
echo "$SHA256  $deb" | sha256sum -c --quiet - || die "rabbitmq-server $VERSION: SHA-256 mismatch"
mkdir -p "$work/root"
dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$work/root" --wildcards '*.schema' '*/plugins/rabbit-[0-9]*/ebin/*'
dpkg-deb -c "$deb" | grep -oE 'plugins/[a-z0-9_]+-[0-9][^/]*/$' | sed -E 's#plugins/(.*)-[0-9][^/]*/$#\1#' |
  sort -u >"$work/plugins.txt"
[[ -s $work/plugins.txt ]] || die "rabbitmq-server $VERSION: no plugin directories found in the package"
rm -rf "$out.tmp" && mkdir -p "$out.tmp/schema"
find "$work/root" -name '*.schema' -exec cp {} "$out.tmp/schema/" \;
mkdir -p "$out.tmp/rabbit-ebin"
find "$work/root" -path '*/plugins/rabbit-[0-9]*/ebin/*' -type f -exec cp {} "$out.tmp/rabbit-ebin/" \;
cp "$work/plugins.txt" "$out.tmp/plugins.txt"
[[ -f $out.tmp/rabbit-ebin/rabbit.app && -f $out.tmp/schema/rabbit.schema ]] ||
  die "rabbitmq-server $VERSION: rabbit.schema or the rabbit application missing"
touch "$out.tmp/.done"
rm -rf "$out" && mv "$out.tmp" "$out"
step "rabbitmq-server $VERSION: $(ls "$out/schema" | wc -l) schemas, $(wc -l <"$out/plugins.txt") plugins in $out"
echo "$out"
