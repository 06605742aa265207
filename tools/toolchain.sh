#!/usr/bin/env bash
# Builds every Go-only tool the project needs from the Go module proxy, pinned in tools/versions.sh,
# into $TOOLS_DIR/<tool>-<version>/ and links them into $TOOLS_BIN. Idempotent: a tool whose stamp
# exists is not rebuilt, so a warm run takes seconds.
#
#   tools/toolchain.sh            build whatever is missing
#   tools/toolchain.sh --print    print the bin directory (for PATH)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/versions.sh"
source "$here/lib.sh"

if [[ ${1:-} == --print ]]; then echo "$TOOLS_BIN"; exit 0; fi

command -v go >/dev/null || die "Go is not installed or not on PATH. Install Go >= $GO_MIN_VERSION (https://go.dev/dl/) and run again."
go_version=$(go env GOVERSION | sed 's/^go//')
if [[ $(printf '%s\n%s\n' "$GO_MIN_VERSION" "$go_version" | sort -V | head -1) != "$GO_MIN_VERSION" ]]; then
  die "Go $go_version is too old: Kubernetes ${KUBERNETES_VERSION} needs Go >= $GO_MIN_VERSION."
fi

mkdir -p "$TOOLS_BIN"
# One build at a time: README command 1 and 2, or two test runs, may start together on a cold cache.
exec 8>"$TOOLS_DIR/.lock"
if ! flock -n 8; then
  step "another toolchain build runs; waiting for it"
  flock 8
fi
building=
trap 'rc=$?; if [[ $rc != 0 && -n $building ]]; then echo "error: building $building failed (exit $rc); see the output above" >&2; fi' EXIT
# Never let a newer Go be downloaded behind our back, never use cgo (static, portable binaries).
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
built_any=0

