#!/usr/bin/env bash
# Install redis-server (Debian's `redis-server` package) unless it is on PATH.
# The tests need it: when no Redis answers at the configured address (FTI_ONLINE__REDIS_URL,
# default redis://127.0.0.1:6379/0), they start a private redis-server on a free port
# (tests/support.py: redis_server). Idempotent; `make test` runs it first.
# Runs apt-get as root, through sudo otherwise (non-interactive without a terminal).
# On a machine with systemd the package also enables a system Redis on :6379; the tests use it
# when it answers but do not need it (`systemctl disable --now redis-server`).
set -euo pipefail

if command -v redis-server >/dev/null 2>&1; then
    echo "redis-server already installed ($(command -v redis-server))"
    exit 0
fi

manual="install Redis (its redis-server binary) with your system's package manager, put it \
on PATH and run make test again"

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-redis.sh: no apt-get here: $manual" >&2
    exit 1
fi

if [ "$(id -u)" -eq 0 ]; then
    sudo=()
elif command -v sudo >/dev/null 2>&1; then
    if [ -t 0 ]; then sudo=(sudo); else sudo=(sudo -n); fi
else
    echo "install-redis.sh: not root and no sudo: run it as root, or $manual" >&2
    exit 1
fi

echo "installing Debian's redis-server package (for redis-server)"
if ! { "${sudo[@]}" apt-get update -qq \
        && "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq --no-install-recommends redis-server; }; then
    echo "install-redis.sh: apt-get failed (see above): fix that, or $manual" >&2
    exit 1
fi
command -v redis-server >/dev/null 2>&1 || {
    echo "install-redis.sh: the package installed, but redis-server is not on PATH ($PATH): \
$manual" >&2
    exit 1
}
echo "installed: $(redis-server --version 2>&1 | head -n 1)"
