#!/usr/bin/env bash
# Usage: scripts/ensure-chromium.sh
#
# Makes sure headless Chromium is there for the status page's browser test
# (web/browser_test.go), which fails under CI=true without it and is skipped
# otherwise. When neither `chromium` nor `chromium-browser` is on PATH and
# the script runs as root with apt-get, it installs Debian's `chromium`
# package; otherwise it says so and leaves the decision to the test.
set -euo pipefail

log() {
	printf 'ensure-chromium: %s\n' "$*" >&2
}

if command -v chromium >/dev/null || command -v chromium-browser >/dev/null; then
	exit 0
fi

if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
	log "installing chromium with apt-get (for the status page's browser test)"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null
	apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
	if command -v chromium >/dev/null; then
		exit 0
	fi
	log "apt-get installed no chromium binary"
	exit 1
fi

log "no chromium found and cannot install it (needs root and apt-get): the browser test is skipped, or fails under CI=true"
