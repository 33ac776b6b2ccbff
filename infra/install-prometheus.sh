#!/usr/bin/env bash
# Install promtool and prometheus (Debian's `prometheus` package) unless both are on PATH.
# The tests need them: promtool checks infra/alerts.yml and infra/prometheus.yml, and a
# slow test scrapes `fti up` with a real Prometheus. Idempotent; `make test` runs it first.
# Runs apt-get as root, through sudo otherwise (non-interactive without a terminal).
# On a machine with systemd the package also enables a system Prometheus on :9090; the tests
# start their own on a free port and do not need it (`systemctl disable --now prometheus`).
set -euo pipefail

if command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; then
    echo "promtool and prometheus already installed ($(command -v promtool))"
    exit 0
fi

manual="install Prometheus 2.x (its promtool and prometheus binaries) with your system's \
package manager, put both on PATH and run make test again"

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-prometheus.sh: no apt-get here: $manual" >&2
    exit 1
fi

if [ "$(id -u)" -eq 0 ]; then
    sudo=()
elif command -v sudo >/dev/null 2>&1; then
    if [ -t 0 ]; then sudo=(sudo); else sudo=(sudo -n); fi
else
    echo "install-prometheus.sh: not root and no sudo: run it as root, or $manual" >&2
    exit 1
fi

echo "installing Debian's prometheus package (for promtool and prometheus)"
if ! { "${sudo[@]}" apt-get update -qq \
        && "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq --no-install-recommends prometheus; }; then
    echo "install-prometheus.sh: apt-get failed (see above): fix that, or $manual" >&2
    exit 1
fi
command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 || {
    echo "install-prometheus.sh: the package installed, but promtool or prometheus is not on \
PATH ($PATH): $manual" >&2
    exit 1
}
echo "installed: $(promtool --version 2>&1 | head -n 1)"
