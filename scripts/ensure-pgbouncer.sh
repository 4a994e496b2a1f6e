#!/usr/bin/env bash
# Usage: scripts/ensure-pgbouncer.sh
#
# Makes sure PgBouncer is there for the test that runs the monitor through a
# transaction pooler (cmd/monitor/pgbouncer_test.go), which fails under
# CI=true without it and is skipped otherwise. When `pgbouncer` is neither on
# PATH nor in /usr/sbin and the script runs as root with apt-get, it installs
# Debian's `pgbouncer` package (1.18 on Debian 12: no prepared statements in
# transaction mode, the case the test is about); otherwise it says so and
# leaves the decision to the test. The test runs a PgBouncer of its own; the
# package's service (localhost:6432, no database configured) is left as the
# package sets it up.
set -euo pipefail

log() {
	printf 'ensure-pgbouncer: %s\n' "$*" >&2
}

if command -v pgbouncer >/dev/null || [[ -x /usr/sbin/pgbouncer ]]; then
	exit 0
fi

if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
	log "installing pgbouncer with apt-get (for the test through a transaction pooler)"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null
	apt-get install -y -qq --no-install-recommends pgbouncer >/dev/null
	if command -v pgbouncer >/dev/null || [[ -x /usr/sbin/pgbouncer ]]; then
		exit 0
	fi
	log "apt-get installed no pgbouncer binary"
	exit 1
fi

log "no pgbouncer found and cannot install it (needs root and apt-get): the pooler test is skipped, or fails under CI=true"
