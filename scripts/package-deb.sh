#!/usr/bin/env bash
# Builds the Debian package target/debian/wopigate_<version>_<arch>.deb: the release binary, the
# systemd unit, the configuration as a conffile, the dashboard, alert rules and guides, a man page
# and shell completions generated from the clap definition. Installs cargo-deb when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh build
command -v cargo-deb >/dev/null 2>&1 || cargo install cargo-deb --locked
assets=target/package-assets
cargo run --release --locked -p wopigate-package-assets -- "$assets"
gzip -9nf "$assets/wopigate.1"
cargo deb --locked -p wopigate "$@"
ls -1 target/debian/wopigate_*.deb
