#!/usr/bin/env bash
# README command 1: a local cluster, the CRD and the operator, and a sample ScalableApp waited on
# until Ready; then a summary of what runs where.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
source "$here/versions.sh"
source "$here/lib.sh"
export PATH=$TOOLS_BIN:$PATH
PROVIDER=${SCALABLEAPP_PROVIDER:-kwok}
SAMPLE=${SAMPLE:-$root/manifests/samples/01-web-only.yaml}
NS=${SAMPLE_NAMESPACE:-demo}

step "1/4 cluster ($PROVIDER)"
bash "$here/cluster.sh" up
KUBECONFIG_PATH=$(bash "$here/cluster.sh" kubeconfig)
kctl() { kubectl --kubeconfig "$KUBECONFIG_PATH" "$@"; }

step "2/4 CRD, RBAC and the operator"
if [[ $PROVIDER == kind ]]; then
  image=scalableapp/operator:dev
  docker build -t "$image" "$root"
  kind load docker-image "$image" --name "${SCALABLEAPP_CLUSTER:-scalableapp}"
  kctl apply --server-side --force-conflicts -f "$root/crds/" -f "$root/manifests/operator/"
  kctl -n scalableapp-system rollout status deployment/scalableapp-operator --timeout=180s
else
  # No container runs on simulated nodes: the operator runs here as a process, with its
  # ServiceAccount's token (the same RBAC it has in a pod).
  bash "$here/operator-local.sh" start
fi

step "3/4 sample $(basename "$SAMPLE") in namespace $NS"
kctl create namespace "$NS" --dry-run=client -o yaml | kctl apply -f - >/dev/null
kctl apply -n "$NS" -f "$SAMPLE"
name=$(kctl apply -n "$NS" -f "$SAMPLE" --dry-run=client -o jsonpath='{.metadata.name}')
kctl wait -n "$NS" --for=condition=Ready "scalableapp/$name" --timeout=180s

step "4/4 what runs where"
kctl get scalableapps -n "$NS" -o wide
kctl get deploy,svc,hpa,pdb,networkpolicy,secret -n "$NS" -l app.kubernetes.io/part-of="$name"
echo
kctl get pods -n "$NS" -l app.kubernetes.io/part-of="$name" -o custom-columns='POD:.metadata.name,NODE:.spec.nodeName,READY:.status.conditions[?(@.type=="Ready")].status' 
echo
echo "kubeconfig:  export KUBECONFIG=$KUBECONFIG_PATH"
[[ $PROVIDER == kind ]] || echo "operator:    logs in $(dirname "$KUBECONFIG_PATH")/operator/operator.log; metrics on http://127.0.0.1:${OPERATOR_METRICS_PORT:-18080}/metrics"
echo "tear down:   npm run down"
