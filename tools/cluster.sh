#!/usr/bin/env bash
# The local Kubernetes the project runs on.
#
#   tools/cluster.sh up       start it (a no-op when it already runs) and print where it is
#   tools/cluster.sh down     stop it and remove everything it made
#   tools/cluster.sh status   say whether it runs; exit 1 when it does not
#   tools/cluster.sh kubeconfig   print the kubeconfig path
#
# SCALABLEAPP_PROVIDER selects the provider:
#   kwok (default)  a real control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler)
#                   as local processes, with nodes simulated by the KWOK controller; no containers run.
#   kind            a kind cluster in Docker (needs a Docker engine); pods really run.
# Either way the cluster serves the Gateway API (its CRDs, standard channel).
#
# SCALABLEAPP_NODES (kwok provider only) selects the nodes:
#   real (default)  besides the simulated nodes, one real node (tools/node.sh): containerd, kubelet,
#                   kube-proxy, CoreDNS and NetworkPolicy enforcement; pods in namespaces labelled
#                   scalableapp.io/nodes=real run there for real (docs/adr/0011-real-node.md). Needs root.
#   simulated       only the simulated nodes, as before: nothing runs, no root needed.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
source "$here/versions.sh"
source "$here/lib.sh"
source "$here/node-env.sh"

PROVIDER=${SCALABLEAPP_PROVIDER:-kwok}
NODES=${SCALABLEAPP_NODES:-real}
[[ $NODES == real || $NODES == simulated ]] || die "SCALABLEAPP_NODES must be real or simulated, got '$NODES'"
[[ $PROVIDER == kwok ]] || NODES=simulated
CLUSTER_NAME=${SCALABLEAPP_CLUSTER:-scalableapp}
CLUSTER_DIR=$SCALABLEAPP_CACHE/clusters/$PROVIDER-$CLUSTER_NAME
KUBECONFIG_PATH=$CLUSTER_DIR/kubeconfig
export PATH=$TOOLS_BIN:$PATH
# kwokctl keeps its own state here instead of ~/.kwok, so `down` removes exactly what `up` made.
export KWOK_WORKDIR=$CLUSTER_DIR/kwok
ZONES=(zone-a zone-b zone-c)
NODES_PER_ZONE=${SCALABLEAPP_NODES_PER_ZONE:-2}

kctl() { kubectl --kubeconfig "$KUBECONFIG_PATH" "$@"; }

running() {
  [[ -f $KUBECONFIG_PATH ]] && kctl get --raw /readyz >/dev/null 2>&1
}
real_node_running() { [[ $NODES == real ]] && bash "$here/node.sh" status >/dev/null 2>&1; }

nodes_yaml() {
  local i=0
  for zone in "${ZONES[@]}"; do
    for n in $(seq 1 "$NODES_PER_ZONE"); do
      i=$((i + 1))
      cat <<EOF
---
apiVersion: v1
kind: Node
metadata:
  name: kwok-$zone-$n
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
    # metrics-server scrapes this path on the KWOK controller, which serves simulated kubelet
    # resource metrics per node (pod CPU from the kwok.x-k8s.io/usage-cpu annotation).
    metrics.k8s.io/resource-metrics-path: /metrics/nodes/kwok-$zone-$n/metrics/resource
  labels:
    type: kwok
    scalableapp.io/node: simulated
    kubernetes.io/arch: amd64
    kubernetes.io/os: linux
    kubernetes.io/hostname: kwok-$zone-$n
    node-role.kubernetes.io/agent: ""
    topology.kubernetes.io/zone: $zone
    topology.kubernetes.io/region: local
status:
  allocatable: { cpu: "8", memory: 32Gi, pods: "110", ephemeral-storage: 100Gi }
  capacity: { cpu: "8", memory: 32Gi, pods: "110", ephemeral-storage: 100Gi }
  nodeInfo: { architecture: amd64, operatingSystem: linux, kubeletVersion: fake, kubeProxyVersion: fake }
  phase: Running
EOF
    done
  done
}

