#!/bin/sh
cli=$(command -v valkey-cli || command -v redis-cli)
REDISCLI_AUTH=$(cat /auth/operator-password) || exit 1
export REDISCLI_AUTH
reply=$("$cli" --no-auth-warning --user scalableapp-operator -h 127.0.0.1 -p 6379 PING 2>&1)
[ "$reply" = PONG ] && exit 0
echo "PING: $reply"
exit 1
