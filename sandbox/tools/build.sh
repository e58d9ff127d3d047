#!/usr/bin/env bash
# Build the sandbox's tools from the Go module proxy only:
#   kube-apiserver, kube-controller-manager, kube-scheduler, kubectl (k8s wrapper module)
#   etcd (etcd wrapper module), kwok + kwokctl, helm 4 and helm 3,
#   and for the real node: kubelet, kube-proxy (k8s wrapper module), CoreDNS, crictl.
# Binaries land in a versioned cache outside the repo and are reused; a warm run
# only checks that every binary is present and prints the bin directory.
#
# Usage: sandbox/tools/build.sh            build if needed, print the bin dir last
#        sandbox/tools/build.sh --print    print the bin dir only (no build)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=sandbox/tools/versions.env
source "${here}/versions.env"

# The cache key covers every input that changes a binary: versions, wrapper
# go.sum files and the Go toolchain.
key_input="$(cat "${here}/versions.env" "${here}/k8s/go.sum" "${here}/etcd/go.sum"; go env GOVERSION)"
key="$(printf '%s' "${key_input}" | sha256sum | cut -c1-12)"
cache_root="${DASK_GKE_CACHE:-${XDG_CACHE_HOME:-${HOME}/.cache}/dask-gke}"
bin_dir="${cache_root}/tools-k8s${K8S_VERSION}-${key}/bin"

binaries=(kube-apiserver kube-controller-manager kube-scheduler kubectl etcd kwok kwokctl helm helm3
  kubelet kube-proxy coredns crictl)

if [[ "${1:-}" == "--print" ]]; then
  echo "${bin_dir}"
  exit 0
fi

find_missing() {  # fills missing=() with the binaries not in the cache yet
  local b
  missing=()
  for b in "${binaries[@]}"; do
    [[ -x "${bin_dir}/${b}" ]] || missing+=("${b}")
  done
}

find_missing
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "tools: cache warm (${bin_dir})" >&2
  echo "${bin_dir}"
  exit 0
fi
mkdir -p "${bin_dir}"
# One build at a time per cache: a second sandbox (or CI step) waits here and
# then finds the binaries the first one built.
exec 9>"${cache_root}/.build.lock"
if ! flock -n 9; then
  echo "tools: another build holds ${cache_root}/.build.lock; waiting for it" >&2
  flock 9
fi
find_missing
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "tools: built meanwhile by another build (${bin_dir})" >&2
  echo "${bin_dir}"
  exit 0
fi
echo "tools: building ${missing[*]} into ${bin_dir}" >&2
echo "tools: a cold build takes tens of minutes on 2 cores" >&2

work="$(mktemp -d "${bin_dir}/../build.XXXXXX")"
trap 'rm -rf "${work}"' EXIT

export CGO_ENABLED=0
export GOFLAGS="-mod=mod -trimpath -buildvcs=false"

publish() {  # move finished binaries from the work dir into the cache
  local b
  for b in "${binaries[@]}"; do
    if [[ -f "${work}/${b}" ]]; then mv -f "${work}/${b}" "${bin_dir}/${b}"; fi
  done
}

step() {  # step NAME COMMAND...: run one build step, report its duration
  local name="$1" start end
  shift
  start=$(date +%s)
  echo "tools: [$(date +%H:%M:%S)] ${name} ..." >&2
  "$@"
  publish
  end=$(date +%s)
  echo "tools: [$(date +%H:%M:%S)] ${name} done in $((end - start)) s" >&2
}

k8s_ldflags() {  # the version ldflags of every Kubernetes binary
  local build_date minor pkg ldflags=()
  build_date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  minor="$(echo "${K8S_VERSION}" | cut -d. -f2)"
  # Real version strings: without them /version says v0.0.0-master and Helm
  # rejects charts that declare a kubeVersion range.
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=("-X ${pkg}.gitVersion=v${K8S_VERSION}"
      "-X ${pkg}.gitMajor=1" "-X ${pkg}.gitMinor=${minor}"
      "-X ${pkg}.gitTreeState=clean" "-X ${pkg}.buildDate=${build_date}")
  done
  echo "-s -w ${ldflags[*]}"
}

