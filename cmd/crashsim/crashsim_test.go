package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crashmonitor/monitor/crashstore"
	"github.com/crashmonitor/monitor/internal/pgtest"
	"github.com/crashmonitor/monitor/internal/testkit"
	"github.com/crashmonitor/monitor/queue"
)

// runCmd runs crashsim with args and returns its exit code and output.
func runCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut testkit.SyncBuffer
	code = run(t.Context(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestGenerate(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "flat")
	idsFile := filepath.Join(t.TempDir(), "ids")
	code, _, stderr := runCmd(t, "generate", "-root", root, "-layout", "flat", "-n", "50", "-dump-size", "10",
		"-webheads", "a, b", "-date", "2009-09-28", "-submitted", "2009-09-28T12:07:00Z", "-spread", "20m",
		"-seed", "3", "-ids", idsFile)
	if code != 0 {
		t.Fatalf("generate exited %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "wrote 50 crash pairs") || !strings.Contains(stderr, "pairs/s") {
		t.Errorf("generate said %q", stderr)
	}
	data, err := os.ReadFile(idsFile)
	if err != nil {
		t.Fatal(err)
	}
	ids := strings.Fields(string(data))
	if len(ids) != 50 {
		t.Fatalf("%d ids written, want 50", len(ids))
	}
	store := crashstore.New(root, crashstore.Options{Layout: crashstore.LayoutFlat})
	for _, id := range ids {
		if !strings.HasSuffix(id, "2090928") {
			t.Errorf("id %s does not end with depth 2 and 090928", id)
		}
		e, err := store.Lookup(t.Context(), id)
		if err != nil {
			t.Fatalf("Lookup(%s): %v", id, err)
		}
		if fi, err := os.Stat(e.DumpPath); err != nil || fi.Size() != 10 {
			t.Errorf("dump of %s: %v, %v", id, fi, err)
		}
	}
	// Flat layout, five-minute slots from 11:45 to 12:05.
	for _, slot := range []string{"11/45", "11/50", "11/55", "12/00", "12/05"} {
		for _, w := range []string{"a_0", "b_0"} {
			if _, err := os.Stat(filepath.Join(root, "date/2009/09/28", slot, w)); err != nil {
				t.Errorf("missing date slot: %v", err)
			}
		}
	}

	// The same seed writes the same ids.
	code, stdout, stderr := runCmd(t, "generate", "-root", filepath.Join(t.TempDir(), "again"), "-n", "50",
		"-date", "2009-09-28", "-seed", "3", "-ids", "-")
	if code != 0 {
		t.Fatalf("generate exited %d: %s", code, stderr)
	}
	if stdout != string(data) {
		t.Errorf("the same seed wrote other ids")
	}
}

func TestGenerateFromConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "postgres://nowhere/x")
	code, _, stderr := runCmd(t, "generate", "-c", cfg, "-deferred", "-n", "5")
	if code != 0 {
		t.Fatalf("generate exited %d: %s", code, stderr)
	}
	n, err := countInbox(t.Context(), crashstore.New(filepath.Join(dir, "toBeDeferred"), crashstore.Options{}))
	if err != nil || n != 5 {
		t.Errorf("deferred tree inbox = %d, %v; want 5", n, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "toBeProcessed")); !os.IsNotExist(err) {
		t.Errorf("the standard tree was touched: %v", err)
	}
}

func TestUsage(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		code int
	}{
		{nil, exitUsage},
		{[]string{"nonsense"}, exitUsage},
		{[]string{"help"}, exitOK},
		{[]string{"generate", "-h"}, exitOK},
		{[]string{"generate", "-n", "1"}, exitUsage},
		{[]string{"generate", "-root", dir, "-layout", "spiral"}, exitUsage},
		{[]string{"generate", "-root", dir, "-date", "28/09/2009"}, exitUsage},
		{[]string{"generate", "-root", dir, "-depth", "7"}, exitUsage},
		{[]string{"generate", "-root", dir, "extra"}, exitUsage},
		{[]string{"generate", "-c", filepath.Join(dir, "missing.yaml")}, exitUsage},
		{[]string{"process", "-storage-root", dir}, exitUsage},
		{[]string{"process", "-db", "postgres://x/y"}, exitUsage},
		{[]string{"process", "-db", "postgres://x/y", "-storage-root", dir, "-fail-ratio", "2"}, exitUsage},
		{[]string{"process", "-db", "postgres://x/y", "-storage-root", dir, "-log-level", "loud"}, exitUsage},
		{[]string{"report"}, exitUsage},
	} {
		if code, _, stderr := runCmd(t, tc.args...); code != tc.code {
			t.Errorf("crashsim %q exited %d, want %d: %s", tc.args, code, tc.code, stderr)
		}
	}
}

