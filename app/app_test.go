package app

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crashmonitor/monitor/config"
	"github.com/crashmonitor/monitor/crashstore"
	"github.com/crashmonitor/monitor/internal/logging"
	"github.com/crashmonitor/monitor/internal/pgtest"
	"github.com/crashmonitor/monitor/internal/testkit"
)

// running is an App whose Run goes on in the background.
type running struct {
	app    *App
	log    *testkit.SyncBuffer
	cancel context.CancelFunc
	done   chan error // receives Run's result
}

// start writes a configuration rooted in dir (keys override the defaults
// below), loads it and runs an App on it until the test stops it or ends.
// Every line, DEBUG and up, goes to the returned log.
func start(t *testing.T, dir string, keys map[string]string) *running {
	t.Helper()
	all := map[string]string{
		"storageRoot":               filepath.Join(dir, "toBeProcessed"),
		"saveSuccessfulMinidumpsTo": filepath.Join(dir, "successful"),
		"saveFailedMinidumpsTo":     filepath.Join(dir, "failed"),
		"logFilePathname":           "",
		"httpListenAddress":         "127.0.0.1:0",
		"stderrErrorLoggingLevel":   "DEBUG",
	}
	for k, v := range keys {
		all[k] = v
	}
	var b strings.Builder
	for k, v := range all {
		fmt.Fprintf(&b, "%s: %q\n", k, v)
	}
	// The file has a directory of its own, so that only its edits reach the
	// watcher.
	path := filepath.Join(dir, "etc", "monitor.yaml")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	r := &running{log: &testkit.SyncBuffer{}, done: make(chan error, 1)}
	logger, err := logging.New(logging.Options{
		Stderr:          r.log,
		StderrFormat:    cfg.StderrLineFormatString,
		StderrThreshold: cfg.StderrErrorLoggingLevel,
	})
	if err != nil {
		t.Fatal(err)
	}
	r.app = New(cfg, logger, Options{Version: "test", ConfigPath: path})
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- r.app.Run(ctx) }()
	// Registered after the caller's pgtest schema, so it runs before the
	// schema is dropped.
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(testkit.WaitTimeout()):
			t.Errorf("Run did not return within %s of the end of its context", testkit.WaitTimeout())
		}
	})
	return r
}

// waitFor polls cond until it holds, failing the test after waitTimeout or
// when Run returns first.
func (r *running) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(testkit.WaitTimeout())
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case err := <-r.done:
			r.done <- err // for stop and the cleanup
			t.Fatalf("Run returned %v before %s; log:\n%s", err, what, r.log)
		case <-deadline.C:
			t.Fatalf("no %s within %s; log:\n%s", what, testkit.WaitTimeout(), r.log)
		case <-tick.C:
		}
	}
}

// waitLog waits until the log holds want.
func (r *running) waitLog(t *testing.T, want string) {
	t.Helper()
	r.waitFor(t, fmt.Sprintf("log line %q", want), func() bool { return strings.Contains(r.log.String(), want) })
}

// stop cancels Run's context and returns Run's result, failing the test if
// Run does not return within waitTimeout.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err // for the cleanup
		return err
	case <-time.After(testkit.WaitTimeout()):
		t.Fatalf("Run did not return within %s of the end of its context; log:\n%s", testkit.WaitTimeout(), r.log)
		return nil
	}
}

// TestRunQueuesCrash: the app queues a pair waiting in the inbox for a live
// processor, reloads on request, and stops cleanly when its context ends.
func TestRunQueuesCrash(t *testing.T) {
	t.Parallel()
	pool := pgtest.Schema(t)
	ctx := t.Context()
	if _, err := pool.Exec(ctx, `INSERT INTO processors (name, startdatetime, lastseendatetime)
		VALUES ('p', now(), now())`); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	root := filepath.Join(dir, "toBeProcessed")
	const id = "4dd21cc0-49d9-46ae-a42b-fadb42090928"
	crashes := crashstore.New(root, crashstore.Options{GID: -1})
	if _, err := crashes.NewEntry(id, "web1", time.Now().Add(-time.Hour), []byte("dump"), []byte("{}")); err != nil {
		t.Fatal(err)
	}

	r := start(t, dir, map[string]string{"databaseURL": testkit.SchemaURL(t, pool)})
	r.waitFor(t, "jobs row for "+id, func() bool {
		var n int
		if err := pool.QueryRow(ctx, "SELECT count(*) FROM jobs WHERE uuid = $1", id).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 1
	})

	// The file has not changed, so only Reload can cause this line.
	r.app.Reload()
	r.waitLog(t, "configuration reloaded; nothing changed")

	if err := r.stop(t); err != nil {
		t.Fatalf("Run = %v after the end of its context, want nil; log:\n%s", err, r.log)
	}
	log := r.log.String()
	for _, want := range []string{"monitor starting version=test", "config storageRoot=" + root,
		"monitor started", "monitor stopping", "monitor stopped"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
}

// TestRunStopsWhileConnecting: an unreachable database is retried until the
// context ends, and that end is a clean stop.
func TestRunStopsWhileConnecting(t *testing.T) {
	t.Parallel()
	r := start(t, t.TempDir(), map[string]string{"databaseURL": "postgres://nobody@127.0.0.1:1/none?connect_timeout=2"})
	r.waitLog(t, "database unreachable; retrying")
	if err := r.stop(t); err != nil {
		t.Fatalf("Run = %v, want nil; log:\n%s", err, r.log)
	}
	if log := r.log.String(); !strings.Contains(log, "monitor stopped before the database was reachable") {
		t.Errorf("log lacks the stop before connecting:\n%s", log)
	}
}

// TestRunRefusesMissingSchema: Run returns an error saying to migrate when
// the database has no schema, without waiting for its context.
func TestRunRefusesMissingSchema(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.EmptySchema(t)
	r := start(t, t.TempDir(), map[string]string{"databaseURL": testkit.SchemaURL(t, pool)})
	select {
	case err := <-r.done:
		r.done <- err // for the cleanup
		if err == nil || !strings.Contains(err.Error(), "monitor migrate") {
			t.Fatalf("Run = %v, want an error saying to run monitor migrate", err)
		}
	case <-time.After(testkit.WaitTimeout()):
		t.Fatalf("Run still running %s after meeting an empty database; log:\n%s", testkit.WaitTimeout(), r.log)
	}
}
