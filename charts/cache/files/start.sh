#!/bin/sh
set -eu
server=$(command -v valkey-server || command -v redis-server)
primary=$(cat /config/primary)
started_before=$([ -e /data/.started ] && echo yes || true)
: > /data/.started
role_args="--replicaof $primary.@PEER_DOMAIN@ 6379"
if [ "$HOSTNAME" = "$primary" ]; then
  role_args=
  if [ "$(cat /config/holdRestartedPrimary 2>/dev/null || true)" = true ]; then
    served=$(cat /config/primaryUid 2>/dev/null || true)
    if [ -n "$started_before" ] || { [ -n "$served" ] && [ "$served" != "${POD_UID:-}" ]; }; then
      echo "the recorded primary starts again, empty: held as a replica of nothing until the operator promotes a replica that holds the data" >&2
      role_args="--replicaof 127.0.0.1 1"
    fi
  fi
fi
server_pid=
pending=
forward() { if [ -n "$server_pid" ]; then kill "-$1" "$server_pid" 2>/dev/null || :; else pending=$1; fi; }
for signal in INT TERM QUIT HUP; do trap "forward $signal" "$signal"; done
"$server" /config/cache.conf $role_args &
server_pid=$!
[ -z "$pending" ] || forward "$pending"
# A trapped signal ends a wait early (status > 128) while the server runs on: wait again until it is gone.
status=0
while kill -0 "$server_pid" 2>/dev/null; do
  status=0
  wait "$server_pid" || status=$?
done
exit "$status"
