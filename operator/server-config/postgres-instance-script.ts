// The start script of a Postgres instance, as pure text: the operator ships it in the ConfigMap and
// the pod runs it with `sh`; the data-plane tests write the same text to a file and run it locally.
// It decides, from the data directory and the recorded primary, how this instance must start:
//
//   data directory   recorded primary   what happens
//   empty            this instance      initdb, roles and the app database, then postgres (primary)
//   empty            another            pg_basebackup from the primary, then postgres as its standby
//   a standby's      another            pg_rewind when its history forked from the primary's
//                                       (a dry run tells), then postgres following the primary
//   a primary's      another            pg_rewind from the primary (a fresh clone if that fails),
//                                       then postgres as its standby: an old primary after a failover
//   a standby's      this instance      promoted at start (archive recovery to a new timeline)
//   a primary's      this instance      postgres as the primary
// A primary, whichever way it starts, drops a fence the operator may have left (see admin.ts), but
// keeps its own (ready.sh): only the operator lifts that one.
//
// Secrets: passwords are read from the credential files at run time, by shell builtins only. They
// reach initdb through --pwfile, the bootstrap SQL through single-user postgres's stdin, and libpq
// (pg_basebackup, pg_rewind, the walreceiver of a standby) through a 0600 passfile that PGPASSFILE
// names. They are never in this text, a process's arguments, its environment or primary_conninfo.
import {
  DEFAULT_MONITOR_USER,
  DEFAULT_REPLICATION_USER,
  DEFAULT_SUPERUSER,
  FENCE_SETTING,
  PG_PASSFILE,
  PG_RUN_DIR,
  checkIdentifier,
  identConfig,
} from './postgres.ts';
import { superviseServer } from './first-process.ts';
import { SERVER_PASSWORD_FILES, SERVER_PASSWORD_KEYS, passfileFunctions } from './postgres-passfile.ts';
import { FENCED_HBA_FILE, STARTED_FENCED_HBA_FILE, STARTED_HBA_FILE } from './postgres-ready-script.ts';

/** The files the script reads from $CREDENTIALS_DIR (the keys of the credentials Secret). */
export const CREDENTIAL_FILES = {
  superuserPassword: SERVER_PASSWORD_FILES.superuser,
  replicationPassword: SERVER_PASSWORD_FILES.replication,
  appPassword: 'app-password',
  /** Optional: without it there is no monitoring role (a tier chart's Secret before monitoring). */
  monitorPassword: 'monitor-password',
} as const;

/**
 * The environment the script expects. Required: PGDATA, PGPORT, INSTANCE_NAME, PRIMARY_NAME,
 * PRIMARY_HOST, PRIMARY_PORT. Optional: PG_BIN (directory of the server binaries; default: PATH),
 * CONFIG_DIR (postgresql.conf and pg_hba.conf; default /config), CREDENTIALS_DIR (default
 * /credentials), RUN_DIR (a private writable directory for the passfile and the Unix socket;
 * default PG_RUN_DIR), REWIND_WAITS (how many times, 2 s apart, a former primary waits for
 * a silent primary to rewind from before it is cloned instead; default 15), TLS_CA_FILE (with TLS:
 * the CA the primary's certificate must chain to; every connection to the primary — clone, rewind,
 * streaming — then asks for sslmode=verify-full against it).
 */
export type InstanceEnv = {
  PGDATA: string;
  PGPORT: string;
  INSTANCE_NAME: string;
  PRIMARY_NAME: string;
  PRIMARY_HOST: string;
  PRIMARY_PORT: string;
  PG_BIN?: string;
  REWIND_WAITS?: string;
  CONFIG_DIR?: string;
  CREDENTIALS_DIR?: string;
  RUN_DIR?: string;
  TLS_CA_FILE?: string;
};

export type InstanceScriptOptions = {
  appUser: string;
  appDatabase: string;
  superuser?: string;
  replicationUser?: string;
  monitorUser?: string;
};

