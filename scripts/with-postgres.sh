#!/usr/bin/env bash
# Usage: scripts/with-postgres.sh CMD [ARGS...]
#
# Runs CMD with MONITOR_TEST_DATABASE_URL pointing at a PostgreSQL database and
# exits with CMD's status.
#
# When MONITOR_TEST_DATABASE_URL is already set, CMD simply runs against it.
# Otherwise a throwaway cluster is made for CMD alone: the server binaries are
# taken from PATH or the newest /usr/lib/postgresql/*/bin (installed with
# apt-get when missing and running as root), a cluster is initialised in a
# temporary directory (as the postgres user when running as root: initdb
# refuses root), started on 127.0.0.1 on a free port with durability turned
# off (a test cluster only), given a database monitor_test, and stopped and
# removed when CMD exits or the script is interrupted.
set -euo pipefail

if [[ $# -eq 0 ]]; then
	echo "usage: $0 CMD [ARGS...]" >&2
	exit 2
fi

durable=${MONITOR_PG_DURABLE:-0}
if [[ $durable != 0 && $durable != 1 ]]; then
	echo "$0: MONITOR_PG_DURABLE must be 0 or 1, not '$durable'" >&2
	exit 2
fi

if [[ -n "${MONITOR_TEST_DATABASE_URL:-}" && $durable == 0 ]]; then
	exec "$@"
fi

log() {
	printf 'with-postgres: %s\n' "$*" >&2
}

# find_bindir prints the directory holding initdb and pg_ctl.
find_bindir() {
	local initdb dir newest=""
	if initdb=$(command -v initdb) && command -v pg_ctl >/dev/null; then
		dirname "$initdb"
		return 0
	fi
	# Debian keeps the server binaries out of PATH, a directory per major version.
	for dir in /usr/lib/postgresql/*/bin; do
		[[ -x $dir/initdb && -x $dir/pg_ctl ]] || continue
		newest=$(printf '%s\n%s\n' "$newest" "$dir" | sort -V | tail -n 1)
	done
	[[ -n $newest ]] || return 1
	printf '%s\n' "$newest"
}

is_root() {
	[[ $(id -u) -eq 0 ]]
}

if ! bindir=$(find_bindir); then
	if is_root && command -v apt-get >/dev/null; then
		log "installing postgresql with apt-get"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq >/dev/null
		apt-get install -y -qq postgresql >/dev/null
	fi
	if ! bindir=$(find_bindir); then
		log "no initdb/pg_ctl found: install PostgreSQL or set MONITOR_TEST_DATABASE_URL"
		exit 1
	fi
fi

if is_root && ! id postgres >/dev/null 2>&1; then
	useradd --system --no-create-home --shell /usr/sbin/nologin postgres
fi

if [[ $durable == 1 ]]; then
	tmp=$(mktemp -d "${TMPDIR:-/var/tmp}/with-postgres.XXXXXX")
	durability="-c fsync=on -c synchronous_commit=on -c full_page_writes=on"
else
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/with-postgres.XXXXXX")
	durability="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
fi
data=$tmp/data

# as_postgres runs a server command as the user that owns the cluster, from a
# directory it can read.
as_postgres() {
	if is_root; then
		(cd "$tmp" && runuser -u postgres -- "$@")
	else
		(cd "$tmp" && "$@")
	fi
}

# shellcheck disable=SC2317 # run by the traps below
cleanup() {
	local status=$?
	trap - EXIT INT TERM
	# Also after a failed or timed-out start: a postmaster may be running.
	if [[ -f $data/postmaster.pid ]]; then
		as_postgres "$bindir/pg_ctl" -D "$data" -m immediate -w stop >/dev/null 2>&1 || true
	fi
	rm -rf "$tmp"
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if is_root; then
	chown postgres "$tmp"
fi

if ! as_postgres "$bindir/initdb" -D "$data" -A trust -U postgres -E UTF8 >"$tmp/initdb.log" 2>&1; then
	log "initdb failed:"
	tail -n 30 "$tmp/initdb.log" >&2
	exit 1
fi

# Try random ports until one is free; any other start failure is final.
for attempt in 1 2 3 4 5 6 7 8; do
	port=$((20000 + (RANDOM * 32768 + RANDOM) % 40001))
	server_log=$tmp/server-$attempt.log
	if as_postgres "$bindir/pg_ctl" -D "$data" -l "$server_log" -w -t 60 \
		-o "-c listen_addresses=127.0.0.1 -p $port -k '$tmp' -c max_connections=300 $durability" \
		start >"$tmp/pg_ctl.log" 2>&1; then
		break
	fi
	if ! grep -q 'could not bind\|Address already in use' "$server_log" || [[ $attempt -eq 8 ]]; then
		log "the server did not start:"
		cat "$tmp/pg_ctl.log" >&2
		[[ ! -f $server_log ]] || tail -n 30 "$server_log" >&2
		exit 1
	fi
done

createdb=$bindir/createdb
[[ -x $createdb ]] || createdb=createdb
"$createdb" -h 127.0.0.1 -p "$port" -U postgres monitor_test

export MONITOR_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/monitor_test?sslmode=disable"
if [[ $durable == 1 ]]; then
	log "PostgreSQL $("$bindir/pg_ctl" --version | awk '{print $3}') on 127.0.0.1:$port, durable (data in $data)"
else
	log "PostgreSQL $("$bindir/pg_ctl" --version | awk '{print $3}') on 127.0.0.1:$port, durability off (a test cluster)"
fi

# Not exec: the cluster goes when CMD ends. CMD runs in the foreground, so an
# interrupt from the terminal reaches it first and the trap then removes the
# cluster; a TERM sent to this script alone takes effect when CMD exits.
status=0
"$@" || status=$?
exit "$status"
