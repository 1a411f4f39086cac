#!/usr/bin/env bash
# The README's test command: installs what is missing (scripts/setup.sh), then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
exec cargo test --all-targets --locked "$@"
