package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/crashmonitor/monitor/crashstore"
	"github.com/crashmonitor/monitor/figures"
	"github.com/crashmonitor/monitor/internal/pgtest"
	"github.com/crashmonitor/monitor/internal/testkit"
)

// monitorBin is the monitor binary built once for the subprocess tests.
var monitorBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "monitor-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	monitorBin = filepath.Join(dir, "monitor")
	build := exec.Command("go", "build", "-race", "-o", monitorBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build monitor:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is what one run of the binary produced.
type result struct {
	stdout, stderr string
	code           int
}

// runMonitor runs the binary to completion with a clean MONITOR_* environment.
func runMonitor(t *testing.T, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), testkit.WaitTimeout())
	defer cancel()
	cmd := exec.CommandContext(ctx, monitorBin, args...)
	cmd.Env = testkit.CleanEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run monitor %v: %v", args, err)
	}
	return result{stdout.String(), stderr.String(), code}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	r := runMonitor(t, "version")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "monitor ") {
		t.Errorf("version: code %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

func TestUsage(t *testing.T) {
	t.Parallel()
	if r := runMonitor(t, "run", "-h"); r.code != 0 || !strings.Contains(r.stdout, "usage: monitor") {
		t.Errorf("run -h: code %d, stdout %q; want usage and 0", r.code, r.stdout)
	}
	for _, args := range [][]string{nil, {"frobnicate"}, {"check-config"}, {"run", "--bogus-flag"}} {
		r := runMonitor(t, args...)
		if r.code != exitUsage {
			t.Errorf("monitor %v: code %d, want %d (stderr %q)", args, r.code, exitUsage, r.stderr)
		}
	}
}

func TestCheckConfig(t *testing.T) {
	t.Parallel()
	cfg, path := newConfig(t, "postgres://socorro:s3cret@db.example:5433/breakpad")
	cfg["databasePassword"] = "hunter2"
	cfg["standardLoopDelay"] = "00:01:30"
	cfg["dumpPermissions"] = "432"
	cfg.Write(t, path)

	r := runMonitor(t, "check-config", "-c", path)
	if r.code != 0 {
		t.Fatalf("check-config: code %d, stderr %q", r.code, r.stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	for i := 1; i < len(lines); i++ {
		if lines[i-1] >= lines[i] {
			t.Errorf("lines not sorted: %q before %q", lines[i-1], lines[i])
		}
	}
	for _, want := range []string{"databasePassword=**********", "standardLoopDelay=", "dumpPermissions=0660"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("check-config output lacks %q:\n%s", want, r.stdout)
		}
	}
	for _, secret := range []string{"hunter2", "s3cret"} {
		if strings.Contains(r.stdout+r.stderr, secret) {
			t.Errorf("check-config printed the password %q:\n%s", secret, r.stdout)
		}
	}
	if !strings.Contains(r.stderr, "toBeProcessed") {
		t.Errorf("no warning about the missing storage root on stderr: %q", r.stderr)
	}
}

// TestBadConfigTouchesNothing: every command reports a bad config naming the
// key, exits 2, and creates no log file and opens no database connection.
func TestBadConfigTouchesNothing(t *testing.T) {
	t.Parallel()
	bad := map[string]struct {
		key, value, wantInErr string
	}{
		"UnknownKey":         {"storgeRoot", "/x", "storgeRoot"},
		"BadDuration":        {"standardLoopDelay", "five minutes", "standardLoopDelay"},
		"BadMode":            {"dumpPermissions", "0999", "dumpPermissions"},
		"BadLevel":           {"stderrErrorLoggingLevel", "LOUD", "stderrErrorLoggingLevel"},
		"MissingStorageRoot": {"storageRoot", "", "storageRoot"},
	}
	for name, tc := range bad {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cfg, path := newConfig(t, "postgres://nobody@127.0.0.1:1/none")
			cfg[tc.key] = tc.value
			cfg.Write(t, path)
			for _, args := range [][]string{
				{"run", "--config", path},
				{"migrate", "--config", path},
				{"check-config", "--config", path},
				{"status", "--config", path},
				{"prioritize", "--config", path, "4dd21cc0-49d9-46ae-a42b-fadb42090928"},
			} {
				r := runMonitor(t, args...)
				if r.code != exitUsage || !strings.Contains(r.stderr, tc.wantInErr) {
					t.Errorf("monitor %s: code %d, stderr %q; want code 2 naming %s", args[0], r.code, r.stderr, tc.wantInErr)
				}
			}
			if _, err := os.Stat(cfg["logFilePathname"]); !os.IsNotExist(err) {
				t.Errorf("log file exists after a bad config (stat: %v)", err)
			}
		})
	}
}

func TestMigrate(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.EmptySchema(t)
	cfg, path := newConfig(t, testkit.SchemaURL(t, pool))
	cfg.Write(t, path)

	r := runMonitor(t, "migrate", "--config", path)
	if r.code != 0 || !strings.Contains(r.stdout, "migrated from version 0") {
		t.Fatalf("first migrate: code %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	r = runMonitor(t, "migrate", "--config", path)
	if r.code != 0 || !strings.Contains(r.stdout, "up to date") {
		t.Fatalf("second migrate: code %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	var n int
	err := pool.QueryRow(t.Context(),
		`SELECT count(*) FROM information_schema.tables
		 WHERE table_schema = current_schema() AND table_name IN ('processors', 'jobs', 'priorityjobs')`).Scan(&n)
	if err != nil || n != 3 {
		t.Errorf("classic tables after migrate: %d (%v), want 3", n, err)
	}
}

func TestMigrateUnreachableDatabase(t *testing.T) {
	t.Parallel()
	cfg, path := newConfig(t, "postgres://nobody@127.0.0.1:1/none?connect_timeout=2")
	cfg.Write(t, path)
	for _, cmd := range []string{"migrate", "status"} {
		if r := runMonitor(t, cmd, "-c", path); r.code != exitFailure {
			t.Errorf("%s with no database: code %d, want 1 (stderr %q)", cmd, r.code, r.stderr)
		}
	}
}

func TestPrioritize(t *testing.T) {
	t.Parallel()
	pool := pgtest.Schema(t)
	cfg, path := newConfig(t, testkit.SchemaURL(t, pool))
	cfg.Write(t, path)
	ctx := t.Context()
	count := func() int {
		var n int
		if err := pool.QueryRow(ctx, "SELECT count(*) FROM priorityjobs").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	good := "4dd21cc0-49d9-46ae-a42b-fadb42090928"
	for _, hostile := range []string{"nothing", "'; DROP TABLE jobs; --", "../../etc/passwd", strings.Repeat("a", 300),
		"4dd21cc0-49d9-46ae-a42b-fadb4209092g", "4dd21cc0-49d9-46ae-a42b-fadb42090928 "} {
		r := runMonitor(t, "prioritize", "-c", path, good, hostile)
		if r.code != exitUsage || !strings.Contains(r.stderr, "malformed crash id") {
			t.Errorf("prioritize %q: code %d, stderr %q; want 2", hostile, r.code, r.stderr)
		}
	}
	if n := count(); n != 0 {
		t.Fatalf("%d requests inserted although one id was malformed", n)
	}

	other := "0bba929f-8721-460c-dead-a43c20071025"
	r := runMonitor(t, "prioritize", good, "-c", path, other, good)
	if r.code != 0 {
		t.Fatalf("prioritize: code %d, stderr %q", r.code, r.stderr)
	}
	r = runMonitor(t, "prioritize", "-c", path, good)
	if r.code != 0 || !strings.Contains(r.stdout, "1 already requested") {
		t.Fatalf("prioritize again: code %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if n := count(); n != 2 {
		t.Errorf("priorityjobs has %d rows, want 2", n)
	}
}

func TestStatus(t *testing.T) {
	t.Parallel()
	pool := pgtest.Schema(t)
	cfg, path := newConfig(t, testkit.SchemaURL(t, pool))
	cfg.Write(t, path)
	_, err := pool.Exec(t.Context(), `
		INSERT INTO processors (id, name, startdatetime, lastseendatetime) VALUES
			(1, 'live_1', localtimestamp, localtimestamp),
			(2, 'dead_2', localtimestamp, '1999-01-01');
		INSERT INTO jobs (uuid, owner, queueddatetime, starteddatetime, success) VALUES
			('4dd21cc0-49d9-46ae-a42b-fadb42090928', 1, localtimestamp - interval '90 seconds', NULL, NULL),
			('0bba929f-8721-460c-dead-a43c20071025', 1, localtimestamp, localtimestamp, NULL),
			('0b781b88-ecbe-4cc4-dead-6bbb20081225', 2, localtimestamp, localtimestamp, true);
		INSERT INTO priorityjobs VALUES ('29adfb61-f75b-11dc-b6be-001320081225');`)
	if err != nil {
		t.Fatal(err)
	}

	r := runMonitor(t, "status", "-c", path)
	if r.code != 0 {
		t.Fatalf("status: code %d, stderr %q", r.code, r.stderr)
	}
	for _, want := range []string{"processors: 2 (1 live, 0 stale, 1 dead)", "live_1", "dead_2",
		"jobs: 1 queued, 1 started, 1 succeeded, 0 failed", "priority requests pending: 1", "oldest queued job: 1m3"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status output lacks %q:\n%s", want, r.stdout)
		}
	}

	r = runMonitor(t, "status", "-c", path, "--json")
	var st figures.Report
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || r.code != 0 {
		t.Fatalf("status --json: code %d, %v:\n%s", r.code, err, r.stdout)
	}
	if len(st.Processors) != 2 || st.Jobs.Queued != 1 || st.PriorityRequests != 1 || st.OldestQueuedAgeSeconds == nil {
		t.Errorf("status --json = %+v", st)
	}
}

func TestStatusWithoutSchema(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.EmptySchema(t)
	cfg, path := newConfig(t, testkit.SchemaURL(t, pool))
	cfg.Write(t, path)
	for _, args := range [][]string{{"status"}, {"prioritize", "4dd21cc0-49d9-46ae-a42b-fadb42090928"}, {"run"}} {
		r := runMonitor(t, append(args, "-c", path)...)
		if r.code != exitFailure || !strings.Contains(r.stderr, "monitor migrate") {
			t.Errorf("%v on an empty database: code %d, stderr %q; want 1 saying to run monitor migrate", args, r.code, r.stderr)
		}
	}
}

// newConfig is testkit.BaseConfig in a fresh directory for dbURL, and the
// path of its file there (written by cfg.Write).
func newConfig(t *testing.T, dbURL string) (testkit.Config, string) {
	t.Helper()
	dir := t.TempDir()
	return testkit.BaseConfig(dir, dbURL), filepath.Join(dir, "monitor.yaml")
}

// startDaemon starts `monitor run -c path`, writing its log to logPath; the
// process is killed at cleanup if the test did not stop it.
func startDaemon(t *testing.T, path, logPath string) *testkit.Proc {
	t.Helper()
	return testkit.StartProc(t, monitorBin, logPath, "run", "-c", path)
}

// stopDaemon stops d with SIGTERM and fails the test unless it exits 0.
func stopDaemon(t *testing.T, d *testkit.Proc) {
	t.Helper()
	if code := d.Stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit code = %d, want 0; stderr:\n%s", code, d.Stderr())
	}
}

func TestRunStopsGracefully(t *testing.T) {
	t.Parallel()
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			pool := pgtest.Schema(t)
			cfg, path := newConfig(t, testkit.SchemaURL(t, pool))
			cfg["databasePassword"] = "hunter2"
			cfg.Write(t, path)
			d := startDaemon(t, path, cfg["logFilePathname"])
			d.WaitLog(t, "monitor started", 1)
			if code := d.Stop(t, sig); code != 0 {
				t.Fatalf("exit code after %v = %d, want 0; stderr:\n%s", sig, code, d.Stderr())
			}
			log := d.LogText()
			for _, want := range []string{" INFO - main - monitor starting", "databasePassword=**********", "monitor stopped"} {
				if !strings.Contains(log, want) {
					t.Errorf("log file lacks %q:\n%s", want, log)
				}
			}
			if strings.Contains(log, "hunter2") {
				t.Errorf("log file holds the password")
			}
			// stderr's default threshold is ERROR: the INFO lines are in the file only.
			if strings.Contains(d.Stderr(), "INFO") {
				t.Errorf("INFO lines on stderr at threshold 40:\n%s", d.Stderr())
			}
		})
	}
}

func TestRunRetriesUnreachableDatabase(t *testing.T) {
	t.Parallel()
	cfg, path := newConfig(t, "postgres://nobody@127.0.0.1:1/none")
	cfg.Write(t, path)
	d := startDaemon(t, path, cfg["logFilePathname"])
	d.WaitLog(t, "database unreachable; retrying", 2)
	if !strings.Contains(d.Stderr(), "database unreachable") {
		t.Errorf("the connection failures are not on stderr:\n%s", d.Stderr())
	}
	stopDaemon(t, d)
}

func TestRunReloadsConfig(t *testing.T) {
	t.Parallel()
	pool := pgtest.Schema(t)
	cfg, path := newConfig(t, testkit.SchemaURL(t, pool))
	cfg["logFileErrorLoggingLevel"] = "INFO"
	cfg.Write(t, path)
	d := startDaemon(t, path, cfg["logFilePathname"])
	d.WaitLog(t, "monitor started", 1)

	// An edit of the file alone is picked up: a hot key applies at once, a
	// restart-only key is reported.
	cfg["standardLoopDelay"] = "00:00:30"
	cfg["storageRoot"] = filepath.Join(filepath.Dir(path), "elsewhere")
	cfg.Write(t, path)
	d.WaitLog(t, "configuration reloaded applied=standardLoopDelay", 1)
	d.WaitLog(t, "restart the monitor to apply it key=storageRoot", 1)

	// A broken edit is logged and the running settings stay.
	if err := os.WriteFile(path, []byte("standardLoopDelay: [not, a, duration]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d.WaitLog(t, "configuration not reloaded", 1)

	// SIGHUP reloads too; lowering the file threshold to DEBUG shows at once.
	cfg["logFileErrorLoggingLevel"] = "10"
	cfg.Write(t, path)
	d.WaitLog(t, "applied=logFileErrorLoggingLevel", 1)
	d.Signal(t, syscall.SIGHUP)
	d.WaitLog(t, "SIGHUP received", 1)
	d.WaitLog(t, "DEBUG", 1)
	stopDaemon(t, d)
}

// TestRunQueuesCrashes: `monitor run` queues the pairs already in the inbox
// and one written while it runs, once each, and removes their inbox links.
func TestRunQueuesCrashes(t *testing.T) {
	t.Parallel()
	pool := pgtest.Schema(t)
	cfg, path := newConfig(t, testkit.SchemaURL(t, pool))
	cfg.Write(t, path)
	testkit.LiveProcessors(t, pool, 2)
	crashes := crashstore.New(cfg["storageRoot"], crashstore.Options{GID: -1})
	entries := writePairs(t, crashes, 5)
	jobs := func() int { return testkit.QueryInt(t, pool, "SELECT count(*) FROM jobs") }
	waitJobs := func(n int) {
		t.Helper()
		if !testkit.Poll(t, testkit.WaitTimeout(), func() bool { return jobs() == n }) {
			t.Fatalf("%d jobs, want %d", jobs(), n)
		}
	}

	d := startDaemon(t, path, cfg["logFilePathname"])
	waitJobs(5)
	entries = append(entries, testkit.WritePairs(t, crashes, &testkit.PairOpts{Fresh: true},
		testkit.Pair{ID: "00000005-49d9-46ae-a42b-fadb42090928"})...)
	waitJobs(6)
	stopDaemon(t, d)
	if n := jobs(); n != 6 {
		t.Errorf("%d jobs after the stop, want 6", n)
	}
	for _, e := range entries {
		if _, err := os.Lstat(e.DateLink); err == nil {
			t.Errorf("inbox link of %s remains", e.ID)
		}
		if _, err := os.Stat(e.JSONPath); err != nil {
			t.Errorf("json of %s: %v", e.ID, err)
		}
	}
	if log := d.LogText(); !strings.Contains(log, "INFO - scanner - queued crashes") {
		t.Errorf("no scanner line in the log:\n%s", log)
	}
}
