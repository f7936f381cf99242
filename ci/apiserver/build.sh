#!/usr/bin/env bash
# Build kube-apiserver and kine into .tools/apiserver/ for tests/apiserver.
#
# The versions come from the go.mod files beside this script
# (kube-apiserver/go.mod pins k8s.io/kubernetes, kine/go.mod pins
# github.com/k3s-io/kine). A binary whose --version output already shows the
# pinned version is kept, so a second run does nothing.
#
# Environment:
#   APISERVER_TOOLS_DIR  output folder (default: <repo>/.tools/apiserver)
#   BUILD_JOBS           packages compiled in parallel, go build -p (default: 2)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${APISERVER_TOOLS_DIR:-$root/.tools/apiserver}
jobs=${BUILD_JOBS:-2}
mkdir -p "$out"

# Print the version of module $2 that the module in folder $1 requires.
module_version() {
  (cd "$1" && go list -m -f '{{.Version}}' "$2")
}

# Succeed when "$1 --version" prints the string $2.
has_version() {
  [[ -x $1 ]] && "$1" --version 2>/dev/null | grep -qF -- "$2"
}

build_kube_apiserver() {
  local version major minor
  version=$(module_version "$here/kube-apiserver" k8s.io/kubernetes)
  if has_version "$out/kube-apiserver" "Kubernetes $version"; then
    echo "kube-apiserver $version is already built in $out"
    return
  fi

  major=${version#v}
  major=${major%%.*}
  minor=${version#v*.}
  minor=${minor%%.*}
  # The version variables are what `make` in kubernetes sets. Without them the
  # server reports v0.0.0-master, and Helm's kubeVersion checks fail against it.
  local pkg=k8s.io/component-base/version
  local ldflags="-s -w
    -X $pkg.gitVersion=$version
    -X $pkg.gitMajor=$major
    -X $pkg.gitMinor=$minor
    -X $pkg.gitTreeState=clean
    -X $pkg.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"

  echo "building kube-apiserver $version into $out (go build -p $jobs)"
  (cd "$here/kube-apiserver" &&
    CGO_ENABLED=0 go build -p "$jobs" -ldflags "$ldflags" \
      -o "$out/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver)
  mv "$out/kube-apiserver.tmp" "$out/kube-apiserver"
  "$out/kube-apiserver" --version
}

build_kine() {
  local version
  version=$(module_version "$here/kine" github.com/k3s-io/kine)
  if has_version "$out/kine" "$version"; then
    echo "kine $version is already built in $out"
    return
  fi

  # kine's SQLite driver needs cgo (github.com/mattn/go-sqlite3). Without cgo
  # kine builds, but rejects the sqlite:// endpoint at run time.
  local pkg=github.com/k3s-io/kine/pkg/version
  echo "building kine $version into $out (go build -p $jobs)"
  (cd "$here/kine" &&
    CGO_ENABLED=1 go build -p "$jobs" -tags sqlite_unlock_notify \
      -ldflags "-s -w -X $pkg.Version=$version -X $pkg.GitCommit=$version" \
      -o "$out/kine.tmp" github.com/k3s-io/kine)
  mv "$out/kine.tmp" "$out/kine"
  "$out/kine" --version
}

build_kine
build_kube_apiserver
