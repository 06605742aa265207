#!/usr/bin/env bash
# Runs the operator as a local process against the local cluster, the way it runs in a pod: with the
# token of its own ServiceAccount, bound to exactly the RBAC in manifests/operator (so a missing
# permission shows up here too, not only in a real cluster).
#
#   tools/operator-local.sh install      apply the CRD, namespace and RBAC
#   tools/operator-local.sh kubeconfig   install, then print a kubeconfig holding the SA token
#   tools/operator-local.sh start        run the operator in the background (logs in .../operator.log)
#   tools/operator-local.sh stop         stop it (SIGTERM: it releases its lease)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
source "$here/versions.sh"
source "$here/lib.sh"
export PATH=$TOOLS_BIN:$PATH
ADMIN_KUBECONFIG=$(bash "$here/cluster.sh" kubeconfig)
STATE=$(dirname "$ADMIN_KUBECONFIG")/operator
SA_KUBECONFIG=$STATE/kubeconfig
kctl() { kubectl --kubeconfig "$ADMIN_KUBECONFIG" "$@"; }

install() {
  # --force-conflicts: this install is the authority for the CRD here. A Helm release of
  # charts/operator (the chart tests install one) may co-own its fields, and a changed CRD would
  # otherwise conflict with that other manager instead of being applied.
  kctl apply --server-side --force-conflicts --field-manager=scalableapp-install -f "$root/crds/" >/dev/null
  # Not `kubectl wait --for=condition=Established`: on a fresh cluster the CRD just created may have no
  # status yet, and wait fails at once (".status.conditions accessor error") instead of waiting.
  local crd=scalableapps.scalableapp.io established="" deadline=$((SECONDS + 60))
  while :; do
    established=$(kctl get crd "$crd" -o jsonpath='{.status.conditions[?(@.type=="Established")].status}' 2>/dev/null || true)
    [[ $established == True ]] && break
    (( SECONDS < deadline )) || break
    sleep 1
  done
  [[ $established == True ]] || die "CRD $crd is not Established after 60 s (condition Established: ${established:-not reported yet})"
  kctl apply --server-side --field-manager=scalableapp-install -f "$root/manifests/operator/00-namespace.yaml" -f "$root/manifests/operator/10-rbac.yaml" >/dev/null
}

write_kubeconfig() {
  mkdir -p "$STATE"
  local server ca token
  server=$(kctl config view --raw --minify -o jsonpath='{.clusters[0].cluster.server}')
  ca=$(kctl config view --raw --minify -o jsonpath='{.clusters[0].cluster.certificate-authority-data}')
  if [[ -z $ca ]]; then
    ca=$(base64 -w0 < "$(kctl config view --raw --minify -o jsonpath='{.clusters[0].cluster.certificate-authority}')")
  fi
  token=$(kctl create token scalableapp-operator -n scalableapp-system --duration=24h)
  umask 077
  # Written aside and renamed: two test lanes may write it at once, and a reader must never see a
  # half-written file.
  local tmp
  tmp=$(mktemp "$SA_KUBECONFIG.XXXXXX")
  cat > "$tmp" <<KC
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster: { server: "$server", certificate-authority-data: "$ca" }
users:
- name: scalableapp-operator
  user: { token: "$token" }
contexts:
- name: operator
  context: { cluster: local, user: scalableapp-operator, namespace: scalableapp-system }
current-context: operator
KC
  mv -f "$tmp" "$SA_KUBECONFIG"
  echo "$SA_KUBECONFIG"
}

case ${1:-} in
  install) install ;;
  kubeconfig) install; write_kubeconfig ;;
  start)
    install
    kc=$(write_kubeconfig)
    if [[ -f $STATE/pid ]] && kill -0 "$(cat "$STATE/pid")" 2>/dev/null; then
      step "operator already runs (pid $(cat "$STATE/pid"))"; exit 0
    fi
    cd "$root"
    nohup node operator/main.ts --kubeconfig "$kc" --leader-elect --leader-election-namespace scalableapp-system \
      --metrics-bind-address 127.0.0.1:${OPERATOR_METRICS_PORT:-18080} \
      --data-plane "$([[ ${SCALABLEAPP_PROVIDER:-kwok} == kind ]] && echo real || echo simulated)" > "$STATE/operator.log" 2>&1 &
    echo $! > "$STATE/pid"
    for _ in $(seq 1 60); do
      curl -fs "http://127.0.0.1:${OPERATOR_METRICS_PORT:-18080}/readyz" >/dev/null 2>&1 && break
      kill -0 "$(cat "$STATE/pid")" 2>/dev/null || die "the operator exited; see $STATE/operator.log"
      sleep 1
    done
    step "operator runs (pid $(cat "$STATE/pid"), logs $STATE/operator.log, metrics http://127.0.0.1:${OPERATOR_METRICS_PORT:-18080}/metrics)"
    ;;
  stop)
    if [[ -f $STATE/pid ]]; then kill "$(cat "$STATE/pid")" 2>/dev/null || true; rm -f "$STATE/pid"; fi
    ;;
  *) echo "usage: $0 install|kubeconfig|start|stop" >&2; exit 2 ;;
esac
