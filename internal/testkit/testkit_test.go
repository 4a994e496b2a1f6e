package testkit_test

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/crashmonitor/monitor/crashstore"
	"github.com/crashmonitor/monitor/internal/crashgen"
	"github.com/crashmonitor/monitor/internal/pgtest"
	"github.com/crashmonitor/monitor/internal/testkit"
)

func TestPoll(t *testing.T) {
	t.Parallel()
	n := 0
	if !testkit.Poll(t, time.Second, func() bool { n++; return n == 3 }) || n != 3 {
		t.Errorf("Poll returned before the condition held (n = %d)", n)
	}
	start := time.Now()
	if testkit.Poll(t, 50*time.Millisecond, func() bool { return false }) {
		t.Error("Poll of a condition that never holds returned true")
	}
	if d := time.Since(start); d < 50*time.Millisecond || d > 5*time.Second {
		t.Errorf("Poll gave up after %v, want about 50ms", d)
	}
	testkit.Eventually(t, "a condition that holds", func() bool { return true })
}

func TestSyncBuffer(t *testing.T) {
	t.Parallel()
	var b testkit.SyncBuffer
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 100 {
				b.Write([]byte("x"))
				_ = b.String()
			}
		})
	}
	wg.Wait()
	if got := len(b.String()); got != 400 {
		t.Errorf("%d bytes written, want 400", got)
	}
}

func TestConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "monitor.yaml")
	cfg := testkit.BaseConfig(dir, "postgres://x/y")
	cfg["standardLoopDelay"] = `00:00:30 "quoted"`
	cfg.Write(t, path)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != len(cfg) || !slices.IsSorted(lines) {
		t.Errorf("config file:\n%s\nwant every key once, in order", b)
	}
	if !slices.Contains(lines, `standardLoopDelay: "00:00:30 \"quoted\""`) ||
		!slices.Contains(lines, `logFilePathname: "`+filepath.Join(dir, "monitor.log")+`"`) {
		t.Errorf("config file:\n%s", b)
	}
}

// TestProc is not parallel: it sets a MONITOR_* variable that StartProc
// must not pass on.
func TestProc(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "log")
	t.Setenv("MONITOR_STORAGE_ROOT", "/nowhere")
	script := `echo "env=${MONITOR_STORAGE_ROOT:-clean}" >> "$0"; echo started >> "$0"; echo on-stderr >&2
trap 'echo stopping >> "$0"; exit 3' TERM
while :; do sleep 0.01; done`
	p := testkit.StartProc(t, "/bin/sh", logPath, "-c", script, logPath)
	p.WaitLog(t, "started", 1)
	if !strings.Contains(p.LogText(), "env=clean") {
		t.Errorf("MONITOR_* reached the process:\n%s", p.LogText())
	}
	if !testkit.Poll(t, testkit.WaitTimeout(), func() bool { return p.Stderr() == "on-stderr\n" }) {
		t.Errorf("stderr = %q", p.Stderr())
	}
	if !p.RunUntil(t, testkit.WaitTimeout(), func() bool { return true }) {
		t.Error("RunUntil of a condition that holds returned false")
	}
	if code := p.Stop(t, syscall.SIGTERM); code != 3 {
		t.Errorf("exit code %d, want 3", code)
	}
	if got := p.Tail(2); got != "started\nstopping\n" {
		t.Errorf("Tail(2) = %q", got)
	}

	// The shell's child keeps stderr open after the kill: Kill returns
	// anyway, within WaitDelay.
	k := testkit.StartProc(t, "/bin/sh", logPath, "-c", "echo forking >> \"$0\"; sleep 60; :", logPath)
	k.WaitLog(t, "forking", 1)
	start := time.Now()
	k.Kill(t)
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Kill took %v", d)
	}
	if k.Code() != -1 {
		t.Errorf("exit code after SIGKILL = %d, want -1", k.Code())
	}
}

func TestCrashID(t *testing.T) {
	t.Parallel()
	day := time.Date(2009, 9, 28, 0, 0, 0, 0, time.UTC)
	seen := map[string]bool{}
	for i := range 5000 {
		id := testkit.CrashID(i, day)
		if seen[id] || crashstore.IDDepth(id) != 2 || !strings.HasSuffix(id, "2090928") {
			t.Fatalf("CrashID(%d) = %s: a repeat, or not depth 2 of 2009-09-28", i, id)
		}
		seen[id] = true
	}
}