# build_tool NAME VERSION FUNCTION: runs FUNCTION with $out set to the tool's versioned dir,
# records the build time, and links every binary into $TOOLS_BIN.
build_tool() {
  local name=$1 version=$2 fn=$3
  local out=$TOOLS_DIR/$name-$version
  if [[ -f $out/.stamp ]]; then
    step "$name $version: cached"
  else
    step "$name $version: building (cold builds take minutes; Go caches stay in $(go env GOCACHE))"
    rm -rf "$out"; mkdir -p "$out/bin"
    local start; start=$(date +%s)
    # Not `|| die`: that would switch errexit off inside the build function.
    building="$name $version"
    with_heartbeat "$name" "$fn" "$out"
    building=
    local took=$(( $(date +%s) - start ))
    echo "$took" > "$out/.stamp"
    echo "$(date -u +%FT%TZ) $name $version ${took}s" >> "$TOOLS_DIR/build-times.log"
    step "$name $version: built in ${took}s"
    built_any=1
  fi
  for b in "$out"/bin/*; do ln -sfn "$b" "$TOOLS_BIN/$(basename "$b")"; done
}

go_install() { # out module@version
  GOBIN=$1/bin go install -trimpath "$2"
}

# kubernetes_wrapper SRC: writes the wrapper module that builds binaries of k8s.io/kubernetes, and sets
# $kube_ldflags to the version stamp.
kubernetes_wrapper() {
  local src=$1
  mkdir -p "$src"
  local major=${KUBERNETES_VERSION#v}; major=${major%%.*}
  local minor=${KUBERNETES_VERSION#v*.}; minor=${minor%%.*}
  # k8s.io/kubernetes replaces its staging modules with ./staging/...; those replaces are ignored
  # when it is a dependency, so this wrapper replaces every one of them with the published version.
  # The list is derived from that version's own go.mod, never hand-written.
  local kmod; kmod=$(curl -fsSL "$(go env GOPROXY | cut -d, -f1)/k8s.io/kubernetes/@v/${KUBERNETES_VERSION}.mod")
  {
    echo "module scalableapp.local/kubebuild"
    echo
    echo "$kmod" | grep -E '^go ' | head -1
    echo
    echo "$kmod" | grep -E '^godebug ' || true
    echo
    echo "require k8s.io/kubernetes ${KUBERNETES_VERSION}"
    echo
    echo "replace ("
    echo "$kmod" | grep -E '^\s*k8s\.io/[^ ]+ => \./staging/' | awk -v v="$KUBERNETES_STAGING_VERSION" '{print "\t" $1 " => " $1 " " v}'
    echo ")"
  } > "$src/go.mod"
  step "  wrapper go.mod replaces $(grep -c '=>' "$src/go.mod") staging modules"
  local pkg=k8s.io/component-base/version cg=k8s.io/client-go/pkg/version
  local date; date=$(date -u +%FT%TZ)
  local ld="-s -w"
  for p in $pkg $cg; do
    ld+=" -X $p.gitVersion=${KUBERNETES_VERSION} -X $p.gitMajor=$major -X $p.gitMinor=$minor"
    ld+=" -X $p.gitTreeState=clean -X $p.buildDate=$date"
  done
  kube_ldflags=$ld
  (cd "$src" && go mod download k8s.io/kubernetes)
}

# kubernetes_build OUT CMD...: compiles each k8s.io/kubernetes/cmd/CMD into OUT/bin, stamped.
kubernetes_build() {
  local out=$1 src=$1/src; shift
  mkdir -p "$src"
  kubernetes_wrapper "$src"
  for cmd in "$@"; do
    step "  compiling $cmd"
    (cd "$src" && go build -trimpath -tags selinux,notest,grpcnotrace -ldflags "$kube_ldflags" -o "$out/bin/$cmd" "k8s.io/kubernetes/cmd/$cmd")
    local ask=--version said; [[ $cmd == kubectl ]] && ask="version --client"
    # Read whole, then matched: `| grep -q` under pipefail fails when grep exits at its first match
    # and the binary, still printing (kubectl's Kustomize line), dies of SIGPIPE.
    # shellcheck disable=SC2086
    said=$("$out/bin/$cmd" $ask 2>&1) || die "$cmd $ask failed: $said"
    [[ $said == *"${KUBERNETES_VERSION}"* ]] || die "$cmd is not stamped with ${KUBERNETES_VERSION}: $said"
  done
}
build_kubernetes() { kubernetes_build "$1" kube-apiserver kube-controller-manager kube-scheduler kubectl; }
# The real node's own binaries, a tool of their own so a control plane cached before they existed
# is not rebuilt (kubelet is the slowest build of all: 5-7 min cold on 2 cores).
build_kube_node() { kubernetes_build "$1" kubelet kube-proxy; }

build_etcd() {
  local out=$1 src=$1/src
  mkdir -p "$src"
  # etcd's go.mod carries replace directives, so `go install` refuses it; a three-line main does not.
  cat > "$src/main.go" <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  printf 'module scalableapp.local/etcdbuild\n\ngo 1.26.0\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "$ETCD_VERSION" > "$src/go.mod"
  (cd "$src" && go build -trimpath -ldflags "-s -w" -o "$out/bin/etcd" .)
}

build_kwok() {
  go_install "$1" "sigs.k8s.io/kwok/cmd/kwok@${KWOK_VERSION}"
  go_install "$1" "sigs.k8s.io/kwok/cmd/kwokctl@${KWOK_VERSION}"
  # kwok's default stages (pod Ready, node heartbeat) ship in its module; keep a copy beside it.
  local mod; mod=$(go env GOMODCACHE)/sigs.k8s.io/kwok@${KWOK_VERSION}
  mkdir -p "$1/share"
  cp -r "$mod/kustomize/stage" "$1/share/stage" 2>/dev/null || true
  chmod -R u+w "$1/share"
}
build_helm() {
  GOBIN=$1/bin go install -trimpath -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=${HELM_VERSION}" "helm.sh/helm/v4/cmd/helm@${HELM_VERSION}"
}
build_kind() { go_install "$1" "sigs.k8s.io/kind@${KIND_VERSION}"; }
# CoreDNS, so pods on the real node resolve Service names. Its go.mod has no replace directives.
build_coredns() { go_install "$1" "github.com/coredns/coredns@${COREDNS_VERSION}"; }
# kube-router, only its NetworkPolicy firewall (ADR 0011 says why this one).
build_kube_router() {
  GOBIN=$1/bin go install -trimpath -ldflags "-s -w -X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version=${KUBE_ROUTER_VERSION}" \
    "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router@${KUBE_ROUTER_VERSION}"
}
# Rancher's local-path provisioner (kind's default StorageClass), making `local` volumes on the real
# node: the kubelet applies fsGroup to those, so non-root database pods own their data directories.
build_local_path_provisioner() { go_install "$1" "github.com/rancher/local-path-provisioner@${LOCAL_PATH_PROVISIONER_VERSION}"; }
build_versitygw() { go_install "$1" "github.com/versity/versitygw/cmd/versitygw@${VERSITYGW_VERSION}"; }
build_metrics_server() { go_install "$1" "sigs.k8s.io/metrics-server/cmd/metrics-server@${METRICS_SERVER_VERSION}"; }
# controller-gen, only to generate the Prometheus Operator's CRDs below from their Go types.
build_controller_gen() {
  GOBIN=$1/bin go install -trimpath -ldflags "-s -w" "sigs.k8s.io/controller-tools/cmd/controller-gen@${CONTROLLER_TOOLS_VERSION}"
  local said; said=$("$1/bin/controller-gen" --version 2>&1) || die "controller-gen --version failed: $said"
  [[ $said == *"${CONTROLLER_TOOLS_VERSION}"* ]] || die "controller-gen is not ${CONTROLLER_TOOLS_VERSION}: $said"
}
# prometheus_crds OUT: generates the Prometheus Operator's monitoring.coreos.com/v1 CRDs into OUT
# and keeps PodMonitor, ServiceMonitor and PrometheusRule. The Go proxy does not serve the operator's
# main module (where upstream keeps the YAML), only its API module: controller-gen makes the same
# CRDs from those types, with upstream's options (crd:crdVersions=v1) and its version annotation.
prometheus_crds() {
  local out=$1 api=github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring
  local src; src=$(mktemp -d)
  # A throwaway module that requires the API module; GOFLAGS=-mod=mod lets the package load fill its go.sum.
  printf 'module scalableapp.local/promcrds\n\ngo %s\n\nrequire %s %s\n' "$GO_MIN_VERSION" "$api" "$PROMETHEUS_OPERATOR_VERSION" > "$src/go.mod"
  (cd "$src" && "$TOOLS_DIR/controller-gen-$CONTROLLER_TOOLS_VERSION/bin/controller-gen" crd:crdVersions=v1 "paths=$api/v1" "output:crd:dir=$src/crds")
  for kind in podmonitors servicemonitors prometheusrules; do
    local f=$src/crds/monitoring.coreos.com_$kind.yaml
    [[ -s $f ]] || die "controller-gen made no $(basename "$f") from $api@$PROMETHEUS_OPERATOR_VERSION"
    sed "0,/^    controller-gen\.kubebuilder\.io\/version: .*/s//&\n    operator.prometheus.io\/version: ${PROMETHEUS_OPERATOR_VERSION#v}/" "$f" > "$out/$(basename "$f")"
    grep -q '^    operator\.prometheus\.io/version: ' "$out/$(basename "$f")" || die "no controller-gen annotation in $(basename "$f") to put the version beside"
  done
  rm -rf "$src"
}

