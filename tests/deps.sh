# Sourced by tests/run.sh, demo.sh and .ci/run: install what the build and the
# tests need on a fresh Debian 12 machine (as root). Idempotent and quick when
# everything is present.

APT_PACKAGES=(
  # build
  build-essential pkg-config libostree-dev libglib2.0-dev make
  # runtime and system tests
  runc systemd systemd-container util-linux ostree busybox-static
  # image fixtures and the registry
  skopeo umoci docker-registry debootstrap apache2-utils openssl python3 podman jq curl
  # sigstore keys and signatures in the trust tests (tests/sigstore-*.py):
  # Debian's skopeo is built with sigstore disabled
  python3-cryptography python3-nacl
  # layers written by other tools (core/tests/foreign_tar.rs)
  libarchive-tools
  # packaging
  dpkg-dev debhelper rpm man-db
  # benchmarks
  hyperfine time
)

ensure_deps() {
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo ">>> apt-get install ${missing[*]}"
    [ "$(id -u)" = 0 ] || { echo "run as root to install packages" >&2; return 1; }
    apt-get update -qq || { echo "apt-get update failed" >&2; return 1; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
      { echo "apt-get install ${missing[*]} failed" >&2; return 1; }
  fi
  if ! command -v cargo >/dev/null; then
    [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
  fi
  if ! command -v cargo >/dev/null; then
    echo ">>> installing Rust with rustup"
    if command -v curl >/dev/null && curl -sSf --max-time 20 https://sh.rustup.rs -o /tmp/rustup.sh; then
      sh /tmp/rustup.sh -y --profile minimal -c clippy,rustfmt && export PATH="$HOME/.cargo/bin:$PATH"
    else
      echo "cannot reach rustup; install a Rust toolchain (1.75 or newer) first" >&2; return 1
    fi
  fi
  for c in rustfmt clippy; do
    cargo $([ $c = rustfmt ] && echo fmt || echo clippy) --version >/dev/null 2>&1 || rustup component add $c
  done
}
