#!/usr/bin/env bash
# Installs or upgrades a whole ScalableApp WITHOUT the operator: the umbrella chart charts/stack,
# whose values are the ScalableApp spec, as Helm release <release> (the app's name) in [namespace].
#
#   tools/install-stack.sh <release> <values.yaml> [namespace]
#   tools/install-stack.sh --tiers <values.yaml>     print the tiers it would install, one a line
#
# <values.yaml> is a ScalableApp's `spec` (web, cache, database, shards, queue, consumers,
# edgeCache, topology, ...) plus, optionally, the tier charts' own keys (passwords, test images).
# Helm picks the subcharts to install from boolean conditions only, so this script sets
# `tiers.<tier>=true` for every tier the file names at its top level (the chart refuses a
# configured tier that is not enabled, so nothing is silently left out). It builds the charts'
# dependencies, creates a missing namespace with the restricted Pod Security Standard enforced,
# and runs `helm upgrade --install --wait`. Cluster access: $KUBECONFIG or ~/.kube/config.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
source "$here/versions.sh"
source "$here/lib.sh"
export PATH=$TOOLS_BIN:$PATH

# The tiers the values declare: top-level keys, as in the spec. A key whose value is null, or an
# empty consumers list, declares nothing.
declared_tiers() {
  awk '
    function flush() {
      if (key ~ /^(web|cache|database|shards|queue|consumers|edgeCache)$/ && (rest != "" || block)) print key
      key = ""; block = 0
    }
    /^[ \t]*(#.*)?$/ { next }
    /^[ \t-]/ { if (key != "") block = 1; next }
    {
      flush()
      if (!match($0, /^[A-Za-z][A-Za-z0-9]*:/)) next
      key = substr($0, 1, RLENGTH - 1)
      rest = substr($0, RLENGTH + 1)
      sub(/(^|[ \t]+)#.*$/, "", rest); gsub(/^[ \t]+|[ \t]+$/, "", rest)
      if (rest == "null" || rest == "~" || rest == "[]") rest = ""
    }
    END { flush() }' "$1"
}

if [[ ${1:-} == --tiers ]]; then
  [[ -f ${2:-} ]] || die "usage: tools/install-stack.sh --tiers <values.yaml>"
  declared_tiers "$2"
  exit 0
fi
[[ $# -ge 2 && $# -le 3 ]] || die "usage: tools/install-stack.sh <release> <values.yaml> [namespace]"
release=$1 values=$2 namespace=${3:-default}
[[ -f $values ]] || die "$values: no such file"
command -v helm >/dev/null || die "helm is missing: run tools/toolchain.sh (it builds helm $HELM_VERSION)"
command -v kubectl >/dev/null || die "kubectl is missing: run tools/toolchain.sh"
stack=$root/charts/stack

names=$(declared_tiers "$values" | tr '\n' ' ')
tiers=()
for tier in $names; do tiers+=(--set "tiers.$tier=true"); done
[[ ${#tiers[@]} -gt 0 ]] || die "$values names no tier (web, cache, database, shards, queue, consumers, edgeCache) at its top level"

# A tier chart is packaged into the umbrella with its own dependencies (the library chart): build those first.
step "building chart dependencies"
for dep in $(sed -n 's|^ *repository: file://\.\./||p' "$stack/Chart.yaml"); do
  if grep -q '^dependencies:' "$root/charts/$dep/Chart.yaml"; then
    helm dependency build "$root/charts/$dep" --skip-refresh >/dev/null
  fi
done
helm dependency build "$stack" --skip-refresh >/dev/null

if ! kubectl get namespace "$namespace" >/dev/null 2>&1; then
  step "creating namespace $namespace (restricted Pod Security Standard enforced)"
  kubectl create namespace "$namespace" >/dev/null
  kubectl label namespace "$namespace" pod-security.kubernetes.io/enforce=restricted >/dev/null
fi

step "helm upgrade --install $release in $namespace: tiers ${names% }"
helm upgrade --install "$release" "$stack" --namespace "$namespace" --values "$values" "${tiers[@]}" \
  --wait --timeout 10m
