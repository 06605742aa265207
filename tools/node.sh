#!/usr/bin/env bash
# The real node of the local cluster: containerd, kubelet, kube-proxy and kube-router's NetworkPolicy
# firewall as local processes, registered with the local control plane (tools/cluster.sh). Pods on it
# really run, from images built here (tools/images.sh). What each setting is for is in
# docs/adr/0011-real-node.md; ../shared/design/real-node-facts.md is where they were first found.
#
#   tools/node.sh up      start the node (a no-op when it runs) and wait until it is Ready
#   tools/node.sh down    stop it and undo every host-wide change it made
#   tools/node.sh images  import the images tools/images.sh built that the node lacks
#   tools/node.sh status  say whether it runs
#
# Network safety: pods get routes only to the pod and Service ranges (no default route), the whole pod
# and Service ranges are blackholed on the host except the node's own bridge, so no packet of a pod,
# or for an address no pod holds yet, ever leaves the machine.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
source "$here/versions.sh"
source "$here/lib.sh"
source "$here/node-env.sh"
export PATH=$TOOLS_BIN:$PATH:/usr/local/sbin:/usr/sbin:/sbin

kctl() { kubectl --kubeconfig "$KUBECONFIG_PATH" "$@"; }
logs=$NODE_DIR/logs
pid_of() { cat "$NODE_DIR/$1.pid" 2>/dev/null || true; }
alive() { local p; p=$(pid_of "$1"); [[ -n $p ]] && kill -0 "$p" 2>/dev/null; }

# start NAME CMD...: runs CMD in the background, its output in $logs/NAME.log, its pid in NAME.pid.
start() {
  local name=$1; shift
  if alive "$name"; then return 0; fi
  mkdir -p "$logs"
  # setsid: the node's processes outlive the shell that started them (npm run up returns).
  setsid "$@" >>"$logs/$name.log" 2>&1 </dev/null 9>&- &
  echo $! > "$NODE_DIR/$name.pid"
}

# wait_for WHAT SECONDS CMD...: polls CMD every 0.5 s; fails naming WHAT and the log to read.
wait_for() {
  local what=$1 secs=$2 log=$3; shift 3
  local i
  for ((i = 0; i < secs * 2; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  [[ -f $log ]] && tail -n 20 "$log" >&2
  die "$what did not come up within ${secs}s; see $log"
}

# Host-wide settings are recorded before they are changed, so `down` restores what was there.
save_sysctl() {
  local key=$1 file=$NODE_DIR/sysctl.saved
  grep -q "^$key=" "$file" 2>/dev/null || echo "$key=$(sysctl -n "$key")" >> "$file"
}

network_up() {
  step "node network: bridge $BRIDGE ($NODE_IP), blackholes for $CLUSTER_CIDR and $SERVICE_CIDR"
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
  fi
  ip addr replace "$NODE_IP/$POD_SUBNET_BITS" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  # The bridge's own subnet is more specific than the blackhole, so it wins for pod addresses.
  ip route replace blackhole "$CLUSTER_CIDR"
  # ClusterIPs are routed onto the bridge (kube-proxy's DNAT happens after this route is chosen for
  # packets the host sends); a ClusterIP nobody serves yet is answered by no one and dropped here.
  ip route replace "$SERVICE_CIDR" dev "$BRIDGE" src "$NODE_IP"
  for key in net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables vm.overcommit_memory kernel.panic kernel.panic_on_oops; do
    save_sysctl "$key"
  done
  sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1
}

containerd_config() {
  # The sandbox image must be one the node has: a missing one would be pulled, and nothing may be.
  [[ -n ${IMAGE_PAUSE:-} ]] || die "no pause image in $IMAGES_ENV: run tools/images.sh build first"
  mkdir -p "$NODE_DIR/containerd" "$NODE_DIR/cni/net.d"
  cat > "$NODE_DIR/containerd/config.toml" <<EOF
# Written by tools/node.sh. Its own root, state and socket: never the system containerd's.
version = 2
root = "$NODE_DIR/containerd/root"
state = "$NODE_DIR/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "$CONTAINERD_SOCK"
[ttrpc]
  address = "$CONTAINERD_SOCK.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$NODE_DIR/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$IMAGE_PAUSE"
  # The machine lacks CAP_SYS_RESOURCE: no process may lower oom_score_adj, and runc fails every
  # sandbox unless containerd clamps the value it asks for.
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$NODE_DIR/cni/net.d"
EOF
  # Routes only to the cluster's own ranges: a pod has no default route, so nothing it sends can
  # leave the machine. hairpinMode lets a pod reach itself through its Service.
  cat > "$NODE_DIR/cni/net.d/10-scalableapp.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "scalableapp",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$NODE_DIR/cni/ipam",
        "ranges": [[{ "subnet": "$POD_SUBNET", "gateway": "$NODE_IP" }]],
        "routes": [{ "dst": "$CLUSTER_CIDR" }, { "dst": "$SERVICE_CIDR" }]
      }
    },
    { "type": "portmap", "capabilities": { "portMappings": true } }
  ]
}
EOF
}

