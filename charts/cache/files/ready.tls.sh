#!/bin/sh
cli=$(command -v valkey-cli || command -v redis-cli)
REDISCLI_AUTH=$(cat /auth/operator-password) || exit 1
export REDISCLI_AUTH
if ! cmp -s /tls/tls.crt /data/.served.crt; then
  reply=$("$cli" --tls --insecure --no-auth-warning --user scalableapp-operator -h 127.0.0.1 -p 6379 CONFIG SET tls-cert-file /tls/tls.crt tls-key-file /tls/tls.key tls-ca-cert-file /tls/ca.crt 2>&1)
  if [ "$reply" = OK ]; then cp /tls/tls.crt /data/.served.crt.tmp && mv -f /data/.served.crt.tmp /data/.served.crt; else echo "reloading the certificate: $reply" >&2; fi
fi
reply=$("$cli" --tls --cacert /tls/ca.crt --no-auth-warning --user scalableapp-operator -h 127.0.0.1 -p 6379 PING 2>&1)
[ "$reply" = PONG ] && exit 0
echo "PING: $reply"
exit 1
