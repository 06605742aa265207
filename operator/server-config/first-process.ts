// What a server's start script does once it has chosen how to start: it stays the container's first
// process (PID 1 in a pod) and runs the server as its child, instead of exec'ing it (docs/adr/0030).
// PID 1 inherits every orphan of the container: the children of a readiness probe the kubelet killed
// on its timeout, of a dropped `kubectl exec`, of archive_command. Postgres takes a child of its own
// that exits with an error for a crashed backend and restarts every session; Valkey and Redis reap
// children only while a fork of their own runs, so orphans stay zombies until the PID table fills. The
// shell's `wait` collects any child, and the shell hands the server the signals that stop a container.

/**
 * Shell lines that start `command` (a shell command line, expanded as written) in the background,
 * pass INT, TERM, QUIT and HUP on to it (one that arrives before it started, once it has), reap every
 * orphan while it runs, and exit with its status. The last lines of a script: nothing runs after them.
 */
export function superviseServer(command: string): string[] {
  return [
    'server_pid=',
    'pending=',
    'forward() { if [ -n "$server_pid" ]; then kill "-$1" "$server_pid" 2>/dev/null || :; else pending=$1; fi; }',
    'for signal in INT TERM QUIT HUP; do trap "forward $signal" "$signal"; done',
    `${command} &`,
    'server_pid=$!',
    '[ -z "$pending" ] || forward "$pending"',
    '# A trapped signal ends a wait early (status > 128) while the server runs on: wait again until it is gone.',
    'status=0',
    'while kill -0 "$server_pid" 2>/dev/null; do',
    '  status=0',
    '  wait "$server_pid" || status=$?',
    'done',
    'exit "$status"',
  ];
}