kubelet_config() {
  mkdir -p "$NODE_DIR/kubelet"
  cat > "$NODE_DIR/kubelet/config.yaml" <<EOF
# Written by tools/node.sh.
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# This machine has cgroup v1 and no systemd (1.36 refuses cgroup v1 unless told not to).
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
address: $NODE_IP
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $KUBELET_HEALTHZ_PORT
# The apiserver authenticates with its kubelet client certificate (signed by the cluster CA); anything
# else is refused, and what is authenticated is authorised by the apiserver.
authentication:
  anonymous: { enabled: false }
  webhook: { enabled: true }
  x509: { clientCAFile: $PKI_DIR/ca.crt }
authorization: { mode: Webhook }
clusterDNS: [$DNS_IP]
clusterDomain: cluster.local
# Pods resolve only cluster names; the host's resolvers are never handed to them.
resolvConf: ""
podCIDR: $POD_SUBNET
failSwapOn: false
# A shared test machine runs close to its disk and memory; never evict the project's pods for it.
evictionHard: { memory.available: 50Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1% }
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
maxPods: 110
nodeStatusReportFrequency: 10s
syncFrequency: 10s
shutdownGracePeriod: 0s
EOF
}

containerd_up() {
  containerd_config
  step "containerd ($(containerd --version | awk '{print $3}'), socket $CONTAINERD_SOCK)"
  start containerd containerd --config "$NODE_DIR/containerd/config.toml"
  wait_for containerd 30 "$logs/containerd.log" ctr --address "$CONTAINERD_SOCK" version
}

images_up() {
  step "images into the node's containerd"
  bash "$here/images.sh" import --address "$CONTAINERD_SOCK"
}

kubelet_up() {
  kubelet_config
  step "kubelet $KUBERNETES_VERSION as node $NODE_NAME ($NODE_IP, zone $NODE_ZONE)"
  start kubelet kubelet --config "$NODE_DIR/kubelet/config.yaml" --kubeconfig "$NODE_KUBECONFIG" \
    --root-dir "$NODE_DIR/kubelet/root" --cert-dir "$NODE_DIR/kubelet/pki" \
    --hostname-override "$NODE_NAME" --node-ip "$NODE_IP" \
    --node-labels "$NODE_LABELS" --register-with-taints "$NODE_TAINT" --v=1
  wait_for "kubelet (node $NODE_NAME registered)" 90 "$logs/kubelet.log" kctl get node "$NODE_NAME"
  # The pod range is the node's: kube-router reads it from the Node, as a CNI-managing setup would.
  if [[ -z $(kctl get node "$NODE_NAME" -o jsonpath='{.spec.podCIDR}') ]]; then
    kctl patch node "$NODE_NAME" --type merge -p "{\"spec\":{\"podCIDR\":\"$POD_SUBNET\",\"podCIDRs\":[\"$POD_SUBNET\"]}}" >/dev/null
  fi
}