up_kwok() {
  "$here/toolchain.sh"
  mkdir -p "$CLUSTER_DIR"
  # Extra flags go through the configuration file: kwokctl 0.8's --extra-args panics unless each
  # component's flags come as one run.
  # Everything but the apiserver stays on loopback. On the real node's cluster the apiserver also
  # listens where pods reach it (the kubernetes Service's endpoint is the advertised address); it
  # authenticates every caller, and reaches the kubelet by its InternalIP with its client certificate.
  local apiserver_args="
    - { key: service-cluster-ip-range, value: '$SERVICE_CIDR' }
    - { key: enable-admission-plugins, value: 'PodNodeSelector,PodTolerationRestriction' }"
  if [[ $NODES == real ]]; then
    apiserver_args+="
    - { key: bind-address, value: 0.0.0.0 }
    - { key: advertise-address, value: '$NODE_IP' }
    - { key: kubelet-preferred-address-types, value: InternalIP }
    - { key: kubelet-client-certificate, value: '$PKI_DIR/admin.crt' }
    - { key: kubelet-client-key, value: '$PKI_DIR/admin.key' }"
  fi
  step "starting the control plane (kwokctl, binary runtime, Kubernetes $KUBERNETES_VERSION)"
  # Every binary is the one tools/toolchain.sh built: kwokctl must never download anything.
  # The controller-manager's hostPath provisioner gives PVCs of the `standard` StorageClass (the
  # simulated nodes') a real PersistentVolume through the real PV controller; nothing is ever written
  # to those paths because no container runs there.
  # kubectl (for kustomize) from our build; metrics-server's RBAC and APIService from our own
  # manifest (kwokctl drops its Deployment and points the APIService at the local process).
  cat > "$CLUSTER_DIR/kwokctl.yaml" <<EOF
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokctlConfiguration
options:
  bindAddress: 127.0.0.1
  metricsServerManifests:
  - ${METRICS_SERVER_MANIFEST:-$root/manifests/cluster/metrics-server}
  # Pods reach the apiserver at the real node's address through the kubernetes Service.
  kubeApiserverCertSANs: [$NODE_IP, $KUBERNETES_SERVICE_IP, kubernetes, kubernetes.default, kubernetes.default.svc, kubernetes.default.svc.cluster.local]
componentsPatches:
  - name: kube-apiserver
    extraArgs:$apiserver_args
  # KWOK plays the kubelet only for the simulated nodes; left to manage every node, it marked the real
  # node's pods Running and Ready before their containers had started.
  - name: kwok-controller
    extraArgs:
    - { key: manage-all-nodes, value: 'false' }
    - { key: manage-nodes-with-annotation-selector, value: kwok.x-k8s.io/node=fake }
  # One controller manager and one scheduler: no leader election. With it, an apiserver slowed by a
  # loaded machine made the controller manager miss its lease renewal and exit for good (nothing
  # restarts it here), and every Deployment and StatefulSet after that stood still.
  - name: kube-controller-manager
    extraArgs:
    - { key: leader-elect, value: 'false' }
    - { key: enable-hostpath-provisioner, value: 'true' }
    - { key: horizontal-pod-autoscaler-sync-period, value: 5s }
  - name: kube-scheduler
    extraArgs:
    - { key: leader-elect, value: 'false' }
EOF
  kwokctl create cluster --name "$CLUSTER_NAME" --runtime binary --config "$CLUSTER_DIR/kwokctl.yaml" \
    --kubeconfig "$KUBECONFIG_PATH" \
    --kube-apiserver-binary "$TOOLS_BIN/kube-apiserver" \
    --kube-controller-manager-binary "$TOOLS_BIN/kube-controller-manager" \
    --kube-scheduler-binary "$TOOLS_BIN/kube-scheduler" \
    --kwok-controller-binary "$TOOLS_BIN/kwok" \
    --etcd-binary "$TOOLS_BIN/etcd" \
    --metrics-server-binary "$TOOLS_BIN/metrics-server" \
    --enable metrics-server \
    --disable-qps-limits \
    --wait 120s
  kubectl config --kubeconfig "$KUBECONFIG_PATH" use-context "kwok-$CLUSTER_NAME" >/dev/null
  step "registering $(( ${#ZONES[@]} * NODES_PER_ZONE )) simulated nodes in ${#ZONES[@]} zones"
  nodes_yaml | kctl apply -f - >/dev/null
  step "default StorageClass (volumes bound by the real PV controller)"
  kctl apply -f "$root/manifests/cluster/kwok" >/dev/null
  kctl wait --for=condition=Ready node -l scalableapp.io/node=simulated --timeout=120s >/dev/null
  echo "$NODES" > "$NODES_FILE"
}

up_kind() {
  command -v docker >/dev/null && docker info >/dev/null 2>&1 ||
    die "SCALABLEAPP_PROVIDER=kind needs a running Docker engine; without one use the default (kwok)."
  "$here/toolchain.sh"
  mkdir -p "$CLUSTER_DIR"
  step "creating kind cluster $CLUSTER_NAME (3 zones)"
  kind create cluster --name "$CLUSTER_NAME" --config "$root/manifests/cluster/kind.yaml" \
    --kubeconfig "$KUBECONFIG_PATH" --wait 180s
  step "metrics-server (kind has none)"
  kctl apply -k "$root/manifests/cluster/metrics-server" >/dev/null
}

