# Every pinned version of the toolchain, in one place. Sourced by tools/*.sh.
# Bumping a version here makes tools/toolchain.sh build the new one beside the old (cache key = version).
KUBERNETES_VERSION=v1.36.3      # kube-apiserver, kube-controller-manager, kube-scheduler, kubectl
KUBERNETES_STAGING_VERSION=v0.36.3
ETCD_VERSION=v3.6.16
KWOK_VERSION=v0.8.0
HELM_VERSION=v4.3.1
KIND_VERSION=v0.33.0
METRICS_SERVER_VERSION=v0.9.0
COREDNS_VERSION=v1.15.0        # DNS for the real node's pods
KUBE_ROUTER_VERSION=v2.1.0     # NetworkPolicy firewall on the real node (the only version the proxy serves)
LOCAL_PATH_PROVISIONER_VERSION=v0.0.30  # volumes on the real node (the only version the proxy serves)
GATEWAY_API_VERSION=v1.6.3     # only its CRDs: the local cluster serves the Gateway API (tools/cluster.sh)
PROMETHEUS_OPERATOR_VERSION=v0.95.2  # only its CRDs (PodMonitor, ServiceMonitor, PrometheusRule), generated from its API module
CONTROLLER_TOOLS_VERSION=v0.23.0     # controller-gen, which generates those CRDs
VERSITYGW_VERSION=v1.8.0       # an S3-compatible object store on loopback: the backup tests' repository (ADR 0029)
# The Go toolchain that builds them; Kubernetes 1.36 needs >= 1.26.0.
GO_MIN_VERSION=1.26.0
# Where built tools live. Under $HOME so CI on the same machine reuses them.
SCALABLEAPP_CACHE=${SCALABLEAPP_CACHE:-$HOME/.cache/scalableapp}
TOOLS_DIR=$SCALABLEAPP_CACHE/tools
TOOLS_BIN=$TOOLS_DIR/bin
