#!/usr/bin/env bash
# Load benchmark (issue #8): the same WOPI-shaped upstream measured directly, through nginx and
# through wopigate in one run; prints the table and writes docs/benchmarks.md.
# BENCH_QUICK=1 runs a short smoke version (its figures are not for quoting).
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
need=()
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v taskset >/dev/null 2>&1 || need+=(util-linux)
command -v cmake >/dev/null 2>&1 || need+=(cmake)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
export PATH="$PATH:/usr/sbin"
# The gateway binary, the harness and the bare pingora reference (packages of their own: no
# dev-dependencies, no demo binary, the reference compiles beside the gateway), all in the bench
# profile (target/release); the harness starts the binaries built beside it.
cargo build --profile bench --locked -p wopigate -p wopigate-load -p bare-pingora \
  --bin wopigate --bin wopigate-load --bin bare-pingora
exec target/release/wopigate-load
