#!/usr/bin/env bash
# Install promtool and prometheus (Debian's `prometheus` package) unless both are on PATH.
# The tests need them: promtool checks infra/alerts.yml and infra/prometheus.yml, and a
# slow test scrapes `fti up` with a real Prometheus. Idempotent; `make test` runs it first.
# On a machine with systemd the package also enables a system Prometheus on :9090; the tests
# start their own on a free port and do not need it (`systemctl disable --now prometheus`).
exec bash "$(dirname "$0")/install-debian-package.sh" prometheus promtool prometheus