// writeConfig writes a monitor configuration rooted in dir and returns its
// path.
func writeConfig(t *testing.T, dir, dbURL string) string {
	t.Helper()
	cfg := testkit.BaseConfig(dir, dbURL)
	cfg["processorCheckInTime"] = "2s"
	path := filepath.Join(dir, "monitor.yaml")
	cfg.Write(t, path)
	return path
}

// TestProcessAndReport runs the process command against a real schema: a
// clean stop on cancellation, a simulated crash on SIGUSR1, and report's
// counts. Not parallel: SIGUSR1 reaches every process command of the test
// binary.
func TestProcessAndReport(t *testing.T) {
	pool := pgtest.Schema(t)
	dir := t.TempDir()
	cfg := writeConfig(t, dir, testkit.SchemaURL(t, pool))
	jobs := queue.NewStore(pool)
	ids := filepath.Join(dir, "ids")
	if code, _, stderr := runCmd(t, "generate", "-c", cfg, "-n", "20", "-ids", ids); code != 0 {
		t.Fatalf("generate: %s", stderr)
	}
	data, err := os.ReadFile(ids)
	if err != nil {
		t.Fatal(err)
	}
	// Log lines of the monitor's scanner and priority loop, as report reads
	// them.
	monitorLog := "2026-11-22 14:03:07,123 INFO - scanner - queued crashes queued=15 already_queued=0 incomplete=0\n" +
		`{"time":"x","level":"INFO","msg":"queued crashes","loop":"scanner","queued":4,"already_queued":1}` + "\n" +
		"2026-11-22 14:03:08,000 INFO - priority - priority crash queued uuid=x tree=deferred owner=1\n"
	if err := os.WriteFile(filepath.Join(dir, "monitor.log"), []byte(monitorLog), 0o644); err != nil {
		t.Fatal(err)
	}

	start := func(name string) (done chan int, stderr *testkit.SyncBuffer, cancel context.CancelFunc) {
		ctx, cancel := context.WithCancel(t.Context())
		done, stderr = make(chan int, 1), &testkit.SyncBuffer{}
		go func() {
			done <- run(ctx, []string{"process", "-c", cfg, "-name", name, "-work-time", "1ms", "-fail-ratio", "0.5",
				"-idle", "10ms", "-log", filepath.Join(dir, name+".log")}, &testkit.SyncBuffer{}, stderr)
		}()
		testkit.Eventually(t, name+" to register", func() bool {
			return testkit.CountLive(t, pool, time.Minute) >= 1
		})
		return done, stderr, cancel
	}

	done, stderr, cancel := start("sim1")
	if _, err := jobs.Enqueue(t.Context(), strings.Fields(string(data)), 0, time.Minute, nil); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "20 finished jobs", func() bool {
		st, err := jobs.Status(t.Context(), time.Minute)
		return err == nil && st.Succeeded+st.Failed == 20
	})
	cancel()
	if code := <-done; code != 0 || !strings.Contains(stderr.String(), "stopped cleanly") {
		t.Fatalf("process exited %d: %s", code, stderr.String())
	}
	var cleanStop int64
	if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM processors WHERE name = 'sim1' AND lastseendatetime = '1999-01-01'`).Scan(&cleanStop); err != nil || cleanStop != 1 {
		t.Errorf("no clean stop recorded: %d, %v", cleanStop, err)
	}

	code, stdout, errOut := runCmd(t, "report", "-c", cfg)
	if code != 0 {
		t.Fatalf("report exited %d: %s", code, errOut)
	}
	got := map[string]string{}
	for _, line := range strings.Fields(stdout) {
		k, v, _ := strings.Cut(line, "=")
		got[k] = v
	}
	for k, v := range map[string]string{
		"processed": "20", "queued": "20", "jobs_waiting": "0", "archived": "0",
		"inbox":      "20", // enqueued directly: no scanner removed the links
		"log_queued": "19", "log_priority_queued": "1", "processors_dead": "1",
	} {
		if got[k] != v {
			t.Errorf("report %s = %q, want %q (report: %s)", k, got[k], v, stdout)
		}
	}

	// SIGUSR1: a simulated crash, no clean stop.
	done, stderr, cancel = start("sim2")
	defer cancel()
	if err := syscall.Kill(os.Getpid(), syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != 0 || !strings.Contains(stderr.String(), "crashed on request") {
			t.Errorf("process after SIGUSR1 exited %d: %s", code, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("process did not stop on SIGUSR1")
	}
	var live int64
	if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM processors WHERE name = 'sim2' AND lastseendatetime > '2000-01-01'`).Scan(&live); err != nil || live != 1 {
		t.Errorf("the crashed processor did a clean stop: %d, %v", live, err)
	}
}
