package faultsuite

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crashmonitor/monitor/internal/pgtest"
)

// The suite's settings, from the environment (MONITOR_* variables never reach
// the monitors it starts: testkit.CleanEnv drops them).
const (
	// envRounds is the number of rounds (default shortRounds).
	envRounds = "MONITOR_FAULTS_ROUNDS"
	// envSeed replays a run: the seed it printed.
	envSeed = "MONITOR_FAULTS_SEED"
	// envMonitors is the number of `monitor run` processes (default 1).
	envMonitors = "MONITOR_FAULTS_MONITORS"
	// envSoak is a duration ("5m"): rounds go on until it has passed, one
	// monitor is never killed, and its memory, goroutines and open files
	// are sampled.
	envSoak = "MONITOR_FAULTS_SOAK"
	// envSample is the soak's sampling interval (default 5s).
	envSample = "MONITOR_FAULTS_SAMPLE"
	// envStrict=1 fails the run when the suite had to restart a monitor
	// that did not resume by itself, a round took over resumeWithin to
	// resume or a takeover over takeoverWithin (otherwise all are reported
	// only).
	envStrict = "MONITOR_FAULTS_STRICT"
	// envKeep=1 keeps the run's directory (trees, archives, logs) after a
	// run that passed; a failed run's is always kept.
	envKeep = "MONITOR_FAULTS_KEEP"
)

// shortRounds is the form `make test` runs, in about a minute: enough
// rounds for every kind of fault (the first rounds deal each kind once) and
// a few drawn at random.
const shortRounds = 8

// settings is what a run does.
type settings struct {
	rounds   int           // rounds of faults (a minimum in the soak)
	seed     uint64        // the schedule's seed
	monitors int           // monitors running at once
	soak     time.Duration // zero: no soak
	sample   time.Duration // the soak's sampling interval
	strict   bool          // supervisor restarts fail the run
}

// loadSettings reads the settings, or skips the test when nothing asked for
// it: the suite runs under `make test` (which sets the test database's URL,
// though the suite runs on a PostgreSQL of its own), under CI=true, and when a
// MONITOR_FAULTS_* variable is set; not in plain `go test ./...`, nor with
// -short.
func loadSettings(t *testing.T) settings {
	t.Helper()
	asked := os.Getenv(pgtest.EnvURL) != "" || os.Getenv("CI") == "true"
	for _, kv := range os.Environ() {
		asked = asked || strings.HasPrefix(kv, "MONITOR_FAULTS_")
	}
	if !asked || testing.Short() {
		t.Skip("the fault-injection suite runs under make test, make test-faults and make soak")
	}
	s := settings{rounds: shortRounds, seed: rand.Uint64() % 1_000_000_000, monitors: 2, sample: 5 * time.Second}
	var err error
	intVar := func(name string, dst *int, lo int) {
		if v := os.Getenv(name); v != "" && err == nil {
			var n int
			if n, err = strconv.Atoi(v); err == nil && n < lo {
				err = fmt.Errorf("below %d", lo)
			}
			if err != nil {
				err = fmt.Errorf("%s=%q: %w", name, v, err)
			}
			*dst = n
		}
	}
	durVar := func(name string, dst *time.Duration) {
		if v := os.Getenv(name); v != "" && err == nil {
			if *dst, err = time.ParseDuration(v); err == nil && *dst <= 0 {
				err = fmt.Errorf("not positive")
			}
			if err != nil {
				err = fmt.Errorf("%s=%q: %w", name, v, err)
			}
		}
	}
	intVar(envRounds, &s.rounds, 1)
	intVar(envMonitors, &s.monitors, 1)
	durVar(envSoak, &s.soak)
	durVar(envSample, &s.sample)
	if v := os.Getenv(envSeed); v != "" && err == nil {
		if s.seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			err = fmt.Errorf("%s=%q: %w", envSeed, v, err)
		}
	}
	s.strict = os.Getenv(envStrict) == "1"
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// replay is the command that replays the run.
func (s settings) replay() string {
	if s.soak > 0 {
		return fmt.Sprintf("make soak SEED=%d MONITORS=%d SOAK=%s", s.seed, s.monitors, s.soak)
	}
	return fmt.Sprintf("make test-faults SEED=%d MONITORS=%d ROUNDS=%d", s.seed, s.monitors, s.rounds)
}
