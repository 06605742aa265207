// The passfile an instance's own clients read — the walreceiver streaming from the primary,
// pg_basebackup and pg_rewind, the probes' psql — written from the credentials Secret by the start
// script and kept up to date by the readiness probe, so a changed server password (ADR 0028) reaches
// the next connection without a restart. Shell text shared by both scripts.
import { DEFAULT_REPLICATION_USER, DEFAULT_SUPERUSER, checkIdentifier } from './postgres.ts';

/** The credentials Secret's keys of the servers' own passwords, as the user asks for them. */
export const SERVER_PASSWORD_FILES = {
  superuser: 'superuser-password',
  replication: 'replication-password',
} as const;

/**
 * The operator's record, in the credentials Secret, of the passwords the servers' own roles have
 * (ADR 0028). The instances read these when present, else the Secret's `superuser-password` and
 * `replication-password`: a password the user just changed is used once the servers have it.
 */
export const SERVER_PASSWORD_KEYS = {
  superuser: 'applied-superuser-password',
  replication: 'applied-replication-password',
  /** The operator's alone: the superuser's password before the last change. */
  previousSuperuser: 'previous-superuser-password',
} as const;

/**
 * Shell functions (POSIX sh) over `$credentials_dir`:
 * - `server_key KEY RECORD_KEY`: the key to read a server password from, RECORD_KEY when the
 *   Secret has it;
 * - `write_passfile PATH`: writes PATH (mode 0600, replaced whole) with the superuser's and the
 *   replication role's lines; fails, leaving PATH as it was, when a password is missing or empty;
 * - `refresh_passfile PATH`: the same, only when the text differs from PATH's; says so on stdout.
 */
export function passfileFunctions(o: { superuser?: string; replicationUser?: string } = {}): string {
  const superuser = checkIdentifier('superuser', o.superuser ?? DEFAULT_SUPERUSER);
  const replication = checkIdentifier('replicationUser', o.replicationUser ?? DEFAULT_REPLICATION_USER);
  const k = SERVER_PASSWORD_KEYS;
  const f = SERVER_PASSWORD_FILES;
  // In this template literal `\${` is a literal `${` and `\\` a single backslash.
  return `server_key() { if [ -s "$credentials_dir/$2" ]; then printf '%s' "$2"; else printf '%s' "$1"; fi; }
# libpq's passfile format escapes ':' and '\\'. printf is a builtin: the password is in no argv.
pgpass_field() { printf '%s' "$1" | sed 's/[\\\\:]/\\\\&/g'; }
passfile_text() {
  su_pw=$(cat "$credentials_dir/$(server_key ${f.superuser} ${k.superuser})" 2>/dev/null) || return 1
  repl_pw=$(cat "$credentials_dir/$(server_key ${f.replication} ${k.replication})" 2>/dev/null) || return 1
  [ -n "$su_pw" ] && [ -n "$repl_pw" ] || return 1
  printf '*:*:*:%s:%s\\n' ${superuser} "$(pgpass_field "$su_pw")"
  printf '*:*:*:%s:%s\\n' ${replication} "$(pgpass_field "$repl_pw")"
}
# The text is built in memory and compared there: the readiness probe runs this every few seconds,
# and a file is written only when the passwords changed.
put_passfile() {
  (umask 077 && printf '%s\\n' "$2" >"$1.tmp") || { rm -f "$1.tmp"; return 1; }
  mv -f "$1.tmp" "$1"
}
write_passfile() { text=$(passfile_text) || return 1; put_passfile "$1" "$text"; }
refresh_passfile() {
  text=$(passfile_text) || return 1
  [ -f "$1" ] && [ "$text" = "$(cat "$1")" ] && return 0
  put_passfile "$1" "$text" || return 1
  echo "the passfile follows the servers' changed passwords"
}
`;
}
