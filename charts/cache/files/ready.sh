#!/bin/sh
cli=$(command -v valkey-cli || command -v redis-cli)
REDISCLI_AUTH=$(cat /auth/operator-password) || exit 1
export REDISCLI_AUTH
ask() { "$cli" --no-auth-warning --user scalableapp-operator -h 127.0.0.1 -p 6379 "$@" 2>&1; }
reply=$(ask PING)
[ "$reply" = PONG ] || { echo "PING: $reply"; exit 1; }
exit 0