/**
 * A POSIX sh script (dash, bash, busybox ash) that prepares the data directory of one instance and
 * then execs postgres in its place, so postgres is the container's main process and gets its
 * signals. See the module comment for what it does; the environment is described by InstanceEnv.
 *
 * PGDATA must be a subdirectory of the volume (e.g. /var/lib/postgresql/data/pgdata): clones and
 * initdb are built in "$PGDATA.new" and renamed into place once complete, so a data directory that
 * exists is always a whole one, even when the pod was killed mid-clone.
 *
 * What it cannot know: an empty data directory on the recorded primary is initialised as a new,
 * empty cluster. The operator must move the record to a standby before a primary's volume is
 * replaced, or the standbys (another system identifier) stop replicating.
 */
export function instanceStartScript(o: InstanceScriptOptions): string {
  const superuser = checkIdentifier('superuser', o.superuser ?? DEFAULT_SUPERUSER);
  const replicationUser = checkIdentifier('replicationUser', o.replicationUser ?? DEFAULT_REPLICATION_USER);
  const appUser = checkIdentifier('appUser', o.appUser);
  const monitorUser = checkIdentifier('monitorUser', o.monitorUser ?? DEFAULT_MONITOR_USER);
  const appDatabase = checkIdentifier('appDatabase', o.appDatabase);
  const f = CREDENTIAL_FILES;
  // In this template literal `\${` is a literal `${` and `\\` a single backslash.
  return `#!/bin/sh
# Generated by the ScalableApp operator: prepares this Postgres instance's data directory from the
# recorded primary, then runs postgres in the foreground.
set -eu

superuser=${superuser}
replication_user=${replicationUser}
app_user=${appUser}
monitor_user=${monitorUser}
app_database=${appDatabase}

: "\${PGDATA:?PGDATA is required}" "\${PGPORT:?PGPORT is required}"
: "\${INSTANCE_NAME:?INSTANCE_NAME is required}" "\${PRIMARY_NAME:?PRIMARY_NAME is required}"
: "\${PRIMARY_HOST:?PRIMARY_HOST is required}" "\${PRIMARY_PORT:?PRIMARY_PORT is required}"
bin=\${PG_BIN:+$PG_BIN/}
config_dir=\${CONFIG_DIR:-/config}
credentials_dir=\${CREDENTIALS_DIR:-/credentials}
run_dir=\${RUN_DIR:-${PG_RUN_DIR}}

log() { printf '%s start.sh %s: %s\\n' "$(date -u '+%Y-%m-%dT%H:%M:%SZ')" "$INSTANCE_NAME" "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}
# Everything below goes into conninfo strings and postgresql.auto.conf unquoted: allow no quoting.
word() { case $2 in '' | *[!A-Za-z0-9._:-]*) die "$1 must match [A-Za-z0-9._:-]+, got '$2'" ;; esac; }
number() { case $2 in '' | *[!0-9]*) die "$1 must be a number, got '$2'" ;; esac; }
word INSTANCE_NAME "$INSTANCE_NAME"
word PRIMARY_NAME "$PRIMARY_NAME"
word PRIMARY_HOST "$PRIMARY_HOST"
number PGPORT "$PGPORT"
number PRIMARY_PORT "$PRIMARY_PORT"
case $run_dir in *"'"* | *'\\'*) die "RUN_DIR must not contain quotes or backslashes" ;; esac
# With TLS, every connection to the primary verifies its certificate and name (the walreceiver's
# too: primary_conninfo carries the same words, and so does the operator's ALTER SYSTEM on a follow).
tls=
if [ -n "\${TLS_CA_FILE:-}" ]; then
  case $TLS_CA_FILE in *[!A-Za-z0-9._/-]*) die "TLS_CA_FILE must match [A-Za-z0-9._/-]+, got '$TLS_CA_FILE'" ;; esac
  [ -r "$TLS_CA_FILE" ] || die "TLS_CA_FILE $TLS_CA_FILE is missing or unreadable"
  tls=" sslmode=verify-full sslrootcert=$TLS_CA_FILE"
fi

# A credential file's content (command substitution drops trailing newlines). Read into variables
# before use: a failing substitution inside another command's arguments would go unnoticed.
secret() {
  [ -r "$credentials_dir/$1" ] || die "credential file $credentials_dir/$1 is missing or unreadable"
  cat "$credentials_dir/$1"
}
${passfileFunctions({ superuser, replicationUser })}
# The servers' own passwords as they have them: the operator's record once it keeps one (a changed
# key is used once the servers have it, ADR 0028), else the Secret's keys.
superuser_key=$(server_key ${f.superuserPassword} ${SERVER_PASSWORD_KEYS.superuser})
replication_key=$(server_key ${f.replicationPassword} ${SERVER_PASSWORD_KEYS.replication})
superuser_password=$(secret "$superuser_key")
replication_password=$(secret "$replication_key")
[ -n "$superuser_password" ] || die "$superuser_key is empty"
[ -n "$replication_password" ] || die "$replication_key is empty"

# Files created from here on are private: the passfile, the data directory, its config copies.
umask 077
mkdir -p "$run_dir"
PGPASSFILE=$run_dir/${PG_PASSFILE}
write_passfile "$PGPASSFILE" || die "could not write the passfile $PGPASSFILE"
# Exported, so postgres passes it on to its walreceiver: a standby's primary_conninfo names no
# password, the walreceiver's libpq finds it here (and so does pg_rewind, pg_basebackup).
export PGPASSFILE

sql_literal() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/''/g")"; }

# Removes a setting from postgresql.auto.conf (ALTER SYSTEM's file; the server is not running).
drop_setting() {
  auto=$PGDATA/postgresql.auto.conf
  [ -f "$auto" ] || return 0
  grep -v "^[[:space:]]*$1[[:space:]]*=" "$auto" >"$auto.tmp" || true
  mv -f "$auto.tmp" "$auto"
}

# Statements on stdin, one per blank-line-separated block, run with no server (single-user mode):
# nothing to connect to or authenticate yet. exit_on_error fails the command on a failed statement;
# log_min_error_statement keeps statements (and so passwords) out of the error log. A commit here
# waits for the local flush only: the data directory's synchronous_standby_names would otherwise
# have it wait for a standby that cannot connect to a single-user server, for ever.
single_user() {
  "\${bin}postgres" --single -j -D "$1" -c exit_on_error=on -c log_min_error_statement=panic \\
    -c synchronous_commit=local postgres >/dev/null
}

# The metrics exporter's login, when the credentials hold its password: pg_monitor reads every
# statistics view and nothing of the data. Made at every start of the primary, not only at initdb:
# monitoring turned on for a cluster that already has data, or a changed password, takes effect
# with the rollout that brings the exporter.
ensure_monitor_role() {
  [ -e "$credentials_dir/${f.monitorPassword}" ] || return 0
  monitor_password=$(secret ${f.monitorPassword})
  [ -n "$monitor_password" ] || die "${f.monitorPassword} is empty"
  log "ensuring the role $monitor_user, a member of pg_monitor, with the password of ${f.monitorPassword}"
  {
    printf 'DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = %s) THEN CREATE ROLE "%s"; END IF; END$$;\\n\\n' "$(sql_literal "$monitor_user")" "$monitor_user"
    printf 'ALTER ROLE "%s" WITH LOGIN NOSUPERUSER NOREPLICATION PASSWORD %s;\\n\\n' "$monitor_user" "$(sql_literal "$monitor_password")"
    printf 'GRANT pg_monitor TO "%s";\\n\\n' "$monitor_user"
  } | single_user "$1"
}

init_primary() {
  new=$PGDATA.new
  rm -rf "$new"
  log "initialising a new database cluster"
  "\${bin}initdb" -D "$new" --username="$superuser" --pwfile="$credentials_dir/$superuser_key" \\
    --auth=scram-sha-256 --data-checksums --encoding=UTF8 --locale=C.UTF-8 >&2
  app_password=$(secret ${f.appPassword})
  [ -n "$app_password" ] || die "${f.appPassword} is empty"
  log "creating the roles $replication_user, $app_user and the database $app_database"
  {
    printf 'CREATE ROLE "%s" WITH LOGIN REPLICATION PASSWORD %s;\\n\\n' "$replication_user" "$(sql_literal "$replication_password")"
    printf 'CREATE ROLE "%s" WITH LOGIN PASSWORD %s;\\n\\n' "$app_user" "$(sql_literal "$app_password")"
    printf 'CREATE DATABASE "%s" OWNER "%s";\\n\\n' "$app_database" "$app_user"
  } | single_user "$new"
  ensure_monitor_role "$new"
  mv "$new" "$PGDATA"
}

# A fresh copy of the primary in $PGDATA.new, which then replaces $PGDATA. Fails (status 1) rather
# than exits, so the caller can retry: the primary may not be up yet.
clone() {
  new=$PGDATA.new
  rm -rf "$new"
  log "cloning $PRIMARY_NAME ($PRIMARY_HOST:$PRIMARY_PORT) with pg_basebackup"
  if ! "\${bin}pg_basebackup" -D "$new" -d "host=$PRIMARY_HOST port=$PRIMARY_PORT user=$replication_user$tls" -w \\
    -X stream -c fast --label="clone for $INSTANCE_NAME" >&2; then
    rm -rf "$new"
    return 1
  fi
  rm -rf "$PGDATA" && mv "$new" "$PGDATA"
}

# Makes the data directory of a former primary a copy of the current primary that only differs in
# the blocks the two wrote since their histories forked. Needs the superuser on the source (it
# reads files through SQL functions) and wal_log_hints or checksums, both of which we have. A data
# directory that was not shut down cleanly (kill -9) is crash-recovered first by pg_rewind itself.
# Status 2: the primary did not answer (not up yet, or this pod's network not yet let through), which
# is no reason to throw the data directory away for a clone.
# Extra arguments go to pg_rewind (--dry-run).
rewind() {
  source="host=$PRIMARY_HOST port=$PRIMARY_PORT user=$superuser dbname=postgres$tls"
  # pg_rewind reads the source's timeline from its pg_control, which a freshly promoted primary
  # updates only at its next checkpoint: without one it would find nothing to rewind and leave
  # this instance diverged. The operator checkpoints after promoting; this covers everyone else.
  "\${bin}psql" -X -q -w -d "$source" -c CHECKPOINT >&2 || return 2
  log "rewinding to $PRIMARY_NAME ($PRIMARY_HOST:$PRIMARY_PORT) with pg_rewind $*"
  "\${bin}pg_rewind" -D "$PGDATA" --source-server="$source" "$@" >&2
}

# Whether this standby's history forked from the primary's before the point it replayed to: it then
# waits for ever on the primary's new timeline ("forked off ... before current recovery point"). A
# standby read mid-replay during a failover (restarting, its local WAL not yet replayed) can be
# further ahead than the standby promoted. A dry run of pg_rewind decides, as it compares the
# histories with the standby's minimum recovery point, and changes nothing. Status 1 when no rewind
# is needed; status 2 when it cannot tell because this standby was not shut down cleanly (no
# single-user recovery here: it would refuse a standby.signal anyway); status 3 when the primary
# does not answer.
standby_forked() {
  check=$run_dir/rewind-check.log
  rewind --dry-run --no-ensure-shutdown 2>"$check"
  status=$?
  cat "$check" >&2
  [ "$status" -eq 2 ] && return 3
  [ "$status" -eq 0 ] || return 2
  if grep -q 'no rewind required' "$check"; then return 1; fi
  return 0
}

# standby.signal plus primary_conninfo in postgresql.auto.conf, where ALTER SYSTEM (the operator's
# follow) changes it later without a restart. application_name is what synchronous_standby_names
# matches.
become_standby() {
  drop_setting primary_conninfo
  printf "primary_conninfo = 'host=%s port=%s user=%s application_name=%s%s'\\n" \\
    "$PRIMARY_HOST" "$PRIMARY_PORT" "$replication_user" "$INSTANCE_NAME" "$tls" >>"$PGDATA/postgresql.auto.conf"
  : >"$PGDATA/standby.signal"
}

# One postgres per data directory, whichever container it runs in. A force-deleted pod's
# replacement can start on the same volume while the old container still runs (StatefulSets
# promise at most one pod only without force), and a postmaster's lock file guards nothing across
# PID namespaces. So the volume holds a file lock: taken here on fd 9, inherited by postgres and by
# every backend, released when the last of them (and this shell) exits, however it exits.
mkdir -p "$(dirname "$PGDATA")"
exec 9>>"$(dirname "$PGDATA")/instance.lock"
if ! flock -n 9; then
  log "another postgres still runs on this volume (an old container of this instance): waiting for it to exit"
  flock 9
  log "it exited; starting"
fi

if [ ! -s "$PGDATA/PG_VERSION" ] && [ -e "$PGDATA" ]; then
  # An empty directory is fine (it is replaced); anything else we did not create, we do not delete.
  [ -z "$(ls -A "$PGDATA")" ] || die "$PGDATA holds files but no PG_VERSION: not a data directory"
  rmdir "$PGDATA" || die "cannot replace $PGDATA: it must be a subdirectory of the volume, not its mount point"
fi

# postgres starts only on a data directory no one but its owner (and at most the group, reading)
# may enter. A volume plugin that applies the pod's fsGroup on mount makes it group-writable.
if [ -d "$PGDATA" ]; then chmod 0700 "$PGDATA"; fi

# The lock file a killed container left names a PID of its own namespace, gone with it; in this one
# that PID may well be a live process (PIDs start over at 1 in each container), and postgres started
# by pg_rewind would take it for a live postmaster and refuse to run: the rewind would fall back to a
# full clone. With the volume's lock held no other postgres runs on this directory, so any lock
# file left is stale.
if [ -e "$PGDATA/postmaster.pid" ]; then
  log "removing the lock file a postgres that is gone left behind"
  rm -f "$PGDATA/postmaster.pid"
fi

set -- # extra arguments for postgres
hba_file=pg_hba.conf
if [ "$INSTANCE_NAME" = "$PRIMARY_NAME" ]; then
  if [ ! -s "$PGDATA/PG_VERSION" ]; then
    init_primary
  elif [ -f "$PGDATA/standby.signal" ]; then
    # The record is the authority: the operator moved it here, so this standby starts promoted. Not
    # by merely dropping standby.signal: it would go on writing its old timeline, which the old
    # primary also wrote, and pg_rewind could no longer tell the two apart. Archive recovery without
    # standby mode replays what it has and ends on a new timeline, as a promotion does; it needs a
    # restore_command, and "false" (nothing to restore) is the honest one.
    log "recorded as the primary: promoting at start"
    rm -f "$PGDATA/standby.signal"
    : >"$PGDATA/recovery.signal"
    set -- -c restore_command=false
  else
    # A single-user server does not run as a standby; a promoted one has its old primary's roles.
    ensure_monitor_role "$PGDATA"
  fi
  # A fence (operator's ALTER SYSTEM) is meant for a primary being replaced, never for the recorded one.
  drop_setting default_transaction_read_only
  # Its own fence (ready.sh) is another matter: it was cut off, and only the operator, who can tell
  # whether it is still the primary, lifts it. Until then no client gets in, also not right after a
  # restart, before the first probe.
  if grep -q "^[[:space:]]*${FENCE_SETTING}[[:space:]]*=" "$PGDATA/postgresql.auto.conf" 2>/dev/null; then
    log "this primary fenced itself when it was cut off: clients stay out until the operator lifts the fence"
    hba_file=${FENCED_HBA_FILE}
  fi
else
  if [ ! -s "$PGDATA/PG_VERSION" ]; then
    until clone; do
      log "clone failed; retrying in 2s"
      sleep 2
    done
  elif [ -f "$PGDATA/standby.signal" ]; then
    # set -e does not stop at a function whose status is tested: each status is read below.
    # A primary that does not answer is waited for a while, as below for a former primary: a new
    # pod's address is let through the NetworkPolicies only moments after it starts, and a standby
    # that gave up at once followed a primary it had forked from for ever (every restart of it asked
    # again from a new address, and was refused again).
    waits=\${REWIND_WAITS:-15}
    while :; do
      forked=0
      standby_forked || forked=$?
      [ "$forked" -eq 3 ] && [ "$waits" -gt 0 ] || break
      waits=$((waits - 1))
      log "$PRIMARY_NAME does not answer yet; comparing histories again in 2s"
      sleep 2
    done
    if [ "$forked" -eq 0 ]; then
      log "this standby went past where $PRIMARY_NAME's timeline forked from its own: rewinding it"
      # A rewind that fails midway leaves a data directory only a clone repairs.
      until rewind; do
        clone && break
        log "rewind and clone failed; retrying in 2s"
        sleep 2
      done
    elif [ "$forked" -eq 1 ]; then
      log "a standby already, on $PRIMARY_NAME's history: following it"
    else
      log "a standby already: following $PRIMARY_NAME (could not compare histories now)"
    fi
  else
    # A former primary: its last writes may never have reached the new primary, so it has to go
    # back to where their histories forked before it can follow.
    # A primary that does not answer is waited for a while (a new pod's network may take a moment
    # to be let through), not answered with a clone at once; one that stays silent, or a rewind that
    # fails, gets the clone.
    waits=\${REWIND_WAITS:-15}
    while :; do
      rewind && break
      if [ $? -eq 2 ] && [ "$waits" -gt 0 ]; then
        waits=$((waits - 1))
        log "$PRIMARY_NAME does not answer yet; retrying the rewind in 2s"
      else
        clone && break
        log "rewind and clone failed; retrying in 2s"
      fi
      sleep 2
    done
  fi
  become_standby
  drop_setting ${FENCE_SETTING} # a standby has nothing to fence; a promotion starts unfenced
fi

# Our configuration wins over whatever initdb, pg_basebackup or pg_rewind (which copy the source's)
# left in the data directory; postgresql.auto.conf keeps what ALTER SYSTEM set. This instance's port
# and socket directory are appended (the last occurrence of a setting wins): in the file rather than
# on the command line, so that a reload finds the file agreeing with the running server.
cp "$config_dir/postgresql.conf" "$PGDATA/postgresql.conf"
printf "# Appended by start.sh for this instance:\\nport = %s\\nunix_socket_directories = '%s'\\n" \\
  "$PGPORT" "$run_dir" >>"$PGDATA/postgresql.conf"
cp "$config_dir/$hba_file" "$PGDATA/pg_hba.conf"
# The superuser on this container's own socket is the container's user (pg_hba.conf's peer line).
printf '%s' '${identConfig({ superuser })}' >"$PGDATA/pg_ident.conf"
# The two pg_hba.conf files this server started with, for ready.sh to swap between (fence, lift):
# the ConfigMap's files change under a running server when the spec does (TLS turned on, say),
# and only a restart, which the pod template's config hash brings, may put those in force.
cp "$config_dir/pg_hba.conf" "$run_dir/${STARTED_HBA_FILE}"
cp "$config_dir/${FENCED_HBA_FILE}" "$run_dir/${STARTED_FENCED_HBA_FILE}"
# This shell stays the container's first process and postgres runs as its child: the postmaster
# must not inherit orphans (first-process.ts, docs/adr/0030).
log "starting postgres on port $PGPORT"
${superviseServer('"${bin}postgres" -D "$PGDATA" "$@"').join('\n')}
`;
}