build_k8s() {  # build_k8s CMD...: Kubernetes commands from the wrapper module
  local ldflags cmd packages=()
  ldflags="$(k8s_ldflags)"
  for cmd in "$@"; do packages+=("k8s.io/kubernetes/cmd/${cmd}"); done
  (cd "${here}/k8s" && go build -ldflags "${ldflags}" -o "${work}/" "${packages[@]}")
}

build_coredns() {
  GOBIN="${work}" go install -ldflags "-s -w" "github.com/coredns/coredns@v${COREDNS_VERSION}"
}

build_crictl() {
  GOBIN="${work}" go install -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=v${CRICTL_VERSION}" \
    "sigs.k8s.io/cri-tools/cmd/crictl@v${CRICTL_VERSION}"
}

build_etcd() {
  (cd "${here}/etcd" && go build -ldflags "-s -w" -o "${work}/etcd" go.etcd.io/etcd/server/v3)
}

build_kwok() {
  local ldflags="-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=v${KWOK_VERSION}"
  # kwokctl's binary runtime downloads missing binaries; the sandbox always
  # passes explicit paths, so the release defaults are irrelevant here.
  GOBIN="${work}" go install -ldflags "${ldflags}" \
    "sigs.k8s.io/kwok/cmd/kwok@v${KWOK_VERSION}" "sigs.k8s.io/kwok/cmd/kwokctl@v${KWOK_VERSION}"
}

build_helm() {
  local major="$1" version="$2" name="$3" mod
  mod="helm.sh/helm/v${major}"
  mkdir -p "${work}/gobin-helm${major}"
  GOBIN="${work}/gobin-helm${major}" go install \
    -ldflags "-s -w -X ${mod}/internal/version.version=v${version}" "${mod}/cmd/helm@v${version}"
  mv "${work}/gobin-helm${major}/helm" "${work}/${name}"
}

needs() {  # needs NAME...: true when any of these binaries is missing
  local b m
  for b in "$@"; do
    for m in "${missing[@]}"; do [[ "${m}" == "${b}" ]] && return 0; done
  done
  return 1
}

total_start=$(date +%s)
if needs helm; then step "helm v${HELM4_VERSION}" build_helm 4 "${HELM4_VERSION}" helm; fi
if needs helm3; then step "helm v${HELM3_VERSION}" build_helm 3 "${HELM3_VERSION}" helm3; fi
if needs kwok kwokctl; then step "kwok+kwokctl v${KWOK_VERSION}" build_kwok; fi
if needs etcd; then step "etcd v${ETCD_VERSION}" build_etcd; fi
# Largest last, so the small tools are usable early during a cold build.
if needs kube-apiserver kube-controller-manager kube-scheduler kubectl; then
  step "kubernetes v${K8S_VERSION} (control plane, 4 binaries)" build_k8s \
    kube-apiserver kube-controller-manager kube-scheduler kubectl
fi
# The real node's tools: after the control plane, whose build cache they share.
if needs kubelet kube-proxy; then
  step "kubernetes v${K8S_VERSION} (kubelet, kube-proxy)" build_k8s kubelet kube-proxy
fi
if needs coredns; then step "coredns v${COREDNS_VERSION}" build_coredns; fi
if needs crictl; then step "crictl v${CRICTL_VERSION}" build_crictl; fi
for b in "${binaries[@]}"; do
  [[ -x "${bin_dir}/${b}" ]] || { echo "tools: ${b} missing after build" >&2; exit 1; }
done
echo "tools: all built in $(($(date +%s) - total_start)) s" >&2
echo "${bin_dir}"
