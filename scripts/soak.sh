#!/usr/bin/env bash
# The soak under faults (issue #18; tests/it/soak.rs) for longer than the test suite's 60 s:
# a fixed-rate mixed workload (opens, CheckFileInfo, GetFile, Lock/PutFile/Unlock with
# read-back, GetNewAccessToken, mobile browsing) against two wopiserver doubles and the fake
# REVA while an instance is killed and brought back, a SIGHUP reload, an IdP key rotation and
# a REVA restart. Prints the report; fails on a lost or phantom save, a failure outside the
# fault windows or growth after warm-up.
#   scripts/soak.sh [seconds]   (default 600)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-600}"
WOPIGATE_SOAK_SECONDS="$seconds" cargo test --test it soak:: -- --nocapture 2>&1 \
  | grep -vE '^\s*$|INFO|DEBUG|^\s+at /|^\s+[0-9]+: '