func TestWritePairs(t *testing.T) {
	t.Parallel()
	for _, n := range []int{3, 1000} {
		s := crashstore.New(filepath.Join(t.TempDir(), "tree"), crashstore.Options{GID: -1})
		day := time.Now().UTC()
		pairs := make([]testkit.Pair, n)
		for i := range pairs {
			pairs[i] = testkit.Pair{ID: testkit.CrashID(i, day), At: day}
		}
		pairs[0].Dump = []byte("mine")
		es := testkit.WritePairs(t, s, nil, pairs...)
		for i, e := range es {
			if e.ID != pairs[i].ID {
				t.Fatalf("entry %d is %s, want %s", i, e.ID, pairs[i].ID)
			}
			fi, err := os.Stat(e.JSONPath)
			if err != nil || time.Since(fi.ModTime()) < 59*time.Minute {
				t.Fatalf("%s: %v, %v; want a settled file", e.JSONPath, fi, err)
			}
			if _, err := os.Lstat(e.DateLink); err != nil {
				t.Fatalf("inbox link: %v", err)
			}
		}
		if b, _ := os.ReadFile(es[0].DumpPath); string(b) != "mine" {
			t.Errorf("dump = %q", b)
		}
		if got := len(testkit.Files(t, s.Root())); got != 2*n {
			t.Errorf("%d files in the tree, want %d", got, 2*n)
		}
	}

	s := crashstore.New(filepath.Join(t.TempDir(), "tree"), crashstore.Options{GID: -1})
	e := testkit.WritePairs(t, s, &testkit.PairOpts{Fresh: true, Queued: true}, testkit.ClassicPairs(t, "jsonFileData")[0])[0]
	if _, err := os.Lstat(e.DateLink); err == nil {
		t.Error("a queued pair is still in the inbox")
	}
	if fi, err := os.Stat(e.DumpPath); err != nil || time.Since(fi.ModTime()) > time.Minute {
		t.Errorf("%s: %v, %v; want a fresh file", e.DumpPath, fi, err)
	}
}

func TestFactories(t *testing.T) {
	t.Parallel()
	pool := pgtest.Schema(t)
	procs := testkit.Processors(t, pool, 0, time.Hour)
	live := testkit.LiveProcessors(t, pool, 2)
	testkit.PriorityTables(t, pool, live...)
	if got := testkit.QueryInt(t, pool, `SELECT count(*) FROM processors WHERE lastseendatetime > localtimestamp - interval '1 minute'`); got != 3 {
		t.Errorf("%d live processors, want 3", got)
	}
	if got := testkit.QueryInt(t, pool, `SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename LIKE 'priority\_jobs\_%'`); got != 2 {
		t.Errorf("%d priority tables, want 2", got)
	}

	testkit.Jobs(t, pool, testkit.Queued, 0, "q1", "q2")
	testkit.Jobs(t, pool, testkit.Started, procs[1], "s1")
	testkit.Jobs(t, pool, testkit.Succeeded, procs[0], "ok1", "ok2")
	testkit.Jobs(t, pool, testkit.Failed, 0, "ko1")
	got := testkit.QueryColumn[string](t, pool, `
		SELECT uuid || ':' || coalesce(owner::text, '-') || ':' || (starteddatetime IS NOT NULL) || ':' ||
			(completeddatetime IS NOT NULL) || ':' || coalesce(success::text, '-')
		FROM jobs ORDER BY uuid`)
	want := []string{
		"ko1:-:true:true:false",
		"ok1:" + strconv.FormatInt(procs[0], 10) + ":true:true:true",
		"ok2:" + strconv.FormatInt(procs[0], 10) + ":true:true:true",
		"q1:-:false:false:-",
		"q2:-:false:false:-",
		"s1:" + strconv.FormatInt(procs[1], 10) + ":true:false:-",
	}
	if !slices.Equal(got, want) {
		t.Errorf("jobs:\n%v\nwant\n%v", got, want)
	}
}

func TestGenerate(t *testing.T) {
	t.Parallel()
	s := crashstore.New(filepath.Join(t.TempDir(), "tree"), crashstore.Options{GID: -1})
	g := testkit.Generate(t, s, crashgen.Options{Count: 5, DumpSize: 8, Seed: 1})
	for i := range 5 {
		if _, err := s.Lookup(t.Context(), g.ID(i)); err != nil {
			t.Errorf("crash %d (%s): %v", i, g.ID(i), err)
		}
	}
}
