#!/usr/bin/env bash
# Install redis-server (Debian's `redis-server` package) unless it is on PATH.
# The tests need it: when no Redis answers at the configured address (FTI_ONLINE__REDIS_URL,
# default redis://127.0.0.1:6379/0), they start a private redis-server on a free port
# (tests/support.py: redis_server). Idempotent; `make test` runs it first.
# On a machine with systemd the package also enables a system Redis on :6379; the tests use it
# when it answers but do not need it (`systemctl disable --now redis-server`).
exec bash "$(dirname "$0")/install-debian-package.sh" redis-server redis-server