# The Gateway API's CRDs (standard channel), as most clusters serve them now. The operator looks for
# the API when it starts: with it there from the cluster's first moment, a Gateway exposure gets its
# HTTPRoute whichever test or command starts the operator first (without it, the web tier reports
# GatewayAPIMissing). Idempotent; the same objects e2e/gateway.test.ts applies.
gateway_api() {
  step "Gateway API $GATEWAY_API_VERSION CRDs"
  kctl apply --server-side --force-conflicts --field-manager=scalableapp-cluster \
    -f "$TOOLS_DIR/share/gateway-api-$GATEWAY_API_VERSION" >/dev/null
  kctl wait --for=condition=Established crd/httproutes.gateway.networking.k8s.io --timeout=60s >/dev/null
}

summary() {
  echo "cluster: $PROVIDER/$CLUSTER_NAME"
  echo "kubeconfig: $KUBECONFIG_PATH   (export KUBECONFIG=$KUBECONFIG_PATH)"
  echo "server: $(kctl version -o json 2>/dev/null | grep -m1 '"gitVersion"' | tail -1 | tr -d ' ",' | cut -d: -f2)"
  kctl get nodes -L topology.kubernetes.io/zone --no-headers 2>/dev/null | awk '{print "  node " $1 "  zone " $NF}'
}

# remove: stop the real node, the control plane, and delete every file `up` made.
remove() {
  # The real node first: its pods, rules and mounts go while the control plane can still be asked.
  if [[ $PROVIDER == kwok ]]; then bash "$here/node.sh" down; fi
  case $PROVIDER in
    kwok) if [[ -d $KWOK_WORKDIR ]]; then kwokctl delete cluster --name "$CLUSTER_NAME" || true; fi ;;
    kind) kind delete cluster --name "$CLUSTER_NAME" --kubeconfig "$KUBECONFIG_PATH" || true ;;
  esac
  rm -rf "$CLUSTER_DIR"
}

# kwokctl starts metrics-server beside the apiserver and never restarts it. Started before the
# apiserver answered, it exits at once ("unable to load configmap based request-header-client-ca-file")
# and the metrics.k8s.io APIService stays unavailable: every namespace deletion then stalls (the
# namespace controller cannot discover that API) and every HorizontalPodAutoscaler goes blind. Seen on
# a fresh machine's first `up`. `kwokctl start cluster` starts only the components that are not
# running. Each attempt asks the API itself for up to 30 s: the APIService's Available condition is
# refreshed only now and then, and says True for a while after the process is gone.
metrics_api() {
  local attempt i log=$KWOK_WORKDIR/clusters/$CLUSTER_NAME/logs/metrics-server.log
  for attempt in 1 2 3 4 5; do
    for i in $(seq 15); do
      kctl get --raw /apis/metrics.k8s.io/v1beta1 >/dev/null 2>&1 && return 0
      sleep 2
    done
    step "metrics.k8s.io is not available (attempt $attempt of 5): starting the components kwokctl left stopped"
    grep -E '^panic' "$log" | tail -n 1 >&2 || true
    kwokctl start cluster --name "$CLUSTER_NAME" >/dev/null 2>&1 || true
  done
  die "the metrics.k8s.io APIService never became Available; metrics-server's log: $log"
}

# The nodes a control plane was started for. A control plane made for simulated nodes only listens
# on loopback, where the real node's pods cannot reach it (CoreDNS never becomes ready there).
NODES_FILE=$CLUSTER_DIR/nodes
started_for() { cat "$NODES_FILE" 2>/dev/null || echo unknown; }

case ${1:-} in
  up)
    if running; then
      if [[ $NODES == real && $(started_for) != real ]]; then
        step "the running control plane was started for simulated nodes only ($(started_for)): starting it afresh for the real node"
        remove
        "up_$PROVIDER"
      else
        step "control plane $PROVIDER/$CLUSTER_NAME already runs"
      fi
    else
      if [[ -e $CLUSTER_DIR ]]; then
        # A stopped cluster's state (a reboot, a killed run, a cache restored onto another machine) is
        # never resumed: its etcd holds the last run's pods, leases and apps, and its settings may be
        # for other nodes. Nothing in it is the user's.
        step "a stopped cluster was left in $CLUSTER_DIR: removing it and starting afresh"
        remove
      fi
      "up_$PROVIDER"
    fi
    [[ $PROVIDER == kwok ]] && metrics_api
    gateway_api
    if [[ $NODES == real ]]; then
      if real_node_running; then
        step "real node already runs"
        bash "$here/node.sh" images
      else
        bash "$here/node.sh" up
      fi
    fi
    step "cluster ready"
    summary
    ;;
  down)
    remove
    step "cluster $PROVIDER/$CLUSTER_NAME removed"
    ;;
  status)
    if running && { [[ $NODES == simulated ]] || real_node_running; }; then summary; else echo "cluster $PROVIDER/$CLUSTER_NAME is not running"; exit 1; fi
    ;;
  kubeconfig) echo "$KUBECONFIG_PATH" ;;
  *) echo "usage: $0 up|down|status|kubeconfig  (SCALABLEAPP_PROVIDER=kwok|kind)" >&2; exit 2 ;;
esac