proxy_up() {
  step "kube-proxy (iptables) and kube-router (NetworkPolicy firewall only)"
  # --conntrack-max-per-core 0: leave the conntrack table alone (no sysctl writes it may not do).
  start kube-proxy kube-proxy --kubeconfig "$NODE_KUBECONFIG" --hostname-override "$NODE_NAME" \
    --proxy-mode iptables --cluster-cidr "$CLUSTER_CIDR" --conntrack-max-per-core 0 \
    --nodeport-addresses "$NODE_IP/32" --bind-address "$NODE_IP" \
    --metrics-bind-address "127.0.0.1:$KUBE_PROXY_METRICS_PORT" --healthz-bind-address "127.0.0.1:$KUBE_PROXY_HEALTHZ_PORT"
  start kube-router kube-router --kubeconfig "$NODE_KUBECONFIG" --hostname-override "$NODE_NAME" \
    --run-firewall=true --run-router=false --run-service-proxy=false --enable-cni=false \
    --metrics-port 0 --health-port "$KUBE_ROUTER_HEALTH_PORT"
  wait_for kube-proxy 60 "$logs/kube-proxy.log" curl -fs "http://127.0.0.1:$KUBE_PROXY_HEALTHZ_PORT/healthz"
  wait_for kube-router 60 "$logs/kube-router.log" curl -fs "http://127.0.0.1:$KUBE_ROUTER_HEALTH_PORT/healthz"
}

system_pods_up() {
  step "system pods on the node: CoreDNS ($DNS_IP) and the local-path volume provisioner"
  bash "$here/node-system.sh"
}

up() {
  [[ $(id -u) == 0 ]] || die "the real node needs root (kubelet, containerd, iptables, bridges); run as root or use SCALABLEAPP_NODES=simulated"
  [[ -f $PKI_DIR/ca.crt ]] || die "no control plane at $CLUSTER_DIR: tools/cluster.sh up starts it first"
  bash "$here/node-deps.sh"
  mkdir -p "$NODE_DIR"
  exec 9>"$NODE_DIR/lock"
  flock -n 9 || die "another tools/node.sh runs against $NODE_DIR"
  write_node_kubeconfig
  network_up
  containerd_up
  images_up
  kubelet_up
  proxy_up
  wait_for "node $NODE_NAME Ready" 120 "$logs/kubelet.log" \
    bash -c "[[ \$(kubectl --kubeconfig '$KUBECONFIG_PATH' get node '$NODE_NAME' -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}') == True ]]"
  system_pods_up
  step "real node $NODE_NAME Ready"
}

# The node's processes authenticate with the control plane's admin certificate: a local development
# cluster with one operator of the machine (ADR 0011). The apiserver reaches the kubelet the same way.
write_node_kubeconfig() {
  install -m 600 "$KUBECONFIG_PATH" "$NODE_KUBECONFIG"
}

stop_proc() {
  local name=$1 p
  p=$(pid_of "$name")
  if [[ -n $p ]] && kill -0 "$p" 2>/dev/null; then
    kill "$p" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$p" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$p" 2>/dev/null || true
  fi
  rm -f "$NODE_DIR/$name.pid"
}

