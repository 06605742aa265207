#!/bin/sh
set -eu
server=$(command -v valkey-server || command -v redis-server)
primary=$(cat /config/primary)
started_before=$([ -e /data/.started ] && echo yes || true)
: > /data/.started
if [ "$HOSTNAME" = "$primary" ]; then
  if [ "$(cat /config/holdRestartedPrimary 2>/dev/null || true)" = true ]; then
    served=$(cat /config/primaryUid 2>/dev/null || true)
    if [ -n "$started_before" ] || { [ -n "$served" ] && [ "$served" != "${POD_UID:-}" ]; }; then
      echo "the recorded primary starts again, empty: held as a replica of nothing until the operator promotes a replica that holds the data" >&2
      exec "$server" /config/cache.conf --replicaof 127.0.0.1 1
    fi
  fi
  exec "$server" /config/cache.conf
fi
exec "$server" /config/cache.conf --replicaof "$primary.@PEER_DOMAIN@" 6379
