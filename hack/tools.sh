#!/usr/bin/env bash
# tools.sh installs what the test world needs and prints the directory of its binaries.
#
# Debian packages (etcd-server, docker-registry, openssh-server, git) are installed with
# apt-get when missing (root only). kube-apiserver, kube-controller-manager, kube-scheduler,
# kubectl (from k8s.io/kubernetes, through the tools module in hack/tools/kubernetes) and kwok
# are built from Go modules into a versioned cache dir, once per machine; with the argument
# `lint`, staticcheck too. Concurrent callers are serialised with flock. Progress goes to
# stderr; stdout is the bin dir.
set -euo pipefail

K8S_VERSION=v1.33.13
KWOK_VERSION=v0.7.0
STATICCHECK_VERSION=v0.8.2

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${IMAGEBOT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/imagebot}
bin=$cache/bin/k8s-$K8S_VERSION-kwok-$KWOK_VERSION
mkdir -p "$bin"

log() { echo "tools: $*" >&2; }

exec 9>"$cache/.lock"
flock 9

# Debian packages.
need_pkgs=()
[ -x /usr/bin/etcd ] || need_pkgs+=(etcd-server)
[ -x /usr/bin/docker-registry ] || need_pkgs+=(docker-registry)
[ -x /usr/sbin/sshd ] || need_pkgs+=(openssh-server)
command -v git-shell >/dev/null 2>&1 || need_pkgs+=(git)
command -v flock >/dev/null 2>&1 || need_pkgs+=(util-linux)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    log "missing Debian packages: ${need_pkgs[*]}; run: sudo apt-get install -y ${need_pkgs[*]}"
    exit 1
  fi
  log "installing ${need_pkgs[*]} with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >&2
  # Debian may start services on install where an init system runs; the test world starts
  # its own instances, so make sure none are left running.
  pkill -x docker-registry 2>/dev/null || true
  pkill -x etcd 2>/dev/null || true
fi

build() { # build NAME PKG: go build PKG (in the k8s tools module) into $bin/NAME atomically
  local name=$1 pkg=$2
  [ -x "$bin/$name" ] && return 0
  log "building $name from $pkg (once per machine; minutes when cold)"
  local start=$SECONDS
  (cd "$here/tools/kubernetes" && GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -o "$bin/.$name.tmp" "$pkg")
  mv "$bin/.$name.tmp" "$bin/$name"
  log "built $name in $((SECONDS - start))s"
}
build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
build kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager
build kube-scheduler k8s.io/kubernetes/cmd/kube-scheduler
build kubectl k8s.io/kubernetes/cmd/kubectl

install_mod() { # install_mod NAME MODULE@VERSION: go install MODULE as $bin/NAME
  local name=$1 mod=$2
  [ -x "$bin/$name" ] && return 0
  log "building $name from $mod"
  local start=$SECONDS tmp
  tmp=$(mktemp -d "$bin/.gobin.XXXX")
  (cd "$tmp" && GOBIN="$tmp" CGO_ENABLED=0 go install -trimpath "$mod")
  mv "$tmp/$(basename "${mod%@*}")" "$bin/$name"
  rmdir "$tmp"
  log "built $name in $((SECONDS - start))s"
}
install_mod kwok "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
if [ "${1:-}" = lint ]; then
  install_mod "staticcheck-$STATICCHECK_VERSION" "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"
fi

echo "$bin"