down() {
  [[ -d $NODE_DIR ]] || { restore_host; return 0; }
  step "stopping the real node $NODE_NAME"
  stop_proc kubelet
  # Every container and sandbox is removed through containerd while it still runs, so runc, the
  # shims, the mounts and the CNI teardown (veths, IP addresses, network namespaces) all go cleanly.
  if alive containerd; then
    local c ctr=(ctr --address "$CONTAINERD_SOCK" -n k8s.io)
    for c in $("${ctr[@]}" tasks ls -q 2>/dev/null); do
      "${ctr[@]}" tasks kill -s SIGKILL "$c" >/dev/null 2>&1 || true
    done
    sleep 1
    for c in $("${ctr[@]}" tasks ls -q 2>/dev/null); do
      "${ctr[@]}" tasks delete -f "$c" >/dev/null 2>&1 || true
    done
    for c in $("${ctr[@]}" containers ls -q 2>/dev/null); do
      "${ctr[@]}" containers delete "$c" >/dev/null 2>&1 || true
    done
  fi
  stop_proc kube-router
  stop_proc kube-proxy
  stop_proc containerd
  # Shims that outlived containerd (a crash) are the node's own: they run from its state directory.
  pkill -9 -f "containerd-shim-runc-v2 -namespace k8s.io -address $CONTAINERD_SOCK" 2>/dev/null || true
  restore_host
  # Mounts under the node's directories (kubelet volumes, overlay rootfs, sandbox shm) go before the
  # directories do; deepest first.
  if [[ -d $NODE_DIR ]]; then
    awk -v d="$NODE_DIR" '$2 ~ "^"d {print $2}' /proc/mounts | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
    rm -rf "$NODE_DIR"
  fi
  step "real node removed"
}

# Undo every host-wide change: firewall rules of kube-proxy and kube-router, ipsets, routes, the
# bridge, network namespaces of pods, cgroups, sysctls.
restore_host() {
  # Every chain and rule the node's processes wrote carries KUBE- (kube-proxy, the kubelet's canaries,
  # kube-router's KUBE-ROUTER-* and KUBE-NWPLCY-*) or kube-router's comment; everything else in the
  # tables is restored exactly as it was. (kube-router's own --cleanup-config panics without a cluster.)
  # (The rules are read whole first: `save | grep -q` under pipefail fails by SIGPIPE on a large
  # ruleset, when grep stops reading at the first match, and the rules stayed.)
  local save rules
  for save in iptables-save ip6tables-save; do
    command -v "$save" >/dev/null || continue
    rules=$("$save")
    if grep -qE 'KUBE-|kube-router' <<<"$rules"; then
      grep -vE 'KUBE-|kube-router' <<<"$rules" | "${save%-save}-restore"
    fi
  done
  # kube-router's ipsets (KUBE-SRC-*, KUBE-DST-*, kube-router-*), free once no rule refers to them.
  for s in $(ipset list -n 2>/dev/null | grep -E '^(KUBE-|kube-router-)' || true); do ipset destroy "$s" 2>/dev/null || true; done
  ip route del blackhole "$CLUSTER_CIDR" 2>/dev/null || true
  ip route del "$SERVICE_CIDR" dev "$BRIDGE" 2>/dev/null || true
  # Pod network namespaces the CNI plugin left (containerd 1.6 keeps them in /var/run/netns as cni-*).
  # (Their addresses are gone by now, so they cannot be told apart by address; this machine runs no
  # other CNI.)
  for n in $(ip netns list 2>/dev/null | awk '{print $1}' | grep '^cni-' || true); do ip netns del "$n" 2>/dev/null || true; done
  for veth in $(ip -o link show master "$BRIDGE" 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do ip link del "$veth" 2>/dev/null || true; done
  ip link del "$BRIDGE" 2>/dev/null || true
  for hier in /sys/fs/cgroup/*/; do
    [[ -d ${hier}kubepods ]] && find "${hier}kubepods" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  done
  if [[ -f $NODE_DIR/sysctl.saved ]]; then
    while IFS='=' read -r key value; do sysctl -qw "$key=$value" 2>/dev/null || true; done < "$NODE_DIR/sysctl.saved"
    rm -f "$NODE_DIR/sysctl.saved"
  fi
}

case ${1:-} in
  up) up ;;
  down) down ;;
  images) images_up ;;
  status)
    if alive kubelet && alive containerd; then echo "real node $NODE_NAME runs"; else echo "real node $NODE_NAME is not running"; exit 1; fi
    ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
