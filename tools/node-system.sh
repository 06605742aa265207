#!/usr/bin/env bash
# The real node's system pods (CoreDNS, the local-path volume provisioner), and the namespaces whose
# pods run on the real node.
#
#   tools/node-system.sh                 install the system pods and wait for them
#   tools/node-system.sh namespace NS... create (or mark) namespaces whose pods run on the real node
#
# A namespace runs on the real node when its annotations say so: the PodNodeSelector admission plugin
# adds the real node's label to every pod's nodeSelector, and PodTolerationRestriction adds the
# toleration of its taint. Pods elsewhere land on the simulated nodes. Nothing in the operator or the
# charts knows about this; it is how this local cluster places a namespace (docs/adr/0011-real-node.md).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
source "$here/versions.sh"
source "$here/lib.sh"
source "$here/node-env.sh"
export PATH=$TOOLS_BIN:$PATH
kctl() { kubectl --kubeconfig "$KUBECONFIG_PATH" "$@"; }

TOLERATION='[{"key":"scalableapp.io/node","operator":"Equal","value":"real","effect":"NoSchedule"}]'

real_namespace() {
  local ns
  for ns in "$@"; do
    kctl get namespace "$ns" >/dev/null 2>&1 || kctl create namespace "$ns" >/dev/null
    kctl annotate --overwrite namespace "$ns" \
      "scheduler.alpha.kubernetes.io/node-selector=scalableapp.io/node=real" \
      "scheduler.alpha.kubernetes.io/defaultTolerations=$TOLERATION" >/dev/null
    kctl label --overwrite namespace "$ns" scalableapp.io/nodes=real >/dev/null
  done
}

# Fills the ${NAME} placeholders of a manifest from the environment; an unknown one is an error.
render() {
  local text name
  text=$(cat "$1")
  for name in $(grep -o '\${[A-Z_]*}' "$1" | sort -u | tr -d '${}'); do
    [[ -n ${!name:-} ]] || die "$1 needs $name, which is not set (is tools/images.sh build done?)"
    text=${text//\$\{$name\}/${!name}}
  done
  printf '%s\n' "$text"
}

system_pods() {
  export DNS_IP VOLUMES_DIR=$NODE_DIR/volumes IMAGE_COREDNS IMAGE_TOOLBOX IMAGE_LOCAL_PATH_PROVISIONER
  mkdir -p "$VOLUMES_DIR"
  real_namespace kube-system local-path-storage
  render "$root/manifests/cluster/real-node/coredns.yaml" | kctl apply -f - >/dev/null
  render "$root/manifests/cluster/real-node/local-path.yaml" | kctl apply -f - >/dev/null
  kctl -n kube-system rollout status deployment/coredns --timeout=120s >/dev/null ||
    die "CoreDNS did not become ready; kubectl -n kube-system describe pods -l k8s-app=kube-dns"
  kctl -n local-path-storage rollout status deployment/local-path-provisioner --timeout=120s >/dev/null ||
    die "the local-path provisioner did not become ready; kubectl -n local-path-storage describe pods"
}

case ${1:-} in
  '') system_pods ;;
  namespace) shift; real_namespace "$@" ;;
  *) echo "usage: $0 [namespace NS...]" >&2; exit 2 ;;
esac
