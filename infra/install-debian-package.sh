#!/usr/bin/env bash
# Usage: install-debian-package.sh PACKAGE BINARY [BINARY...]
# Install Debian's PACKAGE unless every BINARY is already on PATH. Idempotent; `make test`
# runs it (through install-prometheus.sh and install-redis.sh) before the tests.
# Runs apt-get as root, through sudo otherwise (non-interactive without a terminal).
set -euo pipefail

package=$1
shift
binaries=("$@")

missing() {
    for binary in "${binaries[@]}"; do
        command -v "$binary" >/dev/null 2>&1 || return 0
    done
    return 1
}

if ! missing; then
    echo "${binaries[*]} already installed ($(command -v "${binaries[0]}"))"
    exit 0
fi

manual="install ${binaries[*]} (Debian package $package) with your system's package manager, \
put them on PATH and run make test again"

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install $package: no apt-get here: $manual" >&2
    exit 1
fi

if [ "$(id -u)" -eq 0 ]; then
    sudo=()
elif command -v sudo >/dev/null 2>&1; then
    if [ -t 0 ]; then sudo=(sudo); else sudo=(sudo -n); fi
else
    echo "install $package: not root and no sudo: run it as root, or $manual" >&2
    exit 1
fi

echo "installing Debian's $package package (for ${binaries[*]})"
if ! { "${sudo[@]}" apt-get update -qq \
        && "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq --no-install-recommends "$package"; }; then
    echo "install $package: apt-get failed (see above): fix that, or $manual" >&2
    exit 1
fi
if missing; then
    echo "install $package: the package installed, but ${binaries[*]} not all on PATH \
($PATH): $manual" >&2
    exit 1
fi
echo "installed: $("${binaries[0]}" --version 2>&1 | head -n 1)"
