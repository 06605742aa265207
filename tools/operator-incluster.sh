#!/usr/bin/env bash
# Runs the operator in the local cluster, on the real node, from the image tools/images.sh built:
# manifests/operator as a user applies them, with only the image swapped for the local one. It
# reaches Postgres, the cache and the broker through the pod network (--data-plane real, the default).
#
#   tools/operator-incluster.sh install   apply CRD, RBAC and Deployment; wait for the rollout
#   tools/operator-incluster.sh delete    remove the Deployment (CRD and RBAC stay)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
source "$here/versions.sh"
source "$here/lib.sh"
source "$here/node-env.sh"
export PATH=$TOOLS_BIN:$PATH
kctl() { kubectl --kubeconfig "$KUBECONFIG_PATH" "$@"; }

case ${1:-} in
  install)
    [[ -n ${IMAGE_OPERATOR:-} ]] || die "no operator image in $IMAGES_ENV: run tools/images.sh build operator"
    # The host-process operator (SCALABLEAPP_NODES=simulated) and this one must never both act.
    bash "$here/operator-local.sh" stop
    bash "$here/operator-local.sh" install
    bash "$here/node-system.sh" namespace scalableapp-system
    sed "s#image: scalableapp/operator:dev#image: $IMAGE_OPERATOR#" "$root/manifests/operator/20-deployment.yaml" |
      kctl apply --server-side --field-manager=scalableapp-install -f - >/dev/null
    step "operator $IMAGE_OPERATOR rolling out in scalableapp-system"
    if ! kctl -n scalableapp-system rollout status deployment/scalableapp-operator --timeout=180s >/dev/null; then
      kctl -n scalableapp-system get pods -o wide >&2 || true
      kctl -n scalableapp-system logs deployment/scalableapp-operator --tail=30 >&2 || true
      die "the operator did not become ready in the cluster"
    fi
    ;;
  delete)
    kctl -n scalableapp-system delete deployment scalableapp-operator --ignore-not-found >/dev/null
    ;;
  *) echo "usage: $0 install|delete" >&2; exit 2 ;;
esac
