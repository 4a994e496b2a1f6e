#!/usr/bin/env bash
# Usage: scripts/demo.sh        (`make demo` builds bin/monitor and bin/crashsim first)
#
# Shows the monitor at work, in under a minute, on a throwaway PostgreSQL
# cluster of its own (scripts/with-postgres.sh; a database of yours named by
# MONITOR_TEST_DATABASE_URL is never touched):
#
#   1. writes a monitor configuration with short delays into a temporary
#      directory and runs `monitor migrate`;
#   2. starts three simulated processors (`crashsim process`, stand-ins that
#      follow the processor protocol of the README) and `monitor run`, whose
#      status page (http://127.0.0.1:9661/, or another free loopback port;
#      DEMO_HTTP_PORT chooses one) is up until the demo ends;
#   3. generates 2000 crashes into the standard tree and 20 into the deferred
#      tree, as collectors do (`crashsim generate`);
#   4. requests priority processing of three crashes at the back of the queue
#      and of one crash that is only in the deferred tree (`monitor prioritize`);
#   5. kills one processor with kill -9 partway through, so the monitor finds
#      it dead and moves its jobs to the others;
#   6. waits until everything is processed and archived (or a deadline passes),
#      shows `monitor status`, the archive counts and where the logs are, stops
#      everything and prints a summary line.
#
# Every number comes from the database (`crashsim report`), the archive trees
# and the monitor's log. The temporary directory (configuration, trees,
# archives, logs) is kept for a look afterwards; the processes and the
# database are gone when the script ends, however it ends.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${DEMO_BIN:-$root/bin}

if [[ -z ${MONITOR_DEMO_CHILD:-} ]]; then
	for b in monitor crashsim; do
		if [[ ! -x $bin/$b ]]; then
			echo "demo: $bin/$b is missing: run \`make demo\` (or \`make build\` first)" >&2
			exit 1
		fi
	done
	echo "Starting a throwaway PostgreSQL cluster for the demo..."
	exec env -u MONITOR_TEST_DATABASE_URL MONITOR_DEMO_CHILD=1 "$root/scripts/with-postgres.sh" "${BASH_SOURCE[0]}" "$@"
fi

# From here on we run inside with-postgres.sh, which exported the URL.
db_url=$MONITOR_TEST_DATABASE_URL
# No MONITOR_* override from the caller's environment may change the demo's
# configuration.
while read -r var; do unset "$var"; done < <(compgen -e | grep '^MONITOR_' || true)

# Sizes and timings of the run.
standard_crashes=2000
deferred_crashes=20
processors=3
work_time=40ms
concurrency=4
fail_ratio=0.05
kill_after_percent=30
processing_deadline=70 # seconds, from the start of the generation

# The trees go to memory (/dev/shm) when it is there: the demo is about the
# monitor, not about a slow disk (DEMO_DIR chooses another parent).
parent=${DEMO_DIR:-${TMPDIR:-/tmp}}
if [[ -z ${DEMO_DIR:-} && -d /dev/shm && -w /dev/shm ]]; then
	parent=/dev/shm
fi
work=$(mktemp -d "$parent/monitor-demo.XXXXXX")
logs=$work/logs
mkdir -p "$logs"
cfg=$work/monitor.yaml
start_us=${EPOCHREALTIME/./}

# ---------------------------------------------------------------------------
# Helpers

# elapsed prints the seconds since the start, with one decimal.
elapsed() {
	local d=$(( (${EPOCHREALTIME/./} - start_us) / 100000 ))
	printf '%d.%d' $((d / 10)) $((d % 10))
}

# say prints a line of the story, stamped with the elapsed time.
say() {
	printf '[%5ss] %s\n' "$(elapsed)" "$*"
}

declare -A pid_of=()  # name -> pid of the background processes we started
declare -A gone=()    # names of the processes that exited or were killed

# cleanup stops every process this script started (TERM, then KILL after 10 s).
# shellcheck disable=SC2317 # run by the trap
cleanup() {
	local status=$? name pid waited=0
	trap - EXIT INT TERM
	for name in "${!pid_of[@]}"; do
		[[ -n ${gone[$name]:-} ]] || kill -TERM "${pid_of[$name]}" 2>/dev/null || true
	done
	for name in "${!pid_of[@]}"; do
		pid=${pid_of[$name]}
		while kill -0 "$pid" 2>/dev/null && ((waited < 100)); do
			sleep 0.1
			waited=$((waited + 1))
		done
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	exit "$status"
}
interrupted=""
trap cleanup EXIT
trap 'interrupted=1; exit 130' INT
trap 'interrupted=1; exit 143' TERM

