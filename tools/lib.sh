# Shared helpers for tools/*.sh: progress lines with elapsed time, and failing loudly.
_t0=$(date +%s)
step() { printf '[%4ss] %s\n' "$(( $(date +%s) - _t0 ))" "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
# Runs a long command, printing a heartbeat every 30 s so a CI log never goes silent.
with_heartbeat() {
  local label=$1; shift
  local start last now; start=$(date +%s); last=$start
  "$@" &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep 2
    now=$(date +%s)
    if (( now - last >= 30 )); then
      step "  ... $label still running ($(( now - start ))s)"; last=$now
    fi
  done
  wait "$pid"
}