step "toolchain into $TOOLS_DIR (Go $go_version)"
build_tool etcd "$ETCD_VERSION" build_etcd
build_tool kwok "$KWOK_VERSION" build_kwok
build_tool helm "$HELM_VERSION" build_helm
build_tool kind "$KIND_VERSION" build_kind
build_tool metrics-server "$METRICS_SERVER_VERSION" build_metrics_server
build_tool kubernetes "$KUBERNETES_VERSION" build_kubernetes
build_tool versitygw "$VERSITYGW_VERSION" build_versitygw
if [[ ${SCALABLEAPP_NODES:-real} == real ]]; then
  build_tool kube-node "$KUBERNETES_VERSION" build_kube_node
  build_tool coredns "$COREDNS_VERSION" build_coredns
  build_tool kube-router "$KUBE_ROUTER_VERSION" build_kube_router
  build_tool local-path-provisioner "$LOCAL_PATH_PROVISIONER_VERSION" build_local_path_provisioner
fi
# The Gateway API's standard CRDs come from its Go module: the tests install them to check the
# HTTPRoute exposure (no controller is needed for that; the operator only writes routes).
gateway_crds=$TOOLS_DIR/share/gateway-api-$GATEWAY_API_VERSION
if [[ -f $gateway_crds/.stamp ]]; then
  step "gateway-api $GATEWAY_API_VERSION CRDs: cached"
