#!/bin/sh
# record.sh OUT ARG...: the command of the tests' alert rules. It appends one
# block to OUT: the MONITOR_ALERT_* environment and every argument it was
# given, one a line, exactly as received.
out=$1
shift
{
	echo "call"
	echo "state=$MONITOR_ALERT_STATE"
	echo "rule=$MONITOR_ALERT_RULE"
	echo "metric=$MONITOR_ALERT_METRIC"
	echo "value=$MONITOR_ALERT_VALUE"
	echo "threshold=$MONITOR_ALERT_THRESHOLD"
	echo "message=$MONITOR_ALERT_MESSAGE"
	for a in "$@"; do
		printf 'arg=%s\n' "$a"
	done
	echo "secret=${MONITOR_DATABASEPASSWORD:-none}"
} >>"$out"
