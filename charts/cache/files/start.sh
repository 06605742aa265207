#!/bin/sh
set -eu
server=$(command -v valkey-server || command -v redis-server)
primary=$(cat /config/primary)
if [ "$HOSTNAME" = "$primary" ]; then
  if [ -n "${RESTARTED_PRIMARY_WAITS:-}" ]; then
    served=$(cat /config/primaryUid 2>/dev/null || true)
    if [ -e /data/.started-as-primary ] || { [ -n "$served" ] && [ "$served" != "$POD_UID" ]; }; then
      echo "the recorded primary starts again, empty: held as a replica of nothing until the operator promotes a replica that holds the data" >&2
      exec "$server" /config/cache.conf --replicaof 127.0.0.1 1
    fi
    : > /data/.started-as-primary
  fi
  exec "$server" /config/cache.conf
fi
exec "$server" /config/cache.conf --replicaof "$primary.@PEER_DOMAIN@" 6379
