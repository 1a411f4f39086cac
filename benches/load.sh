#!/usr/bin/env bash
# Load benchmark (issues #8, #16): the same WOPI-shaped upstream measured directly, through nginx,
# through a tuned bare pingora proxy and through wopigate's two paths in one run; prints the table
# and writes docs/benchmarks.md. BENCH_QUICK=1 runs a short smoke version (its figures are not for
# quoting).
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
need=()
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v taskset >/dev/null 2>&1 || need+=(util-linux)
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v perf >/dev/null 2>&1 || need+=(linux-perf)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" ||
    echo "load.sh: could not install ${need[*]}; figures needing them are left out" >&2
fi
export PATH="$PATH:/usr/sbin"
# The shipped gateway: the release profile, built alone so that no test double is compiled into
# it (the harness needs them: built by a second command). The bare pingora reference uses the
# same profile; every binary lands in target/release, where the harness finds its siblings.
cargo build --release --locked -p wopigate --bin wopigate
cargo build --release --locked -p bare-pingora -p wopigate-load --bin bare-pingora --bin wopigate-load
exec target/release/wopigate-load
