#!/bin/sh
cli=$(command -v valkey-cli || command -v redis-cli)
REDISCLI_AUTH=$(cat /auth/operator-password) || exit 1
export REDISCLI_AUTH
ask() { "$cli" --tls --cacert /tls/ca.crt --no-auth-warning --user scalableapp-operator -h 127.0.0.1 -p 6379 "$@" 2>&1; }
reply=$(ask PING)
[ "$reply" = PONG ] || { echo "PING: $reply"; exit 1; }
if ! cmp -s /tls/tls.crt /data/.served.crt; then
  reply=$(ask CONFIG SET tls-cert-file /tls/tls.crt tls-key-file /tls/tls.key tls-ca-cert-file /tls/ca.crt)
  if [ "$reply" = OK ]; then cp /tls/tls.crt /data/.served.crt.tmp && mv -f /data/.served.crt.tmp /data/.served.crt; else echo "reloading the certificate: $reply" >&2; fi
fi
exit 0
