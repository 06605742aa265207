# The real node's addresses, ports and paths, in one place. Sourced by tools/cluster.sh, node.sh and
# node-system.sh after versions.sh.
CLUSTER_NAME=${SCALABLEAPP_CLUSTER:-scalableapp}
CLUSTER_DIR=$SCALABLEAPP_CACHE/clusters/kwok-$CLUSTER_NAME
KUBECONFIG_PATH=$CLUSTER_DIR/kubeconfig
PKI_DIR=$CLUSTER_DIR/kwok/clusters/$CLUSTER_NAME/pki
NODE_DIR=$CLUSTER_DIR/node
NODE_KUBECONFIG=$NODE_DIR/kubeconfig
CONTAINERD_SOCK=$NODE_DIR/containerd/containerd.sock
# Address plan. The node's address is the gateway of its own pod bridge (kubelet refuses loopback).
CLUSTER_CIDR=10.244.0.0/16
POD_SUBNET=10.244.0.0/24
POD_SUBNET_BITS=24
NODE_IP=10.244.0.1
SERVICE_CIDR=10.96.0.0/16
KUBERNETES_SERVICE_IP=10.96.0.1
DNS_IP=10.96.0.10
BRIDGE=sapp0
NODE_NAME=real-zone-a-1
NODE_ZONE=zone-a
# Real and simulated nodes are told apart by this label; the taint keeps pods off the real node unless
# their namespace asks for it (tools/node-system.sh, docs/adr/0011-real-node.md).
NODE_LABELS="scalableapp.io/node=real,topology.kubernetes.io/zone=$NODE_ZONE,topology.kubernetes.io/region=local"
NODE_TAINT="scalableapp.io/node=real:NoSchedule"
# Non-default ports, so another cluster's node on this machine does not collide.
KUBELET_PORT=10350
KUBELET_HEALTHZ_PORT=10348
KUBE_PROXY_METRICS_PORT=10349
KUBE_PROXY_HEALTHZ_PORT=10356
KUBE_ROUTER_HEALTH_PORT=10358
IMAGES_ENV=$SCALABLEAPP_CACHE/images/images.env
# shellcheck disable=SC1090
if [[ -f $IMAGES_ENV ]]; then source "$IMAGES_ENV"; fi
