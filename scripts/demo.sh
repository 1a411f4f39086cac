#!/usr/bin/env bash
# The README's demo command: installs what the build needs (scripts/setup.sh), then runs the
# demo stack. Arguments go to wopigate-demo (a port for the gateway).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh build
exec cargo run --profile demo -p wopigate-testkit --bin wopigate-demo -- "$@"
