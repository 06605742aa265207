#!/usr/bin/env bash
# Installs the Debian packages the real node (tools/node.sh) and the image builds (tools/images.sh)
# run, pinned. Idempotent: when dpkg already has every pinned version, apt is not touched, so a warm
# run needs neither root nor the network. The containerd package's system service is never started:
# the node runs its own containerd with its own paths.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/lib.sh"
source "$here/apt-pins.sh"

PINS=(
  containerd=1.6.20~ds1-1+deb12u3
  runc=1.1.5+ds1-1+deb12u1
  containernetworking-plugins=1.1.1+ds1-3+b5
  iptables=1.8.9-2
  nftables=1.0.6-2+deb12u2
  conntrack=1:1.4.7-1+b2
  ipset=7.17-1
  socat=1.7.4.4-2
  # tc and ip, in the pods' network namespaces (the failover tests' throttled and cut-off links).
  iproute2=6.1.0-3
  # Root filesystems of the images, from Debian packages.
  mmdebstrap=1.3.5-7
)

mapfile -t missing < <(pins_not_installed "${PINS[@]}")
if ((${#missing[@]} == 0)); then
  step "node packages: all ${#PINS[@]} pinned versions installed"
  exit 0
fi
apt_install_pins tools/node-deps.sh "${missing[@]}"
# A fresh containerd package may have left its system service enabled; this node never uses it.
if command -v update-rc.d >/dev/null && [[ -x /etc/init.d/containerd ]]; then update-rc.d containerd disable >/dev/null 2>&1 || true; fi
mapfile -t still < <(pins_not_installed "${PINS[@]}")
((${#still[@]} == 0)) || die "after apt-get install, still not at the pinned version: ${still[*]}"
step "node packages installed: ${missing[*]}"
