#!/usr/bin/env bash
# README command 1: a local cluster with a real node, the operator running in it from its own image,
# and the full-stack sample with the demo application, waited on until Ready; then a summary and one
# request through the web Service that touches every tier.
#
#   SCALABLEAPP_NODES=simulated   the simulated nodes only (no root, nothing runs): the operator as a
#                                 local process and manifests/samples/01-web-only.yaml, as before
#   SCALABLEAPP_PROVIDER=kind     a kind cluster (needs Docker): the operator image from the Dockerfile
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
source "$here/versions.sh"
source "$here/lib.sh"
source "$here/node-env.sh"
export PATH=$TOOLS_BIN:$PATH
PROVIDER=${SCALABLEAPP_PROVIDER:-kwok}
NODES=${SCALABLEAPP_NODES:-real}
[[ $PROVIDER == kwok ]] || NODES=simulated
if [[ $NODES == real ]]; then
  SAMPLE=${SAMPLE:-$root/manifests/samples/12-full-stack.yaml}
else
  SAMPLE=${SAMPLE:-$root/manifests/samples/01-web-only.yaml}
fi
NS=${SAMPLE_NAMESPACE:-demo}

step "1/5 toolchain and images"
bash "$here/toolchain.sh"
[[ $NODES == real ]] && bash "$here/node-deps.sh" && bash "$here/images.sh" build

step "2/5 cluster ($PROVIDER, $NODES nodes)"
bash "$here/cluster.sh" up
KUBECONFIG_PATH=$(bash "$here/cluster.sh" kubeconfig)
kctl() { kubectl --kubeconfig "$KUBECONFIG_PATH" "$@"; }

step "3/5 CRD, RBAC and the operator"
if [[ $PROVIDER == kind ]]; then
  image=scalableapp/operator:dev
  docker build -t "$image" "$root"
  kind load docker-image "$image" --name "${SCALABLEAPP_CLUSTER:-scalableapp}"
  kctl apply --server-side --force-conflicts -f "$root/crds/" -f "$root/manifests/operator/"
  kctl -n scalableapp-system rollout status deployment/scalableapp-operator --timeout=180s
elif [[ $NODES == real ]]; then
  source "$IMAGES_ENV"
  bash "$here/operator-incluster.sh" install
else
  # No container runs on simulated nodes: the operator runs here as a process, with its
  # ServiceAccount's token (the same RBAC it has in a pod).
  bash "$here/operator-local.sh" start
fi

step "4/5 sample $(basename "$SAMPLE") in namespace $NS"
if [[ $NODES == real ]]; then
  # Pods of this namespace run on the real node, under the restricted Pod Security Standard.
  bash "$here/node-system.sh" namespace "$NS"
  kctl label --overwrite namespace "$NS" pod-security.kubernetes.io/enforce=restricted >/dev/null
  manifest=$("$root/node_modules/.bin/node" "$here/local-sample.ts" "$SAMPLE")
else
  kctl create namespace "$NS" --dry-run=client -o yaml | kctl apply -f - >/dev/null
  manifest=$(cat "$SAMPLE")
fi
# An Ingress sample names a TLS Secret that is the user's to provide: a self-signed one for its host.
tls=$(printf '%s\n' "$manifest" | kctl apply -n "$NS" -f - --dry-run=client -o jsonpath='{.spec.web.expose.tlsSecretName}')
if [[ -n $tls ]] && ! kctl get secret -n "$NS" "$tls" >/dev/null 2>&1; then
  host=$(printf '%s\n' "$manifest" | kctl apply -n "$NS" -f - --dry-run=client -o jsonpath='{.spec.web.expose.host}')
  certs=$(mktemp -d)
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=${host:-localhost}" \
    -keyout "$certs/tls.key" -out "$certs/tls.crt" >/dev/null 2>&1
  kctl create secret tls "$tls" -n "$NS" --cert "$certs/tls.crt" --key "$certs/tls.key" >/dev/null
  rm -rf "$certs"
  step "created a self-signed TLS Secret $tls for ${host:-the Ingress}"
fi
printf '%s\n' "$manifest" | kctl apply -n "$NS" -f -
name=$(printf '%s\n' "$manifest" | kctl apply -n "$NS" -f - --dry-run=client -o jsonpath='{.metadata.name}')
timeout=$([[ $NODES == real ]] && echo 600 || echo 180)
step "waiting up to ${timeout}s for scalableapp/$name to be Ready"
if ! kctl wait -n "$NS" --for=condition=Ready "scalableapp/$name" --timeout="${timeout}s"; then
  kctl get scalableapp -n "$NS" "$name" -o jsonpath='{range .status.conditions[*]}{.type}={.status} {.reason}: {.message}{"\n"}{end}' >&2 || true
  kctl get pods -n "$NS" -o wide >&2 || true
  die "scalableapp/$name did not become Ready within ${timeout}s"
fi

step "5/5 what runs where"
kctl get scalableapps -n "$NS" -o wide
echo
kctl get pods -n "$NS" -l app.kubernetes.io/part-of="$name" -o custom-columns='POD:.metadata.name,NODE:.spec.nodeName,READY:.status.conditions[?(@.type=="Ready")].status,RESTARTS:.status.containerStatuses[0].restartCount'
echo
if [[ $NODES == real ]]; then
  web_ip=$(kctl get svc -n "$NS" "$name-web" -o jsonpath='{.spec.clusterIP}')
  web_port=$(kctl get svc -n "$NS" "$name-web" -o jsonpath='{.spec.ports[0].port}')
  queue=$(printf '%s\n' "$manifest" | kctl apply -n "$NS" -f - --dry-run=client -o jsonpath='{.spec.queue.queues[0].name}')
  url="http://$web_ip:$web_port/touch-all${queue:+?queue=$queue}"
  echo "one request through the web Service ($url), every tier:"
  # The ClusterIP is routed onto the node's bridge; one bounded request.
  curl -fsS --max-time 20 "$url" || die "the demo app did not answer through the web Service"
  echo
fi
echo
echo "kubeconfig:  export KUBECONFIG=$KUBECONFIG_PATH"
if [[ $NODES == real ]]; then
  echo "operator:    kubectl -n scalableapp-system logs deployment/scalableapp-operator"
elif [[ $PROVIDER != kind ]]; then
  echo "operator:    logs in $(dirname "$KUBECONFIG_PATH")/operator/operator.log; metrics on http://127.0.0.1:${OPERATOR_METRICS_PORT:-18080}/metrics"
fi
echo "tear down:   npm run down"
