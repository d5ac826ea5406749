#!/usr/bin/env bash
# Builds the real Kubernetes parts the integration tests run (etcd, kube-apiserver, kwok) from the Go module
# proxy into a cache folder keyed by their versions and the Go version, and skips any binary already there.
# Prints the folder on stdout (everything else goes to stderr), so callers can do DIR=$(build-tools.sh).
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-v1.37.2}
ETCD_VERSION=${ETCD_VERSION:-v3.7.3}
KWOK_VERSION=${KWOK_VERSION:-v0.8.0}
GO_VERSION=$(go env GOVERSION)
CACHE_ROOT=${KITEFN_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kitefn/tools}
OUT="$CACHE_ROOT/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-kwok-$KWOK_VERSION-$GO_VERSION"
mkdir -p "$OUT"

log() { echo "build-tools: $*" >&2; }

# staging_major_minor turns v1.37.2 into v0.37.2, the version of k8s.io/{api,client-go,...} that ship with it.
STAGING_VERSION="v0.${K8S_VERSION#v1.}"

# The -X flags make the binaries report the real version instead of v0.0.0-master.
version_ldflags() {
  local major minor pkg flags=""
  major=$(echo "${K8S_VERSION#v}" | cut -d. -f1)
  minor=$(echo "${K8S_VERSION#v}" | cut -d. -f2)
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done
  echo "-s -w$flags"
}

# new_module makes a throwaway module in a temp dir whose tools.go imports $2; prints the dir.
new_module() {
  local name=$1 import=$2 dir
  dir=$(mktemp -d "${TMPDIR:-/tmp}/kitefn-build-$name.XXXXXX")
  cat >"$dir/go.mod" <<MOD
module kitefn.local/build/$name

go 1.26
MOD
  cat >"$dir/tools.go" <<GO
//go:build tools

package tools

import _ "$import"
GO
  echo "$dir"
}

build_etcd() {
  [[ -x "$OUT/etcd" ]] && { log "etcd $ETCD_VERSION cached"; return; }
  log "building etcd $ETCD_VERSION (a few minutes)"
  local dir
  dir=$(mktemp -d "${TMPDIR:-/tmp}/kitefn-build-etcd.XXXXXX")
  cat >"$dir/go.mod" <<MOD
module kitefn.local/build/etcd

go 1.26
MOD
  cat >"$dir/main.go" <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  (cd "$dir" && go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >&2 && go mod tidy >&2 &&
    CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$OUT/etcd.tmp" . >&2)
  mv "$OUT/etcd.tmp" "$OUT/etcd"
  rm -rf "$dir"
}

build_apiserver() {
  [[ -x "$OUT/kube-apiserver" ]] && { log "kube-apiserver $K8S_VERSION cached"; return; }
  log "building kube-apiserver $K8S_VERSION (10-25 minutes on 2 cores)"
  local dir gomod
  dir=$(new_module kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver)
  gomod=$(cd "$dir" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  # k8s.io/kubernetes points its staging modules at ./staging, which only works inside its own repo; pin every
  # staging module it requires at v0.0.0 to the matching published version instead.
  local replaces
  replaces=$(awk '/^require/ {inreq=1} inreq && $1 ~ /^k8s\.io\// && $2 == "v0.0.0" {print $1} /^\)/ {inreq=0}' "$gomod" |
    grep -v -e '^k8s.io/sample-cli-plugin$' -e '^k8s.io/sample-controller$' | sort -u)
  [[ -n "$replaces" ]] || { log "found no staging modules in $gomod"; exit 1; }
  (
    cd "$dir"
    go mod edit -require="k8s.io/kubernetes@$K8S_VERSION"
    for m in $replaces; do go mod edit -replace="$m=$m@$STAGING_VERSION"; done
    go mod tidy >&2
    CGO_ENABLED=0 go build -trimpath -ldflags="$(version_ldflags)" -o "$OUT/kube-apiserver.tmp" \
      k8s.io/kubernetes/cmd/kube-apiserver >&2
  )
  mv "$OUT/kube-apiserver.tmp" "$OUT/kube-apiserver"
  rm -rf "$dir"
}

# The Stage YAMLs make fake nodes Ready and pods Running; kwok needs them passed with --config. Only this set:
# the module also holds chaos stages (nodes NotReady, containers failing), a second heartbeat, testdata Pods and
# same-named "general" pod stages, which must not be passed together. Same set kwokctl uses by default (with lease).
KWOK_STAGES="node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml
pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml"

kwok_stages_ok() {
  local f n=0
  [[ -d "$OUT/kwok-stages" ]] || return 1
  for f in $KWOK_STAGES; do
    [[ -f "$OUT/kwok-stages/$(basename "$f")" ]] || return 1
    n=$((n + 1))
  done
  [[ $(find "$OUT/kwok-stages" -type f | wc -l) -eq $n ]]
}

copy_kwok_stages() {
  local moddir f
  moddir=$(cd "${TMPDIR:-/tmp}" && go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" |
    sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  [[ -d "$moddir/kustomize/stage" ]] || { log "kwok $KWOK_VERSION module has no kustomize/stage"; exit 1; }
  rm -rf "$OUT/kwok-stages.tmp" && mkdir -p "$OUT/kwok-stages.tmp"
  for f in $KWOK_STAGES; do cp "$moddir/kustomize/stage/$f" "$OUT/kwok-stages.tmp/"; done
  chmod -R u+w "$OUT/kwok-stages.tmp"
  rm -rf "$OUT/kwok-stages" && mv "$OUT/kwok-stages.tmp" "$OUT/kwok-stages"
}

build_kwok() {
  if [[ -x "$OUT/kwok" ]]; then
    log "kwok $KWOK_VERSION cached"
  else
    log "building kwok $KWOK_VERSION (about 5 minutes)"
    local dir
    dir=$(new_module kwok sigs.k8s.io/kwok/cmd/kwok)
    (
      cd "$dir"
      go mod edit -require="sigs.k8s.io/kwok@$KWOK_VERSION"
      go mod tidy >&2
      CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$OUT/kwok.tmp" sigs.k8s.io/kwok/cmd/kwok >&2
    )
    mv "$OUT/kwok.tmp" "$OUT/kwok"
    rm -rf "$dir"
  fi
  # Checked apart from the binary so that a folder made by an older version of this script gets fixed.
  kwok_stages_ok || { log "copying kwok stages"; copy_kwok_stages; }
}

# Serialize builds: test packages running in parallel, or a second `make tools`, would otherwise write the same
# *.tmp files at once.
lock() {
  exec 9>"$CACHE_ROOT/.build.lock"
  flock 9
}

what=${1:-all}
case "$what" in
  all) lock; build_etcd; build_apiserver; build_kwok ;;
  etcd) lock; build_etcd ;;
  kube-apiserver) lock; build_apiserver ;;
  kwok) lock; build_kwok ;;
  dir) ;; # only print the folder: callers check for the binaries they need and never build by surprise
  *) log "usage: $0 [all|etcd|kube-apiserver|kwok|dir]"; exit 2 ;;
esac
echo "$OUT"