# The counts `crashsim report` prints, as shell variables.
processors_live=0 processors_stale=0 processors_dead=0
jobs_waiting=0 jobs_started=0 jobs_succeeded=0 jobs_failed=0 priority_pending=0 inbox=0
archived_succeeded=0 archived_failed=0 archived=0
processed_succeeded=0 processed_failed=0 processed=0 queued=0 log_queued=0 log_priority_queued=0

# report reads the current counts into those variables from name=value lines
# (from a file when given one).
report() {
	local out name value
	if [[ $# -gt 0 ]]; then
		out=$(<"$1")
	else
		out=$("$bin/crashsim" report -c "$cfg") || return 1
	fi
	while IFS='=' read -r name value; do
		[[ $name =~ ^[a-z_]+$ && $value =~ ^[0-9]+$ ]] || continue
		printf -v "$name" '%s' "$value"
	done <<<"$out"
}

# check_running fails the demo when a process that should run has exited.
check_running() {
	local name
	for name in "${!pid_of[@]}"; do
		[[ -z ${gone[$name]:-} ]] || continue
		if ! kill -0 "${pid_of[$name]}" 2>/dev/null; then
			# A Ctrl-C reaches the children too: let its trap run first.
			sleep 0.5
			[[ -z $interrupted ]] || exit 130
			say "ERROR: $name exited unexpectedly; the end of its output:"
			tail -n 20 "$logs/$name.stderr" >&2 || true
			exit 1
		fi
	done
}

# wait_until CONDITION SECONDS WHAT: polls every 0.2 s (refreshing the report
# first) until the shell condition holds; false after SECONDS.
wait_until() {
	local condition=$1 seconds=$2 what=$3
	local deadline=$(( ${EPOCHREALTIME/./} + seconds * 1000000 ))
	while :; do
		check_running
		report
		if eval "$condition"; then
			return 0
		fi
		if (( ${EPOCHREALTIME/./} > deadline )); then
			say "gave up waiting for $what after ${seconds}s"
			return 1
		fi
		sleep 0.2
	done
}

# free_port prints a loopback TCP port nothing listens on: 9661 (the default
# httpListenAddress) when it is free, else a random one.
free_port() {
	local port=9661 attempt
	for attempt in $(seq 1 50); do
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			printf '%s\n' "$port"
			return 0
		fi
		port=$((20000 + RANDOM % 40000))
	done
	return 1
}

# ---------------------------------------------------------------------------
# 1. Configuration and schema

if ! http_port=${DEMO_HTTP_PORT:-$(free_port)}; then
	say "ERROR: found no free loopback port for the status page (set DEMO_HTTP_PORT)"
	exit 1
fi

cat >"$cfg" <<EOF
# Written by scripts/demo.sh: short delays so that everything happens within a minute.
databaseURL: "$db_url"
storageRoot: "$work/toBeProcessed"
deferredStorageRoot: "$work/toBeDeferred"
storageLayout: daily
# A processor not seen for 5 s gets no new work; not seen for 10 s, it is dead.
processorCheckInTime: "00:00:05"
standardLoopDelay: "00:00:05"
priorityLoopDelay: "00:00:02"
cleanupJobsLoopDelay: "00:00:02"
saveSuccessfulMinidumpsTo: "$work/successful"
saveFailedMinidumpsTo: "$work/failed"
logFilePathname: "$logs/monitor.log"
logFileMaximumSize: 100000000
logFileErrorLoggingLevel: INFO
stderrErrorLoggingLevel: ERROR
# The status page and the metrics, on loopback only.
httpListenAddress: "127.0.0.1:$http_port"
EOF
mkdir -p "$work/toBeProcessed" "$work/toBeDeferred"
say "Demo directory: $work (configuration monitor.yaml, crash trees, archives, logs/)"
say "Database: ${db_url%%\?*}"
"$bin/monitor" migrate -c "$cfg" | sed 's/^/         monitor migrate: /'

# ---------------------------------------------------------------------------
# 2. Processors and the monitor

say "Starting $processors simulated processors (each $concurrency workers, $work_time per crash, ${fail_ratio} of crashes fail)"
for i in $(seq 1 "$processors"); do
	name=processor-$i
	"$bin/crashsim" process -c "$cfg" -name "$name" -work-time "$work_time" -concurrency "$concurrency" \
		-fail-ratio "$fail_ratio" -seed 7 -idle 200ms -log "$logs/$name.log" 2>"$logs/$name.stderr" &
	pid_of[$name]=$!
done
wait_until '((processors_live == processors))' 20 "the processors to register"
say "$processors_live processors registered and are checking in"

"$bin/monitor" run -c "$cfg" 2>"$logs/monitor.stderr" &
pid_of[monitor]=$!
deadline=$(( ${EPOCHREALTIME/./} + 20000000 ))
until grep -q 'monitor started' "$logs/monitor.log" 2>/dev/null; do
	check_running
	if (( ${EPOCHREALTIME/./} > deadline )); then
		say "ERROR: the monitor did not start within 20 s"
		exit 1
	fi
	sleep 0.1
done
say "The monitor is running (pid ${pid_of[monitor]})"
say "Status page: http://127.0.0.1:$http_port/ (open it to watch the run: it refreshes every 5 s and is up until the demo ends)"

# ---------------------------------------------------------------------------
# 3. Crashes arrive

gen_start=${EPOCHREALTIME/./}
# The last three come from a third collector, written last: in the date
# branch its directory sorts after the others of the same minute, so these
# three are the last crashes queued.
"$bin/crashsim" generate -c "$cfg" -n $((standard_crashes - 3)) -dump-size 2048 -webheads web1,web2 \
	-ids "$work/standard-ids.txt" 2>&1 | sed 's/^/         crashsim: /'
"$bin/crashsim" generate -c "$cfg" -n 3 -dump-size 2048 -webheads web3 \
	-ids "$work/last-ids.txt" 2>&1 | sed 's/^/         crashsim: /'
cat "$work/last-ids.txt" >>"$work/standard-ids.txt"
"$bin/crashsim" generate -c "$cfg" -deferred -n "$deferred_crashes" -dump-size 2048 -webheads web1 \
	-ids "$work/deferred-ids.txt" 2>&1 | sed 's/^/         crashsim: /'
say "Collectors wrote $standard_crashes crashes into the standard tree and $deferred_crashes into the deferred (throttled) tree"
if wait_until "((log_queued >= standard_crashes))" 20 "the scanner to queue the crashes"; then
	say "The scanner queued all $log_queued standard crashes, spread over the live processors"
else
	say "The scanner has queued $log_queued of $standard_crashes crashes so far"
fi

# ---------------------------------------------------------------------------
# 4. Priority requests

mapfile -t priority_ids < <(cat "$work/last-ids.txt"; head -n 1 "$work/deferred-ids.txt")
say "A user asks for 4 crashes now: the last 3 in the queue, and 1 that is only in the deferred tree"
requested_at=$(date -u +%H:%M:%S.%3N)
"$bin/monitor" prioritize -c "$cfg" "${priority_ids[@]}" | sed 's/^/         monitor prioritize: /'

# ---------------------------------------------------------------------------
# 5. A processor dies

total=$((standard_crashes + 1))
kill_at=$((total * kill_after_percent / 100))
wait_until "((processed >= kill_at))" 30 "$kill_at crashes to be processed" || true
victim=processor-$processors
kill -KILL "${pid_of[$victim]}"
wait "${pid_of[$victim]}" 2>/dev/null || true
gone[$victim]=1
say "Killed $victim with kill -9 after $processed crashes were processed: its unfinished jobs wait until the monitor finds it dead (10 s without a heartbeat)"

# ---------------------------------------------------------------------------
# 6. Until everything is processed and archived

finished_all='((jobs_waiting == 0 && jobs_started == 0 && inbox == 0 && priority_pending == 0 && processed >= total))'
cleaned_all='((jobs_succeeded == 0 && jobs_failed == 0))'
reaped_said=""
last_progress=0
gen_deadline=$((gen_start + processing_deadline * 1000000))
# Once everything is processed, cleanup gets this long without archiving
# anything before the demo stops waiting for it (its delay is 2 s).
cleanup_patience=10000000
cleanup_seen=-1 cleanup_since=0
outcome=unfinished
while :; do
	check_running
	report
	if [[ -z $reaped_said ]] && grep -q 'reaped dead processors' "$logs/monitor.log"; then
		reaped_said=1
		say "The monitor found $victim dead and moved its jobs to the live processors: $(grep -m1 'reaped dead processors' "$logs/monitor.log" | grep -o 'jobs_moved=[0-9]*' || true)"
	fi
	if eval "$finished_all" && eval "$cleaned_all"; then
		outcome=finished
		break
	fi
	now=${EPOCHREALTIME/./}
	if ((now > gen_deadline)); then
		break
	fi
	if eval "$finished_all"; then
		if ((archived != cleanup_seen)); then
			cleanup_seen=$archived cleanup_since=$now
		elif ((now - cleanup_since > cleanup_patience)); then
			break
		fi
	fi
	if ((now - last_progress >= 3000000)); then
		last_progress=$now
		say "progress: $processed processed, $jobs_waiting waiting, $jobs_started in progress, $archived archived; processors: $processors_live live, $processors_stale stale, $processors_dead dead"
	fi
	sleep 0.25
done
if [[ $outcome == finished ]]; then
	say "Every crash is processed and archived, and the jobs table is empty"
elif eval "$finished_all"; then
	say "Every crash is processed, but $((jobs_succeeded + jobs_failed)) finished jobs are still in the jobs table: the cleanup loop archived nothing for $((cleanup_patience / 1000000)) s"
else
	say "Deadline of ${processing_deadline}s reached with work left: $jobs_waiting waiting, $jobs_started in progress, $inbox in the inbox, $priority_pending priority requests pending"
fi

echo
echo "---- monitor status ----"
"$bin/monitor" status -c "$cfg" || true
echo "------------------------"
echo

for id in "${priority_ids[@]}"; do
	where=standard
	grep -qx "$id" "$work/deferred-ids.txt" && where=deferred
	claim=$(grep -h "priority job claimed.* uuid=$id" "$logs"/processor-*.log 2>/dev/null | head -n 1 || true)
	if [[ -n $claim ]]; then
		by=$(grep -o 'processor=[^ ]*' <<<"$claim" | cut -d= -f2)
		at=$(grep -o 'time=[^ ]*' <<<"$claim" | cut -d= -f2 | cut -c12-23)
		say "Priority crash $id ($where tree): requested at $requested_at UTC, taken ahead of the queue by $by at $at"
	elif grep -q "priority job skipped.* uuid=$id" "$logs"/processor-*.log 2>/dev/null; then
		say "Priority crash $id ($where tree): already being processed when its owner read the request, so there was nothing to hurry"
	else
		say "Priority crash $id ($where tree): not seen as priority work by any processor"
	fi
done

# Stop everything cleanly, then count.
for name in "${!pid_of[@]}"; do
	[[ -n ${gone[$name]:-} ]] || kill -TERM "${pid_of[$name]}" 2>/dev/null || true
done
for name in "${!pid_of[@]}"; do
	[[ -n ${gone[$name]:-} ]] || wait "${pid_of[$name]}" 2>/dev/null || true
	gone[$name]=1
done
say "Stopped the monitor and the processors (SIGTERM: clean stops)"

"$bin/crashsim" report -c "$cfg" >"$work/report.txt"
report "$work/report.txt"

# What each processor says it recorded (the last running totals of its log).
recorded=0 per_processor=""
for i in $(seq 1 "$processors"); do
	last=$(grep 'msg="finished jobs"' "$logs/processor-$i.log" | tail -n 1 || true)
	ok=$(grep -o 'total_succeeded=[0-9]*' <<<"$last" | cut -d= -f2 || true)
	ko=$(grep -o 'total_failed=[0-9]*' <<<"$last" | cut -d= -f2 || true)
	n=$(( ${ok:-0} + ${ko:-0} ))
	recorded=$((recorded + n))
	per_processor+="${per_processor:+, }processor-$i $n"
done
say "Results recorded by the processors: $per_processor ($victim until it was killed); $recorded in all"
if ((recorded != processed)); then
	say "Note: the processors' logs account for $recorded results, the database and archives for $processed"
fi
say "Archive trees: $archived_succeeded crashes in $work/successful, $archived_failed in $work/failed"
say "Logs: $logs/monitor.log (the monitor), $logs/processor-N.log (the processors), *.stderr; counts in $work/report.txt"
if ((log_queued + log_priority_queued != queued)); then
	say "Note: the monitor's log reports $log_queued crashes queued by the scanner and $log_priority_queued by the priority loop; the database and archives account for $queued"
fi
if ((archived < processed)); then
	say "Note: $((processed - archived)) processed crashes were not archived (still in the jobs table)"
fi

seconds=$(elapsed)
echo
echo "Summary: $((standard_crashes + deferred_crashes)) crashes generated ($standard_crashes standard, $deferred_crashes deferred); $queued queued, $processed processed ($processed_succeeded ok, $processed_failed failed), $archived archived; 1 of $processors processors killed and its work moved; ${seconds}s."
[[ $outcome == finished ]]
