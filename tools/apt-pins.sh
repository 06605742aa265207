# Installing pinned Debian packages, shared by tools/dataplane-deps.sh and tools/node-deps.sh.
# Sourced after lib.sh. A pin is `package=version`, exactly as apt-get takes it.

pkg_of() { echo "${1%%=*}"; }
version_of() { echo "${1#*=}"; }

# The versions apt knows for a package, from `apt-cache policy`'s version table.
known_versions() {
  apt-cache policy "$1" | sed -n 's/^ *\(\*\*\* \)\{0,1\}\([^ ]*\) [0-9]\{1,\}$/\2/p'
}

# The pins whose exact version dpkg does not have installed.
pins_not_installed() {
  local pin
  for pin in "$@"; do
    [[ $(dpkg-query -W -f='${Status} ${Version}' "$(pkg_of "$pin")" 2>/dev/null) == "install ok installed $(version_of "$pin")" ]] ||
      echo "$pin"
  done
}

# apt_install_pins WHO PIN...: installs exactly these versions without starting their services.
# WHO names the calling script in errors. Refreshes the package lists only when a pin is unknown, so a
# warm apt cache needs no network.
apt_install_pins() {
  local who=$1; shift
  (($# > 0)) || return 0
  [[ $(id -u) == 0 ]] || die "installing $* needs root (apt-get); run: sudo bash $who"
  command -v apt-get >/dev/null || die "apt-get not found: these pins are Debian bookworm packages"
  local pin pkg want updated=0
  for pin in "$@"; do
    pkg=$(pkg_of "$pin"); want=$(version_of "$pin")
    # Listed whole, then matched (a `| grep -q` under pipefail can fail by SIGPIPE on a long list).
    if ! grep -qxF -- "$want" <<<"$(known_versions "$pkg")"; then
      if ((updated == 0)); then
        step "apt-get update ($pkg $want is not in the package lists)"
        apt-get update -qq
        updated=1
      fi
      if ! grep -qxF -- "$want" <<<"$(known_versions "$pkg")"; then
        die "$pkg $want is not available from apt (available: $(known_versions "$pkg" | paste -sd, -)); update the pin in $who"
      fi
    fi
  done
  # policy-rc.d exiting 101 tells invoke-rc.d and deb-systemd-invoke not to start services during the
  # install. Only ours is removed afterwards; an existing one (Docker images ship one) stays as it is.
  local policy=/usr/sbin/policy-rc.d own_policy=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\n# Written by %s for the duration of its install.\nexit 101\n' "$who" >"$policy"
    chmod 755 "$policy"
    own_policy=1
  fi
  step "apt-get install $*"
  # The lock timeout lets two runs installing at once queue instead of failing. dpkg's chatter goes to
  # stderr with the progress lines, keeping stdout for what a caller asked for.
  local rc=0
  (
    export DEBIAN_FRONTEND=noninteractive RUNLEVEL=1
    with_heartbeat apt-get apt-get install -y -qq --no-install-recommends --allow-downgrades \
      -o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@" >&2
  ) || rc=$?
  if ((own_policy)); then rm -f "$policy"; fi
  ((rc == 0)) || die "apt-get install failed (exit $rc)"
}
