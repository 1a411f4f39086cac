#!/usr/bin/env bash
# Installs what building and testing wopigate need and a fresh Debian machine with only a Rust
# toolchain lacks, through apt-get; says clearly what is missing when it cannot.
#   scripts/setup.sh build   cmake and a C compiler (pingora builds zlib-ng with cmake)
#   scripts/setup.sh test    the above, Node.js >= 20.19 with npm and the pinned OpenID
#                            provider (tests/idp), promtool, systemd-analyze, openssl,
#                            nginx, redis-server (the store replicas share),
#                            Chromium with its chromedriver (the demo browser test)
# Sourced or run; exits non-zero only when something required cannot be had.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export DEBIAN_FRONTEND=noninteractive
apt_updated=0
can_apt() { command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" = 0 ] || command -v sudo >/dev/null 2>&1; }; }
apt_install() {
  local as_root=()
  [ "$(id -u)" = 0 ] || as_root=(sudo -n)
  if [ "$apt_updated" = 0 ]; then "${as_root[@]}" apt-get update -qq; apt_updated=1; fi
  "${as_root[@]}" apt-get install -y -qq --no-install-recommends "$@"
}
# need <command> <package> <why> [optional]: installs the package when the command is missing.
need() {
  local cmd=$1 pkg=$2 why=$3 optional=${4:-}
  command -v "$cmd" >/dev/null 2>&1 && return 0
  if can_apt && apt_install "$pkg" >/dev/null; then
    echo "setup: installed $pkg ($why)"
    return 0
  fi
  # Under CI a tool a test needs is required: its test would fail there rather than skip.
  if [ -n "$optional" ] && [ "${CI:-}" != true ]; then
    echo "setup: WARNING: $cmd is missing and $pkg cannot be installed here; $why will say SKIPPED"
    return 0
  fi
  echo "setup: ERROR: $cmd is missing ($why) and cannot be installed here (apt-get needs root or sudo)." >&2
  echo "setup: install the Debian package $pkg, then run this again." >&2
  exit 1
}

node_ok() { node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' 2>/dev/null; }

what=${1:-test}
need cmake cmake "pingora's build (zlib-ng)"
need cc build-essential "pingora's build (C sources)"
if [ "$what" = test ]; then
  if ! node_ok; then
    can_apt && apt_install nodejs npm >/dev/null || true
  fi
  if ! node_ok; then
    echo "setup: ERROR: Node.js >= 20.19 with npm is needed for the OpenID provider test (tests/idp); found: $(node --version 2>&1 || echo none)." >&2
    echo "setup: install Node.js >= 20.19 (Debian 13's nodejs, or NodeSource for Debian 12), then run this again." >&2
    exit 1
  fi
  command -v npm >/dev/null 2>&1 || need npm npm "the OpenID provider test (tests/idp)"
  npm ci --prefix tests/idp --no-audit --no-fund --loglevel=error >/dev/null
  need promtool prometheus "the metrics and alerting-rule checks" optional
  need systemd-analyze systemd "the systemd unit check" optional
  need openssl openssl "the README credentials lines check" optional
  need nginx nginx-light "the replicas-behind-a-load-balancer test" optional
  need redis-server redis-server "the shared store test (replicas sharing revocations)" optional
  need chromium chromium "the demo browser test" optional
  need chromedriver chromium-driver "the demo browser test" optional
fi
