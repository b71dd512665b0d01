# Shared shell helpers of worknode's two entry commands (sourced, not run).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export ROOT

die() { echo "worknode setup: error: $*" >&2; exit 1; }
step() { echo "==> $*" >&2; }

require_root_linux() {
  [ "$(uname -s)" = "Linux" ] || die "needs Linux (this is $(uname -s))"
  [ "$(id -u)" = "0" ] || die "needs root: it installs Debian packages and runs containerd, iptables and network namespaces"
  command -v apt-get >/dev/null || die "needs a Debian-based system (apt-get not found)"
}

# Debian packages the node agent and the system tier need. docker-registry is left to
# @worknode/testing's lab, which installs it and disables the systemd unit Debian starts on port 5000.
SYSTEM_PACKAGES=(
  containerd runc containernetworking-plugins umoci skopeo busybox-static
  iptables nftables conntrack iproute2 curl gcc libc6-dev openssl ca-certificates
  clang libbpf-dev bpftool
)

ensure_system_packages() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    step "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || die "apt-get update failed"
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || die "apt-get install ${missing[*]} failed"
  fi
}

ensure_node() {
  command -v node >/dev/null || die "Node.js >= 20.19 is required (node not found)"
  node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' \
    || die "Node.js >= 20.19 is required (found $(node --version))"
}

install_and_build() {
  cd "$ROOT"
  step "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  step "building every package"
  npm run --silent build >/dev/null
}