else
  step "gateway-api $GATEWAY_API_VERSION CRDs: downloading the module"
  dir=$(cd "$(mktemp -d)" && go mod download -json "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [[ -d $dir/config/crd/standard ]] || die "gateway-api $GATEWAY_API_VERSION has no config/crd/standard"
  rm -rf "$gateway_crds" && mkdir -p "$gateway_crds"
  for kind in gatewayclasses gateways httproutes referencegrants; do
    cp "$dir/config/crd/standard/gateway.networking.k8s.io_$kind.yaml" "$gateway_crds/"
  done
  chmod -R u+w "$gateway_crds" && touch "$gateway_crds/.stamp"
  built_any=1
fi
ln -sfn "$gateway_crds" "$TOOLS_DIR/share/gateway-api"
# The Prometheus Operator's CRDs, so the tests can install them and check the PodMonitors the operator
# writes (no Prometheus Operator runs). Generated, so the stamp holds the generator: a new
# controller-gen regenerates them.
build_tool controller-gen "$CONTROLLER_TOOLS_VERSION" build_controller_gen
prom_crds=$TOOLS_DIR/share/prometheus-operator-crds-$PROMETHEUS_OPERATOR_VERSION
if [[ -f $prom_crds/.stamp && $(<"$prom_crds/.stamp") == "controller-gen $CONTROLLER_TOOLS_VERSION" ]]; then
  step "prometheus-operator $PROMETHEUS_OPERATOR_VERSION CRDs: cached"
else
  step "prometheus-operator $PROMETHEUS_OPERATOR_VERSION CRDs: generating from its API module with controller-gen $CONTROLLER_TOOLS_VERSION"
  rm -rf "$prom_crds" && mkdir -p "$prom_crds"
  start=$(date +%s)
  building="prometheus-operator $PROMETHEUS_OPERATOR_VERSION CRDs"
  with_heartbeat "prometheus-operator CRDs" prometheus_crds "$prom_crds"
  building=
  echo "controller-gen $CONTROLLER_TOOLS_VERSION" > "$prom_crds/.stamp"
  echo "$(date -u +%FT%TZ) prometheus-operator-crds $PROMETHEUS_OPERATOR_VERSION $(( $(date +%s) - start ))s" >> "$TOOLS_DIR/build-times.log"
  step "prometheus-operator $PROMETHEUS_OPERATOR_VERSION CRDs: $(cd "$prom_crds" && echo *.yaml)"
  built_any=1
fi
ln -sfn "$prom_crds" "$TOOLS_DIR/share/prometheus-operator-crds"
step "toolchain ready in $TOOLS_BIN ($([[ $built_any == 1 ]] && echo "built missing tools" || echo "all cached"))"
