#!/usr/bin/env bash
# Installs the package scripts/package-deb.sh built on this machine (dpkg -i), checks it as an
# operator would, removes it (dpkg -r) and checks that only the conffile stays; then purges.
# Needs root; prints SKIPPED otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then echo "SKIPPED the package test: dpkg -i needs root"; exit 0; fi
deb=$(ls -1t target/debian/wopigate_*.deb | head -n 1)
fail() { echo "package test: FAILED: $*" >&2; dpkg -P wopigate >/dev/null 2>&1 || true; exit 1; }

dpkg -i "$deb" >/dev/null
listed=$(dpkg -L wopigate)
for f in /usr/bin/wopigate /etc/wopigate/wopigate.toml /lib/systemd/system/wopigate.service \
         /usr/share/man/man1/wopigate.1.gz /usr/share/bash-completion/completions/wopigate \
         /usr/share/zsh/vendor-completions/_wopigate /usr/share/fish/vendor_completions.d/wopigate.fish \
         /usr/share/doc/wopigate/grafana-dashboard.json /usr/share/doc/wopigate/alerts.yml \
         /usr/share/doc/wopigate/examples/privileged-port.conf; do
  [ -e "$f" ] || fail "$f is not installed"
done
[ "$(dpkg-query -W -f='${Conffiles}' wopigate | awk '{print $1}')" = /etc/wopigate/wopigate.toml ] \
  || fail "the configuration is not a conffile"
systemctl is-enabled wopigate >/dev/null 2>&1 && fail "the unit was enabled before it is configured"

# The packaged configuration with test secrets and a test certificate, as systemd credentials.
creds=$(mktemp -d)
trap 'rm -rf "$creds"' EXIT
for s in reva-jwt-secret iop-secret token-key; do head -c 32 /dev/urandom | base64 > "$creds/$s"; done
cp tests/fixtures/tls/server.pem "$creds/tls.crt"
cp tests/fixtures/tls/server.key "$creds/tls.key"
CREDENTIALS_DIRECTORY=$creds /usr/bin/wopigate check --config /etc/wopigate/wopigate.toml \
  || fail "wopigate check on the packaged configuration"
if command -v systemd-analyze >/dev/null 2>&1; then
  out=$(systemd-analyze verify /lib/systemd/system/wopigate.service 2>&1) || fail "systemd-analyze verify: $out"
  if grep -q wopigate.service <<<"$out"; then fail "systemd-analyze verify: $out"; fi
else
  echo "SKIPPED systemd-analyze verify: not installed"
fi
/usr/bin/wopigate --version | grep -q wopigate || fail "wopigate --version"
zcat /usr/share/man/man1/wopigate.1.gz | grep -q '^\.TH' || fail "the man page is not a man page"

dpkg -r wopigate >/dev/null
[ "$(dpkg-query -W -f='${db:Status-Status}' wopigate)" = config-files ] || fail "not removed"
left=()
while IFS= read -r f; do
  [ -f "$f" ] && [ "$f" != /etc/wopigate/wopigate.toml ] && left+=("$f")
done <<<"$listed"
[ ${#left[@]} -eq 0 ] || fail "left behind after dpkg -r: ${left[*]}"
[ -f /etc/wopigate/wopigate.toml ] || fail "the conffile did not stay"
dpkg -P wopigate >/dev/null
echo "package test: $(basename "$deb") installed, checked, verified and removed; only the conffile stayed"
